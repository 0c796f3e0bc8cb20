package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nightshift/internal/testenv"
	"nightshift/source"
)

// A path git cannot name at the commit is refused, saying why: not
// tracked, or a shallow clone without the commit's tree.
func TestContentTagObjectRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("readme\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := testenv.CommitAll(dir, "first")
	if err != nil {
		t.Fatal(err)
	}
	commitFiles(t, dir, "second", map[string]string{"docker/Dockerfile": "FROM scratch\n"})

	if _, err := object(ctx, source.Checkout{Dir: dir, Commit: "HEAD"}, "untracked"); err == nil || !strings.Contains(err.Error(), "not tracked by git") {
		t.Errorf("an untracked context: %v", err)
	}
	shallow := filepath.Join(t.TempDir(), "shallow")
	if out, err := exec.Command("git", "clone", "--quiet", "--depth=1", "file://"+dir, shallow).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if _, err := object(ctx, source.Checkout{Dir: shallow, Commit: "HEAD"}, "docker"); err != nil {
		t.Errorf("the pinned commit's tree in a shallow clone: %v", err)
	}
	if _, err := object(ctx, source.Checkout{Dir: shallow, Commit: first}, "docker/Dockerfile"); err == nil || !strings.Contains(err.Error(), "shallow clone") {
		t.Errorf("a commit a shallow clone lacks: %v", err)
	}
}
