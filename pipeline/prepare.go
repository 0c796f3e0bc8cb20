package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
	prep.Plan, err = rebuild.NewPlan(cfg, prep.Graph, co.Dir, rebuild.Commit{Hash: co.Commit, Short: co.Short()}, start, names)
	if err != nil {
		return nil, err
	}
	return prep, nil
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
	co, err := checkout(ctx, cfg, ref)
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
// at ref (the configured one when ref is "").
func checkout(ctx context.Context, cfg *config.Config, ref string) (source.Checkout, error) {
	if !cfg.Source.IsURL() {
		co, err := source.Local(ctx, cfg.Source.Repo, cfg.Store.Path, cfg.Store.Logs)
		if err != nil {
			return co, config.Problems{{File: cfg.File, Key: "source.repo", Msg: err.Error()}}
		}
		return co, nil
	}
	co, err := source.Fetch(ctx, cfg.Source.Repo, cmp.Or(ref, cfg.Source.Ref), cfg.Source.Workdir)
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
