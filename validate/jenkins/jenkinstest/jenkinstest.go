// Package jenkinstest imitates the part of a Jenkins controller's remote
// access API that nightshift uses, on a loopback httptest server, for the
// tests of nightshift's packages:
//
//   - POST {job}/buildWithParameters (form or query parameters; only the
//     parameters the job defines are kept, missing ones get their
//     default) and POST {job}/build for a job without parameters: 201
//     Created with Location {root}queue/item/N/, or 303 to the waiting
//     item when an identical one (same job, same parameters) is queued.
//   - GET {root}queue/item/N/api/json: a waiting item has "why" and no
//     "executable" or "cancelled"; once it left the queue, "executable"
//     is {"number","url"} (null if it was cancelled) and "cancelled" says
//     which; Jenkins forgets it 5 minutes (LeftItemTTL) after it left.
//   - POST {root}queue/cancelItem?id=N: 204, 404 "Provided id (N) not
//     found", or 500 once the item left the queue.
//   - GET {build}/api/json ("building", "result" null until the end,
//     "duration" in ms, "queueId"), GET {build}/consoleText, POST
//     {build}/stop (the build ends ABORTED; 302 back to the build).
//   - GET {job}/api/json with "builds" (newest first).
//   - Folders: job/a/job/b/job/name. Unknown jobs answer 404.
//   - Security when Config.User is set: basic auth with the user and its
//     API token; wrong credentials get 401 "Invalid password/token for
//     user: X", no credentials get 403 "Authentication required".
//   - CSRF protection when Config.Crumbs is set: GET
//     {root}crumbIssuer/api/json starts a session (cookie JSESSIONID.xxxx)
//     and answers {"crumb","crumbRequestField":"Jenkins-Crumb"}; a POST
//     whose Jenkins-Crumb header or form field does not match the crumb of
//     its session cookie gets 403 "No valid crumb was included in the
//     request". With crumbs off the issuer answers 404. (Real Jenkins
//     exempts requests authenticated by API token; this one is strict.)
//
// Time drives the scripts: each queue item waits Job.QueueWait, then its
// build runs Job.Duration (or forever with Job.Hang) and ends with
// Job.Result. State advances lazily on each request, so millisecond
// scripts make fast tests without goroutines.
package jenkinstest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config sets up a Server.
type Config struct {
	// User and Token, when User is set, are the only credentials accepted
	// (basic auth, the token as password); anonymous requests are refused.
	// User "" turns security off.
	User, Token string
	// Crumbs turns CSRF protection on.
	Crumbs bool
	// Jobs are the jobs there are; folders exist as their paths imply.
	Jobs []Job
	// LeftItemTTL is how long a queue item stays visible after it left the
	// queue; 0 means Jenkins' 5 minutes.
	LeftItemTTL time.Duration
	// RootURL is the URL Jenkins believes it has, used in Location headers
	// and "url" fields, as a reverse proxy in front of Jenkins can make it
	// differ from the URL clients use. "" means the server's own URL.
	RootURL string
	// Now is the server's clock: queue waits, build durations and item
	// lifetimes are measured on it. nil means time.Now.
	Now func() time.Time
}

// Job is one job and the script every build of it follows.
type Job struct {
	// Path is the full name: "name" or "folder/sub/name".
	Path string
	// Params are the parameter definitions, name to default value; nil
	// means the job takes no parameters.
	Params map[string]string
	// QueueWait is how long a queue item waits before its build starts.
	QueueWait time.Duration
	// Duration is how long a build runs.
	Duration time.Duration
	// Result is how a build ends: SUCCESS (when ""), UNSTABLE, FAILURE,
	// ABORTED or NOT_BUILT.
	Result string
	// Hang makes builds run until stopped.
	Hang bool
	// Console is the build's console text, between Jenkins' own first and
	// last lines.
	Console string
	// Disabled makes triggers fail with 409, as for a disabled job.
	Disabled bool
}

// Build is what the server knows of one build.
type Build struct {
	Job      string // the job's full name
	Number   int
	QueueID  int
	Params   map[string]string // the parameters the build received
	Building bool
	Result   string // "" while building
	Stopped  bool   // someone POSTed stop while it ran
}

// Request is one request the server answered.
type Request struct {
	Method string
	Path   string // unescaped, as in URL.Path
	Query  string // the raw query
	Status int
}

// Server is a running imitation. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's root URL, without a trailing slash, like
	// httptest.Server's.
	URL string

	srv    *httptest.Server
	cfg    Config
	root   string // RootURL, ending in /
	cookie string // session cookie name
	salt   string

	mu        sync.Mutex
	jobs      map[string]*job
	queue     []*item // every item ever queued, by id
	sessions  map[string]bool
	failures  []int // statuses for the next GETs
	requests  []Request
	cancelled []int
}

type job struct {
	Job
	builds []*build // oldest first
	next   int      // next build number
}

type item struct {
	id        int
	job       *job
	script    Job // the job as it was when the item was queued
	params    map[string]string
	user      string
	created   time.Time
	left      time.Time // zero while waiting
	cancelled bool
	build     *build
}

type build struct {
	job      *job
	script   Job
	number   int
	queueID  int
	params   map[string]string
	user     string
	started  time.Time
	finished time.Time // zero while building
	result   string
	stopped  bool
	stopper  string
}

// New starts a server on 127.0.0.1. Close it when done.
func New(cfg Config) *Server {
	s := &Server{
		cfg:      cfg,
		cookie:   "JSESSIONID." + randomHex(4),
		salt:     randomHex(16),
		jobs:     map[string]*job{},
		sessions: map[string]bool{},
	}
	for _, j := range cfg.Jobs {
		s.setJob(j)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	s.root = cfg.RootURL
	if s.root == "" {
		s.root = s.URL
	}
	if !strings.HasSuffix(s.root, "/") {
		s.root += "/"
	}
	return s
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Client returns an HTTP client for the server, with a transport of its
// own: one that another server's Close (which closes the idle connections
// of http.DefaultTransport) does not disturb.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// SetJob adds a job or replaces its script; builds already queued keep
// the script they started with.
func (s *Server) SetJob(j Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setJob(j)
}

func (s *Server) setJob(j Job) {
	if old, ok := s.jobs[j.Path]; ok {
		old.Job = j
		return
	}
	s.jobs[j.Path] = &job{Job: j, next: 1}
}

// Builds returns the builds of the job at path, oldest first.
func (s *Server) Builds(path string) []Build {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.now())
	j := s.jobs[path]
	if j == nil {
		return nil
	}
	var out []Build
	for _, b := range j.builds {
		out = append(out, Build{
			Job: path, Number: b.number, QueueID: b.queueID, Params: maps.Clone(b.params),
			Building: b.finished.IsZero(), Result: b.result, Stopped: b.stopped,
		})
	}
	return out
}

// Cancelled returns the ids of the queue items cancelled through
// queue/cancelItem, in order.
func (s *Server) Cancelled() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cancelled)
}

// Requests returns every request answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// FailNext makes the next n GET requests, whatever they ask, answer
// status (a 5xx, say) as a restarting Jenkins or its proxy would.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, status)
	}
}

// ExpireSessions forgets every session, as a session timeout or a restart
// of Jenkins does: crumbs issued before stop passing.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: w.status})
	}()
	now := s.now()
	s.advance(now)

	if r.Method == http.MethodGet && len(s.failures) > 0 {
		status := s.failures[0]
		s.failures = s.failures[1:]
		errorPage(w, r, status, http.StatusText(status))
		return
	}

	// Authentication: bad credentials are refused before anything else;
	// anonymous requests only once the crumb was checked, as Jenkins' own
	// filters order it.
	user := "anonymous"
	if u, p, ok := r.BasicAuth(); ok && s.cfg.User != "" {
		if u != s.cfg.User || p != s.cfg.Token {
			errorPage(w, r, http.StatusUnauthorized, "Invalid password/token for user: "+u)
			return
		}
		user = u
	}
	if err := r.ParseForm(); err != nil {
		errorPage(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if r.Method == http.MethodPost && s.cfg.Crumbs && !s.validCrumb(r, user) {
		errorPage(w, r, http.StatusForbidden, "No valid crumb was included in the request")
		return
	}
	if s.cfg.User != "" && user == "anonymous" {
		w.Header().Set("X-You-Are-Authenticated-As", "anonymous")
		w.Header().Set("X-Required-Permission", "hudson.model.Hudson.Read")
		w.Header().Set("Content-Type", "text/html;charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "<html><head><meta http-equiv='refresh' content='1;url=/login?from=%s'/><script>window.location.replace('/login?from=%s');</script></head><body style='background-color:white; color:white;'>\n\nAuthentication required\n<!--\nYou are authenticated as: anonymous\nGroups that you are in:\n\nPermission you need to have (but didn't): hudson.model.Hudson.Read\n-->\n</body></html>",
			url.QueryEscape(r.URL.Path), url.QueryEscape(r.URL.Path))
		return
	}

	p := r.URL.Path
	switch {
	case p == "/crumbIssuer/api/json":
		s.serveCrumb(w, r, user)
	case p == "/api/json":
		s.serveRoot(w, r)
	case p == "/queue/cancelItem":
		s.serveCancel(w, r, now)
	case strings.HasPrefix(p, "/queue/item/"):
		s.serveQueueItem(w, r, now)
	case strings.HasPrefix(p, "/job/"):
		s.serveJob(w, r, user, now)
	default:
		errorPage(w, r, http.StatusNotFound, "Not Found")
	}
}

// advance plays every script up to now: items whose wait is over start
// their build, builds whose time is up end.
func (s *Server) advance(now time.Time) {
	for _, it := range s.queue {
		if !it.left.IsZero() {
			continue
		}
		start := it.created.Add(it.script.QueueWait)
		if now.Before(start) {
			continue
		}
		j := it.job
		b := &build{job: j, script: it.script, number: j.next, queueID: it.id, params: it.params, user: it.user, started: start}
		j.next++
		j.builds = append(j.builds, b)
		it.left, it.build = start, b
	}
	for _, j := range s.jobs {
		for _, b := range j.builds {
			if !b.finished.IsZero() || b.script.Hang {
				continue
			}
			if end := b.started.Add(b.script.Duration); !now.Before(end) {
				b.finished = end
				b.result = b.script.Result
				if b.result == "" {
					b.result = "SUCCESS"
				}
			}
		}
	}
}

func (s *Server) crumbFor(user, session string) string {
	sum := sha256.Sum256([]byte(s.salt + "\x00" + user + "\x00" + session))
	return hex.EncodeToString(sum[:16])
}

func (s *Server) validCrumb(r *http.Request, user string) bool {
	c, err := r.Cookie(s.cookie)
	if err != nil || !s.sessions[c.Value] {
		return false
	}
	got := r.Header.Get("Jenkins-Crumb")
	if got == "" {
		got = r.PostFormValue("Jenkins-Crumb")
	}
	return got != "" && got == s.crumbFor(user, c.Value)
}

func (s *Server) serveCrumb(w http.ResponseWriter, r *http.Request, user string) {
	if !s.cfg.Crumbs {
		errorPage(w, r, http.StatusNotFound, "Not Found")
		return
	}
	session := ""
	if c, err := r.Cookie(s.cookie); err == nil && s.sessions[c.Value] {
		session = c.Value
	} else {
		session = randomHex(16)
		s.sessions[session] = true
		http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: session, Path: "/", HttpOnly: true})
	}
	writeJSON(w, map[string]any{
		"_class":            "hudson.security.csrf.DefaultCrumbIssuer",
		"crumb":             s.crumbFor(user, session),
		"crumbRequestField": "Jenkins-Crumb",
	})
}

func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		errorPage(w, r, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	var jobs []any
	seen := map[string]bool{}
	for _, path := range s.sortedPaths() {
		top, _, folder := strings.Cut(path, "/")
		if seen[top] {
			continue
		}
		seen[top] = true
		class := "hudson.model.FreeStyleProject"
		if folder {
			class = "com.cloudbees.hudson.plugins.folder.Folder"
		}
		jobs = append(jobs, map[string]any{"_class": class, "name": top, "url": s.jobURL(top)})
	}
	writeJSON(w, map[string]any{"_class": "hudson.model.Hudson", "mode": "NORMAL", "url": s.root, "jobs": jobs})
}

func (s *Server) serveCancel(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodPost {
		errorPage(w, r, http.StatusMethodNotAllowed, "This URL requires POST")
		return
	}
	raw := r.FormValue("id")
	id, err := strconv.Atoi(raw)
	if err != nil {
		errorPage(w, r, http.StatusBadRequest, fmt.Sprintf("Failed to convert %q to long", raw))
		return
	}
	it := s.item(id, now)
	switch {
	case it == nil:
		errorPage(w, r, http.StatusNotFound, fmt.Sprintf("Provided id (%d) not found", id))
	case !it.left.IsZero():
		errorPage(w, r, http.StatusInternalServerError, fmt.Sprintf("Could not cancel run for id %d", id))
	default:
		it.left, it.cancelled = now, true
		s.cancelled = append(s.cancelled, id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// item returns the queue item with id as Jenkins still knows it, or nil.
func (s *Server) item(id int, now time.Time) *item {
	if id < 1 || id > len(s.queue) {
		return nil
	}
	it := s.queue[id-1]
	if !it.left.IsZero() && now.Sub(it.left) > s.leftItemTTL() {
		return nil
	}
	return it
}

func (s *Server) leftItemTTL() time.Duration {
	if s.cfg.LeftItemTTL > 0 {
		return s.cfg.LeftItemTTL
	}
	return 5 * time.Minute
}

func (s *Server) serveQueueItem(w http.ResponseWriter, r *http.Request, now time.Time) {
	rest := strings.Split(strings.TrimPrefix(r.URL.Path, "/queue/item/"), "/")
	id, err := strconv.Atoi(rest[0])
	if err != nil || len(rest) != 3 || rest[1] != "api" || rest[2] != "json" || r.Method != http.MethodGet {
		errorPage(w, r, http.StatusNotFound, "Not Found")
		return
	}
	it := s.item(id, now)
	if it == nil {
		errorPage(w, r, http.StatusNotFound, "Not Found")
		return
	}
	v := map[string]any{
		"actions":      actions(it.params, it.user),
		"blocked":      false,
		"buildable":    false,
		"id":           it.id,
		"inQueueSince": it.created.UnixMilli(),
		"params":       paramsText(it.params),
		"stuck":        false,
		"task": map[string]any{
			"_class": "hudson.model.FreeStyleProject",
			"name":   lastName(it.job.Path),
			"url":    s.jobURL(it.job.Path),
			"color":  "notbuilt",
		},
		"url": fmt.Sprintf("queue/item/%d/", it.id),
	}
	if it.left.IsZero() {
		v["_class"] = "hudson.model.Queue$WaitingItem"
		v["timestamp"] = it.created.Add(it.script.QueueWait).UnixMilli()
		v["why"] = fmt.Sprintf("In the quiet period. Expires in %d ms", it.created.Add(it.script.QueueWait).Sub(now).Milliseconds())
	} else {
		v["_class"] = "hudson.model.Queue$LeftItem"
		v["why"] = nil
		v["cancelled"] = it.cancelled
		v["executable"] = nil
		if it.build != nil {
			v["executable"] = map[string]any{
				"_class": "hudson.model.FreeStyleBuild",
				"number": it.build.number,
				"url":    s.buildURL(it.build),
			}
		}
	}
	writeJSON(w, v)
}

// serveJob answers everything under /job/: the job (or folder), its
// triggers and its builds.
func (s *Server) serveJob(w http.ResponseWriter, r *http.Request, user string, now time.Time) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var names []string
	for len(segs) >= 2 && segs[0] == "job" && segs[1] != "" {
		names = append(names, segs[1])
		segs = segs[2:]
	}
	path := strings.Join(names, "/")
	j := s.jobs[path]
	if j == nil {
		if s.isFolder(path) && (len(segs) == 0 || (len(segs) == 2 && segs[0] == "api" && segs[1] == "json")) {
			s.serveFolder(w, path)
			return
		}
		errorPage(w, r, http.StatusNotFound, "Not Found")
		return
	}
	switch {
	case len(segs) == 0 || (len(segs) == 2 && segs[0] == "api" && segs[1] == "json"):
		s.serveJobJSON(w, r, j)
	case len(segs) == 1 && (segs[0] == "buildWithParameters" || segs[0] == "build"):
		s.serveTrigger(w, r, j, segs[0], user, now)
	case len(segs) >= 2:
		n, err := strconv.Atoi(segs[0])
		if err != nil || n < 1 || n > len(j.builds) {
			errorPage(w, r, http.StatusNotFound, "Not Found")
			return
		}
		b := j.builds[n-1]
		switch rest := strings.Join(segs[1:], "/"); {
		case rest == "api/json" && r.Method == http.MethodGet:
			s.serveBuild(w, b, now)
		case rest == "consoleText" && r.Method == http.MethodGet:
			w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
			fmt.Fprint(w, console(b))
		case rest == "stop":
			if r.Method != http.MethodPost {
				errorPage(w, r, http.StatusMethodNotAllowed, "This URL requires POST")
				return
			}
			if b.finished.IsZero() {
				b.finished, b.result, b.stopped, b.stopper = now, "ABORTED", true, user
			}
			// Stapler's forwardToPreviousPage: back to the Referer, or ".".
			loc := r.Header.Get("Referer")
			if loc == "" {
				loc = s.buildURL(b)
			}
			http.Redirect(w, r, loc, http.StatusFound)
		default:
			errorPage(w, r, http.StatusNotFound, "Not Found")
		}
	default:
		errorPage(w, r, http.StatusNotFound, "Not Found")
	}
}

func (s *Server) serveTrigger(w http.ResponseWriter, r *http.Request, j *job, endpoint, user string, now time.Time) {
	switch {
	case r.Method != http.MethodPost:
		errorPage(w, r, http.StatusMethodNotAllowed, "This URL requires POST")
		return
	case j.Disabled:
		errorPage(w, r, http.StatusConflict, j.Path+" is not buildable")
		return
	case endpoint == "buildWithParameters" && j.Params == nil:
		errorPage(w, r, http.StatusInternalServerError, "This build is not parameterized!")
		return
	case endpoint == "build" && j.Params != nil:
		// The form page's submission is expected here; without it Jenkins
		// refuses (its exact answer varies by version).
		errorPage(w, r, http.StatusBadRequest, "This page expects a form submission")
		return
	}
	params := map[string]string{}
	for name, def := range j.Params {
		params[name] = def
		if vs, ok := r.Form[name]; ok && len(vs) > 0 {
			params[name] = vs[0]
		}
	}
	if j.Params == nil {
		params = nil
	}
	// An identical item still waiting absorbs the request.
	for _, it := range s.queue {
		if it.job == j && it.left.IsZero() && maps.Equal(it.params, params) {
			w.Header().Set("Location", s.root+fmt.Sprintf("queue/item/%d/", it.id))
			w.WriteHeader(http.StatusSeeOther)
			return
		}
	}
	it := &item{id: len(s.queue) + 1, job: j, script: j.Job, params: params, user: user, created: now}
	s.queue = append(s.queue, it)
	w.Header().Set("Location", s.root+fmt.Sprintf("queue/item/%d/", it.id))
	w.WriteHeader(http.StatusCreated)
	s.advance(now) // a zero wait starts at once
}

func (s *Server) serveJobJSON(w http.ResponseWriter, r *http.Request, j *job) {
	withQueueID := strings.Contains(r.URL.Query().Get("tree"), "queueId")
	var builds []any
	for i := len(j.builds) - 1; i >= 0; i-- {
		b := j.builds[i]
		e := map[string]any{"_class": "hudson.model.FreeStyleBuild", "number": b.number, "url": s.buildURL(b)}
		if withQueueID {
			e["queueId"] = b.queueID
		}
		builds = append(builds, e)
	}
	inQueue := false
	for _, it := range s.queue {
		inQueue = inQueue || (it.job == j && it.left.IsZero())
	}
	v := map[string]any{
		"_class":          "hudson.model.FreeStyleProject",
		"name":            lastName(j.Path),
		"fullName":        j.Path,
		"url":             s.jobURL(j.Path),
		"buildable":       !j.Disabled,
		"builds":          builds,
		"inQueue":         inQueue,
		"nextBuildNumber": j.next,
	}
	if j.Params != nil {
		var defs []any
		for _, name := range sortedKeys(j.Params) {
			defs = append(defs, map[string]any{
				"_class":                "hudson.model.StringParameterDefinition",
				"name":                  name,
				"type":                  "StringParameterDefinition",
				"defaultParameterValue": map[string]any{"_class": "hudson.model.StringParameterValue", "name": name, "value": j.Params[name]},
			})
		}
		v["property"] = []any{map[string]any{"_class": "hudson.model.ParametersDefinitionProperty", "parameterDefinitions": defs}}
	}
	writeJSON(w, v)
}

func (s *Server) serveFolder(w http.ResponseWriter, path string) {
	var jobs []any
	seen := map[string]bool{}
	for _, p := range s.sortedPaths() {
		rest, ok := strings.CutPrefix(p, path+"/")
		if !ok {
			continue
		}
		name, _, sub := strings.Cut(rest, "/")
		if seen[name] {
			continue
		}
		seen[name] = true
		class := "hudson.model.FreeStyleProject"
		if sub {
			class = "com.cloudbees.hudson.plugins.folder.Folder"
		}
		jobs = append(jobs, map[string]any{"_class": class, "name": name, "url": s.jobURL(path + "/" + name)})
	}
	writeJSON(w, map[string]any{
		"_class": "com.cloudbees.hudson.plugins.folder.Folder", "name": lastName(path), "fullName": path,
		"url": s.jobURL(path), "jobs": jobs,
	})
}

func (s *Server) serveBuild(w http.ResponseWriter, b *build, now time.Time) {
	building := b.finished.IsZero()
	var result any
	duration := int64(0)
	if !building {
		result = b.result
		duration = b.finished.Sub(b.started).Milliseconds()
	}
	writeJSON(w, map[string]any{
		"_class":            "hudson.model.FreeStyleBuild",
		"actions":           actions(b.params, b.user),
		"building":          building,
		"description":       nil,
		"displayName":       fmt.Sprintf("#%d", b.number),
		"duration":          duration,
		"estimatedDuration": b.script.Duration.Milliseconds(),
		"fullDisplayName":   strings.ReplaceAll(b.job.Path, "/", " » ") + fmt.Sprintf(" #%d", b.number),
		"id":                strconv.Itoa(b.number),
		"keepLog":           false,
		"number":            b.number,
		"queueId":           b.queueID,
		"result":            result,
		"timestamp":         b.started.UnixMilli(),
		"url":               s.buildURL(b),
	})
}

// console is the build's console text so far, framed as Jenkins frames it.
func console(b *build) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Started by user %s\n", b.user)
	sb.WriteString(b.script.Console)
	if b.script.Console != "" && !strings.HasSuffix(b.script.Console, "\n") {
		sb.WriteString("\n")
	}
	if !b.finished.IsZero() {
		if b.stopped {
			fmt.Fprintf(&sb, "Aborted by %s\n", b.stopper)
		}
		fmt.Fprintf(&sb, "Finished: %s\n", b.result)
	}
	return sb.String()
}

func (s *Server) jobURL(path string) string {
	var sb strings.Builder
	sb.WriteString(s.root)
	for name := range strings.SplitSeq(path, "/") {
		sb.WriteString("job/" + url.PathEscape(name) + "/")
	}
	return sb.String()
}

func (s *Server) buildURL(b *build) string {
	return s.jobURL(b.job.Path) + strconv.Itoa(b.number) + "/"
}

func (s *Server) isFolder(path string) bool {
	if path == "" {
		return false
	}
	for p := range s.jobs {
		if strings.HasPrefix(p, path+"/") {
			return true
		}
	}
	return false
}

func (s *Server) sortedPaths() []string {
	paths := make([]string, 0, len(s.jobs))
	for p := range s.jobs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// errorPage answers as Jetty's error handler does in Jenkins: the message
// in the title, a heading and a table.
func errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "text/html;charset=iso-8859-1")
	w.Header().Set("Cache-Control", "must-revalidate,no-cache,no-store")
	w.WriteHeader(status)
	m := html.EscapeString(msg)
	fmt.Fprintf(w, "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n<title>Error %d %s</title>\n</head>\n<body>\n<h2>HTTP ERROR %d %s</h2>\n<table>\n<tr><th>URI:</th><td>%s</td></tr>\n<tr><th>STATUS:</th><td>%d</td></tr>\n<tr><th>MESSAGE:</th><td>%s</td></tr>\n<tr><th>SERVLET:</th><td>Stapler</td></tr>\n</table>\n</body>\n</html>\n",
		status, m, status, m, html.EscapeString(r.URL.Path), status, m)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func actions(params map[string]string, user string) []any {
	var out []any
	if params != nil {
		var ps []any
		for _, name := range sortedKeys(params) {
			ps = append(ps, map[string]any{"_class": "hudson.model.StringParameterValue", "name": name, "value": params[name]})
		}
		out = append(out, map[string]any{"_class": "hudson.model.ParametersAction", "parameters": ps})
	}
	out = append(out, map[string]any{
		"_class": "hudson.model.CauseAction",
		"causes": []any{map[string]any{
			"_class":           "hudson.model.Cause$UserIdCause",
			"shortDescription": "Started by user " + user,
			"userId":           user,
			"userName":         user,
		}},
	})
	return out
}

func paramsText(params map[string]string) string {
	var sb strings.Builder
	for _, name := range sortedKeys(params) {
		sb.WriteString("\n" + name + "=" + params[name])
	}
	return sb.String()
}

func lastName(path string) string { return path[strings.LastIndex(path, "/")+1:] }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
