package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/internal/testenv"
	"nightshift/store"
)

// Tokens of the trigger tests: one unnamed ([http] token_file), three named
// ([http] tokens_file). None may show up in a log, a record or a page.
const (
	unnamedToken = "unnamed-e2e-token-0123456789"
	aliceToken   = "alice-e2e-token-0123456789abcdef"
	jenkinsToken = "jenkins-e2e-token-0123456789abcd"
	bobToken     = "bob-e2e-token-0123456789abcdef01"
)

var triggerTokens = []string{unnamedToken, aliceToken, jenkinsToken, bobToken}

// triggerStack is a stack with an image that builds until it is cancelled,
// one that builds at once, and one that fails; the daemon has no schedule:
// only triggers start runs.
func triggerStack(t *testing.T, namespace, listen, overlap string) string {
	t.Helper()
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.slow":   "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sleep\", \"300\"]\n",
		"docker/Dockerfile.quick":  base,
		"docker/Dockerfile.broken": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo broken >&2; exit 3\"]\n",
		"nightshift.toml": fmt.Sprintf(`
[staging]
registry  = "%%REGISTRY%%"
namespace = %q

[schedule]
overlap = %q
shutdown_grace = "1s"

[http]
listen = %q
token_file = "token"
tokens_file = "tokens"

[[image]]
name = "slow"
dockerfile = "docker/Dockerfile.slow"

[[image]]
name = "quick"
dockerfile = "docker/Dockerfile.quick"

[[image]]
name = "broken"
dockerfile = "docker/Dockerfile.broken"
`, namespace, overlap, listen),
	})
	dir := filepath.Dir(cfg)
	files := map[string]string{
		"token":     unnamedToken + "\n",
		"tokens":    "# who may trigger\nalice   " + aliceToken + "\njenkins " + jenkinsToken + "\n\nbob     " + bobToken + "\n",
		"bob.token": bobToken + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// answer is an HTTP answer as a test reads it.
type answer struct {
	code     int
	location string
	body     string
}

// call sends a request to the daemon, with a bearer token if one is given.
func call(t *testing.T, method, url, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Location"), string(b)}
}

// apiRun reads run id from the daemon.
func apiRun(t *testing.T, base string, id uint64) store.Run {
	t.Helper()
	a := call(t, http.MethodGet, fmt.Sprintf("%s/api/v1/runs/%d", base, id), "", "")
	var r store.Run
	if err := json.Unmarshal([]byte(a.body), &r); a.code != http.StatusOK || err != nil {
		t.Fatalf("run %d: %d %s", id, a.code, a.body)
	}
	return r
}

// process is nightshift running in the background.
type process struct {
	stdout, stderr syncBuffer
	done           chan struct{}
	code           int
}

// background starts nightshift with args; wait returns its exit code.
func background(t *testing.T, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, e2e.bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e2e.docker.Addr)
	p := &process{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer cancel()
		defer close(p.done)
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

func (p *process) wait() int {
	<-p.done
	return p.code
}

// A trigger names its run: the API answers with its id, URL and Location,
// and `trigger --wait` follows it to its end and exits with its exit code.
// A trigger during a run gets the pending run's record at once, queued;
// a second one shares it; it becomes the run when it starts and ends done.
// Who triggered is recorded by token name, and no token shows up anywhere.
func TestTriggerFollowsItsRun(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	listen, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := triggerStack(t, "trigger", listen, "coalesce")
	dir := filepath.Dir(cfg)
	base := "http://" + listen
	daemon, out := startDaemon(t, cfg)
	waitFor(t, func() bool { return apiRuns(base) != nil })
	var seen []string // every answer and output, to look for tokens in

	// Started: run 1, followed by its id.
	a := call(t, http.MethodPost, base+"/api/v1/runs", aliceToken, `{"reason": "e2e"}`)
	seen = append(seen, a.body)
	if want := `{"id":1,"url":"/api/v1/runs/1","outcome":"started"}` + "\n"; a.code != http.StatusAccepted || a.body != want || a.location != "/api/v1/runs/1" {
		t.Fatalf("trigger = %d %q (Location %q), want 202 %q", a.code, a.body, a.location, want)
	}
	if id := waitForBuild(t, base, "slow"); id != 1 {
		t.Fatalf("building slow in run %d, want 1", id)
	}
	if r := apiRun(t, base, 1); r.TriggeredBy != "alice" || r.Trigger != "e2e" {
		t.Errorf("run 1 triggered by %q (%q), want alice (e2e)", r.TriggeredBy, r.Trigger)
	}

	// Coalesced behind it: run 2 is recorded at once, queued, and a
	// second trigger (bob's, followed with --wait) shares it.
	a = call(t, http.MethodPost, base+"/api/v1/runs", jenkinsToken, `{"only": ["quick"], "reason": "jenkins"}`)
	seen = append(seen, a.body)
	if want := `{"id":2,"url":"/api/v1/runs/2","outcome":"coalesced"}` + "\n"; a.code != http.StatusAccepted || a.body != want || a.location != "/api/v1/runs/2" {
		t.Fatalf("trigger during a run = %d %q (Location %q), want 202 %q", a.code, a.body, a.location, want)
	}
	bob := background(t, "trigger", "-c", cfg, "--token-file", filepath.Join(dir, "bob.token"), "--only", "quick", "--wait", "--poll", "100ms")
	waitFor(t, func() bool { return strings.Contains(bob.stdout.String(), "run 2 queued") })
	if want := "run 2 coalesced: " + base + "/api/v1/runs/2\n"; !strings.HasPrefix(bob.stdout.String(), want) {
		t.Errorf("trigger --wait began with %q, want %q", bob.stdout.String(), want)
	}
	// The unnamed token, without --wait: the same run, exit 0.
	res := nightshift(t, nil, "trigger", "-c", cfg, "--only", "quick")
	seen = append(seen, res.stdout, res.stderr)
	if res.code != exitOK || res.stdout != "run 2 coalesced: "+base+"/api/v1/runs/2\n" {
		t.Errorf("trigger: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	queued := apiRun(t, base, 2)
	if queued.Status != store.Queued || queued.TriggeredBy != "jenkins, bob" || queued.Trigger != "jenkins" || queued.Finished != nil || len(queued.Images) != 0 {
		t.Errorf("run 2 while run 1 goes on: %+v, want queued, triggered by jenkins and bob", queued)
	}
	page := call(t, http.MethodGet, base+"/runs/2", "", "")
	home := call(t, http.MethodGet, base+"/", "", "")
	seen = append(seen, page.body, home.body)
	for _, w := range []string{`<span class="badge st-queued"><span aria-hidden="true">○</span> queued</span>`, "<dt>Triggered by</dt><dd>jenkins, bob</dd>"} {
		if !strings.Contains(page.body, w) {
			t.Errorf("the queued run's page lacks %q", w)
		}
	}
	if !strings.Contains(home.body, `class="run-head st-queued" href="/runs/2"`) {
		t.Errorf("the dashboard does not show run 2 queued")
	}
	if runs := apiRuns(base); len(runs) != 2 {
		t.Errorf("%d runs recorded, want 2: three triggers during a run make one pending run", len(runs))
	}
	if a := call(t, http.MethodPost, base+"/api/v1/runs/2/cancel", aliceToken, ""); a.code != http.StatusConflict || !strings.Contains(a.body, "queued") {
		t.Errorf("cancel of the queued run: %d %s, want 409 saying it is queued", a.code, a.body)
	}

	// Run 1 cancelled (by alice): run 2 starts on its record and ends.
	if a := call(t, http.MethodPost, base+"/api/v1/runs/1/cancel", aliceToken, ""); a.code != http.StatusAccepted {
		t.Fatalf("cancel run 1: %d %s", a.code, a.body)
	}
	if code := bob.wait(); code != exitOK {
		t.Errorf("trigger --wait of run 2: exit %d, want 0\n%s%s", code, bob.stdout.String(), bob.stderr.String())
	}
	seen = append(seen, bob.stdout.String(), bob.stderr.String())
	if !strings.Contains(bob.stdout.String(), "run 2 succeeded: 1 of 1 images pushed to "+e2e.registry.Addr+"/trigger") {
		t.Errorf("trigger --wait printed no summary of run 2:\n%s", bob.stdout.String())
	}
	first := apiRun(t, base, 1)
	if first.Status != store.Interrupted || !strings.Contains(first.Error, "cancelled through the API by alice") {
		t.Errorf("run 1 after its cancel: %s (%s), want interrupted by alice", first.Status, first.Error)
	}
	done := apiRun(t, base, 2)
	if done.Status != store.Succeeded || done.Tag == "" || !slices.Equal(done.Planned, []string{"quick"}) || done.TriggeredBy != "jenkins, bob" ||
		!done.Started.After(queued.Started) || done.Image("quick") == nil || done.Image("quick").Digest == "" {
		t.Errorf("run 2 at its end: %+v, want the queued record taken over, quick built", done)
	}
	if !strings.Contains(out.String(), `msg="run started" run=2 `) {
		t.Errorf("the daemon did not start run 2 on its queued record:\n%s", out.String())
	}

	// A run that fails, followed: exit 1, its summary says why.
	res = nightshift(t, nil, "trigger", "-c", cfg, "--token-file", filepath.Join(dir, "bob.token"), "--only", "broken", "--wait", "--poll", "100ms")
	seen = append(seen, res.stdout, res.stderr)
	if res.code != exitFailed || !strings.Contains(res.stdout, "run 3 started") || !strings.Contains(res.stdout, "run 3 failed: 0 of 1 images pushed") ||
		!strings.Contains(res.stdout, "broken") {
		t.Errorf("trigger --wait of a failing run: exit %d, want %d\n%s%s", res.code, exitFailed, res.stdout, res.stderr)
	}

	// With --url, no configuration: the token from the environment, the
	// staging repository from the run's refs.
	res = nightshift(t, []string{config.EnvHTTPToken + "=" + bobToken}, "trigger", "-c", filepath.Join(dir, "absent.toml"), "--url", base+"/",
		"--only", "quick", "--wait", "--poll", "100ms")
	seen = append(seen, res.stdout, res.stderr)
	if res.code != exitOK || !strings.Contains(res.stdout, "run 4 started: "+base+"/api/v1/runs/4") ||
		!strings.Contains(res.stdout, "run 4 succeeded: 1 of 1 images pushed to "+e2e.registry.Addr+"/trigger with tag") {
		t.Errorf("trigger --url --wait without a configuration: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	// A client needs none of the daemon's named tokens: a tokens_file it
	// cannot read is no problem of its own.
	client := filepath.Join(dir, "client.toml")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(client, bytes.Replace(text, []byte(`tokens_file = "tokens"`), []byte(`tokens_file = "/nonexistent/tokens"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	res = nightshift(t, nil, "status", "-c", client)
	seen = append(seen, res.stdout, res.stderr)
	if res.code != exitOK || !strings.Contains(res.stdout, "by jenkins, bob") {
		t.Errorf("status with a tokens_file only the daemon reads: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	// Stopping with a run pending: the run going on is cut short, the
	// pending one never starts, and both records say so.
	a = call(t, http.MethodPost, base+"/api/v1/runs", aliceToken, `{"only": ["slow"]}`)
	seen = append(seen, a.body)
	if a.code != http.StatusAccepted || !strings.Contains(a.body, `"id":5`) {
		t.Fatalf("trigger: %d %s", a.code, a.body)
	}
	waitForBuild(t, base, "slow")
	a = call(t, http.MethodPost, base+"/api/v1/runs", jenkinsToken, "")
	seen = append(seen, a.body)
	if a.code != http.StatusAccepted || !strings.Contains(a.body, `"id":6`) {
		t.Fatalf("trigger: %d %s", a.code, a.body)
	}
	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon after SIGTERM: %v\n%s", err, out.String())
	}
	runs := apiRunsFromStore(t, cfg)
	if len(runs) != 6 {
		t.Fatalf("%d runs recorded, want 6", len(runs))
	}
	if r := runs[0]; r.ID != 6 || r.Status != store.Interrupted || r.Error != "the daemon stopped before the run started" || r.TriggeredBy != "jenkins" {
		t.Errorf("the pending run after SIGTERM: %+v, want interrupted before it started", r)
	}
	if r := runs[1]; r.ID != 5 || r.Status != store.Interrupted {
		t.Errorf("the run going on at SIGTERM: %+v, want interrupted", r)
	}

	// Who triggered, in the record (history --json) and in show; the
	// tokens in none of it, nor in the log, the pages, the answers, the
	// outputs, or the database file itself.
	history := nightshift(t, nil, "history", "-c", cfg, "--json", "--limit", "0")
	show := nightshift(t, nil, "show", "2", "-c", cfg)
	text2 := nightshift(t, nil, "history", "-c", cfg)
	seen = append(seen, history.stdout, show.stdout, text2.stdout, out.String())
	if !strings.Contains(history.stdout, `"triggered_by": "jenkins, bob"`) || !strings.Contains(history.stdout, `"triggered_by": "alice"`) {
		t.Errorf("history --json does not say who triggered:\n%s", history.stdout)
	}
	if !strings.Contains(show.stdout, "(jenkins by jenkins, bob)") {
		t.Errorf("show does not say who triggered:\n%s", show.stdout)
	}
	if !strings.Contains(text2.stdout, "e2e by alice") {
		t.Errorf("history does not say who triggered:\n%s", text2.stdout)
	}
	db, err := os.ReadFile(filepath.Join(dir, "nightshift.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range triggerTokens {
		if bytes.Contains(db, []byte(tok)) {
			t.Errorf("the database holds a token")
		}
		for _, s := range seen {
			if strings.Contains(s, tok) {
				t.Errorf("a token shows up in:\n%.2000s", s)
			}
		}
	}
}

// With overlap = "reject", a trigger during a run is refused with 409 and
// makes no record.
func TestTriggerRejectedMakesNoRecord(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	listen, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := triggerStack(t, "trigger-reject", listen, "reject")
	base := "http://" + listen
	startDaemon(t, cfg)
	waitFor(t, func() bool { return apiRuns(base) != nil })

	a := call(t, http.MethodPost, base+"/api/v1/runs", unnamedToken, `{"only": ["slow"]}`)
	if a.code != http.StatusAccepted || a.location != "/api/v1/runs/1" {
		t.Fatalf("trigger = %d %s", a.code, a.body)
	}
	waitForBuild(t, base, "slow")
	a = call(t, http.MethodPost, base+"/api/v1/runs", aliceToken, "")
	var got map[string]any
	if err := json.Unmarshal([]byte(a.body), &got); err != nil || a.code != http.StatusConflict || a.location != "" ||
		got["outcome"] != "rejected" || got["error"] == "" || got["id"] != nil {
		t.Errorf("trigger during a run = %d %s (Location %q), want 409 rejected, no run", a.code, a.body, a.location)
	}
	res := nightshift(t, nil, "trigger", "-c", cfg, "--wait")
	if res.code != exitFailed || !strings.Contains(res.stdout, "run rejected") {
		t.Errorf("trigger --wait during a run: exit %d, want %d\n%s%s", res.code, exitFailed, res.stdout, res.stderr)
	}
	if runs := apiRuns(base); len(runs) != 1 {
		t.Errorf("%d runs recorded, want the one running", len(runs))
	}
	if a := call(t, http.MethodPost, base+"/api/v1/runs/1/cancel", unnamedToken, ""); a.code != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", a.code, a.body)
	}
	waitFor(t, func() bool { return apiRun(t, base, 1).Status == store.Interrupted })
}
