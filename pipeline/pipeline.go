// Package pipeline ties one nightly run together: pin the source, plan the
// image graph, rebuild through the engine, and record every transition.
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/store"
	"nightshift/validate"
)

// Unavailable wraps an error of infrastructure that a run needs before any
// work begins (engine, registry, store, the source's remote).
type Unavailable struct{ Err error }

func (u *Unavailable) Error() string { return u.Err.Error() }
func (u *Unavailable) Unwrap() error { return u.Err }

// UsageError is a request that cannot be carried out as asked (an unknown
// image in --only, say).
type UsageError struct{ Err error }

func (u *UsageError) Error() string { return u.Err.Error() }
func (u *UsageError) Unwrap() error { return u.Err }

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

// Prepare pins the source and plans a run started at start. Problems with
// the configuration or the tree are config.Problems, a source that cannot
// be reached is *Unavailable, a bad selection is *UsageError.
func Prepare(ctx context.Context, cfg *config.Config, sel Selection, start time.Time) (*Prepared, error) {
	co, err := checkout(ctx, cfg, "")
	if err != nil {
		return nil, err
	}
	g, ps := rebuild.NewGraph(cfg.File, co.Dir, cfg.Staging.Registry+"/"+cfg.Staging.Namespace, cfg.Images)
	if len(ps) > 0 {
		return nil, ps
	}
	names, err := g.Select(sel.Only, sel.WithDeps)
	if err != nil {
		return nil, &UsageError{err}
	}
	prep := &Prepared{Source: co, Graph: g}
	if prep.Tests, err = loadTests(cfg, g, co.Dir); err != nil {
		return nil, err
	}
	prep.Plan, err = rebuild.NewPlan(cfg, g, co.Dir, rebuild.Commit{Hash: co.Commit, Short: co.Short()}, start, names)
	if err != nil {
		return nil, err
	}
	return prep, nil
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
	_, ps := rebuild.NewGraph(cfg.File, cfg.Source.Repo, cfg.Staging.Registry+"/"+cfg.Staging.Namespace, cfg.Images)
	return ps
}

// PrepareValidation readies the validation of the images already pushed
// under tag, from commit ("" when not known: then the source as configured)
// for the test files. Errors are as for Prepare.
func PrepareValidation(ctx context.Context, cfg *config.Config, sel Selection, tag, commit string, start time.Time) (*Prepared, error) {
	if err := config.CheckTag(tag); err != nil {
		return nil, &UsageError{fmt.Errorf("tag %q: %w", tag, err)}
	}
	co, err := checkout(ctx, cfg, commit)
	if err != nil {
		return nil, err
	}
	if commit != "" && co.Commit != commit && !cfg.Source.IsURL() {
		// A local checkout is used as it is; say that its tests may differ.
		co.Subject = fmt.Sprintf("tests from the checkout at %.8s; the images were built from %.8s", co.Commit, commit)
	}
	if commit == "" {
		commit = co.Commit
	}
	g, ps := rebuild.NewGraph(cfg.File, co.Dir, cfg.Staging.Registry+"/"+cfg.Staging.Namespace, cfg.Images)
	if len(ps) > 0 {
		return nil, ps
	}
	names, err := g.Select(sel.Only, sel.WithDeps)
	if err != nil {
		return nil, &UsageError{err}
	}
	prep := &Prepared{Source: co, Graph: g, Pull: true}
	if prep.Tests, err = loadTests(cfg, g, co.Dir); err != nil {
		return nil, err
	}
	prep.Source.Commit = commit
	prep.Plan = rebuild.ExistingPlan(cfg, g, tag, commit, start, names)
	return prep, nil
}

// checkout pins the source: a local checkout as it is, or the URL fetched
// at ref (the configured one when ref is "").
func checkout(ctx context.Context, cfg *config.Config, ref string) (source.Checkout, error) {
	var (
		co  source.Checkout
		err error
	)
	if cfg.Source.IsURL() {
		co, err = source.Fetch(ctx, cfg.Source.Repo, cmp.Or(ref, cfg.Source.Ref), cfg.Source.Workdir)
		if errors.Is(err, source.ErrNoRef) {
			return co, config.Problems{{File: cfg.File, Key: "source.ref", Msg: err.Error() + ": name a branch, a tag or a full commit hash"}}
		}
		if err != nil {
			return co, &Unavailable{err}
		}
		if ps := cfg.CheckTree(co.Dir); len(ps) > 0 {
			return co, ps
		}
	} else if co, err = source.Local(ctx, cfg.Source.Repo, cfg.Store.Path, cfg.Store.Logs); err != nil {
		return co, config.Problems{{File: cfg.File, Key: "source.repo", Msg: err.Error()}}
	}
	return co, nil
}

// loadTests reads the images' test files when the configuration has any.
func loadTests(cfg *config.Config, g *rebuild.Graph, root string) (*validate.Suite, error) {
	if !cfg.Validates() {
		return nil, nil
	}
	suite, ps := validate.Load(cfg, g, root)
	if len(ps) > 0 {
		return nil, ps
	}
	return suite, nil
}

// Options are the parts of a run that vary by caller.
type Options struct {
	Trigger string // "cli", "cron", "api"
	Logger  *slog.Logger
	// Observe sees every event after it is recorded, with the record as it
	// now stands (for live progress). It must not keep run.
	Observe func(run *store.Run, e rebuild.Event)
	// Started is told the run's record id once it exists (the daemon cancels
	// runs by it). nil is fine.
	Started func(id uint64)
	// Outbox says what to tell people when the run ends; its messages are
	// queued in the transaction that ends the run (notify.Messages). nil
	// queues nothing.
	Outbox func(store.Finish) ([]store.Message, error)
	// Jenkins, when set, is the project's test job: once every image is
	// pushed and has passed its own tests, it runs with their refs
	// (image name -> ref), reporting progress through update, and the
	// images it passes are tagged validated. The runner must hold the
	// validated stage for it (rebuild.Runner.HoldValidated).
	Jenkins func(ctx context.Context, refs map[string]string, update func(store.JenkinsBuild)) store.JenkinsBuild
}

// Run carries out prep, recording every transition in db as it happens,
// and returns the finished record. A run cut short by ctx is recorded as
// interrupted. The error is about recording, not about images: image
// failures are in the record.
func Run(ctx context.Context, cfg *config.Config, prep *Prepared, runner *rebuild.Runner, db *store.DB, opts Options) (*store.Run, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	plan := prep.Plan
	rec := &store.Run{
		Kind:    map[bool]string{true: KindValidate}[prep.Pull],
		Tag:     plan.Tag,
		Commit:  prep.Source.Commit,
		Subject: prep.Source.Subject,
		Dirty:   prep.Source.Dirty,
		Status:  store.Running,
		Trigger: opts.Trigger,
		Started: plan.Start,
		Images:  []store.ImageResult{},
	}
	for _, s := range plan.Steps {
		rec.Planned = append(rec.Planned, s.Name)
	}
	if err := db.CreateRun(rec); err != nil {
		return nil, &Unavailable{fmt.Errorf("record the run: %w", err)}
	}
	log.Info("run started", "run", rec.ID, "tag", plan.Tag, "commit", prep.Source.Commit, "images", len(plan.Steps))
	if opts.Started != nil {
		opts.Started(rec.ID)
	}

	var recordErr error
	events := func(e rebuild.Event) {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		var now *store.Run
		err := db.UpdateRun(rec.ID, func(run *store.Run) error {
			apply(run, plan, e, opts.Jenkins != nil)
			now = run
			return nil
		})
		if err != nil && recordErr == nil {
			recordErr = err
			log.Error("recording the run failed; building goes on", "run", rec.ID, "err", err)
		}
		// Outside the transaction: a slow terminal must not hold the writer.
		if opts.Observe != nil && now != nil {
			opts.Observe(now, e)
		}
	}
	failed := runner.Run(ctx, rebuild.Job{
		Plan:   plan,
		Logs:   filepath.Join(cfg.Store.Logs, strconv.FormatUint(rec.ID, 10)),
		Cost:   lastDurations(db, plan),
		Events: events,
		Pull:   prep.Pull,
	})
	if opts.Jenkins != nil && ctx.Err() == nil {
		failed = append(failed, jenkins(ctx, rec.ID, plan, runner, db, opts, events)...)
	}

	now := time.Now()
	final, err := db.FinishRun(rec.ID, func(run *store.Run) error {
		switch {
		case ctx.Err() != nil:
			run.MarkInterrupted(now, "run cancelled: "+context.Cause(ctx).Error())
		case len(failed) > 0:
			run.Status, run.Finished = store.Failed, &now
		default:
			run.Status, run.Finished = store.Succeeded, &now
		}
		return nil
	}, opts.Outbox)
	if err != nil {
		return nil, errors.Join(recordErr, fmt.Errorf("record the end of run %d: %w", rec.ID, err))
	}
	log.Info("run finished", "run", final.ID, "status", final.Status, "duration", final.Duration(now).Round(time.Millisecond))
	return final, recordErr
}

// apply records event e in run. held says validation goes on after the
// image's own tests (the run's Jenkins job).
func apply(run *store.Run, plan *rebuild.Plan, e rebuild.Event, held bool) {
	t := e.Time
	errText := ""
	if e.Err != nil {
		errText = e.Err.Error()
	}
	im := run.Image(e.Image)
	if im == nil {
		res := store.ImageResult{Name: e.Image}
		if s := plan.Step(e.Image); s != nil {
			res.Ref, res.Parent = s.Ref, s.Base
		}
		run.Images = append(run.Images, res)
		im = &run.Images[len(run.Images)-1]
	}
	if e.Digest != "" {
		im.Digest = e.Digest
	}
	if e.Validation != nil {
		v := *e.Validation
		if held && e.Stage == rebuild.StageTest && (v.Status == store.Succeeded || v.Status == store.Skipped) {
			v.Status, v.Error = store.Running, "waiting for the Jenkins job"
		}
		im.Validation = &v
		if e.Stage == "" && e.Status == "" {
			return // about the validation alone
		}
	}
	if e.Stage != "" {
		st := im.Stage(e.Stage)
		if st == nil {
			im.Stages = append(im.Stages, store.Stage{Name: e.Stage, Started: t})
			st = &im.Stages[len(im.Stages)-1]
		}
		st.Status, st.Error = e.Status, errText
		if e.Status.Done() {
			st.Finished = &t
		}
		return
	}
	im.Status, im.Error = e.Status, errText
	switch {
	case e.Status == store.Running:
		im.Started, im.Log = &t, e.Log
	case e.Status.Done():
		im.Finished = &t
		if len(e.Tags) > 0 {
			im.Tags = e.Tags
		}
		if len(e.Tail) > 0 {
			im.Tail = e.Tail
		}
	}
}

// KindValidate is the kind of a run that validated images already pushed.
const KindValidate = "validate"

// jenkins runs the project's Jenkins job on the images of the run once all
// are pushed and tested, records it, and tags the images it passes
// validated. It returns the images that failed it.
func jenkins(ctx context.Context, id uint64, plan *rebuild.Plan, runner *rebuild.Runner, db *store.DB, opts Options, events func(rebuild.Event)) []string {
	run, err := db.Run(id)
	if err != nil {
		return nil // the record is gone: recording errors are reported by events
	}
	refs := map[string]string{}
	var broken []string
	for _, s := range plan.Steps {
		im := run.Image(s.Name)
		if im == nil || im.Status != store.Succeeded {
			broken = append(broken, s.Name)
			continue
		}
		refs[s.Name] = s.Ref
	}
	record := func(b store.JenkinsBuild) {
		if err := db.UpdateRun(id, func(r *store.Run) error { r.Jenkins = &b; return nil }); err != nil && opts.Logger != nil {
			opts.Logger.Error("recording the Jenkins job failed", "run", id, "err", err)
		}
	}
	if len(broken) > 0 {
		// The job tests the stack as a whole: without every image it would
		// test a mix of tonight's images and older ones.
		why := "not triggered: " + strings.Join(broken, ", ") + " did not pass build, push and tests"
		now := time.Now()
		record(store.JenkinsBuild{Status: store.Skipped, Error: why, Started: now, Finished: &now})
		for name := range refs {
			events(rebuild.Event{Image: name, Validation: &store.Validation{Status: store.Skipped, Error: "the Jenkins job " + why,
				Tests: run.Image(name).ValidationTests()}})
		}
		return nil
	}

	build := opts.Jenkins(ctx, refs, record)
	record(build)
	var failed []string
	for i, s := range plan.Steps {
		im := run.Image(s.Name)
		v := &store.Validation{Tests: im.ValidationTests()}
		switch {
		case ctx.Err() != nil:
			v.Status, v.Error = store.Interrupted, "the Jenkins job was cancelled with the run"
			events(rebuild.Event{Image: s.Name, Validation: v})
			continue
		case build.Status != store.Succeeded:
			v.Status, v.Error = store.Failed, "Jenkins job: "+build.Summary()
			events(rebuild.Event{Image: s.Name, Validation: v})
			events(rebuild.Event{Image: s.Name, Status: store.Failed, Err: errors.New("validation: Jenkins job: " + build.Summary()),
				Digest: im.Digest, Tags: im.Tags, Tail: build.Console})
			failed = append(failed, s.Name)
			continue
		}
		events(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Running})
		added, err := runner.TagValidated(ctx, &plan.Steps[i], im.Digest)
		if err != nil {
			err = fmt.Errorf("%s: %w", rebuild.StageValidated, err)
			events(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Failed, Err: err})
			events(rebuild.Event{Image: s.Name, Status: store.Failed, Err: err, Digest: im.Digest, Tags: im.Tags})
			failed = append(failed, s.Name)
			continue
		}
		v.Status = store.Succeeded
		events(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Succeeded, Validation: v})
		events(rebuild.Event{Image: s.Name, Status: store.Succeeded, Digest: im.Digest, Tags: append(slices.Clone(im.Tags), added...)})
	}
	return failed
}

// lastDurations estimates each image's time from its latest success, so
// the runner can start the longest chains first.
func lastDurations(db *store.DB, plan *rebuild.Plan) func(string) time.Duration {
	est := make(map[string]time.Duration, len(plan.Steps))
	runs, _ := db.Runs(20) // a guess only: without history every image counts alike
	for _, run := range runs {
		for _, im := range run.Images {
			if _, seen := est[im.Name]; !seen && im.Status == store.Succeeded {
				est[im.Name] = im.Duration(time.Time{})
			}
		}
	}
	return func(name string) time.Duration {
		if d, ok := est[name]; ok && d > 0 {
			return d
		}
		return time.Minute
	}
}
