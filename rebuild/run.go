package rebuild

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"nightshift/engine"
	"nightshift/retry"
	"nightshift/store"
)

// Engine builds and pushes images; *engine.Engine is one.
type Engine interface {
	Build(ctx context.Context, spec engine.BuildSpec, log io.Writer) (string, error)
	Push(ctx context.Context, ref, auth string, log io.Writer) (string, error)
	Pull(ctx context.Context, ref, auth string, log io.Writer) error
}

// Registry reads and tags what landed; *registry.Client is one.
type Registry interface {
	Tag(ctx context.Context, ref, tag string) error
	Digest(ctx context.Context, ref string) (string, error)
	EngineAuth() (string, error)
}

// The stages of an image, in the order they run. A rebuild builds, pushes,
// verifies, tags latest (unless latest waits for validation), tests and
// tags validated; a validation run (Job.Pull) pulls, tests and tags
// validated.
const (
	StageBuild     = "build"
	StagePull      = "pull"
	StagePush      = "push"
	StageVerify    = "verify"
	StageTag       = "tag"
	StageTest      = "test"
	StageValidated = "validated"
)

// ValidatedSuffix ends the tag of a validated image: <tag>-validated.
const ValidatedSuffix = "-validated"

// Event reports one change of an image or of one of its stages.
type Event struct {
	Image  string
	Stage  string // "" when the event is about the image as a whole
	Status store.Status
	Time   time.Time
	Err    error

	Log    string   // with the image's start: the path of its log
	Digest string   // with a pushed image: the manifest digest
	Tags   []string // with a succeeded image: the tags on Digest
	Tail   []string // with a failure: the failing stage's last log lines
	// Validation comes with the end of the test stage.
	Validation *store.Validation
}

// Runner carries out plans.
type Runner struct {
	Engine   Engine
	Registry Registry
	Jobs     int // builds at once
	// RetryBudget bounds how long a push or pull through the engine is
	// tried again after failing for a passing reason (a 5xx, a 429, a
	// reset); 0 tries once.
	RetryBudget time.Duration
	Now         func() time.Time

	// Test, when set, validates an image once it is pushed (the test
	// stage); a Validation that is not Succeeded fails the image, but not
	// the images built on it, which by then have started. Skipped means
	// there was nothing to test.
	// image is what to run: s.Ref, or for a validation run the digest
	// that was pulled.
	Test func(ctx context.Context, s *Step, image string, log io.Writer) *store.Validation
	// LatestValidated moves latest in the validated stage instead of
	// right after the push: a broken image never becomes latest.
	LatestValidated bool
	// HoldValidated leaves the validated stage to the caller, who
	// validates the run's images further once all are pushed (a Jenkins
	// job) and then calls TagValidated.
	HoldValidated bool
}

// Job is one carrying out of a plan.
type Job struct {
	Plan *Plan
	Logs string // directory the images' logs go to
	// Cost estimates an image's time (its last duration, say); images on the
	// longest remaining path start first. nil treats every image alike.
	Cost func(name string) time.Duration
	// Events receives every change as it happens, one call at a time.
	Events func(Event)
	// Pull says the plan's images exist at their refs already: they are
	// pulled and validated instead of built and pushed.
	Pull bool
}

// execution is the state of one Job under way.
type execution struct {
	*Runner
	Job
	mu sync.Mutex // serializes Events
}

// tailLines is how much of a failing stage's log goes into the record.
const tailLines = 30

// pushTimeout bounds one image's push, retries included: a stalled
// registry must not hang the nightly.
const pushTimeout = time.Hour

// Run builds, pushes and tags every image of job's plan, parents first, up
// to Jobs builds at once. A failed image fails alone: its descendants are
// skipped and everything else goes on. It returns the images that failed.
// When ctx ends, running images are reported interrupted; images never
// started are neither failed nor reported.
func (r *Runner) Run(ctx context.Context, job Job) []string {
	return (&execution{Runner: r, Job: job}).run(ctx)
}

func (r *execution) run(ctx context.Context) (failed []string) {
	p := r.Plan
	if err := os.MkdirAll(r.Logs, 0o755); err != nil {
		for _, s := range p.Steps {
			r.emit(Event{Image: s.Name, Status: store.Failed, Err: fmt.Errorf("log directory: %w", err)})
			failed = append(failed, s.Name)
		}
		return failed
	}
	priority := r.priorities(p)
	waiting := make(map[string]int, len(p.Steps)) // parents not yet succeeded
	children := make(map[string][]string)
	var ready []string
	for _, s := range p.Steps {
		waiting[s.Name] = len(s.Parents)
		for _, parent := range s.Parents {
			children[parent] = append(children[parent], s.Name)
		}
		if len(s.Parents) == 0 {
			ready = append(ready, s.Name)
		}
	}

	type outcome struct {
		name   string
		status store.Status
	}
	skipped := make(map[string]bool)
	slotFreed := make(chan struct{})
	pushed := make(chan string) // an image its children can build on
	finished := make(chan outcome)
	released := make(map[string]bool)
	release := func(name string) {
		released[name] = true
		for _, child := range children[name] {
			waiting[child]--
			if waiting[child] == 0 && !skipped[child] {
				ready = append(ready, child)
			}
		}
	}
	free, inFlight := max(r.Jobs, 1), 0

	for len(ready) > 0 || inFlight > 0 {
		for free > 0 && len(ready) > 0 && ctx.Err() == nil {
			// Longest remaining path first: the run's wall time approaches the
			// critical path instead of waiting on a slow branch started late.
			slices.SortStableFunc(ready, func(a, b string) int { return cmp.Compare(priority[b], priority[a]) })
			name := ready[0]
			ready = ready[1:]
			free--
			inFlight++
			go func(s *Step) {
				var slot, children sync.Once
				freeSlot := func() { slot.Do(func() { slotFreed <- struct{}{} }) }
				unblock := func() { children.Do(func() { pushed <- s.Name }) }
				status := r.safeImage(ctx, s, freeSlot, unblock)
				freeSlot()
				finished <- outcome{s.Name, status}
			}(p.Step(name))
		}
		if ctx.Err() != nil {
			ready = nil // nothing new starts; what runs is being cancelled
		}
		if inFlight == 0 {
			break
		}
		select {
		case <-slotFreed:
			free++
		case name := <-pushed:
			// Children build on the pushed image while it is tested.
			release(name)
		case o := <-finished:
			inFlight--
			switch {
			case released[o.name]:
			case o.status == store.Interrupted:
				// Cut short by ctx: not a failure, and what waits below it is
				// neither failed nor skipped; it never started.
			case o.status == store.Failed:
				r.skipDescendants(p, o.name, children, skipped)
			default:
				release(o.name)
			}
			if o.status == store.Failed {
				failed = append(failed, o.name)
			}
		}
	}
	return failed
}

// skipDescendants records every image below failed as skipped, saying why.
func (r *execution) skipDescendants(p *Plan, failed string, children map[string][]string, skipped map[string]bool) {
	queue := []string{failed}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, child := range children[parent] {
			if skipped[child] {
				continue
			}
			skipped[child] = true
			reason := fmt.Sprintf("parent %s failed", failed)
			if parent != failed {
				reason = fmt.Sprintf("ancestor %s failed (via %s)", failed, parent)
			}
			r.emit(Event{Image: child, Status: store.Skipped, Err: errors.New(reason)})
			queue = append(queue, child)
		}
	}
}

// priorities is each image's cost plus the costliest chain of images below it.
func (r *execution) priorities(p *Plan) map[string]time.Duration {
	cost := r.Cost
	if cost == nil {
		cost = func(string) time.Duration { return time.Second }
	}
	prio := make(map[string]time.Duration, len(p.Steps))
	for i := len(p.Steps) - 1; i >= 0; i-- { // Steps are in dependency order
		s := p.Steps[i]
		prio[s.Name] += cost(s.Name)
		for _, parent := range s.Parents {
			prio[parent] = max(prio[parent], prio[s.Name])
		}
	}
	return prio
}

// stage is one step of an image.
type stage struct {
	name string
	run  func(ctx context.Context) error
	// unblocks: once this stage succeeds, the images built on this one
	// may start.
	unblocks bool
}

// image runs every stage of one image; freeSlot frees its build slot, and
// unblock lets the images built on it start.
func (r *execution) image(ctx context.Context, s *Step, freeSlot, unblock func()) store.Status {
	logPath := filepath.Join(r.Logs, s.Name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		r.emit(Event{Image: s.Name, Status: store.Failed, Err: fmt.Errorf("log: %w", err)})
		return store.Failed
	}
	defer f.Close()
	log := &tailWriter{w: f, max: tailLines}
	r.emit(Event{Image: s.Name, Status: store.Running, Log: logPath})

	var (
		digest     string
		tags       = []string{s.Tag()}
		validation *store.Validation
	)
	var stages []stage
	if r.Pull {
		stages = append(stages, stage{name: StagePull, unblocks: true, run: func(ctx context.Context) (err error) {
			defer freeSlot()
			digest, err = r.pull(ctx, s.Ref, log)
			return err
		}})
	} else {
		stages = append(stages,
			stage{name: StageBuild, run: func(ctx context.Context) error {
				defer freeSlot()
				if s.Timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, s.Timeout)
					defer cancel()
				}
				auth, err := r.Registry.EngineAuth()
				if err != nil {
					return err
				}
				_, err = r.Engine.Build(ctx, engine.BuildSpec{
					Context: s.Context, Dockerfile: s.Dockerfile, DockerfileContent: s.DockerfileContent,
					Tags: []string{s.Ref}, Args: s.Args, Target: s.Target,
					NoCache: true, Pull: true, RegistryAuth: auth,
				}, log)
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("build timed out after %s", s.Timeout)
				}
				return err
			}},
			stage{name: StagePush, run: func(ctx context.Context) (err error) {
				ctx, cancel := context.WithTimeout(ctx, pushTimeout)
				defer cancel()
				digest, err = r.push(ctx, s.Ref, log)
				return err
			}},
			stage{name: StageVerify, unblocks: true, run: func(ctx context.Context) error {
				return r.verify(ctx, s.Ref, digest)
			}},
		)
		if !r.LatestValidated {
			stages = append(stages, stage{name: StageTag, run: func(ctx context.Context) error {
				if err := r.tag(ctx, s.Latest, digest); err != nil {
					return err
				}
				tags = append(tags, "latest")
				return nil
			}})
		}
	}
	if r.Test != nil {
		stages = append(stages, stage{name: StageTest, run: func(ctx context.Context) error {
			image := s.Ref
			if r.Pull {
				image = s.Ref[:strings.LastIndex(s.Ref, ":")] + "@" + digest
			}
			validation = r.Test(ctx, s, image, log)
			switch validation.Status {
			case store.Succeeded:
				return nil
			case store.Skipped:
				return errSkipStage
			}
			return errors.New(validation.Error)
		}})
		if !r.HoldValidated {
			stages = append(stages, stage{name: StageValidated, run: func(ctx context.Context) error {
				if validation.Status != store.Succeeded {
					return errSkipStage
				}
				added, err := r.TagValidated(ctx, s, digest)
				tags = append(tags, added...)
				return err
			}})
		}
	}

	for _, st := range stages {
		fmt.Fprintf(log, "==> %s %s at %s\n", st.name, s.Name, r.now().UTC().Format(time.RFC3339))
		log.reset()
		r.emit(Event{Image: s.Name, Stage: st.name, Status: store.Running})
		err := st.run(ctx)
		done := Event{Image: s.Name, Stage: st.name, Status: store.Succeeded, Digest: digest}
		if st.name == StageTest {
			done.Validation = validation
		}
		switch {
		case err == errSkipStage:
			done.Status = store.Skipped
		case err != nil && ctx.Err() != nil:
			err = fmt.Errorf("%s: %w", st.name, ctx.Err())
			done.Status, done.Err = store.Interrupted, err
			r.emit(done)
			r.emit(Event{Image: s.Name, Status: store.Interrupted, Err: err})
			return store.Interrupted
		case err != nil:
			tail := log.lines() // the engine's words; ours follow in the file only
			fmt.Fprintf(log, "==> %s failed: %v\n", st.name, err)
			err = fmt.Errorf("%s: %w", st.name, err)
			done.Status, done.Err = store.Failed, err
			r.emit(done)
			r.emit(Event{Image: s.Name, Status: store.Failed, Err: err, Digest: digest, Tail: tail, Tags: tags[:len(tags):len(tags)]})
			return store.Failed
		}
		r.emit(done)
		if st.unblocks {
			unblock()
		}
	}
	r.emit(Event{Image: s.Name, Status: store.Succeeded, Digest: digest, Tags: tags})
	return store.Succeeded
}

// safeImage is image, with a panic in it (a bug of ours, or of a library)
// failing that image alone instead of the whole process, a daemon's
// included. The stack goes to the image's log.
func (r *execution) safeImage(ctx context.Context, s *Step, freeSlot, unblock func()) (status store.Status) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("nightshift failed: panic: %v", p)
			if f, ferr := os.OpenFile(filepath.Join(r.Logs, s.Name+".log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644); ferr == nil {
				fmt.Fprintf(f, "==> %v\n%s", err, debug.Stack())
				f.Close()
			}
			status = store.Failed
			// The panic may have come from Events itself: then this
			// report is lost, not the process.
			defer func() { recover() }()
			r.emit(Event{Image: s.Name, Status: store.Failed, Err: err})
		}
	}()
	return r.image(ctx, s, freeSlot, unblock)
}

// errSkipStage ends a stage that had nothing to do.
var errSkipStage = errors.New("nothing to do")

// TagValidated tags s's image, pushed as digest, <tag>-validated, and
// latest too when latest waits for validation; it returns the tags added.
func (r *Runner) TagValidated(ctx context.Context, s *Step, digest string) ([]string, error) {
	validated := s.Tag() + ValidatedSuffix
	refs := []string{s.Ref + ValidatedSuffix}
	tags := []string{validated}
	if r.LatestValidated {
		refs, tags = append(refs, s.Latest), append(tags, "latest")
	}
	for _, ref := range refs {
		if err := r.tag(ctx, ref, digest); err != nil {
			return nil, err
		}
	}
	return tags, nil
}

// tag points ref, a tag of the image's repository, at digest by a remote
// manifest PUT (no layer moves) and checks that it landed.
func (r *Runner) tag(ctx context.Context, ref, digest string) error {
	tag := ref[strings.LastIndex(ref, ":")+1:]
	repo := ref[:strings.LastIndex(ref, ":")]
	if err := r.Registry.Tag(ctx, repo+"@"+digest, tag); err != nil {
		return err
	}
	return verifyDigest(ctx, r.Registry, ref, digest)
}

// push pushes ref once through the engine, trying again when the failure
// looks passing (a 5xx, a 429, a reset): the engine skips layers that landed.
func (r *execution) push(ctx context.Context, ref string, log io.Writer) (string, error) {
	auth, err := r.Registry.EngineAuth()
	if err != nil {
		return "", err
	}
	var digest string
	err = r.retry(ctx, log, "push", func() (err error) {
		digest, err = r.Engine.Push(ctx, ref, auth, log)
		return err
	})
	return digest, err
}

// retry calls f again while it fails for a passing reason (the engine's
// errors say so by their type) and the next try would still start within
// the retry budget, with jittered exponential backoff. The engine reports a
// registry's answer as text only, so a Retry-After cannot be honoured here;
// the budget bounds the wait.
func (r *Runner) retry(ctx context.Context, log io.Writer, what string, f func() error) error {
	p := retry.Policy{Base: 2 * time.Second, Max: maxRetryWait, Budget: r.RetryBudget}
	return retry.Do(ctx, p, func(context.Context) error { return f() }, func(err error, wait time.Duration) {
		fmt.Fprintf(log, "%s failed (%v); trying again in %s\n", what, err, wait.Round(time.Millisecond))
	})
}

// maxRetryWait caps the wait between two tries of a push or pull.
const maxRetryWait = time.Minute

// pull resolves ref's digest in the registry and pulls exactly that image
// through the engine, trying again when the failure looks passing. The
// image is then tested by digest: what gets tagged validated is what ran.
func (r *execution) pull(ctx context.Context, ref string, log io.Writer) (string, error) {
	digest, err := r.Registry.Digest(ctx, ref)
	if err != nil {
		return "", err
	}
	auth, err := r.Registry.EngineAuth()
	if err != nil {
		return "", err
	}
	pinned := ref[:strings.LastIndex(ref, ":")] + "@" + digest
	err = r.retry(ctx, log, "pull", func() error { return r.Engine.Pull(ctx, pinned, auth, log) })
	return digest, err
}

// verify checks that ref resolves to want in the registry: a push that did
// not land must never count as a success.
func (r *execution) verify(ctx context.Context, ref, want string) error {
	return verifyDigest(ctx, r.Registry, ref, want)
}

func verifyDigest(ctx context.Context, reg Registry, ref, want string) error {
	got, err := reg.Digest(ctx, ref)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s is %s in the registry, but %s was pushed", ref, got, want)
	}
	return nil
}

func (r *execution) emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if r.Events != nil {
		r.Events(e)
	}
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// tailWriter passes writes through and keeps the last lines written since
// the last reset, so a failure's record can show them without the log file.
type tailWriter struct {
	w       io.Writer
	max     int
	mu      sync.Mutex
	partial []byte
	last    []string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	buf := append(t.partial, p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		t.last = append(t.last, string(buf[:i]))
		if len(t.last) > t.max {
			t.last = t.last[len(t.last)-t.max:]
		}
		buf = buf[i+1:]
	}
	t.partial = append([]byte(nil), buf...)
	return t.w.Write(p)
}

func (t *tailWriter) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last, t.partial = nil, nil
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.last)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	return out[max(0, len(out)-t.max):]
}
