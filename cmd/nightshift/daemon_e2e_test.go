package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// startDaemon starts `nightshift daemon` and returns it with its output.
func startDaemon(t *testing.T, cfg string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(e2e.bin, "daemon", "-c", cfg)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e2e.docker.Addr)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, out
}

// apiRuns reads the daemon's runs, or nil while it does not answer.
func apiRuns(base string) []store.Run {
	resp, err := http.Get(base + "/api/v1/runs")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var runs []store.Run
	if json.NewDecoder(resp.Body).Decode(&runs) != nil {
		return nil
	}
	return runs
}

// waitForBuild waits until the daemon at base is building image in a run,
// and returns the run's id.
func waitForBuild(t *testing.T, base, image string) (id uint64) {
	t.Helper()
	waitFor(t, func() bool {
		for _, r := range apiRuns(base) {
			if im := r.Image(image); r.Status == store.Running && im != nil && im.Stage("build") != nil {
				id = r.ID
				return true
			}
		}
		return false
	})
	return id
}

func TestDaemonSurvivesKillAndKeepsSchedule(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	listen, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.slow": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sleep\", \"4\"]\n",
		"nightshift.toml": fmt.Sprintf(`
[staging]
registry  = "%%REGISTRY%%"
namespace = "daemon"

[schedule]
cron = "*/3 * * * * *"
shutdown_grace = "1s"

[http]
listen = %q
token_file = "token"

[notify.discord]
webhook_url_file = "hook"
on = ["failure"]

[[image]]
name = "slow"
dockerfile = "docker/Dockerfile.slow"
`, listen),
	})
	dir := filepath.Dir(cfg)
	os.WriteFile(filepath.Join(dir, "token"), []byte("api-token\n"), 0o600)
	discord := &discordImitation{}
	hook(t, cfg, discord)
	base := "http://" + listen

	daemon, _ := startDaemon(t, cfg)
	killed := waitForBuild(t, base, "slow")
	daemon.Process.Signal(syscall.SIGKILL)
	daemon.Wait()

	// Restarted: the killed run must come out interrupted. Meanwhile a
	// second daemon on the same database exits 3.
	daemon, out := startDaemon(t, cfg)
	waitFor(t, func() bool { return apiRuns(base) != nil })
	second := exec.Command(e2e.bin, "daemon", "-c", cfg)
	if err := second.Run(); err == nil || second.ProcessState.ExitCode() != exitUnavailable {
		t.Errorf("a second daemon: %v, want exit %d", err, exitUnavailable)
	}

	// The first run after the kill: later ones start every 3 s, so it is
	// kept from the answer that showed it done, not read again.
	var after store.Run
	waitFor(t, func() bool {
		runs := apiRuns(base)
		for _, r := range runs {
			if r.ID == killed && r.Status != store.Interrupted {
				return false
			}
		}
		for i := len(runs) - 1; i >= 0; i-- {
			if runs[i].ID > killed {
				after = runs[i]
				return after.Status.Done()
			}
		}
		return false
	})
	if after.Status != store.Succeeded {
		t.Errorf("the run after the restart ended %s, want succeeded", after.Status)
	}
	// Not only a catch-up: the schedule itself goes on firing.
	waitFor(t, func() bool {
		for _, r := range apiRuns(base) {
			if r.ID > killed && r.Trigger == "schedule" && r.Status == store.Succeeded {
				return true
			}
		}
		return false
	})
	waitFor(t, func() bool {
		for _, p := range discord.received() {
			if b, _ := json.Marshal(p); strings.Contains(string(b), "interrupted") {
				return true
			}
		}
		return false
	})

	// Writes need the token.
	post := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/runs", bytes.NewReader([]byte(`{"reason": "test"}`)))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != http.StatusUnauthorized {
		t.Errorf("trigger without a token: %d, want 401", code)
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Errorf("trigger with a wrong token: %d, want 401", code)
	}
	if code := post("api-token"); code != http.StatusAccepted && code != http.StatusConflict {
		t.Errorf("trigger with the token: %d, want 202", code)
	}
	if res := nightshift(t, nil, "trigger", "-c", cfg, "--reason", "test"); res.code != 0 ||
		!regexp.MustCompile(`^run \d+ (started|coalesced): `+regexp.QuoteMeta(base)+`/api/v1/runs/\d+\n$`).MatchString(res.stdout) {
		t.Errorf("trigger: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := nightshift(t, nil, "status", "-c", cfg); res.code != 0 || !strings.Contains(res.stdout, "run ") {
		t.Errorf("status: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	// SIGTERM during a build that outlasts shutdown_grace (1s): the daemon
	// cancels the run, records it interrupted, and stops.
	cut := waitForBuild(t, base, "slow")
	daemon.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- daemon.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon still running a minute after SIGTERM\n%s", out.String())
	}
	for _, r := range apiRunsFromStore(t, cfg) {
		if r.Status == store.Running {
			t.Errorf("run %d is still recorded running after a clean stop", r.ID)
		}
		if r.ID == cut && (r.Status != store.Interrupted || r.Image("slow").Status != store.Interrupted) {
			t.Errorf("run %d, cut short by SIGTERM, ended %s (slow: %s), want interrupted", r.ID, r.Status, r.Image("slow").Status)
		}
	}
}

// apiRunsFromStore reads the records once no daemon holds the database.
func apiRunsFromStore(t *testing.T, cfg string) []store.Run {
	t.Helper()
	res := nightshift(t, nil, "history", "-c", cfg, "--json", "--limit", "0")
	var runs []store.Run
	if err := json.Unmarshal([]byte(res.stdout), &runs); err != nil {
		t.Fatalf("history: %v\n%s", err, res.stderr)
	}
	return runs
}

// A run the daemon could not start (its source's remote is down) is
// reported through the daemon's one delivery path: while Discord is down
// the run does not wait on it, and once Discord is back the message
// arrives once.
func TestDaemonReportsRunThatCouldNotStart(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	listen, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	closed, err := testenv.FreeAddr() // the git remote: nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"nightshift.toml": fmt.Sprintf(`
[source]
repo = "http://%s/ci.git"
ref  = "main"

[staging]
registry  = "%%REGISTRY%%"
namespace = "daemon-not-started"

[http]
listen = %q
token_file = "token"

[notify]
flush_timeout = "30s"

[notify.discord]
webhook_url_file = "hook"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
`, closed, listen),
	})
	dir := filepath.Dir(cfg)
	os.WriteFile(filepath.Join(dir, "token"), []byte("api-token\n"), 0o600)
	discord := &discordImitation{down: true}
	hook(t, cfg, discord)
	base := "http://" + listen

	daemon, out := startDaemon(t, cfg)
	waitFor(t, func() bool { return apiRuns(base) != nil })
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/runs", bytes.NewReader([]byte(`{"reason": "test"}`)))
	req.Header.Set("Authorization", "Bearer api-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger: %d, want 202", resp.StatusCode)
	}

	// The run ends at once, its news left to the delivery loop, which
	// finds Discord down and retries.
	waitFor(t, func() bool { return strings.Contains(out.String(), "could not start") })
	waitFor(t, func() bool {
		discord.mu.Lock()
		defer discord.mu.Unlock()
		return discord.attempts >= 2
	})
	if strings.Contains(out.String(), "not delivered yet") {
		t.Errorf("the run delivered its own news (the CLI's flush) besides the daemon's loop:\n%s", out.String())
	}
	discord.set(false)
	waitFor(t, func() bool { return len(discord.received()) > 0 })
	time.Sleep(3 * time.Second) // time enough for a second sender, were there one
	got := discord.received()
	if len(got) != 1 {
		t.Fatalf("Discord got %d messages, want the one", len(got))
	}
	if text, _ := json.Marshal(got[0]); !strings.Contains(string(text), "could not start") || !strings.Contains(string(text), closed+"/ci.git") {
		t.Errorf("message does not say the run could not start, and why:\n%s", text)
	}

	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon after SIGTERM: %v\n%s", err, out.String())
	}
	db, err := store.Open(filepath.Join(dir, "nightshift.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	msgs, _ := db.Messages(0)
	if len(msgs) != 1 || msgs[0].Status != store.Sent || msgs[0].Attempts == 0 {
		t.Errorf("outbox = %+v, want the one message sent after failed attempts", msgs)
	}
}
