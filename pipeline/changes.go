package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/patternmatcher"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/store"
)

// Change is what a change-detected run does with one image, and why.
type Change struct {
	Image   string `json:"name"`
	Rebuild bool   `json:"rebuild"`
	// Reason: "docker/Dockerfile.ci_cpu changed", "parent ci_cpu rebuilt",
	// "build_all: docker/install/common.sh", `"full rebuild" in 1a2b3c4d`,
	// or, for an image left alone, "unchanged since 1a2b3c4d".
	Reason string `json:"reason"`
}

// fullRebuild in a commit message of the range rebuilds every image.
const fullRebuild = "full rebuild"

// changes decides, for every image of g in order, whether a run at co
// rebuilds it, counting the changes since rev. A rev the clone does not
// have is a *UsageError.
func changes(ctx context.Context, cfg *config.Config, g *rebuild.Graph, co source.Checkout, rev string) (since string, _ []Change, _ error) {
	since, err := source.Resolve(ctx, co.Dir, rev)
	if errors.Is(err, source.ErrNoRevision) {
		why := "name a commit, branch or tag of the source"
		if shallow, _ := source.Shallow(ctx, co.Dir); shallow {
			why = "the clone is shallow: fetch the history back to it (git fetch --unshallow)"
		}
		return "", nil, &UsageError{fmt.Errorf("--changed-since %s: %w: %s", rev, err, why)}
	}
	if err != nil {
		return "", nil, err
	}
	paths, err := source.Diff(ctx, co.Dir, since, co.Commit)
	if err != nil {
		return "", nil, err
	}
	commits, err := source.Log(ctx, co.Dir, since, co.Commit)
	if err != nil {
		return "", nil, err
	}
	d := detector{cfg: cfg, root: co.Dir}
	cs, err := d.decide(g, since, paths, commits)
	return since, cs, err
}

// detector decides what changed for which image.
type detector struct {
	cfg  *config.Config
	root string // the tree at the pinned commit, for each context's .dockerignore
}

// decide says, for each image of g in order, whether the change of paths
// (and the commits' messages) rebuilds it.
func (d detector) decide(g *rebuild.Graph, since string, paths []string, commits []source.Commit) ([]Change, error) {
	ignore, err := matcher(d.cfg.Changes.Ignore)
	if err != nil {
		return nil, err
	}
	all, err := matcher(d.cfg.Changes.BuildAll)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, p := range paths {
		if !matches(ignore, p) {
			changed = append(changed, p)
		}
	}
	everything := ""
	for _, c := range commits {
		if strings.Contains(strings.ToLower(c.Message), fullRebuild) {
			everything = fmt.Sprintf("%q in %.8s", fullRebuild, c.Hash)
			break
		}
	}
	if everything == "" {
		for _, p := range changed {
			if matches(all, p) {
				everything = "build_all: " + p
				break
			}
		}
	}
	var out []Change
	rebuilt := map[string]bool{}
	for _, name := range g.Order() {
		c := Change{Image: name, Rebuild: true, Reason: everything}
		if c.Reason == "" {
			node, _ := g.Node(name)
			if c.Reason, err = d.own(node.Image, changed); err != nil {
				return nil, err
			}
			for _, parent := range node.Parents {
				if c.Reason == "" && rebuilt[parent] {
					c.Reason = "parent " + parent + " rebuilt"
				}
			}
		}
		if c.Reason == "" {
			c.Rebuild, c.Reason = false, fmt.Sprintf("unchanged since %.8s", since)
		}
		rebuilt[name] = c.Rebuild
		out = append(out, c)
	}
	return out, nil
}

// own says which of changed (repository paths) img is built from: its
// Dockerfile, a file of its context that .dockerignore leaves in, or a
// file its inputs match; "" for none.
func (d detector) own(img config.Image, changed []string) (string, error) {
	inputs, err := matcher(img.Inputs)
	if err != nil {
		return "", err
	}
	dockerignore, err := readDockerignore(filepath.Join(d.root, filepath.FromSlash(img.Context)))
	if err != nil {
		return "", err
	}
	var hits []string
	for _, p := range changed {
		if p == path.Clean(img.Dockerfile) || matches(inputs, p) || inContext(img.Context, p, dockerignore) {
			hits = append(hits, p)
		}
	}
	switch len(hits) {
	case 0:
		return "", nil
	case 1:
		return hits[0] + " changed", nil
	}
	return fmt.Sprintf("%s changed (and %d more)", hits[0], len(hits)-1), nil
}

// inContext reports whether p, a repository path, is sent to the engine
// with context: under it, and not excluded by its .dockerignore.
func inContext(context, p string, dockerignore *patternmatcher.PatternMatcher) bool {
	context = path.Clean(context)
	rel := p
	if context != "." {
		var ok bool
		if rel, ok = strings.CutPrefix(p, context+"/"); !ok {
			return false
		}
	}
	return !matches(dockerignore, rel)
}

// matcher compiles globs in .dockerignore syntax; nil for none.
func matcher(globs []string) (*patternmatcher.PatternMatcher, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	return patternmatcher.New(globs)
}

// matches reports whether m matches p or a directory above it.
func matches(m *patternmatcher.PatternMatcher, p string) bool {
	if m == nil {
		return false
	}
	ok, err := m.MatchesOrParentMatches(p)
	return err == nil && ok
}

// readDockerignore reads the .dockerignore of the context at dir, as the
// engine's build reads it; nil when there is none.
func readDockerignore(dir string) (*patternmatcher.PatternMatcher, error) {
	patterns, err := engine.ReadIgnore(dir)
	if err != nil {
		return nil, err
	}
	return matcher(patterns)
}

// pinUnchanged points every rebuilt child of an image the change-detected
// plan leaves alone at that image's latest in staging, pinned by its
// digest now, and plans again. A parent without latest is a *UsageError:
// the child has nothing to build on.
func (p *Pipeline) pinUnchanged(ctx context.Context, prep *Prepared) error {
	rebuilt := map[string]bool{}
	for _, s := range prep.Plan.Steps {
		rebuilt[s.Name] = true
	}
	bases := map[string]string{}
	for _, s := range prep.Plan.Steps {
		node, _ := prep.Graph.Node(s.Name)
		for _, parent := range node.Parents {
			if rebuilt[parent] || bases[parent] != "" {
				continue
			}
			latest, err := name.NewTag(p.Repo() + "/" + parent + ":latest")
			if err != nil {
				return err
			}
			digest, found, err := p.registry.Lookup(ctx, latest.String())
			if err != nil {
				return &Unavailable{err}
			}
			if !found {
				return &UsageError{fmt.Errorf("%s is rebuilt (%s) on %s, which is not (%s), but staging has no %s to build on: run once without --changed-since, or since an older commit",
					s.Name, s.Reason, parent, prep.reason(parent), latest)}
			}
			bases[parent] = latest.Context().Digest(digest).String()
		}
	}
	if len(bases) == 0 {
		return nil
	}
	co := prep.Source
	return prep.planChanged(p.cfg, rebuild.Commit{Hash: co.Commit, Short: co.Short()}, prep.Plan.Start, bases)
}

// reason is why the change-detected plan does what it does with image.
func (prep *Prepared) reason(image string) string {
	for _, c := range prep.Changes {
		if c.Image == image {
			return c.Reason
		}
	}
	return ""
}

// unchanged is how the record lists the images plan leaves alone.
func unchanged(plan *rebuild.Plan) []store.UnchangedImage {
	var out []store.UnchangedImage
	for _, u := range plan.Unchanged {
		out = append(out, store.UnchangedImage{Name: u.Name, Status: store.Skipped, Reason: u.Reason})
	}
	return out
}

// nothingToRebuild is the end of a change-detected run that found nothing
// changed: a record of what it left alone, kept nowhere (it built nothing,
// and is nobody's news), and a Run already over.
func nothingToRebuild(req Request, prep *Prepared, now time.Time) *Run {
	rec := &store.Run{Kind: store.KindNightly, Tag: prep.Plan.Tag, Commit: prep.Source.Commit, Subject: prep.Source.Subject,
		Dirty: prep.Source.Dirty, Status: store.Succeeded, Trigger: req.Trigger, TriggeredBy: req.TriggeredBy,
		Started: prep.Plan.Start, Finished: &now, Images: []store.ImageResult{}, ChangedSince: prep.Since, Unchanged: unchanged(prep.Plan)}
	if req.Progress != nil {
		close(req.Progress)
	}
	done := make(chan struct{})
	close(done)
	return &Run{done: done, rec: rec}
}
