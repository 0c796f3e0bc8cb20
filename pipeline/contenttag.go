package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/source"
)

// The content tag of an image (nightshift ensure) names what it is built
// from at a commit, not when:
//
//   - an image without parents, inputs, build args or target whose
//     Dockerfile lies inside its context: the git tree hash of the context,
//     exactly what `git rev-parse <commit>:<context>` prints;
//   - any other: the first 40 hex digits of the SHA-256 of these lines, in
//     this order, each ending in "\n":
//     "nightshift ensure v1",
//     "context <context> <tree hash>",
//     "dockerfile <dockerfile> <blob hash>",
//     "input <path> <blob hash>" for each tracked file its inputs match, by path,
//     "arg <name>=<value>" for each build arg as written (templates
//     unrendered, Go-quoted), by name,
//     "target <target>" when set,
//     "parent <name> <content tag>" for each parent, by name;
//
// then "<tag_prefix>-" before it when [ensure] tag_prefix is set. A change
// of a parent changes the tag of every image built on it.
const contentTagVersion = "nightshift ensure v1"

// contentTags returns the content tag of each image of names (a closure:
// every parent of one is in it), in order, after checking that the tree
// at co is what the tags say: a change not committed (or a file git does
// not track, or ignores but the build would send) in an image's inputs, or
// an input git does not have at the commit (not tracked, or a shallow clone
// without it), is a config.Problems naming the files.
func contentTags(ctx context.Context, cfg *config.Config, g *rebuild.Graph, co source.Checkout, names []string, own ...string) (map[string]string, error) {
	var files []source.Entry // of the commit, read once when some image has inputs
	uncommitted, err := source.Uncommitted(ctx, co.Dir)
	if err != nil {
		return nil, err
	}
	var ps config.Problems
	tags := make(map[string]string, len(names))
	for _, name := range names {
		node, _ := g.Node(name)
		img := node.Image
		problem := func(key, format string, a ...any) {
			ps = append(ps, config.Problem{File: cfg.File, Line: img.Line, Key: imageKey(cfg, name, key),
				Msg: fmt.Sprintf("image %s: ", name) + fmt.Sprintf(format, a...)})
		}
		inputs, err := matcher(img.Inputs)
		if err != nil {
			return nil, err
		}
		if len(img.Inputs) > 0 && files == nil {
			if files, err = source.Files(ctx, co.Dir, co.Commit); err != nil {
				return nil, err
			}
		}
		dockerignore, err := readDockerignore(filepath.Join(co.Dir, filepath.FromSlash(img.Context)))
		if err != nil {
			return nil, err
		}
		if lying := liars(uncommitted, img, inputs, dockerignore, co.Dir, own); len(lying) > 0 {
			problem("context", "uncommitted changes in what it is built from would not be in its content tag: %s; commit them, remove them, or leave them out with .dockerignore",
				listed(lying, 10))
			continue
		}
		tree, err := object(ctx, co, img.Context)
		if err != nil {
			problem("context", "%v", err)
			continue
		}
		simple := len(node.Parents) == 0 && len(img.Inputs) == 0 && len(img.BuildArgs) == 0 && img.Target == "" &&
			inContext(img.Context, path.Clean(img.Dockerfile), nil)
		tag := tree
		if !simple {
			// A Dockerfile inside the context is in its tree hash already.
			dockerfile, err := object(ctx, co, img.Dockerfile)
			if err != nil {
				problem("dockerfile", "%v", err)
				continue
			}
			h := sha256.New()
			line := func(format string, a ...any) { fmt.Fprintf(h, format+"\n", a...) }
			line("%s", contentTagVersion)
			line("context %s %s", path.Clean(img.Context), tree)
			line("dockerfile %s %s", path.Clean(img.Dockerfile), dockerfile)
			for _, f := range files {
				if inputs != nil && matches(inputs, f.Path) {
					line("input %s %s", f.Path, f.Hash)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(img.BuildArgs)) {
				line("arg %s=%q", k, img.BuildArgs[k])
			}
			if img.Target != "" {
				line("target %s", img.Target)
			}
			for _, parent := range node.Parents { // sorted
				line("parent %s %s", parent, tags[parent])
			}
			tag = hex.EncodeToString(h.Sum(nil))[:40]
		}
		if cfg.Ensure.TagPrefix != "" {
			tag = cfg.Ensure.TagPrefix + "-" + tag
		}
		tags[name] = tag
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return tags, nil
}

// object is what p is at co's commit, or why the tree cannot say.
func object(ctx context.Context, co source.Checkout, p string) (string, error) {
	hash, err := source.Object(ctx, co.Dir, co.Commit, p)
	if errors.Is(err, source.ErrNotInCommit) {
		if shallow, _ := source.Shallow(ctx, co.Dir); shallow {
			return "", fmt.Errorf("%s is not in commit %.8s of this shallow clone: fetch the commit's whole tree (git fetch --unshallow)", p, co.Commit)
		}
		return "", fmt.Errorf("%s is not tracked by git at commit %.8s, so no hash can name it: add and commit it", p, co.Commit)
	}
	return hash, err
}

// liars are the files among uncommitted that img is built from (its
// Dockerfile, its context's files that .dockerignore leaves in, what its
// inputs match), each with what is wrong with it; files under own
// (nightshift's store and logs) aside.
func liars(uncommitted []source.Change, img config.Image, inputs, dockerignore *patternmatcher.PatternMatcher, root string, own []string) []string {
	var out []string
	for _, c := range uncommitted {
		if isOwn(filepath.Join(root, filepath.FromSlash(c.Path)), own) {
			continue
		}
		p := strings.TrimSuffix(c.Path, "/")
		built := p == path.Clean(img.Dockerfile) || inContext(img.Context, p, dockerignore)
		if !built && !c.Ignored() && matches(inputs, p) {
			built = true
		}
		if !built {
			continue
		}
		what := "changed"
		switch {
		case c.Untracked():
			what = "untracked"
		case c.Ignored():
			what = "ignored by git"
		}
		out = append(out, c.Path+" ("+what+")")
	}
	return out
}

// isOwn reports whether p is one of own or under one.
func isOwn(p string, own []string) bool {
	for _, o := range own {
		if rel, err := filepath.Rel(o, p); err == nil && filepath.IsLocal(rel) || p == o {
			return true
		}
	}
	return false
}

// listed is the first n of items, joined, and how many more there are.
func listed(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// imageKey is the key of field of image name in cfg: image[N].field.
func imageKey(cfg *config.Config, name, field string) string {
	for i, img := range cfg.Images {
		if img.Name == name {
			return fmt.Sprintf("image[%d].%s", i+1, field)
		}
	}
	return "image"
}
