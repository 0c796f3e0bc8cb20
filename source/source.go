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
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
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

// redacted is rawURL without its credentials: over http(s) without its
// user part (a user alone may be a token), elsewhere with any password
// replaced by "xxxxx".
func redacted(rawURL string) string {
	u, err := neturl.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		u.User = nil
		return u.String()
	}
	return u.Redacted()
}

// keepTrees is how many checked-out commits of a URL source are kept: a run
// may still be building from a tree that newer fetches have passed.
const keepTrees = 5

// fetchTimeout bounds a fetch: a stalled remote must not hang the nightly.
const fetchTimeout = 30 * time.Minute

// FetchOption changes what Fetch fetches.
type FetchOption func(*fetchOptions)

type fetchOptions struct{ history bool }

// WithHistory fetches ref's whole history instead of its last commit alone,
// for the commits and trees a change-detected run compares with.
func WithHistory() FetchOption { return func(o *fetchOptions) { o.history = true } }

// Fetch fetches ref (a branch, tag or commit) of the repository at url into
// workdir and pins it. Every commit gets a tree of its own, checked out
// once and never changed, so a second nightshift (a plan, say) fetching
// another commit cannot change the tree a run is building from. Only ref's
// last commit is fetched, unless WithHistory.
func Fetch(ctx context.Context, url, ref, workdir string, opts ...FetchOption) (Checkout, error) {
	var o fetchOptions
	for _, opt := range opts {
		opt(&o)
	}
	shown := redacted(url) // what errors say: they reach records and messages
	sum := sha256.Sum256([]byte(url))
	base := filepath.Join(workdir, repoName(url)+"-"+hex.EncodeToString(sum[:4]))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return Checkout{}, err
	}
	unlock, err := lockFile(base + ".lock")
	if err != nil {
		return Checkout{}, fmt.Errorf("source %s: %w", shown, err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()

	gitDir := base + ".git"
	if _, err := os.Stat(filepath.Join(gitDir, "HEAD")); err != nil {
		if _, err := git(ctx, workdir, "init", "--quiet", "--bare", gitDir); err != nil {
			return Checkout{}, err
		}
	}
	args := []string{"fetch", "--quiet", "--force", "--no-tags", "--depth=1", url, ref}
	if o.history {
		args = slices.Delete(args, 4, 5)
		if shallow, err := Shallow(ctx, gitDir); err == nil && shallow {
			args = slices.Insert(args, 4, "--unshallow")
		}
	}
	if _, err := git(ctx, gitDir, args...); err != nil {
		if noRef(ctx, gitDir, url, ref) {
			return Checkout{}, fmt.Errorf("source %s has no ref %q: %w", shown, ref, ErrNoRef)
		}
		return Checkout{}, fmt.Errorf("source %s@%s: %w", shown, ref, err)
	}
	commit, err := git(ctx, gitDir, "rev-parse", "FETCH_HEAD^{commit}")
	if err != nil {
		return Checkout{}, err
	}
	tree := filepath.Join(base, commit)
	if _, err := os.Stat(filepath.Join(tree, ".git")); err != nil {
		// Check out beside it and move it in place, so that a tree under
		// its final name is always whole.
		tmp := tree + ".partial"
		os.RemoveAll(tmp)
		git(ctx, gitDir, "worktree", "prune")
		if _, err := git(ctx, gitDir, "worktree", "add", "--quiet", "--detach", "--force", tmp, commit); err != nil {
			return Checkout{}, fmt.Errorf("source %s@%s: %w", shown, ref, err)
		}
		if _, err := git(ctx, gitDir, "worktree", "move", tmp, tree); err != nil {
			return Checkout{}, fmt.Errorf("source %s@%s: %w", shown, ref, err)
		}
	}
	now := time.Now()
	os.Chtimes(tree, now, now) // the newest trees are kept
	pruneTrees(ctx, gitDir, base)

	c, err := Local(ctx, tree)
	if err != nil {
		return Checkout{}, err
	}
	c.Dirty = false // our own checkout: clean by construction
	return c, nil
}

// pruneTrees removes all but the keepTrees most recently used trees.
func pruneTrees(ctx context.Context, gitDir, base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	type tree struct {
		path string
		used time.Time
	}
	var trees []tree
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.IsDir() && !strings.HasSuffix(e.Name(), ".partial") {
			trees = append(trees, tree{filepath.Join(base, e.Name()), info.ModTime()})
		}
	}
	slices.SortFunc(trees, func(a, b tree) int { return b.used.Compare(a.used) })
	for _, t := range trees[min(keepTrees, len(trees)):] {
		if _, err := git(ctx, gitDir, "worktree", "remove", "--force", t.path); err != nil {
			os.RemoveAll(t.path)
		}
	}
	git(ctx, gitDir, "worktree", "prune")
}

// lockFile takes an exclusive lock on path, waiting for another process
// that holds it, and returns the function that releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
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
	out, err := gitRaw(ctx, dir, args...)
	return strings.TrimSpace(string(out)), err
}

// noRef tells, after a fetch of ref from url failed, whether the remote
// answers but has no such ref, from git ls-remote's exit status (2: no ref
// matches) rather than from the words of the fetch's error. A commit hash
// is not listed by a remote: it is missing when the remote answers at all.
func noRef(ctx context.Context, gitDir, url, ref string) bool {
	pattern := ref
	if isCommitHash(ref) {
		pattern = "HEAD"
	}
	_, err := git(ctx, gitDir, "ls-remote", "--exit-code", url, pattern)
	var ge *GitError
	switch {
	case err == nil:
		return isCommitHash(ref)
	case errors.As(err, &ge) && ge.Status == 2:
		return !isCommitHash(ref)
	}
	return false
}

// isCommitHash reports whether ref is a full commit hash (SHA-1 or
// SHA-256), which a remote does not list as a ref.
func isCommitHash(ref string) bool {
	return (len(ref) == 40 || len(ref) == 64) && strings.Trim(ref, "0123456789abcdef") == ""
}

// GitError is a git command that failed: its exit status, when it ran,
// and what it said.
type GitError struct {
	Command string // the git subcommand
	Status  int    // exit status; -1 when git did not run or was killed
	Stderr  string
}

func (e *GitError) Error() string { return "git " + e.Command + ": " + e.Stderr }

// gitRaw runs git in dir and returns its standard output as it is.
func gitRaw(ctx context.Context, dir string, args ...string) ([]byte, error) {
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
		status := -1
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			status = exit.ExitCode()
		}
		return nil, &GitError{Command: args[0], Status: status, Stderr: msg}
	}
	return out.Bytes(), nil
}
