// Package source pins the commit a run builds from: a local checkout used
// as it is, or a git URL fetched into a work directory and checked out.
package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoRef means the repository has no such branch, tag or commit.
var ErrNoRef = errors.New("no such ref")

// Checkout is the tree a run builds from, pinned to one commit.
type Checkout struct {
	Dir     string // root of the tree
	Commit  string // full hash
	Subject string // first line of the commit message
	Dirty   bool   // a local tree had changes to tracked files not in Commit
}

// Short is the abbreviated commit hash used in tags.
func (c Checkout) Short() string {
	if len(c.Commit) > 8 {
		return c.Commit[:8]
	}
	return c.Commit
}

// Local pins the checkout at dir as it is. Only changes to tracked files
// make it dirty: untracked reports and logs that a CI job writes into its
// workspace do not change what an image builds from, unless the build's
// COPY picks them up, and then they are tracked in any sane repository.
// Changes under ignore (absolute paths) do not count either.
func Local(ctx context.Context, dir string, ignore ...string) (Checkout, error) {
	top, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return Checkout{}, fmt.Errorf("source %s is not a git checkout: %w", dir, err)
	}
	c := Checkout{Dir: dir}
	if c.Commit, err = git(ctx, top, "rev-parse", "HEAD"); err != nil {
		return Checkout{}, fmt.Errorf("source %s has no commit: %w", dir, err)
	}
	if c.Subject, err = git(ctx, top, "log", "-1", "--format=%s", c.Commit); err != nil {
		return Checkout{}, err
	}
	args := []string{"status", "--porcelain", "--untracked-files=no", "--", "."}
	for _, p := range ignore {
		if rel, err := filepath.Rel(top, p); err == nil && !strings.HasPrefix(rel, "..") {
			args = append(args, ":(exclude)"+filepath.ToSlash(rel))
		}
	}
	status, err := git(ctx, top, args...)
	if err != nil {
		return Checkout{}, err
	}
	c.Dirty = status != ""
	return c, nil
}

// Fetch fetches ref (a branch, tag or commit) of the repository at url into
// a directory under workdir, checks it out clean and pins it.
func Fetch(ctx context.Context, url, ref, workdir string) (Checkout, error) {
	sum := sha256.Sum256([]byte(url))
	dir := filepath.Join(workdir, repoName(url)+"-"+hex.EncodeToString(sum[:4]))
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Checkout{}, err
		}
		if _, err := git(ctx, dir, "init", "--quiet"); err != nil {
			return Checkout{}, err
		}
	}
	steps := [][]string{
		{"fetch", "--quiet", "--force", "--no-tags", "--depth=1", url, ref},
		{"checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"},
		{"clean", "--quiet", "-ffdx"},
	}
	for _, args := range steps {
		if _, err := git(ctx, dir, args...); err != nil {
			if strings.Contains(err.Error(), "couldn't find remote ref") || strings.Contains(err.Error(), "not our ref") {
				return Checkout{}, fmt.Errorf("source %s has no ref %q: %w", url, ref, ErrNoRef)
			}
			return Checkout{}, fmt.Errorf("source %s@%s: %w", url, ref, err)
		}
	}
	c, err := Local(ctx, dir)
	if err != nil {
		return Checkout{}, err
	}
	c.Dirty = false // our own clone: clean by construction
	return c, nil
}

// repoName is the last path element of a git URL, for a readable directory.
func repoName(url string) string {
	name := strings.TrimSuffix(strings.TrimRight(url, "/"), ".git")
	if i := strings.LastIndexAny(name, "/:"); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		return "repo"
	}
	return name
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	// Never stop to ask for a password: a run has no one to answer.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("git %s: %s", args[0], msg)
	}
	return strings.TrimSpace(out.String()), nil
}
