package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/validate"
)

// Selection narrows a run to some images.
type Selection struct {
	Only     []string
	WithDeps bool
	// ChangedSince, when set, rebuilds only the images that changed since
	// this revision (a commit, branch or tag of the source), and those
	// built on them; see Prepared.Changes.
	ChangedSince string
}

// Prepared is a run ready to go: its source pinned and its plan made.
type Prepared struct {
	Source source.Checkout
	Graph  *rebuild.Graph
	Plan   *rebuild.Plan
	// Tests are the images' tests, when the configuration validates.
	Tests *validate.Suite
	// Pull validates the images the plan names as they are in the
	// registry instead of rebuilding them (nightshift validate).
	Pull bool
	// Changes says, for a change-detected run (Selection.ChangedSince),
	// what happens to each selected image and why, in order; the plan
	// holds the images rebuilt. Since is the commit they are counted from.
	Changes []Change
	Since   string
}

// Prepare pins the source and plans a nightly started at start. Problems
// with the configuration or the tree are config.Problems, a source that
// cannot be reached is *Unavailable, a bad selection is *UsageError.
func Prepare(ctx context.Context, cfg *config.Config, sel Selection, start time.Time) (*Prepared, error) {
	prep, names, err := prepare(ctx, cfg, sel, "")
	if err != nil {
		return nil, err
	}
	co := prep.Source
	commit := rebuild.Commit{Hash: co.Commit, Short: co.Short()}
	if sel.ChangedSince == "" {
		prep.Plan, err = rebuild.NewPlan(cfg, prep.Graph, co.Dir, commit, start, names)
		return prep, err
	}
	if err := prep.detect(ctx, cfg, sel); err != nil {
		return nil, err
	}
	return prep, prep.planChanged(cfg, commit, start, nil)
}

// detect decides which of the selected images changed since
// sel.ChangedSince, into prep.Changes.
func (prep *Prepared) detect(ctx context.Context, cfg *config.Config, sel Selection) error {
	since, all, err := changes(ctx, cfg, prep.Graph, prep.Source, sel.ChangedSince)
	if err != nil {
		return err
	}
	selected := prep.Graph.Order()
	if len(sel.Only) > 0 {
		selected, _ = prep.Graph.Select(sel.Only, sel.WithDeps) // checked by prepare
	}
	prep.Since = since
	for _, c := range all {
		if slices.Contains(selected, c.Image) {
			prep.Changes = append(prep.Changes, c)
		}
	}
	return nil
}

// planChanged plans the images prep.Changes rebuilds, each child of an
// image left alone building on bases[that image] (its latest when bases
// has none).
func (prep *Prepared) planChanged(cfg *config.Config, commit rebuild.Commit, start time.Time, bases map[string]string) error {
	var names []string
	var unchanged []rebuild.Unchanged
	reasons := map[string]string{}
	for _, c := range prep.Changes {
		if c.Rebuild {
			names = append(names, c.Image)
			reasons[c.Image] = c.Reason
		} else {
			unchanged = append(unchanged, rebuild.Unchanged{Name: c.Image, Reason: c.Reason})
		}
	}
	var err error
	if len(names) == 0 {
		tag, err := config.RenderTag(cfg.Staging.TagFormat, start, commit.Hash)
		if err != nil {
			return err
		}
		prep.Plan = &rebuild.Plan{Tag: tag, Commit: commit.Hash, Repo: stagingRepo(cfg), Start: start}
	} else if prep.Plan, err = rebuild.NewPlan(cfg, prep.Graph, prep.Source.Dir, commit, start, names, rebuild.BuildOn(bases)); err != nil {
		return err
	}
	prep.Plan.Since, prep.Plan.Unchanged = prep.Since, unchanged
	for i := range prep.Plan.Steps {
		prep.Plan.Steps[i].Reason = reasons[prep.Plan.Steps[i].Name]
	}
	return nil
}

// PrepareValidation readies the validation of the images already pushed
// under tag, from commit ("" when not known: then the source as configured)
// for the test files. Errors are as for Prepare.
func PrepareValidation(ctx context.Context, cfg *config.Config, sel Selection, tag, commit string, start time.Time) (*Prepared, error) {
	if err := config.CheckTag(tag); err != nil {
		return nil, &UsageError{fmt.Errorf("tag %q: %w", tag, err)}
	}
	prep, names, err := prepare(ctx, cfg, sel, commit)
	if err != nil {
		return nil, err
	}
	co := &prep.Source
	if commit != "" && co.Commit != commit && !cfg.Source.IsURL() {
		// A local checkout is used as it is; say that its tests may differ.
		co.Subject = fmt.Sprintf("tests from the checkout at %.8s; the images were built from %.8s", co.Commit, commit)
	}
	co.Commit = cmp.Or(commit, co.Commit)
	prep.Pull = true
	prep.Plan, err = rebuild.ExistingPlan(cfg, prep.Graph, tag, co.Commit, start, names)
	if err != nil {
		return nil, config.Problems{{File: cfg.File, Key: "staging", Msg: err.Error()}}
	}
	return prep, nil
}

// prepare pins the source at ref (the configured one when ""), reads the
// image graph and the tests, and selects the images sel names.
func prepare(ctx context.Context, cfg *config.Config, sel Selection, ref string) (*Prepared, []string, error) {
	co, err := checkout(ctx, cfg, ref, sel.ChangedSince != "")
	if err != nil {
		return nil, nil, err
	}
	g, ps := rebuild.NewGraph(cfg.File, co.Dir, stagingRepo(cfg), cfg.Images, rebuild.Published(cfg.Staging.Published...))
	if len(ps) > 0 {
		return nil, nil, ps
	}
	names, err := g.Select(sel.Only, sel.WithDeps)
	if err != nil {
		return nil, nil, &UsageError{err}
	}
	prep := &Prepared{Source: co, Graph: g}
	if cfg.Validates() {
		var ps config.Problems
		if prep.Tests, ps = validate.Load(cfg, g, co.Dir); len(ps) > 0 {
			return nil, nil, ps
		}
	}
	return prep, names, nil
}

// GraphProblems checks the image graph of cfg, a configuration with
// problems already found (config.Inspect), so that a cycle or a bad FROM
// is reported with them rather than after they are fixed. It checks only
// when those problems leave the source and the images alone, and only for
// a local source: a URL is not fetched for a file that cannot be used.
func GraphProblems(cfg *config.Config, found config.Problems) config.Problems {
	if cfg == nil || cfg.Source.IsURL() {
		return nil
	}
	for _, p := range found {
		if p.Key == "" || p.Key == "source" || p.Key == "image" ||
			strings.HasPrefix(p.Key, "source.") || strings.HasPrefix(p.Key, "image[") {
			return nil
		}
	}
	_, ps := rebuild.NewGraph(cfg.File, cfg.Source.Repo, stagingRepo(cfg), cfg.Images, rebuild.Published(cfg.Staging.Published...))
	return ps
}

// checkout pins the source: a local checkout as it is, or the URL fetched
// at ref (the configured one when ref is ""), with its history when asked.
func checkout(ctx context.Context, cfg *config.Config, ref string, history bool) (source.Checkout, error) {
	if !cfg.Source.IsURL() {
		co, err := source.Local(ctx, cfg.Source.Repo, cfg.Store.Path, cfg.Store.Logs)
		if err != nil {
			return co, config.Problems{{File: cfg.File, Key: "source.repo", Msg: err.Error()}}
		}
		return co, nil
	}
	var opts []source.FetchOption
	if history {
		opts = append(opts, source.WithHistory())
	}
	co, err := source.Fetch(ctx, cfg.Source.Repo, cmp.Or(ref, cfg.Source.Ref), cfg.Source.Workdir, opts...)
	switch {
	case errors.Is(err, source.ErrNoRef):
		return co, config.Problems{{File: cfg.File, Key: "source.ref", Msg: err.Error() + ": name a branch, a tag or a full commit hash"}}
	case err != nil:
		return co, &Unavailable{err}
	}
	if ps := cfg.CheckTree(co.Dir); len(ps) > 0 {
		return co, ps
	}
	return co, nil
}

func stagingRepo(cfg *config.Config) string {
	return cfg.Staging.Registry + "/" + cfg.Staging.Namespace
}
