package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nightshift/internal/testenv"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	write(t, dir, map[string]string{"docker/Dockerfile": "FROM scratch\n", "docker/a b.sh": "a", "README.md": "r", ".gitignore": "*.log\n"})
	first, err := testenv.CommitAll(dir, "first")
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, map[string]string{"docker/Dockerfile": "FROM scratch\nRUN true\n", "README.md": "r2"})
	second, err := testenv.CommitAll(dir, "second\n\nPlease do a FULL REBUILD")
	if err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"docker", "docker/Dockerfile", "."} {
		want := gitOut(t, dir, "rev-parse", second+":"+strings.TrimPrefix(path, "."))
		if got, err := Object(ctx, dir, second, path); err != nil || got != want {
			t.Errorf("Object(%s) = %q, %v; want %q (git rev-parse)", path, got, err, want)
		}
	}
	if _, err := Object(ctx, dir, second, "nope"); !errors.Is(err, ErrNotInCommit) {
		t.Errorf("Object of an untracked path: %v, want ErrNotInCommit", err)
	}
	if got, err := Resolve(ctx, dir, "HEAD~1"); err != nil || got != first {
		t.Errorf("Resolve(HEAD~1) = %q, %v; want %s", got, err, first)
	}
	if _, err := Resolve(ctx, dir, "no-such-branch"); !errors.Is(err, ErrNoRevision) {
		t.Errorf("Resolve of nothing: %v, want ErrNoRevision", err)
	}
	if shallow, err := Shallow(ctx, dir); err != nil || shallow {
		t.Errorf("Shallow = %v, %v; want false", shallow, err)
	}

	files, err := Files(ctx, dir, second)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		if f.Path == "docker/a b.sh" && f.Hash != gitOut(t, dir, "rev-parse", second+":docker/a b.sh") {
			t.Errorf("hash of %s = %s", f.Path, f.Hash)
		}
	}
	if want := []string{".gitignore", "README.md", "docker/Dockerfile", "docker/a b.sh"}; !slices.Equal(paths, want) {
		t.Errorf("Files = %v, want %v", paths, want)
	}

	diff, err := Diff(ctx, dir, first, second)
	if want := []string{"README.md", "docker/Dockerfile"}; err != nil || !slices.Equal(diff, want) {
		t.Errorf("Diff = %v, %v; want %v", diff, err, want)
	}
	log, err := Log(ctx, dir, first, second)
	if err != nil || len(log) != 1 || log[0].Hash != second || !strings.Contains(log[0].Message, "FULL REBUILD") {
		t.Errorf("Log = %+v, %v; want the second commit with its body", log, err)
	}

	if ch, err := Uncommitted(ctx, filepath.Join(dir, "docker")); err != nil || len(ch) != 0 {
		t.Errorf("Uncommitted of a clean tree = %v, %v", ch, err)
	}
	write(t, dir, map[string]string{"docker/ a.txt": "new", "docker/build.log": "x", "docker/a b.sh": "changed", "other/x": "x"})
	ch, err := Uncommitted(ctx, filepath.Join(dir, "docker"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range ch {
		got[c.Path] = c.Code
	}
	// Asked from a directory below the top: paths relative to it.
	want := map[string]string{" a.txt": "??", "build.log": "!!", "a b.sh": " M"}
	if len(got) != len(want) {
		t.Errorf("Uncommitted(docker) = %v, want %v", got, want)
	}
	for p, code := range want {
		if got[p] != code {
			t.Errorf("Uncommitted(docker)[%q] = %q, want %q", p, got[p], code)
		}
	}
}
