package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nightshift/internal/testenv"
)

func newRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commit, err := testenv.CommitAll(dir, "first image\n\nbody")
	if err != nil {
		t.Fatalf("git: %v", err)
	}
	return dir, commit
}

func TestLocal(t *testing.T) {
	t.Parallel()
	dir, commit := newRepo(t)
	ctx := context.Background()
	c, err := Local(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Commit != commit || c.Subject != "first image" || c.Dirty || c.Short() != commit[:8] {
		t.Errorf("Local = %+v, want commit %s, subject %q, clean", c, commit, "first image")
	}
	os.Mkdir(filepath.Join(dir, "logs"), 0o755)
	os.WriteFile(filepath.Join(dir, "logs", "base.log"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "nightshift.db"), []byte("x"), 0o644)
	if c, err = Local(ctx, dir, filepath.Join(dir, "logs"), filepath.Join(dir, "nightshift.db")); err != nil || c.Dirty {
		t.Errorf("Local with only nightshift's own files new = %+v, %v; want clean", c, err)
	}
	os.WriteFile(filepath.Join(dir, "junit.xml"), []byte("x"), 0o644)
	if c, err = Local(ctx, dir); err != nil || c.Dirty {
		t.Errorf("Local with an untracked report = %+v, %v; want clean", c, err)
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nRUN true\n"), 0o644)
	if c, err = Local(ctx, dir); err != nil || !c.Dirty {
		t.Errorf("Local after changing a tracked file = %+v, %v; want dirty", c, err)
	}
	if _, err := Local(ctx, t.TempDir()); err == nil {
		t.Error("Local of a directory that is no git checkout succeeded")
	}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	upstream, first := newRepo(t)
	os.WriteFile(filepath.Join(upstream, "Dockerfile"), []byte("FROM scratch\nLABEL v=2\n"), 0o644)
	second, err := testenv.CommitAll(upstream, "second")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	url := "file://" + upstream
	ctx := context.Background()

	c, err := Fetch(ctx, url, "main", work)
	if err != nil {
		t.Fatal(err)
	}
	if c.Commit != second || c.Dirty || c.Subject != "second" {
		t.Errorf("Fetch main = %+v, want %s, clean", c, second)
	}
	// Another nightshift fetching another commit meanwhile (a plan, say)
	// must not touch the tree a run builds from.
	c2, err := Fetch(ctx, url, first, work)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Commit != first || c2.Dir == c.Dir {
		t.Errorf("Fetch of a commit = %+v, want %s in a tree of its own", c2, first)
	}
	if b, _ := os.ReadFile(filepath.Join(c.Dir, "Dockerfile")); string(b) != "FROM scratch\nLABEL v=2\n" {
		t.Errorf("the first tree changed under the second fetch: Dockerfile is %q", b)
	}
	again, err := Fetch(ctx, url, "main", work)
	if err != nil || again.Dir != c.Dir {
		t.Errorf("fetching main again = %+v, %v; want the same tree %s", again, err, c.Dir)
	}
	if _, err := Fetch(ctx, url, "no-such-branch", work); !errors.Is(err, ErrNoRef) {
		t.Errorf("Fetch of a missing ref: %v, want ErrNoRef", err)
	}
	if _, err := Fetch(ctx, url, strings.Repeat("0123456789", 4), work); !errors.Is(err, ErrNoRef) {
		t.Errorf("Fetch of a commit the remote lacks: %v, want ErrNoRef", err)
	}
	gone := "file://" + filepath.Join(t.TempDir(), "gone.git")
	if _, err := Fetch(ctx, gone, "main", work); err == nil || errors.Is(err, ErrNoRef) {
		t.Errorf("Fetch from a remote that is not there: %v, want an error other than ErrNoRef", err)
	}
}

// A change-detected run needs the history back to its revision: a
// shallow clone has only the last commit until fetched WithHistory.
func TestFetchWithHistory(t *testing.T) {
	t.Parallel()
	upstream, first := newRepo(t)
	os.WriteFile(filepath.Join(upstream, "Dockerfile"), []byte("FROM scratch\nLABEL v=2\n"), 0o644)
	if _, err := testenv.CommitAll(upstream, "second"); err != nil {
		t.Fatal(err)
	}
	work, url, ctx := t.TempDir(), "file://"+upstream, context.Background()
	c, err := Fetch(ctx, url, "main", work)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(ctx, c.Dir, first); !errors.Is(err, ErrNoRevision) {
		t.Errorf("the first commit in a shallow fetch: %v, want ErrNoRevision", err)
	}
	if c, err = Fetch(ctx, url, "main", work, WithHistory()); err != nil {
		t.Fatal(err)
	}
	if got, err := Resolve(ctx, c.Dir, "HEAD~1"); err != nil || got != first {
		t.Errorf("HEAD~1 after a fetch with history = %q, %v; want %s", got, err, first)
	}
	if paths, err := Diff(ctx, c.Dir, first, c.Commit); err != nil || len(paths) != 1 || paths[0] != "Dockerfile" {
		t.Errorf("Diff = %v, %v", paths, err)
	}
	if _, err := Fetch(ctx, url, "main", work, WithHistory()); err != nil {
		t.Errorf("fetching with history again (no longer shallow): %v", err)
	}
}

// Old trees go, the newest stay.
func TestFetchKeepsRecentTrees(t *testing.T) {
	t.Parallel()
	upstream, _ := newRepo(t)
	work := t.TempDir()
	var dirs []string
	for i := range keepTrees + 2 {
		os.WriteFile(filepath.Join(upstream, "n"), []byte{byte('a' + i)}, 0o644)
		if _, err := testenv.CommitAll(upstream, "change"); err != nil {
			t.Fatal(err)
		}
		c, err := Fetch(context.Background(), "file://"+upstream, "main", work)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, c.Dir)
	}
	for i, d := range dirs {
		_, err := os.Stat(d)
		if kept := i >= len(dirs)-keepTrees; kept != (err == nil) {
			t.Errorf("tree %d of %d: kept = %v, want %v", i+1, len(dirs), err == nil, kept)
		}
	}
}

func TestRepoName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://github.com/org/stack.git": "stack",
		"git@host:org/stack":               "stack",
		"file:///srv/repos/ci/":            "ci",
	} {
		if got := repoName(in); got != want {
			t.Errorf("repoName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://bot:tok3n@git.example.org/ci.git": "https://git.example.org/ci.git",
		"https://ghp_tok3n@git.example.org/ci.git": "https://git.example.org/ci.git",
		"ssh://git:tok3n@git.example.org/ci.git":   "ssh://git:xxxxx@git.example.org/ci.git",
		"ssh://git@git.example.org/ci.git":         "ssh://git@git.example.org/ci.git",
		"git@git.example.org:ci.git":               "git@git.example.org:ci.git",
		"/srv/git/ci.git":                          "/srv/git/ci.git",
	} {
		if got := redacted(in); got != want {
			t.Errorf("redacted(%q) = %q, want %q", in, got, want)
		}
	}
}
