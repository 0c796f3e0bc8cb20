package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	discord := &discordImitation{}
	srv := httptest.NewServer(discord)
	defer srv.Close()

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
	if err := os.WriteFile(filepath.Join(dir, "hook"), []byte(srv.URL+"/api/webhooks/42/hook-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

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

	// notify test reaches every notifier and says so.
	res = nightshift(t, nil, "notify", "test", "-c", cfg)
	if res.code != 0 || !strings.Contains(res.stdout, "discord: sent") {
		t.Errorf("notify test exited %d: %s%s", res.code, res.stdout, res.stderr)
	}
}
