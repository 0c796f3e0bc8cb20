package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
)

// What git says about a tree, read as git prints it for machines: exit
// statuses, -z lists and fixed formats, never its messages.

// ErrNotInCommit means a path names nothing in a commit: it is not tracked,
// or the clone lacks the object (a shallow or partial clone).
var ErrNotInCommit = errors.New("not in the commit")

// ErrNoRevision means a revision names no commit the clone has.
var ErrNoRevision = errors.New("no such commit in the clone")

// Object returns the hash of what path (slash-separated, relative to dir;
// "" or "." is dir itself) is at commit, exactly what
// `git rev-parse <commit>:<path>` prints from the repository's top: a
// tree's hash for a directory, a blob's for a file. A path git does not
// have there is ErrNotInCommit.
func Object(ctx context.Context, dir, commit, path string) (string, error) {
	spec := commit + ":./" + strings.TrimPrefix(strings.TrimSuffix(path, "/"), "./")
	if path == "." || path == "" {
		spec = commit + ":./"
	}
	// --verify --quiet answers a name git cannot resolve by its exit status.
	out, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "--end-of-options", spec)
	var ge *GitError
	if errors.As(err, &ge) && ge.Status > 0 {
		return "", fmt.Errorf("%s at %.8s: %w", path, commit, ErrNotInCommit)
	}
	return out, err
}

// Shallow reports whether the clone at dir is shallow: it lacks the
// history (and so the trees) of commits before its cut.
func Shallow(ctx context.Context, dir string) (bool, error) {
	out, err := git(ctx, dir, "rev-parse", "--is-shallow-repository")
	return out == "true", err
}

// Resolve returns the full hash of the commit rev names, or ErrNoRevision
// when the clone has none.
func Resolve(ctx context.Context, dir, rev string) (string, error) {
	if strings.HasPrefix(rev, "-") {
		return "", fmt.Errorf("revision %q: %w", rev, ErrNoRevision)
	}
	out, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	var ge *GitError
	if errors.As(err, &ge) && ge.Status == 1 { // --verify --quiet: 1 is "no such object"
		return "", fmt.Errorf("revision %q: %w", rev, ErrNoRevision)
	}
	return out, err
}

// Entry is one file of a commit's tree.
type Entry struct {
	Path string // slash-separated, relative to the root
	Hash string // the blob's (a submodule's commit for a gitlink)
}

// Files lists every file of commit's tree under dir, relative to dir, in
// git's order.
func Files(ctx context.Context, dir, commit string) ([]Entry, error) {
	out, err := gitRaw(ctx, dir, "ls-tree", "-r", "-z", commit)
	if err != nil {
		return nil, err
	}
	var files []Entry
	for rec := range bytes.SplitSeq(out, []byte{0}) {
		// <mode> SP <type> SP <object> TAB <path>
		meta, path, ok := bytes.Cut(rec, []byte{'\t'})
		fields := bytes.Fields(meta)
		if !ok || len(fields) != 3 {
			continue
		}
		files = append(files, Entry{Path: string(path), Hash: string(fields[2])})
	}
	return files, nil
}

// Change is a path whose working tree differs from the commit checked out.
type Change struct {
	Path string // slash-separated, relative to the directory asked about
	// Code is git's two-letter status: " M", "A ", "??" (untracked),
	// "!!" (ignored), ...
	Code string
}

// Untracked reports whether the file is unknown to git.
func (c Change) Untracked() bool { return c.Code == "??" }

// Ignored reports whether git ignores the file (.gitignore).
func (c Change) Ignored() bool { return c.Code == "!!" }

// Uncommitted lists what in the working tree at dir, under pathspecs
// (relative to dir; none is all of dir), is not as the checked-out commit
// has it: changed, staged, untracked and ignored files.
func Uncommitted(ctx context.Context, dir string, pathspecs ...string) ([]Change, error) {
	prefix, err := git(ctx, dir, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, err
	}
	if len(pathspecs) == 0 {
		pathspecs = []string{"."}
	}
	args := append([]string{"status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored=matching", "--no-renames", "--"}, pathspecs...)
	out, err := gitRaw(ctx, dir, args...)
	if err != nil {
		return nil, err
	}
	var changes []Change
	for rec := range bytes.SplitSeq(out, []byte{0}) {
		// XY SP <path>, the path from the repository's top
		if len(rec) < 4 {
			continue
		}
		changes = append(changes, Change{Code: string(rec[:2]), Path: strings.TrimPrefix(string(rec[3:]), prefix)})
	}
	return changes, nil
}

// Diff lists the paths under dir (relative to it) that differ between the
// trees of commits from and to, a rename as its two paths.
func Diff(ctx context.Context, dir, from, to string) ([]string, error) {
	out, err := gitRaw(ctx, dir, "diff", "--name-only", "-z", "--no-renames", "--relative", from, to, "--")
	if err != nil {
		return nil, err
	}
	var paths []string
	for p := range bytes.SplitSeq(out, []byte{0}) {
		if len(p) > 0 {
			paths = append(paths, string(p))
		}
	}
	return paths, nil
}

// Commit is one commit of a range.
type Commit struct {
	Hash    string
	Message string
}

// Log lists the commits reachable from to and not from from, newest first,
// with their whole messages.
func Log(ctx context.Context, dir, from, to string) ([]Commit, error) {
	out, err := gitRaw(ctx, dir, "log", "-z", "--format=%H%n%B", from+".."+to, "--")
	if err != nil {
		return nil, err
	}
	var commits []Commit
	for rec := range bytes.SplitSeq(out, []byte{0}) {
		hash, msg, _ := bytes.Cut(rec, []byte{'\n'})
		if len(hash) > 0 {
			commits = append(commits, Commit{Hash: string(hash), Message: string(msg)})
		}
	}
	return commits, nil
}
