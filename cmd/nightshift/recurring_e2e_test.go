package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/store"
)

// A failure whose message varies from night to night (a process id, a
// time) has one signature over three nights; the dashboard's record lists
// the three nights and the third night's summary says it recurs.
func TestRecurringFailureOverThreeNights(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"docker/Dockerfile.flaky": `ARG BASE_IMAGE=base
FROM ${BASE_IMAGE}
RUN echo "mirror answered 503 after $$ms at $(date +%H:%M:%S) from /tmp/mirror-$$" >&2 && exit 3
`,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "recurring"

[notify]
flush_timeout = "3s"

[notify.discord]
webhook_url_file = "hook"
on = ["always"]

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "flaky"
dockerfile = "docker/Dockerfile.flaky"
`,
	})
	dir := filepath.Dir(cfg)
	discord := &discordImitation{}
	hook(t, cfg, discord)

	for night := 1; night <= 3; night++ {
		if res := nightshift(t, nil, "run", "-c", cfg); res.code != exitFailed {
			t.Fatalf("night %d: run exited %d, want %d\n%s\n%s", night, res.code, exitFailed, res.stdout, res.stderr)
		}
	}

	db, err := store.Open(filepath.Join(dir, "nightshift.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fails, err := db.Failures("flaky")
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 1 {
		t.Fatalf("flaky has %d failure signatures, want 1: %+v", len(fails), fails)
	}
	if text := fails[0].Signature.Text; !strings.HasPrefix(text, "build: ") || !strings.Contains(text, "mirror answered <n> after <duration> at <time> from <path>") {
		t.Errorf("signature text %q, want the build step and the normalised error line", text)
	}
	var nights []uint64
	for _, o := range fails[0].Nights {
		nights = append(nights, o.Night)
	}
	if fmt.Sprint(nights) != "[3 2 1]" {
		t.Errorf("signature seen on nights %v, want [3 2 1]", nights)
	}

	got := discord.received()
	if len(got) != 3 {
		t.Fatalf("Discord got %d summaries, want 3", len(got))
	}
	for i, want := range []string{"", "seen on 2 of the last 2 nights", "seen on 3 of the last 3 nights"} {
		text, _ := json.Marshal(got[i])
		switch {
		case want == "" && strings.Contains(string(text), "seen on"):
			t.Errorf("night %d's summary says a first failure recurs:\n%s", i+1, text)
		case want != "" && !strings.Contains(string(text), want):
			t.Errorf("night %d's summary lacks %q:\n%s", i+1, want, text)
		}
	}
}
