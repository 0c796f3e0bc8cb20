package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nightshift/config"
	"nightshift/internal/testenv"
	"nightshift/notify"
	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/store"
)

// Which images a change rebuilds, and the reason each is given.
func TestChangeDetection(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for p, content := range map[string]string{
		"docker/base/Dockerfile":    "FROM scratch\n",
		"docker/base/.dockerignore": "*.log\n",
		"docker/Dockerfile.cpu":     "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\n",
		"docker/Dockerfile.gpu":     "ARG BASE_IMAGE=cpu\nFROM ${BASE_IMAGE}\n",
		"lint/Dockerfile":           "FROM scratch\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images := []config.Image{
		{Name: "base", Dockerfile: "docker/base/Dockerfile", Context: "docker/base"},
		{Name: "cpu", Dockerfile: "docker/Dockerfile.cpu", Context: "docker/cpu_ctx", Inputs: []string{"scripts/cpu_*.sh"}},
		{Name: "gpu", Dockerfile: "docker/Dockerfile.gpu", Context: "docker/gpu_ctx"},
		{Name: "lint", Dockerfile: "lint/Dockerfile", Context: "lint"},
	}
	cfg := &config.Config{Images: images, Changes: config.Changes{BuildAll: []string{"docker/install"}, Ignore: []string{"**/*.md"}}}
	g, ps := rebuild.NewGraph("ns.toml", root, "reg/ns", images)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	const since = "1a2b3c4d5e6f"
	unchanged := "unchanged since 1a2b3c4d"
	for _, tc := range []struct {
		name    string
		paths   []string
		message string
		want    map[string]string // image -> reason
	}{
		{"nothing", nil, "", map[string]string{"base": unchanged, "cpu": unchanged, "gpu": unchanged, "lint": unchanged}},
		{"a Dockerfile outside its context", []string{"docker/Dockerfile.cpu"}, "",
			map[string]string{"base": unchanged, "cpu": "docker/Dockerfile.cpu changed", "gpu": "parent cpu rebuilt", "lint": unchanged}},
		{"a parent's context, twice", []string{"docker/base/a.sh", "docker/base/b.sh"}, "",
			map[string]string{"base": "docker/base/a.sh changed (and 1 more)", "cpu": "parent base rebuilt", "gpu": "parent cpu rebuilt", "lint": unchanged}},
		{"a file .dockerignore leaves out", []string{"docker/base/build.log"}, "",
			map[string]string{"base": unchanged, "cpu": unchanged, "gpu": unchanged, "lint": unchanged}},
		{"an input", []string{"scripts/cpu_llvm.sh", "scripts/other.sh"}, "",
			map[string]string{"base": unchanged, "cpu": "scripts/cpu_llvm.sh changed", "gpu": "parent cpu rebuilt", "lint": unchanged}},
		{"an ignored file in a context", []string{"lint/README.md"}, "",
			map[string]string{"base": unchanged, "cpu": unchanged, "gpu": unchanged, "lint": unchanged}},
		{"build_all", []string{"docker/install/common.sh"}, "",
			map[string]string{"base": "build_all: docker/install/common.sh", "cpu": "build_all: docker/install/common.sh", "gpu": "build_all: docker/install/common.sh", "lint": "build_all: docker/install/common.sh"}},
		{"full rebuild", []string{"lint/README.md"}, "docs\n\nthen a Full Rebuild please",
			map[string]string{"base": `"full rebuild" in 9f8e7d6c`, "cpu": `"full rebuild" in 9f8e7d6c`, "gpu": `"full rebuild" in 9f8e7d6c`, "lint": `"full rebuild" in 9f8e7d6c`}},
	} {
		commits := []source.Commit{{Hash: "0123456789", Message: "nothing to see"}, {Hash: "9f8e7d6c5b4a", Message: tc.message}}
		got, err := detector{cfg: cfg, root: root}.decide(g, since, tc.paths, commits)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d changes, want %d", tc.name, len(got), len(tc.want))
		}
		for _, c := range got {
			if c.Reason != tc.want[c.Image] || c.Rebuild != (c.Reason != unchanged) {
				t.Errorf("%s: %s = %+v, want reason %q", tc.name, c.Image, c, tc.want[c.Image])
			}
		}
	}
}

// A change-detected nightly: nothing to rebuild is no run (no record, no
// news); a rebuilt child of an unchanged parent builds on its latest by
// digest, and needs one.
func TestNightlyChangedSince(t *testing.T) {
	t.Parallel()
	_, _, _, dir := ensureStack(t, nil)
	cfg, err := config.Load(filepath.Join(dir, "nightshift.toml"))
	if err != nil {
		t.Fatal(err)
	}
	reg := newStubRegistry()
	eng := &stubEngine{reg: reg}
	db := openDB(t)
	p := New(cfg, db, WithEngine(eng), WithRegistry(reg), WithNotifiers(nil, []notify.Route{{Notifier: "discord", On: []string{"always"}}}))
	ctx := context.Background()
	changed := Request{Selection: Selection{ChangedSince: "HEAD~1"}}

	commitFiles(t, dir, "docs", map[string]string{"README.md": "more\n"})
	r, err := p.Nightly(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.Wait()
	if err != nil || rec.ID != 0 || rec.Status != store.Succeeded || len(rec.Unchanged) != 2 || len(rec.Images) != 0 {
		t.Errorf("nothing to rebuild: %+v, %v; want an unrecorded success listing both images unchanged", rec, err)
	}
	if runs, _ := db.Runs(0); len(runs) != 0 {
		t.Errorf("nothing to rebuild was recorded: %+v", runs)
	}
	if pending, _ := db.PendingMessages(); len(pending) != 0 {
		t.Errorf("nothing to rebuild queued %d messages", len(pending))
	}

	commitFiles(t, dir, "cpu", map[string]string{"docker/Dockerfile.cpu": "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN true\n"})
	var usage *UsageError
	if _, err := p.Nightly(ctx, changed); !errors.As(err, &usage) || !strings.Contains(err.Error(), "no reg.example:5000/ns/base:latest") {
		t.Errorf("a child of a parent never pushed: %v, want a usage error", err)
	}
	reg.put("reg.example:5000/ns/base:latest", "sha256:"+strings.Repeat("ab", 32))
	r, err = p.Nightly(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err = r.Wait(); err != nil || rec.ID == 0 || len(rec.Images) != 1 || len(rec.Unchanged) != 1 || rec.Unchanged[0].Name != "base" {
		t.Fatalf("cpu changed: %+v, %v", rec, err)
	}
	pinned := "reg.example:5000/ns/base@sha256:" + strings.Repeat("ab", 32)
	if im := rec.Image("cpu"); im.BaseRef != pinned || im.Reason != "docker/Dockerfile.cpu changed" || eng.specs[0].Args["BASE_IMAGE"] != pinned {
		t.Errorf("cpu: %+v built with BASE_IMAGE %q; want it on %s", im, eng.specs[0].Args["BASE_IMAGE"], pinned)
	}
}

func commitFiles(t *testing.T, dir, msg string, files map[string]string) {
	t.Helper()
	if _, err := testenv.CommitFiles(dir, msg, files); err != nil {
		t.Fatal(err)
	}
}
