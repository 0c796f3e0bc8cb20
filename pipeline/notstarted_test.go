package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/internal/testenv"
	"nightshift/notify"
	"nightshift/store"
)

// A run that could not start is news; a run cancelled before it started
// (Ctrl-C, the daemon stopping) is not, even though what was cut short
// reports itself unavailable.
func TestNotStartedOnlyWhenNotCancelled(t *testing.T) {
	t.Parallel()
	db, err := store.Open(filepath.Join(t.TempDir(), "ns.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := &config.Config{Staging: config.Staging{Registry: "127.0.0.1:5000", Namespace: "ci"}}
	routes := []notify.Route{{Notifier: "discord", On: []string{"failure"}}}
	p := New(cfg, db, WithNotifiers(nil, routes))
	why := errors.New("source https://git.example.org/ci.git@main: connection refused")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	p.notStarted(cancelled, why)
	if n, err := db.PendingCount(); err != nil || n != 0 {
		t.Fatalf("a cancelled run queued %d messages (%v), want none", n, err)
	}

	p.notStarted(context.Background(), why)
	msgs, err := db.PendingMessages()
	if err != nil || len(msgs) != 1 || msgs[0].Notifier != "discord" {
		t.Fatalf("a run that could not start queued %+v (%v), want one message for discord", msgs, err)
	}
}

// A tree that no longer fits the configuration (a Dockerfile deleted since
// the daemon loaded it) stops the run before anything is built: news for
// an unattended run (the daemon's), whose start nobody watches; the CLI's
// stderr says it.
func TestUnattendedConfigProblemIsNews(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Dockerfile": "FROM scratch\n",
		"nightshift.toml": "[staging]\nregistry = \"127.0.0.1:5000\"\nnamespace = \"ci\"\n" +
			"[notify.discord]\nwebhook_url_file = \"hook\"\n[[image]]\nname = \"base\"\ndockerfile = \"Dockerfile\"\n",
		"hook": "https://discord.example/api/webhooks/1/t0ken\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testenv.CommitAll(dir, "stack"); err != nil {
		t.Fatalf("git: %v", err)
	}
	cfg, err := config.Load(filepath.Join(dir, "nightshift.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	routes := []notify.Route{{Notifier: "discord", On: []string{"failure"}}}
	for _, unattended := range []bool{false, true} {
		db, err := store.Open(filepath.Join(t.TempDir(), "ns.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		p := New(cfg, db, WithNotifiers(nil, routes), WithEngine(&stubEngine{}), WithRegistry(newStubRegistry()))
		run, runErr := p.Nightly(context.Background(), Request{Unattended: unattended})
		msgs, err := db.PendingMessages()
		db.Close()
		var ps config.Problems
		if run != nil || !errors.As(runErr, &ps) || err != nil {
			t.Fatalf("unattended=%v: run %v, error %v (%v); want no run, a configuration problem", unattended, run, runErr, err)
		}
		switch {
		case !unattended && len(msgs) != 0:
			t.Errorf("the CLI queued %d messages for a configuration problem, want none", len(msgs))
		case unattended && (len(msgs) != 1 || !strings.Contains(string(msgs[0].Payload), "Dockerfile")):
			t.Errorf("the daemon queued %+v, want one message naming the missing Dockerfile", msgs)
		}
	}
}
