package web

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nightshift/store"
)

const (
	testToken  = "s3cret-token"              // unnamed, as [http] token_file
	aliceToken = "alice-s3cret-0123456789ab" // named "alice", as a line of [http] tokens_file
)

// fakeControl stands in for the daemon.
type fakeControl struct {
	mu      sync.Mutex
	outcome string
	err     error
	next    time.Time
	running uint64 // the run Cancel accepts
	db      *store.DB
	calls   []string
	// record makes an accepted trigger record a queued run, as the daemon
	// does, and answer with its id.
	record bool
}

func (c *fakeControl) Trigger(reason string, only []string, by string) (Triggered, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	call := fmt.Sprintf("trigger %s %v", reason, only)
	if by != "" {
		call += " by " + by
	}
	c.calls = append(c.calls, call)
	res := Triggered{Outcome: c.outcome}
	if c.record && c.err == nil && c.outcome != outcomeRejected {
		r := &store.Run{Status: store.Queued, Trigger: reason, TriggeredBy: by, Started: time.Now().UTC()}
		if err := c.db.CreateRun(r); err != nil {
			return Triggered{}, err
		}
		res.ID = r.ID
	}
	return res, c.err
}

func (c *fakeControl) Cancel(id uint64, by string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	call := fmt.Sprintf("cancel %d", id)
	if by != "" {
		call += " by " + by
	}
	c.calls = append(c.calls, call)
	if id == c.running {
		return nil
	}
	if _, err := c.db.Run(id); err != nil {
		return err
	}
	return fmt.Errorf("run %d is not running", id)
}

func (c *fakeControl) Next() time.Time { return c.next }

func (c *fakeControl) lastCall() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return ""
	}
	return c.calls[len(c.calls)-1]
}

// fixture is a server over a store of several finished runs, one running
// run, their logs and some notifications.
type fixture struct {
	db      *store.DB
	s       *server
	h       http.Handler
	logs    string
	ctl     *fakeControl
	runs    []store.Run // as filled, oldest first
	running uint64
	reg     *prometheus.Registry
}

const (
	fixtureRuns   = 8
	fixtureImages = 5
)

func newFixture(t *testing.T, mod ...func(*Config)) *fixture {
	t.Helper()
	db := openStore(t)
	f := &fixture{db: db, logs: filepath.Join(t.TempDir(), "logs"), reg: prometheus.NewRegistry()}
	f.runs = fillStore(t, db, fixtureRuns, fixtureImages)
	for _, r := range f.runs {
		for _, im := range r.Images {
			if im.Started != nil {
				writeLog(t, f.logs, r.ID, im.Name, numbered(im.Name, 20))
			}
		}
	}
	// The night going on: ci_base built, ci_cpu building.
	start := fillStart.Add(fixtureRuns * 24 * time.Hour)
	done := start.Add(time.Minute)
	run := store.Run{Tag: "tonight", Commit: strings.Repeat("f", 40), Status: store.Running, Trigger: "cron",
		Started: start, Planned: []string{"ci_base", "ci_cpu"}, Images: []store.ImageResult{
			{Name: "ci_base", Status: store.Succeeded, Started: &start, Finished: &done, Digest: "sha256:" + strings.Repeat("a", 64)},
			{Name: "ci_cpu", Status: store.Running, Started: &done, Stages: []store.Stage{{Name: "build", Status: store.Running, Started: done}}},
		}}
	if err := db.CreateRun(&run); err != nil {
		t.Fatal(err)
	}
	f.running = run.ID
	writeLog(t, f.logs, run.ID, "ci_base", "base line 1\n")
	writeLog(t, f.logs, run.ID, "ci_cpu", "cpu line 1\n")

	// The project's Jenkins job: run 3's passed, run 4's failed, and its
	// record holds a URL no page may link to as it is.
	jobs := map[uint64]store.JenkinsBuild{
		3: {Job: "ci/test", Status: store.Succeeded, Result: "SUCCESS", Number: 12, URL: "https://ci.example.org/job/ci/job/test/12/", Started: fillStart},
		4: {Job: "ci/test", Status: store.Failed, Result: "FAILURE", Number: 13, URL: "javascript:alert(1)", Started: fillStart,
			Console: []string{"<b>FAILED</b> test_vectorize", "Finished: FAILURE"}},
	}
	for id, b := range jobs {
		if err := db.UpdateRun(id, func(r *store.Run) error { r.Jenkins = &b; return nil }); err != nil {
			t.Fatal(err)
		}
	}

	// Notifications of run 3: one sent, one still trying; payloads are secret.
	sent := fillStart.Add(3 * 24 * time.Hour)
	if err := db.Enqueue(sent,
		store.Message{RunID: 3, Notifier: "discord", Payload: json.RawMessage(`{"text":"PAYLOAD-SECRET"}`)},
		store.Message{RunID: 3, Notifier: "email", Payload: json.RawMessage(`{"text":"PAYLOAD-SECRET"}`)},
		store.Message{RunID: 4, Notifier: "email", Payload: json.RawMessage(`{}`)},
	); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateMessage(1, func(m *store.Message) { m.Status, m.Done = store.Sent, &sent }); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateMessage(2, func(m *store.Message) { m.Attempts, m.LastError = 2, "smtp: 451 try again later" }); err != nil {
		t.Fatal(err)
	}

	f.ctl = &fakeControl{outcome: "started", next: time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), running: run.ID, db: db}
	c := Config{DB: db, Control: f.ctl, Logs: f.logs, Registry: f.reg,
		Tokens: []Token{{Secret: testToken}, {Name: "alice", Secret: aliceToken}}}
	for _, m := range mod {
		m(&c)
	}
	s, err := newServer(c)
	if err != nil {
		t.Fatal(err)
	}
	s.poll = 5 * time.Millisecond
	f.s, f.h = s, s.handler()
	return f
}

func writeLog(t testing.TB, logs string, id uint64, name, text string) {
	t.Helper()
	dir := filepath.Join(logs, strconv.FormatUint(id, 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".log"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendLog(t testing.TB, logs string, id uint64, name, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(logs, strconv.FormatUint(id, 10), name+".log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func numbered(prefix string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s line %d\n", prefix, i)
	}
	return b.String()
}

// do sends a request straight to the handler, with the target as written
// (no client cleans "..").
func (f *fixture) do(method, target, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func TestAPI(t *testing.T) {
	t.Parallel()
	bearer := "Bearer " + testToken
	type check func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder)
	tests := []struct {
		name         string
		method, path string
		auth, body   string
		outcome      string // what the fake daemon answers a trigger with
		code         int
		allow        string
		check        check
	}{
		{name: "runs newest first", method: "GET", path: "/api/v1/runs", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			var runs []store.Run
			decode(t, rec, &runs)
			if len(runs) != fixtureRuns+1 || runs[0].ID != f.running || runs[1].ID != fixtureRuns {
				t.Fatalf("got %d runs starting %d, %d", len(runs), runs[0].ID, runs[1].ID)
			}
			if runs[1].Tag != f.runs[fixtureRuns-1].Tag || len(runs[1].Images) != fixtureImages || runs[1].Images[0].Ref == "" {
				t.Errorf("run %d = %+v, not as stored", runs[1].ID, runs[1])
			}
			if !strings.Contains(rec.Body.String(), `"finished":null`) {
				t.Errorf("a running run should say finished: null")
			}
		}},
		{name: "runs limit", method: "GET", path: "/api/v1/runs?limit=3", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			var runs []store.Run
			decode(t, rec, &runs)
			if len(runs) != 3 || runs[2].ID != fixtureRuns-1 {
				t.Fatalf("limit=3 gave %d runs", len(runs))
			}
		}},
		{name: "runs bad limit", method: "GET", path: "/api/v1/runs?limit=0", code: 400},
		{name: "runs limit not a number", method: "GET", path: "/api/v1/runs?limit=ten", code: 400},
		{name: "one run with notifications", method: "GET", path: "/api/v1/runs/3", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			var got runDetail
			decode(t, rec, &got)
			if got.ID != 3 || len(got.Images) != fixtureImages || len(got.Notifications) != 2 {
				t.Fatalf("run 3 = id %d, %d images, %d notifications", got.ID, len(got.Images), len(got.Notifications))
			}
			n := got.Notifications[1]
			if n.Notifier != "email" || n.Status != store.Pending || n.Attempts != 2 || n.LastError == "" {
				t.Errorf("email notification = %+v", n)
			}
			// Sent at the first try: one attempt, not the zero failed ones.
			if n := got.Notifications[0]; n.Notifier != "discord" || n.Status != store.Sent || n.Attempts != 1 {
				t.Errorf("discord notification = %+v, want sent after 1 attempt", n)
			}
			if strings.Contains(rec.Body.String(), "PAYLOAD-SECRET") || strings.Contains(rec.Body.String(), `"payload"`) {
				t.Errorf("a payload leaked: %s", rec.Body)
			}
		}},
		{name: "unknown run", method: "GET", path: "/api/v1/runs/999", code: 404, check: jsonError},
		{name: "run id not a number", method: "GET", path: "/api/v1/runs/abc", code: 404, check: jsonError},
		{name: "run id zero", method: "GET", path: "/api/v1/runs/0", code: 404},
		{name: "unknown api path", method: "GET", path: "/api/v1/nothing", code: 404, check: jsonError},
		{name: "runs wrong method", method: "DELETE", path: "/api/v1/runs", code: 405, allow: "GET, HEAD, POST", check: jsonError},
		{name: "run wrong method", method: "PUT", path: "/api/v1/runs/1", code: 405, allow: "GET, HEAD"},
		{name: "cancel wrong method", method: "GET", path: "/api/v1/runs/1/cancel", code: 405, allow: "POST"},
		{name: "log wrong method", method: "POST", path: "/api/v1/runs/1/images/ci_base/log", code: 405, allow: "GET, HEAD"},
		{name: "image wrong method", method: "DELETE", path: "/api/v1/images/ci_base", code: 405, allow: "GET, HEAD"},
		{name: "page wrong method", method: "POST", path: "/", code: 405, allow: "GET, HEAD"},
		{name: "healthz wrong method", method: "POST", path: "/healthz", code: 405, allow: "GET, HEAD"},
		{name: "metrics wrong method", method: "POST", path: "/metrics", code: 405, allow: "GET, HEAD"},

		{name: "trigger without token", method: "POST", path: "/api/v1/runs", code: 401, check: unauthorized},
		{name: "trigger with wrong token", method: "POST", path: "/api/v1/runs", auth: "Bearer nope", code: 401, check: unauthorized},
		{name: "trigger with token as basic auth", method: "POST", path: "/api/v1/runs", auth: "Basic " + testToken, code: 401, check: unauthorized},
		{name: "trigger with a longer token", method: "POST", path: "/api/v1/runs", auth: bearer + "x", code: 401, check: unauthorized},
		{name: "trigger", method: "POST", path: "/api/v1/runs", auth: bearer, code: 202, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			var got triggerAnswer
			decode(t, rec, &got)
			if got.Outcome != "started" || f.ctl.lastCall() != "trigger api []" {
				t.Errorf("answer %+v, daemon got %q", got, f.ctl.lastCall())
			}
		}},
		{name: "trigger some images", method: "POST", path: "/api/v1/runs", auth: "bearer " + testToken, body: `{"only":["ci_cpu","ci_lint"],"reason":"hotfix"}`, outcome: "coalesced", code: 202, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			if f.ctl.lastCall() != "trigger hotfix [ci_cpu ci_lint]" || !strings.Contains(rec.Body.String(), "coalesced") {
				t.Errorf("answer %s, daemon got %q", rec.Body, f.ctl.lastCall())
			}
		}},
		{name: "trigger rejected", method: "POST", path: "/api/v1/runs", auth: bearer, outcome: "rejected", code: 409, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			var got map[string]string
			decode(t, rec, &got)
			if got["outcome"] != "rejected" || got["error"] == "" {
				t.Errorf("answer %v", got)
			}
		}},
		{name: "trigger bad body", method: "POST", path: "/api/v1/runs", auth: bearer, body: `{"only":`, code: 400, check: jsonError},
		{name: "trigger unknown field", method: "POST", path: "/api/v1/runs", auth: bearer, body: `{"images":["a"]}`, code: 400},
		{name: "trigger bad image name", method: "POST", path: "/api/v1/runs", auth: bearer, body: `{"only":["../x"]}`, code: 400},

		{name: "cancel without token", method: "POST", path: "/api/v1/runs/9/cancel", code: 401, check: unauthorized},
		{name: "cancel with wrong token", method: "POST", path: "/api/v1/runs/9/cancel", auth: "Bearer " + strings.ToUpper(testToken), code: 401},
		{name: "cancel running", method: "POST", path: "/api/v1/runs/9/cancel", auth: bearer, code: 202, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			if f.ctl.lastCall() != "cancel 9" {
				t.Errorf("daemon got %q", f.ctl.lastCall())
			}
		}},
		{name: "cancel finished", method: "POST", path: "/api/v1/runs/2/cancel", auth: bearer, code: 409, check: jsonError},
		{name: "cancel unknown", method: "POST", path: "/api/v1/runs/999/cancel", auth: bearer, code: 404, check: jsonError},

		{name: "image history", method: "GET", path: "/api/v1/images/ci_cpu", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			var got imageHistory
			decode(t, rec, &got)
			if got.Name != "ci_cpu" || len(got.History) != fixtureRuns+1 || got.History[0].RunID != f.running || got.History[1].RunID != fixtureRuns {
				t.Fatalf("history = %+v", got)
			}
			e := got.History[1]
			want := f.runs[fixtureRuns-1].Image("ci_cpu")
			if e.Status != want.Status || e.Digest != want.Digest || e.Tag != f.runs[fixtureRuns-1].Tag ||
				e.DurationSeconds != want.Duration(time.Time{}).Seconds() {
				t.Errorf("entry %+v, want %+v", e, want)
			}
		}},
		{name: "unknown image", method: "GET", path: "/api/v1/images/ci_nope", code: 404, check: jsonError},
		{name: "healthz", method: "GET", path: "/healthz", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			if rec.Body.String() != "ok\n" {
				t.Errorf("body %q", rec.Body)
			}
		}},

		{name: "home", method: "GET", path: "/", code: 200, check: html("nightshift", `href="/runs/9/images/ci_cpu"`, `http-equiv="refresh"`)},
		{name: "home few runs", method: "GET", path: "/?runs=2", code: 200, check: html("2 of 9 runs")},
		{name: "home bad runs", method: "GET", path: "/?runs=-1", code: 400},
		{name: "run page", method: "GET", path: "/runs/3", code: 200, check: html("Run 3", "discord", "smtp: 451 try again later",
			"Change number 3 &lt;script&gt;alert(1)&lt;/script&gt;", `<th scope="row">discord</th><td><span class="badge st-sent"><span aria-hidden="true">✓</span> sent</span></td><td class="num">1</td>`)},
		{name: "run page escapes tails", method: "GET", path: "/runs/1", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			if strings.Contains(rec.Body.String(), "<script>") || strings.Contains(rec.Body.String(), "<module_") {
				t.Errorf("unescaped text in the run page")
			}
		}},
		{name: "run page links its Jenkins build", method: "GET", path: "/runs/3", code: 200, check: html(
			`<dt>Jenkins</dt>`, `<a href="https://ci.example.org/job/ci/job/test/12/">ci/test #12</a>`, "<code>SUCCESS</code>")},
		{name: "run page of a failed Jenkins build", method: "GET", path: "/runs/4", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			html("ci/test #13", "<code>FAILURE</code>", "&lt;b&gt;FAILED&lt;/b&gt; test_vectorize\nFinished: FAILURE")(t, f, rec)
			if body := rec.Body.String(); strings.Contains(body, "javascript:") || strings.Contains(body, "<b>FAILED") || strings.Contains(body, "ZgotmplZ") {
				t.Errorf("the Jenkins record reached the page unescaped")
			}
		}},
		{name: "run page without Jenkins", method: "GET", path: "/runs/2", code: 200, check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
			if strings.Contains(rec.Body.String(), "Jenkins") {
				t.Errorf("a run without a Jenkins build shows one")
			}
		}},
		{name: "image in run page", method: "GET", path: "/runs/2/images/ci_base", code: 200, check: html(`href="/images/ci_base"`, "ci_base in run 2", `href="/runs/2/images/ci_base/logs"`)},
		{name: "image in run page links its Jenkins build", method: "GET", path: "/runs/3/images/ci_cpu", code: 200, check: html(
			`tested by Jenkins: <a href="https://ci.example.org/job/ci/job/test/12/">ci/test #12</a>`)},
		{name: "image page", method: "GET", path: "/images/ci_cpu", code: 200, check: html("<svg", "Last good", "History")},
		{name: "logs page", method: "GET", path: "/runs/2/images/ci_base/logs", code: 200, check: html("ci_base line 20")},
		{name: "css", method: "GET", path: "/static/style.css", code: 200},
		{name: "unknown page", method: "GET", path: "/nothing", code: 404, check: html("nothing at this address")},
		{name: "unknown run page", method: "GET", path: "/runs/999", code: 404},
		{name: "unknown image in run page", method: "GET", path: "/runs/1/images/nope", code: 404},
		{name: "unknown image page", method: "GET", path: "/images/nope", code: 404},
		{name: "unknown static", method: "GET", path: "/static/x.css", code: 404},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.ctl.mu.Lock()
			f.ctl.outcome = cmp.Or(tt.outcome, "started")
			f.ctl.mu.Unlock()
			rec := f.do(tt.method, tt.path, tt.auth, tt.body)
			if rec.Code != tt.code {
				t.Fatalf("%s %s = %d, want %d: %s", tt.method, tt.path, rec.Code, tt.code, rec.Body)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff header")
			}
			if tt.check != nil {
				tt.check(t, f, rec)
			}
		})
	}
}

func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
}

func jsonError(t *testing.T, _ *fixture, rec *httptest.ResponseRecorder) {
	t.Helper()
	var e map[string]string
	decode(t, rec, &e)
	if e["error"] == "" {
		t.Errorf("no error message in %s", rec.Body)
	}
}

func unauthorized(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
	t.Helper()
	jsonError(t, f, rec)
	if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
	}
	if strings.Contains(rec.Body.String(), testToken) {
		t.Errorf("the answer names the token")
	}
}

func html(want ...string) func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
	return func(t *testing.T, _ *fixture, rec *httptest.ResponseRecorder) {
		t.Helper()
		if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		for _, w := range want {
			if !strings.Contains(rec.Body.String(), w) {
				t.Errorf("page lacks %q", w)
			}
		}
		if strings.Contains(rec.Body.String(), testToken) {
			t.Errorf("the page shows the token")
		}
	}
}

// Without a token every write is refused, whatever the request says.
func TestNoTokenRefusesWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Tokens = nil })
	for _, auth := range []string{"", "Bearer ", "Bearer x", "Bearer " + testToken, "Bearer " + aliceToken} {
		for _, path := range []string{"/api/v1/runs", "/api/v1/runs/9/cancel"} {
			rec := f.do("POST", path, auth, "")
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("POST %s with %q = %d, want 401", path, auth, rec.Code)
			}
		}
	}
	if c := f.ctl.lastCall(); c != "" {
		t.Errorf("the daemon was called: %s", c)
	}
}

func TestLogPathEscapes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Files an escape would reach: beside the log directory, and a link
	// out of it under a name the run has.
	secret := filepath.Join(filepath.Dir(f.logs), "secret.log")
	if err := os.WriteFile(secret, []byte("SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.logs, "x.log"), []byte("SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.logs, "2", "ci_base.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(f.logs, "2", "ci_base.log")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"..%2f..%2fetc%2fpasswd",
		"..%2F..%2Fsecret",
		"../../x",
		"..%2Fx",
		"../../../secret",
		"%2Fetc%2Fpasswd",
		"%2e%2e%2f%2e%2e%2fsecret",
		"..",
		"%2e%2e",
		"ci_base%00",
		"ci_base", // the symbolic link out
	} {
		for _, path := range []string{
			"/api/v1/runs/2/images/" + name + "/log",
			"/runs/2/images/" + name + "/logs",
			"/api/v1/runs/2/images/" + name + "/log?tail=1",
		} {
			rec := f.do("GET", path, "", "")
			if rec.Code != http.StatusNotFound && !(name == "ci_base" && strings.HasPrefix(path, "/runs/")) {
				t.Errorf("GET %s = %d, want 404", path, rec.Code)
			}
			if strings.Contains(rec.Body.String(), "SECRET") || strings.Contains(rec.Body.String(), "root:") {
				t.Errorf("GET %s served a file outside the logs: %s", path, rec.Body)
			}
		}
	}
	// An absolute path in the request line.
	req := httptest.NewRequest("GET", "/api/v1/runs/2/images/ci_base/log", nil)
	req.URL.Path = "/api/v1/runs/2/images//etc/passwd/log"
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("absolute path = %d, want 404", rec.Code)
	}
}

func TestLogTail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	writeLog(t, f.logs, 2, "ci_cpu", "one\ntwo\nthree\nfour") // no final newline
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/runs/2/images/ci_base/log", 200, numbered("ci_base", 20)},
		{"/api/v1/runs/2/images/ci_base/log?tail=3", 200, "ci_base line 18\nci_base line 19\nci_base line 20\n"},
		{"/api/v1/runs/2/images/ci_base/log?tail=1", 200, "ci_base line 20\n"},
		{"/api/v1/runs/2/images/ci_base/log?tail=500", 200, numbered("ci_base", 20)},
		{"/api/v1/runs/2/images/ci_cpu/log?tail=2", 200, "three\nfour"},
		{"/api/v1/runs/2/images/ci_cpu/log?tail=4", 200, "one\ntwo\nthree\nfour"},
		{"/api/v1/runs/2/images/ci_base/log?tail=0", 400, ""},
		{"/api/v1/runs/2/images/ci_base/log?tail=x", 400, ""},
		{"/api/v1/runs/2/images/ci_nope/log", 404, ""},
		{"/api/v1/runs/99/images/ci_base/log", 404, ""},
	}
	for _, tt := range tests {
		rec := f.do("GET", tt.path, "", "")
		if rec.Code != tt.code {
			t.Errorf("GET %s = %d, want %d: %s", tt.path, rec.Code, tt.code, rec.Body)
			continue
		}
		if tt.code == 200 {
			if rec.Body.String() != tt.want {
				t.Errorf("GET %s = %q, want %q", tt.path, rec.Body, tt.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", tt.path, ct)
			}
		}
	}
	// A log of more lines than one read block holds.
	long := numbered("long", 20000)
	writeLog(t, f.logs, 3, "ci_base", long)
	rec := f.do("GET", "/api/v1/runs/3/images/ci_base/log?tail=5000", "", "")
	if want := numbered("long", 20000)[len(numbered("long", 15000)):]; rec.Body.String() != want {
		t.Errorf("tail=5000 of a long log: got %d bytes, want %d", rec.Body.Len(), len(want))
	}
	// The viewer shows the last 500 lines unless asked for all.
	page := f.do("GET", "/runs/3/images/ci_base/logs", "", "").Body.String()
	if !strings.Contains(page, "long line 20000") || strings.Contains(page, "long line 19500\n") || !strings.Contains(page, "?all=1") {
		t.Errorf("the log viewer does not show just the last 500 lines")
	}
	page = f.do("GET", "/runs/3/images/ci_base/logs?all=1", "", "").Body.String()
	if !strings.Contains(page, ">long line 1\n") {
		t.Errorf("the log viewer with all=1 lacks the first line")
	}
}

// A log holds whatever the build printed, HTML included: the viewer shows
// it as text, whole or tail, and the raw log is plain text nobody sniffs.
func TestLogViewerEscapesHTML(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	log := "<script>alert(\"x\")</script>\n<img src=x onerror=alert(1)>\n</pre><b>bold</b> & &amp;\n"
	writeLog(t, f.logs, 2, "ci_cpu", log)
	for _, path := range []string{"/runs/2/images/ci_cpu/logs", "/runs/2/images/ci_cpu/logs?all=1"} {
		rec := f.do("GET", path, "", "")
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d", path, rec.Code)
		}
		body := rec.Body.String()
		for _, w := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", "&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt; &amp; &amp;amp;"} {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", path, w)
			}
		}
		for _, bad := range []string{"<script", "<img", "<b>bold"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s shows the log's %q as HTML", path, bad)
			}
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q allows scripts", path, csp)
		}
	}
	rec := f.do("GET", "/api/v1/runs/2/images/ci_cpu/log", "", "")
	if rec.Body.String() != log || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the raw log is %q as %q (nosniff %q), want the file as plain text", rec.Body, rec.Header().Get("Content-Type"), rec.Header().Get("X-Content-Type-Options"))
	}
}

// A running image's log is followed: lines appended while the request is
// open arrive, and the answer ends when the image's status is final.
func TestLogFollow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/runs/%d/images/ci_cpu/log", srv.URL, f.running))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended early")
			}
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no line within 5s")
		}
		return ""
	}
	if l := next(); l != "cpu line 1" {
		t.Fatalf("first line %q", l)
	}
	appendLog(t, f.logs, f.running, "ci_cpu", "cpu line 2\n")
	if l := next(); l != "cpu line 2" {
		t.Fatalf("second line %q", l)
	}
	// The last line and the final status come together: the line must
	// still arrive, and then the answer must end.
	appendLog(t, f.logs, f.running, "ci_cpu", "cpu line 3\n")
	now := time.Now()
	if err := f.db.UpdateRun(f.running, func(r *store.Run) error {
		im := r.Image("ci_cpu")
		im.Status, im.Finished = store.Succeeded, &now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if l := next(); l != "cpu line 3" {
		t.Fatalf("third line %q", l)
	}
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("extra line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end when the image finished")
	}
}

// A client that goes away ends the follow; httptest.Server.Close waits for
// every handler, so a leak would hang here.
func TestLogFollowEndsWithClient(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/images/ci_cpu/log?tail=1", srv.URL, f.running), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := resp.Body.Read(buf)
	if got := string(buf[:n]); got != "cpu line 1\n" {
		t.Errorf("first read %q", got)
	}
	resp.Body.Close()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler still follows the log after its client left")
	}
}

// A running image whose log does not exist yet is followed from nothing.
func TestLogFollowWaitsForFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := os.Remove(filepath.Join(f.logs, strconv.FormatUint(f.running, 10), "ci_cpu.log")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/runs/%d/images/ci_cpu/log", srv.URL, f.running))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(20 * time.Millisecond)
	writeLog(t, f.logs, f.running, "ci_cpu", "late line\n")
	time.Sleep(50 * time.Millisecond)
	now := time.Now()
	if err := f.db.UpdateRun(f.running, func(r *store.Run) error {
		r.Image("ci_cpu").Status, r.Image("ci_cpu").Finished = store.Failed, &now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "late line\n" {
		t.Errorf("body %q", body)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.do("GET", "/metrics", "", "")
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	got := metricValues(t, rec.Body.String())

	count := map[store.Status]int{store.Running: 1}
	lastOK := map[string]float64{}
	lastDur := map[string]float64{}
	for _, r := range f.runs { // oldest first: later runs overwrite
		count[r.Status]++
		for _, im := range r.Images {
			if im.Status == store.Succeeded {
				lastOK[im.Name] = float64(im.Finished.Unix())
			}
			if im.Status == store.Succeeded || im.Status == store.Failed {
				lastDur[im.Name] = im.Duration(time.Time{}).Seconds()
			}
		}
	}
	// Tonight's ci_base already built.
	lastOK["ci_base"] = float64(fillStart.Add(fixtureRuns*24*time.Hour + time.Minute).Unix())
	lastDur["ci_base"] = 60
	want := map[string]float64{
		`nightshift_outbox_pending`:                       2,
		`nightshift_schedule_next_fire_timestamp_seconds`: float64(f.ctl.next.Unix()),
	}
	for _, st := range []store.Status{store.Running, store.Succeeded, store.Failed, store.Interrupted} {
		want[fmt.Sprintf(`nightshift_runs{status="%s"}`, st)] = float64(count[st])
	}
	for name, v := range lastOK {
		want[fmt.Sprintf(`nightshift_image_last_success_timestamp_seconds{image="%s"}`, name)] = v
	}
	for name, v := range lastDur {
		want[fmt.Sprintf(`nightshift_image_last_build_duration_seconds{image="%s"}`, name)] = v
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if count[store.Failed] == 0 || count[store.Succeeded] == 0 {
		t.Errorf("the fixture should have failed and succeeded runs: %v", count)
	}
	// Runs recorded go down when old ones are pruned: a gauge, which
	// rate() and increase() must not be applied to.
	for _, line := range []string{"# TYPE nightshift_runs gauge", "# TYPE nightshift_image_last_success_timestamp_seconds gauge",
		"# TYPE nightshift_image_last_build_duration_seconds gauge", "# TYPE nightshift_outbox_pending gauge"} {
		if !strings.Contains(rec.Body.String(), line+"\n") {
			t.Errorf("the metrics lack %q", line)
		}
	}
	if strings.Contains(rec.Body.String(), "nightshift_runs_total") {
		t.Errorf("runs recorded are named as a counter")
	}

	// No schedule: no next-fire sample rather than a 1970 one.
	f.ctl.mu.Lock()
	f.ctl.next = time.Time{}
	f.ctl.mu.Unlock()
	got = metricValues(t, f.do("GET", "/metrics", "", "").Body.String())
	if _, ok := got["nightshift_schedule_next_fire_timestamp_seconds"]; ok {
		t.Errorf("a next fire time without a schedule")
	}
}

// metricValues reads Prometheus' text format: series -> value.
func metricValues(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// GET /api/v1/runs answers every limit as the store holds the runs, each
// exactly as Runs returns it encoded, and follows every change.
func TestRunsJSONLimits(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	total := defaultAPIRuns + 12
	fillStore(t, db, total, 3)
	s, err := newServer(Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	h := s.handler()
	check := func(limit int) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/api/v1/runs?limit=%d", limit), nil))
		want, err := db.Runs(limit)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(rec.Body.String(), "\n"); rec.Code != 200 || got != string(b) {
			t.Fatalf("limit=%d: %d, %d bytes, want the %d bytes of %d runs as stored", limit, rec.Code, len(got), len(b), len(want))
		}
	}
	for _, limit := range []int{1, defaultAPIRuns - 1, defaultAPIRuns, total, total + 100} {
		check(limit)
	}
	if err := db.UpdateRun(uint64(total), func(r *store.Run) error { r.Tag = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateRun(&store.Run{Tag: "newer", Status: store.Running}); err != nil {
		t.Fatal(err)
	}
	check(2)
	check(total + 100)
}

// The pages that read many runs carry the store's version as their ETag:
// asked again with it, they answer 304 until the store changes.
func TestETags(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	get := func(path, etag string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec
	}
	for _, path := range []string{"/", "/?runs=2", "/api/v1/runs", "/api/v1/runs?limit=2", "/images/ci_lint", "/api/v1/images/ci_lint", "/runs/3"} {
		first := get(path, "")
		etag := first.Header().Get("ETag")
		if first.Code != 200 || etag == "" || !strings.HasPrefix(etag, `"`) {
			t.Fatalf("GET %s = %d with ETag %q", path, first.Code, etag)
		}
		if cc := first.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", path, cc)
		}
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			if rec := get(path, inm); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
				t.Errorf("GET %s with If-None-Match %s = %d, %d bytes, ETag %q; want 304", path, inm, rec.Code, rec.Body.Len(), rec.Header().Get("ETag"))
			}
		}
		if rec := get(path, `"other"`); rec.Code != 200 {
			t.Errorf("GET %s with another ETag = %d, want 200", path, rec.Code)
		}
	}
	// Other pages, other ETags; a change in the store, new ones.
	home, api := get("/", "").Header().Get("ETag"), get("/api/v1/runs", "").Header().Get("ETag")
	if home == api || home == get("/?runs=2", "").Header().Get("ETag") {
		t.Errorf("two answers share an ETag")
	}
	if err := f.db.UpdateRun(2, func(r *store.Run) error { r.Subject = "edited"; return nil }); err != nil {
		t.Fatal(err)
	}
	for path, etag := range map[string]string{"/": home, "/api/v1/runs": api} {
		if rec := get(path, etag); rec.Code != 200 || rec.Header().Get("ETag") == etag {
			t.Errorf("GET %s after a change = %d with ETag %q, want 200 and a new one", path, rec.Code, rec.Header().Get("ETag"))
		}
	}
	// The history of an image building now depends on the clock: no ETag;
	// nor the page of a run going on.
	if rec := get("/api/v1/images/ci_cpu", ""); rec.Code != 200 || rec.Header().Get("ETag") != "" {
		t.Errorf("the history of an image building now has ETag %q", rec.Header().Get("ETag"))
	}
	if rec := get(fmt.Sprintf("/runs/%d", f.running), "*"); rec.Code != 200 || rec.Header().Get("ETag") != "" {
		t.Errorf("the page of a run going on = %d with ETag %q, want 200 without", rec.Code, rec.Header().Get("ETag"))
	}
	// Nor does a page that depends on the schedule keep its ETag when that
	// moves.
	f.ctl.mu.Lock()
	f.ctl.next = f.ctl.next.Add(time.Hour)
	f.ctl.mu.Unlock()
	if rec := get("/", get("/", "").Header().Get("ETag")); rec.Code != http.StatusNotModified {
		t.Fatalf("home = %d, want 304", rec.Code)
	}
	etag := get("/", "").Header().Get("ETag")
	f.ctl.mu.Lock()
	f.ctl.next = f.ctl.next.Add(time.Hour)
	f.ctl.mu.Unlock()
	if rec := get("/", etag); rec.Code != 200 {
		t.Errorf("home after the schedule moved = %d, want 200", rec.Code)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	if _, err := New(Config{}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := New(Config{DB: db, PublicURL: "ftp://x"}); err == nil {
		t.Error("New with a bad public URL succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{DB: db, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{DB: db, Registry: reg}); err == nil {
		t.Error("a second New on one registry succeeded")
	}
	// An empty store, no control, no registry: pages still answer.
	h, err := New(Config{DB: db, PublicURL: "https://ci.example.org/nightshift/"})
	if err != nil {
		t.Fatal(err)
	}
	for path, code := range map[string]int{"/": 200, "/api/v1/runs": 200, "/metrics": 200, "/healthz": 200} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != code {
			t.Errorf("GET %s = %d", path, rec.Code)
		}
		if path == "/api/v1/runs" && strings.TrimSpace(rec.Body.String()) != "[]" {
			t.Errorf("an empty store's runs = %s, want []", rec.Body)
		}
		if path == "/" && !strings.Contains(rec.Body.String(), `href="/nightshift/static/style.css`) {
			t.Errorf("links do not carry the public URL's path")
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer x")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("a write to a server without token = %d", rec.Code)
	}
}

// The store is closed: health says so.
func TestHealthzStoreDown(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	h, err := New(Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("healthz of a closed store = %d", rec.Code)
	}
}
