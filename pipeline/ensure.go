package pipeline

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/store"
)

// The outcomes of ensuring an image.
const (
	OutcomeExists = "exists" // the registry had it
	OutcomeBuilt  = "built"  // built here, not pushed
	OutcomePushed = "pushed" // built here, pushed and verified
	OutcomeWaited = "waited" // a builder job pushed it while this one waited
)

// EnsureRequest says which images `nightshift ensure` makes sure of, and how.
type EnsureRequest struct {
	Images []string // by name; or All
	All    bool
	// Push builds a missing image and pushes it; without it, a missing
	// image is waited for, up to Wait, looking every Poll (with jitter),
	// then built here and not pushed.
	Push       bool
	Wait, Poll time.Duration
	// AlwaysRebuild builds the images asked for even when they exist;
	// ForcePush pushes over an existing tag, which is otherwise never moved.
	AlwaysRebuild, ForcePush bool
	Trigger                  string
	// Progress gets lines for a person: what is looked up, waited for (and
	// how long is left), built and pushed. nil: none.
	Progress io.Writer
}

// EnsureResult is one image ensured.
type EnsureResult struct {
	Image string `json:"image"`
	Tag   string `json:"tag"`
	// Ref is <registry>/<namespace>/<image>:<tag>: in the registry, or
	// for an image built here and not pushed, in the engine.
	Ref string `json:"ref"`
	// Digest is the manifest digest the tag points at in the registry; ""
	// for an image built here and not pushed.
	Digest  string `json:"digest"`
	Outcome string `json:"outcome"`
}

// Pinned is the result's ref by digest too, when it is in the registry.
func (r EnsureResult) Pinned() string {
	if r.Digest == "" {
		return r.Ref
	}
	return r.Ref + "@" + r.Digest
}

// Ensure makes sure each image asked for exists for the source's commit
// under its content tag (see contentTags), in dependency order: if the
// registry has it, that is all (one request per image); if not, as
// req says, it is built (parents ensured first and built on by digest) and
// pushed, or waited for and then built here. Results are of the images
// asked for, in order, those ensured so far when err is not nil.
//
// Two hosts pushing the same missing image at once both end with the same
// tag on one verified image, almost always on the same digest: each pushes
// its build under a tag of its own (<tag>-try-<random>), checks that it
// landed, looks for the content tag again, and only when it is still
// missing points it at its build with one manifest PUT (no blob moves: the
// registry refuses a manifest whose blobs it lacks); after a pause it reads
// the tag back and reports what the tag points at then, whoever pushed it.
// The tag is never pushed over without ForcePush; nothing is deleted.
//
// An ensure that builds is recorded, a run of kind ensure (no
// notification: it is a pull request's business); one that found every
// image is not. Errors: config.Problems (a tree whose hashes would lie),
// *UsageError, *Unavailable as for Nightly; any other means an image
// failed.
func (p *Pipeline) Ensure(ctx context.Context, req EnsureRequest) ([]EnsureResult, error) {
	switch {
	case (len(req.Images) > 0) == req.All:
		return nil, &UsageError{errors.New("name the images to ensure (--image), or --all")}
	case !req.Push && (req.Wait < 0 || req.Wait > 0 && req.Poll <= 0):
		return nil, &UsageError{errors.New("--wait must not be negative, and --poll must be positive")}
	case req.ForcePush && !req.Push:
		return nil, &UsageError{errors.New("--force-push needs --push")}
	}
	co, err := checkout(ctx, p.cfg, "", false)
	if err != nil {
		return nil, err
	}
	g, ps := rebuild.NewGraph(p.cfg.File, co.Dir, p.Repo(), p.cfg.Images, rebuild.Published(p.cfg.Staging.Published...))
	if len(ps) > 0 {
		return nil, ps
	}
	asked := g.Order()
	if !req.All {
		if asked, err = g.Select(req.Images, false); err != nil {
			return nil, &UsageError{err}
		}
	}
	closure, _ := g.Select(asked, true)
	tags, err := contentTags(ctx, p.cfg, g, co, closure, p.cfg.Store.Path, p.cfg.Store.Logs)
	if err != nil {
		return nil, err
	}
	e := &ensurer{p: p, req: req, co: co, g: g, tags: tags, start: p.now().UTC(), done: map[string]*EnsureResult{}, asked: map[string]bool{}}
	e.deadline = e.start.Add(req.Wait)
	if req.Progress == nil {
		e.req.Progress = io.Discard
	}
	for _, n := range asked {
		e.asked[n] = true
	}
	var results []EnsureResult
	for _, n := range asked {
		var r *EnsureResult
		if r, err = e.ensure(ctx, n); err != nil {
			break
		}
		results = append(results, *r)
	}
	return results, errors.Join(err, e.finish(ctx, err))
}

// ensurer is one Ensure under way.
type ensurer struct {
	p        *Pipeline
	req      EnsureRequest
	co       source.Checkout
	g        *rebuild.Graph
	tags     map[string]string
	asked    map[string]bool
	start    time.Time
	deadline time.Time // of the wait for builder jobs, all images together
	done     map[string]*EnsureResult
	reached  bool

	// The run's record, made with the first build.
	db     *store.DB
	id     uint64
	plan   *rebuild.Plan
	failed bool
}

// ensure makes sure of image name, and of its parents before building it.
func (e *ensurer) ensure(ctx context.Context, image string) (*EnsureResult, error) {
	if r := e.done[image]; r != nil {
		return r, nil
	}
	tag := e.tags[image]
	ref, err := name.NewTag(e.p.Repo() + "/" + image + ":" + tag)
	if err != nil {
		return nil, err
	}
	r := &EnsureResult{Image: image, Tag: tag, Ref: ref.String()}
	rebuildIt := e.req.AlwaysRebuild && e.asked[image]
	if !rebuildIt {
		digest, found, err := e.lookup(ctx, ref)
		if err != nil {
			return nil, err
		}
		if !found && !e.req.Push {
			if digest, found, err = e.wait(ctx, ref); err != nil {
				return nil, err
			}
			r.Outcome = OutcomeWaited
		}
		if found {
			r.Digest, r.Outcome = digest, cmp.Or(r.Outcome, OutcomeExists)
			fmt.Fprintf(e.req.Progress, "%s: %s %s\n", image, r.Outcome, r.Pinned())
			e.done[image] = r
			return r, nil
		}
	}

	node, _ := e.g.Node(image)
	bases := map[string]string{}
	local := false // a parent built here and not pushed: not in the registry
	for _, parent := range node.Parents {
		pr, err := e.ensure(ctx, parent)
		if err != nil {
			return nil, err
		}
		parentRef, err := name.NewTag(pr.Ref)
		if err != nil {
			return nil, err
		}
		bases[parent] = parentRef.String()
		if pr.Digest != "" {
			bases[parent] = parentRef.Context().Digest(pr.Digest).String()
		} else {
			local = true
		}
	}
	if err := e.reach(ctx, image); err != nil {
		return nil, err
	}
	if err := e.build(ctx, image, ref, bases, e.req.Push && !local, local, r); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.req.Progress, "%s: %s %s\n", image, r.Outcome, r.Pinned())
	e.done[image] = r
	return r, nil
}

// lookup is one request: the digest of ref in the registry, if it is there.
func (e *ensurer) lookup(ctx context.Context, ref name.Tag) (string, bool, error) {
	d, found, err := e.p.registry.Lookup(ctx, ref.String())
	if err != nil {
		return "", false, &Unavailable{err}
	}
	return d, found, nil
}

// wait looks for ref every Poll (with jitter) until the registry has it or
// the wait is over, saying what it waits for and how long is left.
func (e *ensurer) wait(ctx context.Context, ref name.Tag) (string, bool, error) {
	for {
		left := e.deadline.Sub(e.p.now())
		if left <= 0 {
			fmt.Fprintf(e.req.Progress, "%s: not pushed by a builder job within --wait %s; building it here, without pushing\n", ref, e.req.Wait)
			return "", false, nil
		}
		// ±10%, so that many jobs waiting for one image do not ask at once.
		next := min(left, time.Duration(float64(e.req.Poll)*(0.9+0.2*mathrand.Float64())))
		fmt.Fprintf(e.req.Progress, "waiting for %s (a builder job with --push makes it): %s left, next look in %s\n",
			ref, roughly(left), roughly(next))
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", false, ctx.Err()
		case <-t.C:
		}
		if d, found, err := e.lookup(ctx, ref); err != nil || found {
			return d, found, err
		}
	}
}

// reach checks, before the first build, that the engine answers and, to
// push, that the registry takes pushes.
func (e *ensurer) reach(ctx context.Context, image string) error {
	if e.reached {
		return nil
	}
	var err error
	if e.req.Push {
		err = e.p.reach(ctx, e.p.cfg.Staging.Namespace+"/"+image)
	} else {
		ctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		if err = e.p.engine.Ping(ctx); err != nil {
			err = fmt.Errorf("%w\nStart the Docker Engine, or point DOCKER_HOST at one", err)
		}
	}
	if err != nil {
		return &Unavailable{err}
	}
	e.reached = true
	return nil
}

// build builds image as ref on bases (parent -> ref; local when one of
// them is built here, not pushed), and pushes it when push says so,
// recording every stage; r gets the outcome.
func (e *ensurer) build(ctx context.Context, image string, ref name.Tag, bases map[string]string, push, local bool, r *EnsureResult) error {
	commit := rebuild.Commit{Hash: e.co.Commit, Short: e.co.Short()}
	plan, err := rebuild.NewPlan(e.p.cfg, e.g, e.co.Dir, commit, e.start, []string{image},
		rebuild.Tags(ref.TagStr(), map[string]string{image: ref.TagStr()}), rebuild.BuildOn(bases))
	if err != nil {
		return err
	}
	s := plan.Steps[0]
	if err := e.begin(s); err != nil {
		return err
	}
	logPath := filepath.Join(e.p.cfg.Store.Logs, strconv.FormatUint(e.id, 10), image+".log")
	log, err := rebuild.CreateLog(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	e.emit(rebuild.Event{Image: image, Status: store.Running, Log: logPath})
	st := &rebuild.Stages{Image: image, Log: log, Emit: e.emit, Now: e.p.now}
	if push {
		fmt.Fprintf(e.req.Progress, "%s: %s is not in the registry; building it (log: %s)\n", image, ref, logPath)
	} else {
		fmt.Fprintf(e.req.Progress, "%s: building %s here, not pushing (log: %s)\n", image, ref, logPath)
	}

	// A pushed build is tagged for its own attempt only: the content tag
	// is claimed once the attempt is in the registry and verified.
	attempt := ref.Context().Tag(ref.TagStr() + "-try-" + randomHex(4))
	localTag := ref
	if push {
		localTag = attempt
	}
	attempts := 0
	err = st.RunWith(ctx, rebuild.StageBuild, func(ctx context.Context) (err error) {
		attempts, err = e.p.runner().Build(ctx, &s, log, rebuild.BuildOptions{Tag: localTag.String(), NoPull: local})
		return err
	}, func(done *rebuild.Event) { done.Attempts = attempts })
	var digest, final string
	r.Outcome = OutcomeBuilt
	if err == nil && push && !e.req.ForcePush {
		// Checked again just before pushing: a builder that was quicker wins.
		var found bool
		if final, found, err = e.lookup(ctx, ref); found {
			r.Outcome, r.Digest = OutcomeExists, final
			fmt.Fprintf(log, "==> %s appeared in the registry during the build; not pushing\n", ref)
			push = false
		}
	}
	if err == nil && push {
		err = st.Run(ctx, rebuild.StagePush, func(ctx context.Context) (err error) {
			digest, err = e.p.runner().Push(ctx, attempt.String(), log)
			return err
		})
		if err != nil && ctx.Err() == nil {
			// Two builders pushing the same layers at once can make the
			// registry refuse one of them (DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN):
			// when the other's push landed, the content tag is there, and
			// it is as good as this one's.
			if landed, found, lerr := e.lookup(ctx, ref); lerr == nil && found {
				fmt.Fprintf(log, "==> the push failed while another builder's push of %s landed; using it\n", ref)
				r.Outcome, r.Digest, err, push = OutcomeExists, landed, nil, false
			}
		}
		if err == nil && push {
			err = st.Run(ctx, rebuild.StageVerify, func(ctx context.Context) error {
				return rebuild.VerifyDigest(ctx, e.p.registry, attempt.String(), digest)
			})
		}
		if err == nil && push {
			err = st.Run(ctx, rebuild.StageTag, func(ctx context.Context) error {
				final, err = e.claim(ctx, ref, attempt, digest, log)
				return err
			})
		}
		if err == nil && push {
			r.Digest, r.Outcome = final, OutcomePushed
			if final != digest {
				r.Outcome = OutcomeExists
				fmt.Fprintf(e.req.Progress, "%s: another builder's push of %s landed after this one's; it is what the tag points at\n", image, ref)
			}
		}
	}
	done := rebuild.Event{Image: image, Status: store.Succeeded, Digest: r.Digest}
	if r.Outcome == OutcomePushed {
		done.Tags = []string{ref.TagStr(), attempt.TagStr()}
	}
	if st.End(ctx, err, done) != store.Succeeded {
		e.failed = true
		return fmt.Errorf("%s: %w", image, err)
	}
	e.emit(done)
	return nil
}

// claimSettle is how long after pointing the content tag at its build an
// ensure reads the tag back: longer than a racing host's last look and
// manifest PUT take, so that both read the same last word.
const claimSettle = 2 * time.Second

// claim points ref at digest, the verified build pushed as attempt,
// unless ref exists by then (and ForcePush is not asked), and returns the
// digest ref points at afterwards, read back after claimSettle.
func (e *ensurer) claim(ctx context.Context, ref, attempt name.Tag, digest string, log io.Writer) (string, error) {
	if !e.req.ForcePush {
		if d, found, err := e.lookup(ctx, ref); err != nil || found {
			if found {
				fmt.Fprintf(log, "==> %s appeared in the registry (%s) while this build was pushed; using it\n", ref, d)
			}
			return d, err
		}
	}
	if err := e.p.registry.Tag(ctx, attempt.Context().Digest(digest).String(), ref.TagStr()); err != nil {
		return "", err
	}
	t := time.NewTimer(e.p.settle())
	select {
	case <-ctx.Done():
		t.Stop()
		return "", ctx.Err()
	case <-t.C:
	}
	d, found, err := e.lookup(ctx, ref)
	switch {
	case err != nil:
		return "", err
	case !found:
		return "", fmt.Errorf("%s is gone from the registry right after it was pushed", ref)
	}
	fmt.Fprintf(log, "==> %s points at %s\n", ref, d)
	return d, nil
}

// begin records image's build, in the run made with the first one.
func (e *ensurer) begin(s rebuild.Step) error {
	if e.plan == nil {
		db, err := e.p.store()
		if err != nil {
			return &Unavailable{err}
		}
		rec := &store.Run{Kind: store.KindEnsure, Tag: s.Tag(), Commit: e.co.Commit, Subject: e.co.Subject, Dirty: e.co.Dirty,
			Status: store.Running, Trigger: e.req.Trigger, Started: e.start, Images: []store.ImageResult{}, Planned: []string{s.Name}}
		if err := db.CreateRun(rec); err != nil {
			return &Unavailable{fmt.Errorf("record the run: %w", err)}
		}
		e.db, e.id = db, rec.ID
		e.plan = &rebuild.Plan{Tag: s.Tag(), Commit: e.co.Commit, Repo: e.p.Repo(), Start: e.start}
		e.p.log.Info("ensure run started", "run", rec.ID, "commit", rec.Commit)
	} else if err := e.db.UpdateRun(e.id, func(r *store.Run) error {
		r.Planned, r.Tag = append(r.Planned, s.Name), s.Tag()
		return nil
	}); err != nil {
		return err
	}
	e.plan.Steps = append(e.plan.Steps, s)
	return nil
}

// emit records event ev of the run.
func (e *ensurer) emit(ev rebuild.Event) {
	if ev.Time.IsZero() {
		ev.Time = e.p.now()
	}
	if err := e.db.UpdateRun(e.id, func(r *store.Run) error {
		apply(r, e.plan, ev)
		return nil
	}); err != nil {
		e.p.log.Error("recording the ensure run", "run", e.id, "err", err)
	}
}

// finish records the end of the run, if one was made; err is why the
// ensure stopped, if it did.
func (e *ensurer) finish(ctx context.Context, err error) error {
	if e.plan == nil {
		return nil
	}
	now := e.p.now()
	_, ferr := e.db.FinishRun(e.id, func(r *store.Run) error {
		switch {
		case ctx.Err() != nil:
			r.MarkInterrupted(now, "ensure cancelled: "+context.Cause(ctx).Error())
		case e.failed || err != nil:
			r.Status, r.Finished = store.Failed, &now
			if err != nil && !e.failed {
				r.Error = err.Error()
			}
		default:
			r.Status, r.Finished = store.Succeeded, &now
		}
		return nil
	}, nil)
	if ferr != nil {
		return fmt.Errorf("record the end of run %d: %w", e.id, ferr)
	}
	return nil
}

// roughly is d to the second, or to the 10 ms below one.
func roughly(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
