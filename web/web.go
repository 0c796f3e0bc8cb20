// Package web is nightshift's HTTP side: a JSON API to read runs and to
// trigger or cancel them, build logs (followed live while an image builds),
// Prometheus metrics, and a server-rendered dashboard that works without
// JavaScript.
package web

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nightshift/store"
)

// Control is what the daemon gives the web side to act with.
type Control interface {
	// Trigger asks for a run now, for the API token named by ("" for the
	// unnamed token). The outcome is "started", "coalesced" (queued behind
	// the run going on) or "rejected"; an accepted run has its record at
	// once, queued until it starts. The err of a rejected trigger is shown
	// to the caller; any other is logged, and answered 500.
	Trigger(reason string, only []string, by string) (Triggered, error)
	// Cancel cancels run runID for the token named by. The error wraps
	// store.ErrNotFound when no such run exists; any other error means
	// the run is not running.
	Cancel(runID uint64, by string) error
	// Next is the schedule's next fire time, zero if none.
	Next() time.Time
}

// Triggered is what became of a trigger.
type Triggered struct {
	Outcome string // "started", "coalesced" or "rejected"
	// ID is the record of the run that carries the trigger out: its own,
	// or the pending run's it joined. 0 when rejected.
	ID uint64
}

// Token is a bearer token that API writes accept, and the name the runs
// it triggers are recorded with ("" for an unnamed token).
type Token struct {
	Name   string
	Secret string
}

// Config is what New needs.
type Config struct {
	DB      *store.DB
	Control Control // nil: triggering and cancelling answer 503
	// Logs is the store's log directory; the log of image name in run id is
	// <Logs>/<id>/<name>.log.
	Logs string
	// Tokens are the bearer tokens that writes accept. None refuses every
	// write. Of two with the same secret, the later one's name is recorded.
	Tokens []Token
	// PublicURL is where people reach the dashboard ("" if unset). Its path,
	// if any, prefixes the dashboard's links, for a reverse proxy that
	// publishes this handler under a prefix it strips.
	PublicURL string
	Log       *slog.Logger         // nil: discard
	Registry  *prometheus.Registry // where the metrics are registered; nil: a private one
	// Validates says that the configuration validates images: a night's
	// image counts as good (an image's last good night, its last success
	// in the metrics) only once validated. Without it, only a night that
	// validated an image requires it.
	Validates bool
	// Consistent are the [packages] consistent groups: a run's page marks a
	// package mismatch inside one, which fails those images' validation.
	Consistent [][]string
}

// outcomeRejected is the outcome of Control.Trigger that answers 409.
const outcomeRejected = "rejected"

// Defaults of the routes' query parameters.
const (
	defaultAPIRuns   = 50  // GET /api/v1/runs
	defaultHomeRuns  = 30  // GET /
	defaultLogLines  = 500 // the log viewer
	maxTriggerBody   = 64 << 10
	defaultLogPoll   = 500 * time.Millisecond
	homeRefreshEvery = 10 // seconds, while a run is going on
)

// server holds what the handlers share. Nothing in it changes after New:
// every answer is read from the store.
type server struct {
	db        *store.DB
	control   Control
	logs      string
	tokens    []hashedToken // empty: writes are refused
	base      string        // path prefix of links, from PublicURL
	validates bool
	// consistent are the [packages] consistent groups.
	consistent [][]string
	log        *slog.Logger
	reg        *prometheus.Registry
	pages      *pages
	// salt makes this server's ETags its own: another process, maybe of
	// another nightshift, renders the same store's version otherwise.
	salt string

	// poll is how often a followed log is checked for new lines and its
	// image for a final status; tests shorten it.
	poll time.Duration
	// now is the clock for durations of things still running.
	now func() time.Time
}

// New returns the handler of every route: the API under /api/v1/, /healthz,
// /metrics, and the dashboard. It registers nightshift's collectors on
// c.Registry, so it fails if New was already called with that registry.
func New(c Config) (http.Handler, error) {
	s, err := newServer(c)
	if err != nil {
		return nil, err
	}
	return s.handler(), nil
}

func newServer(c Config) (*server, error) {
	if c.DB == nil {
		return nil, errors.New("web: no store")
	}
	base := ""
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("web: public URL %q is not an http(s) URL", c.PublicURL)
		}
		base = strings.TrimRight(u.EscapedPath(), "/")
	}
	s := &server{
		db: c.DB, control: c.Control, logs: c.Logs, base: base, validates: c.Validates, consistent: c.Consistent,
		log:  cmp.Or(c.Log, slog.New(slog.DiscardHandler)),
		reg:  c.Registry,
		salt: rand.Text()[:8],
		poll: defaultLogPoll,
		now:  time.Now,
	}
	for _, t := range c.Tokens {
		if t.Secret == "" {
			return nil, fmt.Errorf("web: token %q is empty", t.Name)
		}
		s.tokens = append(s.tokens, hashedToken{name: t.Name, sum: sha256.Sum256([]byte(t.Secret))})
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	p, err := loadPages()
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.pages = p
	if err := s.reg.Register(&collector{s: s}); err != nil {
		return nil, fmt.Errorf("web: register metrics: %w", err)
	}
	return s, nil
}

// handler routes requests. Each path is registered once with its methods,
// so that a wrong method gets 405 with Allow in the style of its route (JSON
// under /api/, HTML elsewhere), not the mux's plain text.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, hs methods) { mux.Handle(pattern, s.dispatch(true, hs)) }
	page := func(pattern string, hs methods) { mux.Handle(pattern, s.dispatch(false, hs)) }

	api("/api/v1/runs", methods{http.MethodGet: s.apiRuns, http.MethodPost: s.apiTrigger})
	api("/api/v1/runs/{id}", methods{http.MethodGet: s.apiRun})
	api("/api/v1/runs/{id}/cancel", methods{http.MethodPost: s.apiCancel})
	api("/api/v1/runs/{id}/diff", methods{http.MethodGet: s.apiDiff})
	api("/api/v1/runs/{id}/consistency", methods{http.MethodGet: s.apiConsistency})
	api("/api/v1/runs/{id}/images/{name}/log", methods{http.MethodGet: s.apiLog})
	api("/api/v1/images/{name}", methods{http.MethodGet: s.apiImage})
	api("/api/", methods{"": func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r) }})

	page("/healthz", methods{http.MethodGet: s.healthz})
	page("/metrics", methods{http.MethodGet: s.metrics().ServeHTTP})
	page("/static/", methods{http.MethodGet: s.static})
	page("/{$}", methods{http.MethodGet: s.home})
	page("/runs/{id}", methods{http.MethodGet: s.runPage})
	page("/runs/{id}/images/{name}", methods{http.MethodGet: s.imageRunPage})
	page("/runs/{id}/images/{name}/logs", methods{http.MethodGet: s.logsPage})
	page("/runs/{id}/images/{name}/manifest.md", methods{http.MethodGet: s.manifest})
	page("/images/{name}", methods{http.MethodGet: s.imagePage})
	page("/", methods{"": func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r) }})

	return s.logged(s.headers(s.cleanOnly(mux)))
}

// methods maps a method to its handler; "" handles any method.
type methods map[string]http.HandlerFunc

func (s *server) dispatch(api bool, hs methods) http.Handler {
	if h, ok := hs[""]; ok {
		return h
	}
	var allow []string
	for m := range hs {
		allow = append(allow, m)
	}
	if _, ok := hs[http.MethodGet]; ok {
		allow = append(allow, http.MethodHead)
	}
	slices.Sort(allow)
	allowed := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet // net/http drops the body of a HEAD answer
		}
		if h, ok := hs[m]; ok {
			h(w, r)
			return
		}
		w.Header().Set("Allow", allowed)
		msg := fmt.Sprintf("%s is not allowed here; allowed: %s", r.Method, allowed)
		if api {
			writeError(w, http.StatusMethodNotAllowed, msg)
			return
		}
		s.errorPage(w, r, http.StatusMethodNotAllowed, msg)
	})
}

// cleanOnly answers 404 to a path with "..", "." or "//" segments, where the
// mux would redirect: no link of ours has them, and refusing them outright
// keeps such paths away from the log files.
func (s *server) cleanOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if p == "" || clean != p {
			s.notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headers sets what every answer carries: no sniffing, no framing, and a
// content security policy that allows no script at all.
func (s *server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

// logged logs every request at debug level and server errors at error
// level. It never logs headers: they hold the token.
func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelDebug
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "http", "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration", time.Since(start).Round(time.Microsecond))
	})
}

// statusRecorder remembers the status a handler wrote. Unwrap lets
// http.ResponseController reach the real writer to flush a followed log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// hashedToken is a Token as the server keeps it: hashed, so that comparing
// leaks neither its content nor its length.
type hashedToken struct {
	name string
	sum  [sha256.Size]byte
}

// authorized reports whether r carries one of the bearer tokens, and the
// name of that token; if not, it has answered 401.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) (name string, ok bool) {
	const scheme = "bearer "
	h := r.Header.Get("Authorization")
	given := len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme)
	if given && len(s.tokens) > 0 {
		sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(scheme):])))
		// Every token is compared, in constant time, so that the time
		// taken says nothing of which one, if any, matched.
		match := -1
		for i := range s.tokens {
			eq := subtle.ConstantTimeCompare(sum[:], s.tokens[i].sum[:])
			match = subtle.ConstantTimeSelect(eq, i, match)
		}
		if match >= 0 {
			return s.tokens[match].name, true
		}
	}
	switch {
	case len(s.tokens) == 0:
		w.Header().Set("WWW-Authenticate", `Bearer realm="nightshift"`)
		writeError(w, http.StatusUnauthorized, "writes are disabled: the daemon has no API token ([http] token_file or tokens_file)")
	case !given:
		w.Header().Set("WWW-Authenticate", `Bearer realm="nightshift"`)
		writeError(w, http.StatusUnauthorized, "this needs an API token: Authorization: Bearer <token>")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="nightshift", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "the token is not one of the daemon's API tokens")
	}
	return "", false
}

// notFound answers 404 in the style of the path: JSON under /api/.
func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	s.errorPage(w, r, http.StatusNotFound, "There is nothing at this address.")
}

// writeJSON answers v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode: "+err.Error())
		return
	}
	writeJSONBytes(w, code, b)
}

// writeJSONBytes answers the JSON that parts make one after the other.
// An answer with an ETag may be kept, and asked about again.
func writeJSONBytes(w http.ResponseWriter, code int, parts ...[]byte) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("ETag") != "" {
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(code)
	for _, b := range parts {
		w.Write(b)
	}
	w.Write([]byte("\n"))
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// internal answers 500 for err and logs it: the client learns only that
// something failed, the log says what.
func (s *server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, http.StatusInternalServerError, "internal error; the daemon's log says more")
		return
	}
	s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong reading the records; the daemon's log says more.")
}

// etag is the entity tag of an answer read from the store at version,
// that depends on nothing else than key (the page and its parameters).
func (s *server) etag(version uint64, key string) string {
	h := fnv.New64a()
	io.WriteString(h, s.salt)
	io.WriteString(h, key)
	return `"` + strconv.FormatUint(version, 10) + "-" + strconv.FormatUint(h.Sum64(), 36) + `"`
}

// unchanged reports whether the client already holds the answer of key as
// the store now stands (If-None-Match), and if so has answered 304. The
// store's version is read once, without the records: a page that has not
// changed costs no more.
func (s *server) unchanged(w http.ResponseWriter, r *http.Request, key string) bool {
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	v, err := s.db.Version()
	if err != nil {
		return false // the read that follows fails, and says so
	}
	return notModified(w, r, s.etag(v, key))
}

// notModified reports whether the client already holds the answer tagged
// tag (If-None-Match), and if so has answered 304.
func notModified(w http.ResponseWriter, r *http.Request, tag string) bool {
	inm := r.Header.Get("If-None-Match")
	if inm == "" || !etagMatches(inm, tag) {
		return false
	}
	w.Header().Set("ETag", tag)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusNotModified)
	return true
}

// etagMatches reports whether an If-None-Match header names tag, weakly
// compared as RFC 9110 asks.
func etagMatches(header, tag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}
