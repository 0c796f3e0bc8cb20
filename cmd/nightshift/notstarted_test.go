package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"nightshift/config"
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
	c := &cli{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg := &config.Config{Staging: config.Staging{Registry: "127.0.0.1:5000", Namespace: "ci"}}
	routes := []notify.Route{{Notifier: "discord", On: []string{"failure"}}}
	why := errors.New("source https://git.example.org/ci.git@main: connection refused")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	c.notStarted(cancelled, cfg, db, routes, why)
	if n, err := db.PendingCount(); err != nil || n != 0 {
		t.Fatalf("a cancelled run queued %d messages (%v), want none", n, err)
	}

	c.notStarted(context.Background(), cfg, db, routes, why)
	msgs, err := db.PendingMessages()
	if err != nil || len(msgs) != 1 || msgs[0].Notifier != "discord" {
		t.Fatalf("a run that could not start queued %+v (%v), want one message for discord", msgs, err)
	}
}
