package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/store"
	"nightshift/validate"
)

// Request says what one run does.
type Request struct {
	Selection
	Trigger string // "cli", "cron", "api", ...
	// NoValidate builds and pushes only; a validation run follows later.
	NoValidate bool
	// Unattended says nobody watches the run start (the daemon): a run that
	// a configuration problem stops (a Dockerfile gone from the tree, a
	// FROM that now loops) is news too, not only one that found something
	// unavailable.
	Unattended bool
	// Progress, when set, receives every change as soon as it is recorded,
	// with the record as it then stands; it is closed when the run ends or
	// could not start. The run waits for it to be read.
	Progress chan<- Update

	// TriggeredBy names who asked for the run (an API token's name).
	TriggeredBy string
	// BuildURL is the CI build carrying the run out (Jenkins' $BUILD_URL),
	// recorded so that news of the run can link to its console.
	BuildURL string
	// Record, when set, is the queued record of this run (made when it was
	// triggered), which the run takes over instead of making its own.
	Record uint64

	// For a validation: the images pushed under Tag, or by the recorded
	// run Night.
	Tag   string
	Night uint64
}

// Update is one change of a run under way.
type Update struct {
	Run   *store.Run
	Event rebuild.Event
}

// Run is a run under way.
type Run struct {
	id   uint64
	done chan struct{}
	rec  *store.Run
	err  error
}

// ID is the run's record id.
func (r *Run) ID() uint64 { return r.id }

// Wait waits for the run to end and returns its record. The error is about
// recording, not about images: their failures are in the record. The
// record is nil only when the end of the run could not be recorded.
func (r *Run) Wait() (*store.Run, error) {
	<-r.done
	return r.rec, r.err
}

// Nightly starts a rebuild: it pins the source, plans, checks that the
// engine and the registry answer, records the run and carries it out in
// the background. An error means no run started: config.Problems or
// *UsageError when the request or the configuration is wrong,
// *Unavailable when what the run needs is not there (the news of which is
// queued, as it is for an unattended run's configuration problems).
//
// With req.ChangedSince, only what changed since is rebuilt, a child of an
// image left alone building on that image's latest pinned by digest; a run
// with nothing to rebuild is over at once, recorded nowhere, and its Run's
// record (ID 0) lists what it left alone.
func (p *Pipeline) Nightly(ctx context.Context, req Request) (*Run, error) {
	start, err := p.distinctStart(ctx)
	if err != nil {
		return p.start(ctx, req, nil, err)
	}
	prep, err := Prepare(ctx, p.cfg, req.Selection, start)
	if err == nil && req.ChangedSince != "" {
		if len(prep.Plan.Steps) == 0 {
			return nothingToRebuild(req, prep, p.now()), nil
		}
		err = p.pinUnchanged(ctx, prep)
	}
	return p.start(ctx, req, prep, err)
}

// distinctStart is when a rebuild starts: now, or the next second when the
// newest recorded run started within this one. A tag holds the run's
// start to the second, and two rebuilds of one commit a moment apart (a
// fast stack, a retry) would otherwise share their immutable tag.
func (p *Pipeline) distinctStart(ctx context.Context) (time.Time, error) {
	now := p.now().UTC()
	if p.db == nil {
		return now, nil
	}
	sums, _, err := p.db.Summaries(1)
	if err != nil || len(sums) == 0 || sums[0].Started.Truncate(time.Second).Before(now.Truncate(time.Second)) {
		return now, nil // without a record to compare with, the clock decides
	}
	next := sums[0].Started.Truncate(time.Second).Add(time.Second)
	select {
	case <-time.After(next.Sub(now)):
		if now = p.now().UTC(); now.Before(next) {
			now = next // a clock that did not move with the wait (tests)
		}
		return now, nil
	case <-ctx.Done():
		return time.Time{}, context.Cause(ctx)
	}
}

// Validate starts the validation of images already pushed, under req.Tag
// or by the run req.Night, without rebuilding them: each is pulled by its
// digest, tested, and with the Jenkins job run with every ref; what passes
// is tagged validated. The test files come from the source at the commit
// the images were built from, when the record knows it. Errors are as for
// Nightly.
func (p *Pipeline) Validate(ctx context.Context, req Request) (*Run, error) {
	night, err := p.night(req)
	var prep *Prepared
	if err == nil {
		req.Tag, req.Night = night.Tag, night.ID
		prep, err = PrepareValidation(ctx, p.cfg, req.Selection, night.Tag, night.Commit, p.now().UTC())
	}
	return p.start(ctx, req, prep, err)
}

// night resolves what a validation request names: the nightly run that
// pushed the images, or for a tag no recorded run pushed, a night of that
// tag alone (no id, no commit: the tests come from the source as it is).
func (p *Pipeline) night(req Request) (store.Run, error) {
	switch {
	case (req.Tag == "") == (req.Night == 0):
		return store.Run{}, &UsageError{errors.New("give either a tag or a run to validate")}
	case req.Night != 0:
		r, err := p.db.Run(req.Night)
		if err != nil {
			return store.Run{}, &UsageError{fmt.Errorf("run %d: %w (see nightshift history)", req.Night, err)}
		}
		if r.Kind == store.KindValidate && r.Night != 0 {
			// The night that validation was of: a night is one night.
			return p.night(Request{Night: r.Night})
		}
		return *r, nil
	}
	// The newest rebuild that pushed the tag says which commit the tests
	// come from; summaries find it without decoding every record.
	sums, _, err := p.db.Summaries(0)
	if err != nil {
		return store.Run{}, &Unavailable{err}
	}
	for _, r := range sums {
		if r.Tag == req.Tag && r.Kind == store.KindNightly {
			return p.night(Request{Night: r.ID})
		}
	}
	return store.Run{Tag: req.Tag}, nil
}

// start reaches the engine and the registry for prep (or takes prepErr,
// the reason it could not be made), records the run and carries it out.
func (p *Pipeline) start(ctx context.Context, req Request, prep *Prepared, err error) (*Run, error) {
	if err == nil {
		if err = p.reach(ctx, p.cfg.Staging.Namespace+"/"+prep.Plan.Steps[0].Name); err != nil {
			err = &Unavailable{err}
		}
	}
	if err != nil {
		var unavailable *Unavailable
		var usage *UsageError
		if errors.As(err, &unavailable) || (req.Unattended && !errors.As(err, &usage)) {
			p.notStarted(ctx, err)
		}
		p.dropQueued(ctx, req.Record, err)
		if req.Progress != nil {
			close(req.Progress)
		}
		return nil, err
	}

	p.sweep(ctx)
	if prep.Graph != nil {
		for _, w := range prep.Graph.Warnings() {
			p.log.Warn(w.String())
		}
	}
	x := p.newExecution(prep, req)
	rec := &store.Run{
		Tag:     prep.Plan.Tag,
		Commit:  prep.Source.Commit,
		Subject: prep.Source.Subject,
		Dirty:   prep.Source.Dirty,
		Status:  store.Running,
		Trigger: req.Trigger,
		Started: prep.Plan.Start,
		Images:  []store.ImageResult{},

		TriggeredBy: req.TriggeredBy,
		BuildURL:    req.BuildURL,
	}
	if prep.Pull {
		rec.Kind, rec.Night = store.KindValidate, req.Night
	} else {
		rec.Kind = store.KindNightly
	}
	for _, s := range prep.Plan.Steps {
		rec.Planned = append(rec.Planned, s.Name)
	}
	rec.ChangedSince, rec.Unchanged = prep.Plan.Since, unchanged(prep.Plan)
	if err := p.record(rec, req.Record); err != nil {
		p.dropQueued(ctx, req.Record, err)
		if req.Progress != nil {
			close(req.Progress)
		}
		return nil, &Unavailable{fmt.Errorf("record the run: %w", err)}
	}
	x.id = rec.ID
	p.log.Info("run started", "run", rec.ID, "tag", rec.Tag, "commit", rec.Commit, "images", len(prep.Plan.Steps))
	r := &Run{id: rec.ID, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if req.Progress != nil {
			defer close(req.Progress)
		}
		defer func() {
			// A bug of ours (or a library's) ends this run, recorded, not
			// the process: the daemon has more nights to run.
			if v := recover(); v != nil {
				p.log.Error("the run failed: panic", "run", x.id, "panic", v, "stack", string(debug.Stack()))
				r.rec, r.err = p.Abandon(x.id, fmt.Sprintf("nightshift failed: panic: %v", v))
				r.err = errors.Join(fmt.Errorf("run %d: panic: %v", x.id, v), r.err)
			}
		}()
		r.rec, r.err = x.run(ctx)
	}()
	return r, nil
}

// runner builds, pushes and verifies through the pipeline's engine and
// registry, as the configuration says.
func (p *Pipeline) runner() *rebuild.Runner {
	return &rebuild.Runner{Engine: p.engine, Registry: p.registry, Jobs: p.cfg.Build.Jobs, Pool: p.pool(),
		RetryBudget:  p.cfg.Staging.RetryBudget.Duration,
		BuildRetries: p.cfg.Build.Retries, RetryOn: p.cfg.Build.RetryPatterns, Reschedule: p.cfg.Build.Reschedule}
}

// Abandon ends run id, running or queued, as interrupted for why, and
// queues its news: for a run whose carrying out was lost (a panic).
func (p *Pipeline) Abandon(id uint64, why string) (*store.Run, error) {
	return p.db.InterruptRun(id, p.now().UTC(), why, p.outbox())
}

// record makes rec the run's record: the queued one, when there is one.
func (p *Pipeline) record(rec *store.Run, queued uint64) error {
	if queued == 0 {
		return p.db.CreateRun(rec)
	}
	rec.ID = queued
	return p.db.UpdateRun(queued, func(r *store.Run) error {
		if r.Status != store.Queued {
			return fmt.Errorf("run %d is %s, not queued", queued, r.Status)
		}
		rec.TriggeredBy = cmp.Or(rec.TriggeredBy, r.TriggeredBy)
		rec.Trigger = cmp.Or(rec.Trigger, r.Trigger)
		*r = *rec
		return nil
	})
}

// dropQueued ends the queued record of a run that could not start: failed,
// saying why, or interrupted when it was cancelled. Its news, when it is
// news, goes through notStarted.
func (p *Pipeline) dropQueued(ctx context.Context, queued uint64, why error) {
	if queued == 0 {
		return
	}
	now := p.now()
	_, err := p.db.FinishRun(queued, func(r *store.Run) error {
		switch {
		case r.Status != store.Queued:
		case ctx.Err() != nil:
			r.MarkInterrupted(now, "cancelled before the run started: "+context.Cause(ctx).Error())
		default:
			r.Status, r.Finished, r.Error = store.Failed, &now, "the run could not start: "+why.Error()
		}
		return nil
	}, nil)
	if err != nil {
		p.log.Error("recording that a queued run could not start", "run", queued, "err", err)
	}
}

// tester runs an image's own tests; *validate.Tester is one.
type tester interface {
	Test(ctx context.Context, s *rebuild.Step, image string, log io.Writer) *store.Validation
}

// jenkinsJob is the project's test job; *validate.Job is one.
type jenkinsJob interface {
	Run(ctx context.Context, refs map[string]string, update func(store.JenkinsBuild)) store.JenkinsBuild
}

// execution is one run under way.
type execution struct {
	p    *Pipeline
	prep *Prepared
	req  Request
	id   uint64
	// tests and job validate the images; nil when the run does not.
	tests tester
	job   jenkinsJob
	// latestWaits moves latest only once an image is validated.
	latestWaits bool

	mu        sync.Mutex // serializes recording
	statuses  map[string]store.Status
	builtOn   map[string]string // image -> the builder it runs on
	recordErr error
}

func (p *Pipeline) newExecution(prep *Prepared, req Request) *execution {
	x := &execution{p: p, prep: prep, req: req, statuses: map[string]store.Status{}, builtOn: map[string]string{},
		latestWaits: p.cfg.Staging.Latest == config.LatestValidated}
	switch {
	case req.NoValidate:
		return x
	case p.tester != nil:
		x.tests = p.tester(prep)
	case prep.Tests != nil:
		x.tests = &onBuilders{x: x, make: func(e Engine) tester { return validate.NewTester(p.cfg, prep.Tests, e) }}
	default:
		return x
	}
	if p.cfg.Validate.Jenkins.Enabled || p.jenkins != nil {
		if p.jenkins != nil {
			x.job = p.jenkins(prep.Plan)
		} else {
			data := config.NewTemplateData(prep.Plan.Start, prep.Plan.Commit)
			data.Tag = prep.Plan.Tag
			x.job = validate.NewJob(p.cfg.Validate.Jenkins, data, p.log)
		}
	}
	return x
}

// run carries the run out and records its end.
func (x *execution) run(ctx context.Context) (*store.Run, error) {
	plan := x.prep.Plan
	runner := x.p.runner()
	var after sync.WaitGroup
	for e := range runner.Run(ctx, rebuild.Job{
		Plan: plan, Logs: x.logs(), Cost: lastDurations(x.p.db, plan), Pull: x.prep.Pull,
	}) {
		if e.Stage == "" && e.Status == store.Succeeded {
			// Pushed and verified, or pulled: the rest is ours, while the
			// images built on it go on.
			after.Go(func() { x.safeAfterPush(ctx, plan.Step(e.Image), e) })
			continue
		}
		x.record(e)
	}
	after.Wait()
	if x.tests != nil && ctx.Err() == nil {
		x.consistency()
		if x.job != nil {
			x.jenkins(ctx)
		} else {
			x.release(ctx)
		}
	}

	failed := false
	for _, st := range x.statuses {
		failed = failed || st == store.Failed
	}
	now := x.p.now()
	final, err := x.p.db.FinishRun(x.id, func(run *store.Run) error {
		switch {
		case ctx.Err() != nil:
			run.MarkInterrupted(now, "run cancelled: "+context.Cause(ctx).Error())
		case failed:
			run.Status, run.Finished = store.Failed, &now
		default:
			run.Status, run.Finished = store.Succeeded, &now
		}
		return nil
	}, x.p.outbox())
	if err != nil {
		return nil, errors.Join(x.recordErr, fmt.Errorf("record the end of run %d: %w", x.id, err))
	}
	x.p.log.Info("run finished", "run", final.ID, "status", final.Status, "duration", final.Duration(now).Round(time.Millisecond))
	return final, x.recordErr
}

func (x *execution) logs() string {
	return filepath.Join(x.p.cfg.Store.Logs, strconv.FormatUint(x.id, 10))
}

// afterPush carries on with an image the runner pushed and verified (or
// pulled): latest, unless it waits for validation; the image's tests; and
// its validated tag, unless the Jenkins job has yet to pass it.
func (x *execution) afterPush(ctx context.Context, s *rebuild.Step, pushed rebuild.Event) {
	digest, tags := pushed.Digest, pushed.Tags
	log, err := rebuild.AppendLog(filepath.Join(x.logs(), s.Name+".log"))
	if err != nil {
		x.record(rebuild.Event{Image: s.Name, Status: store.Failed, Err: fmt.Errorf("log: %w", err), Digest: digest, Tags: tags})
		return
	}
	defer log.Close()
	st := &rebuild.Stages{Image: s.Name, Log: log, Emit: x.record, Now: x.p.now}

	if !x.prep.Pull && !x.latestWaits {
		err = st.Run(ctx, rebuild.StageTag, func(ctx context.Context) error {
			return x.tag(ctx, s.Latest, digest)
		})
		if err == nil {
			tags = append(tags, "latest")
		}
	}
	image := s.Ref.String()
	if x.prep.Pull {
		image = s.Pinned(digest) // what gets tagged validated is what ran
	}
	if eng, pull := x.p.runsOn(x.builderOf(s.Name)); err == nil && pull && (x.tests != nil || !x.prep.Pull) {
		// Built (or pulled) where it cannot run, or tested elsewhere by
		// choice ([validate] engine): that engine pulls it, by digest.
		image = s.Pinned(digest)
		fetch := x.p.runner()
		fetch.Engine = eng
		err = st.Run(ctx, rebuild.StagePull, func(ctx context.Context) error {
			return fetch.Fetch(ctx, image, log)
		})
	}
	if err == nil && !x.prep.Pull {
		x.readContents(ctx, st, s, image, digest) // insight: it fails no image
	}
	var v *store.Validation
	if err == nil && x.tests != nil {
		err = st.RunWith(ctx, rebuild.StageTest, func(ctx context.Context) error {
			v = x.tests.Test(ctx, s, image, log)
			switch v.Status {
			case store.Succeeded:
				return nil
			case store.Skipped:
				return rebuild.ErrNothingToDo
			}
			return errors.New(v.Error)
		}, func(done *rebuild.Event) { done.Validation = x.shown(s.Name, v) })
	}
	if err == nil && x.tests != nil && x.holds(s.Name) == "" {
		err = st.Run(ctx, rebuild.StageValidated, func(ctx context.Context) error {
			if v.Status != store.Succeeded {
				return rebuild.ErrNothingToDo
			}
			added, err := x.tagValidated(ctx, s, digest)
			tags = append(tags, added...)
			return err
		})
	}
	if st.End(ctx, err, rebuild.Event{Digest: digest, Tags: tags}) == store.Succeeded {
		x.record(rebuild.Event{Image: s.Name, Status: store.Succeeded, Digest: digest, Tags: tags})
	}
}

// safeAfterPush is afterPush, with a panic in it failing that image alone,
// its stack in the image's log.
func (x *execution) safeAfterPush(ctx context.Context, s *rebuild.Step, pushed rebuild.Event) {
	defer func() {
		if v := recover(); v != nil {
			err := fmt.Errorf("nightshift failed: panic: %v", v)
			if log, lerr := rebuild.AppendLog(filepath.Join(x.logs(), s.Name+".log")); lerr == nil {
				fmt.Fprintf(log, "==> %v\n%s", err, debug.Stack())
				log.Close()
			}
			x.record(rebuild.Event{Image: s.Name, Status: store.Failed, Err: err, Digest: pushed.Digest, Tags: pushed.Tags})
		}
	}()
	x.afterPush(ctx, s, pushed)
}

// shown is how an image's own tests are recorded: while the Jenkins job
// has yet to run, passing them is not being validated.
func (x *execution) shown(name string, v *store.Validation) *store.Validation {
	if v == nil {
		return nil
	}
	shown := *v
	if why := x.holds(name); why != "" && (v.Status == store.Succeeded || v.Status == store.Skipped) {
		shown.Status, shown.Error = store.Running, "waiting for "+why
	}
	return &shown
}

// holds says what an image that passed its own tests waits for before it
// is validated, once every image of the run is through: the Jenkins job,
// or the package consistency check of its group; "" when nothing.
func (x *execution) holds(image string) string {
	switch {
	case x.job != nil:
		return "the Jenkins job"
	case len(x.p.cfg.ConsistentGroups(image)) > 0:
		return "the package consistency check of its group"
	}
	return ""
}

// tag points ref, a tag of the image's repository, at digest by a remote
// manifest PUT (no layer moves) and checks that it landed.
func (x *execution) tag(ctx context.Context, ref name.Tag, digest string) error {
	if err := x.p.registry.Tag(ctx, ref.Context().Digest(digest).String(), ref.TagStr()); err != nil {
		return err
	}
	return rebuild.VerifyDigest(ctx, x.p.registry, ref.String(), digest)
}

// tagValidated tags s's image, pushed as digest, <tag>-validated, and
// latest too when latest waits for validation; it returns the tags added.
func (x *execution) tagValidated(ctx context.Context, s *rebuild.Step, digest string) ([]string, error) {
	refs := []name.Tag{s.Validated()}
	if x.latestWaits {
		refs = append(refs, s.Latest)
	}
	var tags []string
	for _, ref := range refs {
		if err := x.tag(ctx, ref, digest); err != nil {
			return nil, err
		}
		tags = append(tags, ref.TagStr())
	}
	return tags, nil
}

// record writes e into the run's record in one transaction, then passes
// it on to whoever follows the run.
func (x *execution) record(e rebuild.Event) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = x.p.now()
	}
	if e.Stage == "" && e.Status != "" {
		x.statuses[e.Image] = e.Status
	}
	if e.Builder != "" {
		x.builtOn[e.Image] = e.Builder
	}
	var now *store.Run
	err := x.p.db.UpdateRun(x.id, func(run *store.Run) error {
		apply(run, x.prep.Plan, e)
		now = run
		return nil
	})
	if err != nil && x.recordErr == nil {
		x.recordErr = err
		x.p.log.Error("recording the run failed; building goes on", "run", x.id, "err", err)
	}
	// Outside the transaction: a slow terminal must not hold the writer.
	if x.req.Progress != nil && now != nil {
		x.req.Progress <- Update{Run: now, Event: e}
	}
}

// apply records event e in run.
func apply(run *store.Run, plan *rebuild.Plan, e rebuild.Event) {
	t := e.Time
	errText := ""
	if e.Err != nil {
		errText = e.Err.Error()
	}
	im := run.Image(e.Image)
	defer func() {
		if e.Builder != "" {
			im.Builder = e.Builder
		}
	}()
	if im == nil {
		res := store.ImageResult{Name: e.Image}
		if s := plan.Step(e.Image); s != nil {
			res.Ref, res.Parent = s.Ref.String(), s.Base
			res.Reason = s.Reason
			if s.Reason != "" && s.Base != "" && !slices.Contains(s.Parents, s.Base) {
				res.BaseRef = s.BaseRef // the parent's latest by digest
			}
		}
		run.Images = append(run.Images, res)
		im = &run.Images[len(run.Images)-1]
	}
	if e.Digest != "" {
		im.Digest = e.Digest
	}
	if e.Packages != nil {
		im.Packages = e.Packages
	}
	if e.Validation != nil {
		v := *e.Validation
		im.Validation = &v
		if e.Stage == "" && e.Status == "" {
			return // about the validation alone
		}
	}
	if e.Stage == "" && e.Status == "" {
		return // about the builder alone
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
		if e.Attempts > 1 {
			st.Attempts = e.Attempts
			im.Flaky = e.Status == store.Succeeded
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

// lastDurations estimates each image's time until the images built on it
// may start (its build, without its tests) from its latest success, so
// the runner can start the longest chains first.
func lastDurations(db *store.DB, plan *rebuild.Plan) map[string]time.Duration {
	est := make(map[string]time.Duration, len(plan.Steps))
	runs, _, _ := db.Summaries(20) // a guess only: without history every image counts alike
	for _, run := range runs {
		for _, im := range run.Images {
			if _, seen := est[im.Name]; !seen && im.Status == store.Succeeded {
				est[im.Name] = im.BuildTime(time.Time{})
			}
		}
	}
	return est
}
