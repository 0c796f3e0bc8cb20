package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"nightshift/store"
)

// lockedBuffer is a log destination that handlers may write concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An accepted trigger answers with the run to follow: its id, its URL and
// a Location header; the record is there at once, queued, and says which
// token's name triggered it. A rejected trigger makes no record. No token
// reaches the log, an answer, a record or a page.
func TestTriggerNamesTheRun(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	f := newFixture(t, func(c *Config) {
		c.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	f.ctl.record = true
	var bodies []string
	do := func(method, target, auth, body string) (int, http.Header, string) {
		rec := f.do(method, target, auth, body)
		bodies = append(bodies, rec.Body.String())
		return rec.Code, rec.Header(), rec.Body.String()
	}
	queued := f.running + 1

	code, h, body := do("POST", "/api/v1/runs", "Bearer "+aliceToken, `{"reason": "hotfix"}`)
	want := `{"id":` + itoa(queued) + `,"url":"/api/v1/runs/` + itoa(queued) + `","outcome":"started"}` + "\n"
	if code != http.StatusAccepted || body != want || h.Get("Location") != "/api/v1/runs/"+itoa(queued) {
		t.Fatalf("trigger = %d %q (Location %q), want 202 %q", code, body, h.Get("Location"), want)
	}
	if got := f.ctl.lastCall(); got != "trigger hotfix [] by alice" {
		t.Errorf("the daemon got %q, want alice's trigger", got)
	}
	code, _, body = do("GET", "/api/v1/runs/"+itoa(queued), "", "")
	var run runDetail
	if err := json.Unmarshal([]byte(body), &run); code != http.StatusOK || err != nil ||
		run.Status != store.Queued || run.TriggeredBy != "alice" || run.Trigger != "hotfix" {
		t.Errorf("the triggered run = %d %s, want queued, triggered by alice", code, body)
	}
	if !strings.Contains(body, `"triggered_by":"alice"`) {
		t.Errorf("the record's JSON lacks triggered_by: %s", body)
	}

	// The unnamed token: coalesced, recorded without a name.
	f.ctl.mu.Lock()
	f.ctl.outcome = "coalesced"
	f.ctl.mu.Unlock()
	code, h, body = do("POST", "/api/v1/runs", "Bearer "+testToken, "")
	if code != http.StatusAccepted || !strings.Contains(body, `"id":`+itoa(queued+1)) || !strings.Contains(body, `"outcome":"coalesced"`) ||
		h.Get("Location") != "/api/v1/runs/"+itoa(queued+1) {
		t.Errorf("coalesced trigger = %d %s (Location %q)", code, body, h.Get("Location"))
	}
	if got := f.ctl.lastCall(); got != "trigger api []" {
		t.Errorf("the daemon got %q, want an unnamed trigger", got)
	}
	if r, err := f.db.Run(queued + 1); err != nil || r.TriggeredBy != "" {
		t.Errorf("the run of the unnamed token: %+v, %v", r, err)
	}

	// Rejected: 409, no id, no record. A daemon that fails: 500, no id.
	runs, _ := f.db.Runs(0)
	for _, tc := range []struct {
		outcome string
		err     error
		code    int
	}{
		{"rejected", nil, http.StatusConflict},
		{"rejected", errors.New("the daemon is stopping"), http.StatusConflict},
		{"", errors.New("store is read-only"), http.StatusInternalServerError},
	} {
		f.ctl.mu.Lock()
		f.ctl.outcome, f.ctl.err = tc.outcome, tc.err
		f.ctl.mu.Unlock()
		code, h, body := do("POST", "/api/v1/runs", "Bearer "+aliceToken, "")
		if code != tc.code || h.Get("Location") != "" || strings.Contains(body, `"id"`) {
			t.Errorf("%s/%v: %d %s (Location %q), want %d without a run", tc.outcome, tc.err, code, body, h.Get("Location"), tc.code)
		}
		if tc.code == http.StatusConflict && !strings.Contains(body, `"outcome":"rejected"`) {
			t.Errorf("rejected: %s", body)
		}
	}
	if after, _ := f.db.Runs(0); len(after) != len(runs) {
		t.Errorf("%d runs after rejected triggers, want %d", len(after), len(runs))
	}

	// A cancel names its token too.
	if code, _, _ := do("POST", "/api/v1/runs/"+itoa(f.running)+"/cancel", "Bearer "+aliceToken, ""); code != http.StatusAccepted ||
		f.ctl.lastCall() != "cancel "+itoa(f.running)+" by alice" {
		t.Errorf("cancel = %d, the daemon got %q", code, f.ctl.lastCall())
	}

	// The dashboard shows the queued runs, who triggered them, and
	// refreshes while they wait.
	_, _, page := do("GET", "/runs/"+itoa(queued), "", "")
	for _, w := range []string{`<span class="badge st-queued"><span aria-hidden="true">○</span> queued</span>`,
		"<dt>Triggered by</dt><dd>alice</dd>", "<dt>Trigger</dt><dd>hotfix</dd>", `http-equiv="refresh"`, "starts when that one ends"} {
		if !strings.Contains(page, w) {
			t.Errorf("the queued run's page lacks %q", w)
		}
	}
	_, _, home := do("GET", "/", "", "")
	for _, w := range []string{`class="run-head st-queued" href="/runs/` + itoa(queued+1) + `"`, "waiting for the run going on to end", `http-equiv="refresh"`,
		`<span class="badge st-queued"><span aria-hidden="true">○</span> queued</span></li>`} {
		if !strings.Contains(home, w) {
			t.Errorf("the home page lacks %q", w)
		}
	}
	if _, _, metrics := do("GET", "/metrics", "", ""); !strings.Contains(metrics, `nightshift_runs{status="queued"} 2`) {
		t.Errorf("metrics do not count the 2 queued runs:\n%s", metrics)
	}
	do("GET", "/api/v1/runs", "", "")

	// A wrong token is refused; the log says who did what, never with what.
	if code, _, _ := do("POST", "/api/v1/runs", "Bearer "+aliceToken[:len(aliceToken)-1], ""); code != http.StatusUnauthorized {
		t.Errorf("a cut token = %d, want 401", code)
	}
	log := logs.String()
	if !strings.Contains(log, "by=alice") {
		t.Errorf("the log does not say alice triggered:\n%s", log)
	}
	for _, secret := range []string{testToken, aliceToken, aliceToken[:len(aliceToken)-1]} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds a token:\n%s", log)
		}
		for _, b := range bodies {
			if strings.Contains(b, secret) {
				t.Errorf("an answer holds a token: %.300s", b)
			}
		}
	}
}

// Behind a reverse proxy that strips a path prefix, the run's URL carries
// the prefix of [http] public_url, like every link.
func TestTriggerURLUnderPublicPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.PublicURL = "https://ci.example.org/nightshift/" })
	f.ctl.record = true
	rec := f.do("POST", "/api/v1/runs", "Bearer "+testToken, "")
	want := "/nightshift/api/v1/runs/" + itoa(f.running+1)
	if rec.Code != http.StatusAccepted || rec.Header().Get("Location") != want || !strings.Contains(rec.Body.String(), `"url":"`+want+`"`) {
		t.Errorf("trigger = %d %s (Location %q), want the URL %s", rec.Code, rec.Body, rec.Header().Get("Location"), want)
	}
}

// Every token is accepted, each under its own name, and nothing like one.
func TestNamedTokens(t *testing.T) {
	t.Parallel()
	bob := "bob-" + strings.Repeat("b", 30)
	f := newFixture(t, func(c *Config) { c.Tokens = append(c.Tokens, Token{Name: "bob", Secret: bob}) })
	for _, tc := range []struct {
		auth, call string
		code       int
	}{
		{"Bearer " + testToken, "trigger api []", http.StatusAccepted},
		{"Bearer " + aliceToken, "trigger api [] by alice", http.StatusAccepted},
		{"bearer  " + bob + " ", "trigger api [] by bob", http.StatusAccepted},
		{"Bearer " + bob + "x", "", http.StatusUnauthorized},
		{"Bearer " + strings.ToUpper(aliceToken), "", http.StatusUnauthorized},
		{"Bearer " + testToken + aliceToken, "", http.StatusUnauthorized},
		{"Basic " + bob, "", http.StatusUnauthorized},
	} {
		f.ctl.mu.Lock()
		before := len(f.ctl.calls)
		f.ctl.mu.Unlock()
		rec := f.do("POST", "/api/v1/runs", tc.auth, "")
		f.ctl.mu.Lock()
		calls := f.ctl.calls[before:]
		f.ctl.mu.Unlock()
		want := []string{}
		if tc.call != "" {
			want = []string{tc.call}
		}
		if rec.Code != tc.code || !slices.Equal(calls, want) {
			t.Errorf("%q: %d, the daemon got %q; want %d, %q", tc.auth, rec.Code, calls, tc.code, want)
		}
	}
	if _, err := newServer(Config{DB: f.db, Tokens: []Token{{Name: "x"}}}); err == nil {
		t.Error("an empty token was accepted")
	}
}

func itoa(id uint64) string { return strconv.FormatUint(id, 10) }
