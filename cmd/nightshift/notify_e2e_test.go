package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// discordImitation follows Discord's execute-webhook API: POST
// /api/webhooks/{id}/{token}[?wait=true] with a JSON body; 200 with the
// message when waiting, 204 otherwise. While down, it answers 503.
type discordImitation struct {
	mu       sync.Mutex
	down     bool
	payloads []map[string]any
	attempts int
}

func (d *discordImitation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts++
	if r.Method != http.MethodPost || r.URL.Path != "/api/webhooks/42/hook-token" {
		http.Error(w, `{"message": "Unknown Webhook", "code": 10015}`, http.StatusNotFound)
		return
	}
	if d.down {
		http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
		return
	}
	var body map[string]any
	data, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(data, &body); err != nil {
		http.Error(w, `{"message": "Cannot send an empty message", "code": 50006}`, http.StatusBadRequest)
		return
	}
	d.payloads = append(d.payloads, body)
	if r.URL.Query().Get("wait") == "true" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id": "1", "channel_id": "2", "content": "", "embeds": []}`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// hook starts an imitation of Discord and writes its webhook URL to the
// file "hook" beside cfg, the webhook_url_file of the tests' configs.
func hook(t *testing.T, cfg string, d *discordImitation) {
	t.Helper()
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg), "hook"), []byte(srv.URL+"/api/webhooks/42/hook-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (d *discordImitation) set(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

func (d *discordImitation) received() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]map[string]any(nil), d.payloads...)
}

// A failing run's summary reaches Discord once; while Discord is down the
// message waits in the outbox, across processes, and is then sent once.
func TestRunNotifiesThroughTheOutbox(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base":   base,
		"docker/Dockerfile.broken": "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo 'the mirror moved' && exit 1\n",
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "notify"

[notify]
flush_timeout = "3s"

[notify.discord]
webhook_url_file = "hook"
on = ["failure", "fixed"]
mentions = ["<@123456789012345678>"]

[http]
public_url = "https://nightshift.example.org"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "broken"
dockerfile = "docker/Dockerfile.broken"
`,
	})
	dir := filepath.Dir(cfg)
	discord := &discordImitation{}
	hook(t, cfg, discord)

	res := nightshift(t, nil, "run", "-c", cfg)
	if res.code != exitFailed {
		t.Fatalf("run exited %d, want %d\n%s\n%s", res.code, exitFailed, res.stdout, res.stderr)
	}
	got := discord.received()
	if len(got) != 1 {
		t.Fatalf("Discord got %d messages, want the one summary", len(got))
	}
	text, _ := json.Marshal(got[0])
	for _, want := range []string{"failed: 1 of 2 images built", "the mirror moved", "https://nightshift.example.org/runs/1"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if got[0]["content"] != "<@123456789012345678>" {
		t.Errorf("a failure pings %v, want the configured mention", got[0]["content"])
	}
	if strings.Contains(res.stderr+res.stdout, "hook-token") {
		t.Errorf("the webhook token leaked into the output")
	}

	// Discord goes down: the next failing run's summary stays pending.
	discord.set(true)
	res = nightshift(t, nil, "run", "-c", cfg)
	if res.code != exitFailed || !strings.Contains(res.stderr, "not delivered yet") {
		t.Fatalf("run with Discord down exited %d\n%s", res.code, res.stderr)
	}
	if n := len(discord.received()); n != 1 {
		t.Fatalf("Discord accepted %d messages while down, want still 1", n)
	}
	db, err := store.Open(filepath.Join(dir, "nightshift.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pending, _ := db.PendingMessages()
	db.Close()
	if len(pending) != 1 || pending[0].RunID != 2 || pending[0].Attempts == 0 {
		t.Fatalf("pending = %+v, want run 2's message, tried and waiting", pending)
	}

	// Back up: a later process sends it, once.
	discord.set(false)
	res = nightshift(t, nil, "notify", "flush", "-c", cfg)
	if res.code != 0 {
		t.Fatalf("notify flush exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	res = nightshift(t, nil, "notify", "flush", "-c", cfg)
	got = discord.received()
	if len(got) != 2 || res.code != 0 {
		t.Fatalf("Discord got %d messages after two flushes, want 2 (each summary once)", len(got))
	}
	if text, _ := json.Marshal(got[1]); !strings.Contains(string(text), "/runs/2") {
		t.Errorf("the delivered message is not run 2's summary:\n%s", text)
	}

	res = nightshift(t, nil, "show", "-c", cfg, "2")
	if !strings.Contains(res.stdout, "notifications") || !strings.Contains(res.stdout, "discord  sent") {
		t.Errorf("show 2 does not say the summary was sent:\n%s", res.stdout)
	}

	// notify test reaches every notifier and says so; its failing sample
	// pings nobody, and it says that too.
	res = nightshift(t, nil, "notify", "test", "-c", cfg)
	if res.code != 0 || !strings.Contains(res.stdout, "discord: sent (mentions suppressed for the test") {
		t.Errorf("notify test exited %d: %s%s", res.code, res.stdout, res.stderr)
	}
	got = discord.received()
	if len(got) != 3 {
		t.Fatalf("Discord got %d messages, want the sample as the third", len(got))
	}
	if allowed, _ := got[2]["allowed_mentions"].(map[string]any); got[2]["content"] != nil && got[2]["content"] != "" ||
		allowed == nil || len(allowed["parse"].([]any)) != 0 || allowed["users"] != nil || allowed["roles"] != nil {
		t.Errorf("the sample pings: content %v, allowed_mentions %v", got[2]["content"], got[2]["allowed_mentions"])
	}
}

// A run that could not start, whatever was missing, is news: the Discord
// imitation receives "could not start" and why, once.
func TestCouldNotStartIsNotified(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	closed, err := testenv.FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	const toml = `
%s
[staging]
registry  = "%s"
namespace = "not-started"

[notify.discord]
webhook_url_file = "hook"
mentions = ["@here"]

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
`
	for _, tc := range []struct {
		name, source, registry string
		env                    []string
		reason                 string // in the message
	}{
		{name: "engine down", registry: "%REGISTRY%", env: []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}, reason: "/nonexistent/docker.sock"},
		{name: "registry down", registry: closed, reason: closed},
		{name: "source remote down", source: "[source]\nrepo = \"http://" + closed + "/ci.git\"\nref = \"main\"\n", registry: "%REGISTRY%", reason: closed + "/ci.git"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := stack(t, map[string]string{
				"docker/Dockerfile.base": base,
				"nightshift.toml":        fmt.Sprintf(toml, tc.source, tc.registry),
			})
			discord := &discordImitation{}
			hook(t, cfg, discord)
			res := nightshift(t, tc.env, "run", "-c", cfg)
			if res.code != exitUnavailable {
				t.Fatalf("exit %d, want %d\n%s", res.code, exitUnavailable, res.stderr)
			}
			got := discord.received()
			if len(got) != 1 {
				t.Fatalf("Discord got %d messages, want the one saying the run could not start\n%s", len(got), res.stderr)
			}
			text, _ := json.Marshal(got[0])
			for _, want := range []string{"could not start", tc.reason} {
				if !strings.Contains(string(text), want) {
					t.Errorf("message lacks %q:\n%s", want, text)
				}
			}
			if got[0]["content"] != "@here" {
				t.Errorf("content %v, want the configured mention: the run could not start", got[0]["content"])
			}
		})
	}
}
