package rebuild

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
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
	// EngineAuth is the registry's credentials as the engine takes them.
	EngineAuth() (string, error)
	// BuildAuths are the credentials a build pulls with: the registry's
	// own and those of the registries base images come from.
	BuildAuths() ([]string, error)
}

// The stages of an image, in the order they run. The runner builds,
// pushes and verifies (or, validating images already pushed, pulls); the
// pipeline then tags latest, reads the image's packages, tests and tags
// validated.
const (
	StageBuild     = "build"
	StagePull      = "pull"
	StagePush      = "push"
	StageVerify    = "verify"
	StageTag       = "tag"
	StagePackages  = "packages"
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

	Log string // with the image's start: the path of its log
	// Builder comes with the image's start: the builder it runs on.
	Builder string
	Digest  string // with a pushed image: the manifest digest
	// Attempts comes with the end of a build stage: how many times the
	// image was built (more than once after passing failures).
	Attempts int
	Tags     []string // with a succeeded image: the tags on Digest
	Tail     []string // with a failure: the failing stage's last log lines
	// Validation comes with the end of the test stage.
	Validation *store.Validation
	// Packages comes with the end of the packages stage: how the image's
	// packages changed since the last run in which it succeeded.
	Packages *store.PackageDiff
}

// Runner carries out plans: it builds, pushes and verifies every image,
// parents first, or pulls them when they exist already.
type Runner struct {
	Engine   Engine
	Registry Registry
	Jobs     int // builds at once
	// Pool, when set, are the builders images build on, each on one with
	// its labels (Step.RunsOn); without it, Engine builds everything, Jobs
	// at once.
	Pool *Pool
	// Reschedule builds an image again, once, on another builder with its
	// labels when its builder stops answering during the build.
	Reschedule bool
	// RetryBudget bounds how long a push or pull through the engine is
	// tried again after failing for a passing reason (a 5xx, a 429, a
	// reset); 0 tries once.
	RetryBudget time.Duration
	// BuildRetries is how many more times a build is tried from scratch
	// when its failing step's output matches one of RetryOn: a mirror that
	// did not answer, say. The engine gives a build's failure as text
	// only, so the configured patterns decide.
	BuildRetries int
	RetryOn      []*regexp.Regexp
	Now          func() time.Time
}

// Job is one carrying out of a plan.
type Job struct {
	Plan *Plan
	Logs string // directory the images' logs go to
	// Cost estimates each image's time (its last duration, say); images on
	// the longest remaining path start first. A missing image counts a
	// minute.
	Cost map[string]time.Duration
	// Pull says the plan's images exist at their refs already: they are
	// pulled instead of built and pushed.
	Pull bool
}

// execution is the state of one Job under way.
type execution struct {
	*Runner
	Job
	events chan<- Event
	pool   *Pool
	// slotFreed wakes the scheduler when a build gives its slot back.
	slotFreed chan struct{}

	mu      sync.Mutex
	builtOn map[string]string // image -> the builder that built (or pulled) it
	digests map[string]string // image -> its pushed digest
}

// tailLines is how much of a failing stage's log goes into the record.
const tailLines = 30

// pushTimeout bounds one image's push, retries included: a stalled
// registry must not hang the nightly.
const pushTimeout = time.Hour

// Run builds, pushes and verifies every image of job's plan (or pulls it,
// with job.Pull), parents first, up to Jobs builds at once, and reports
// every change on the returned channel, which is closed when the last
// image is done. The caller must drain it.
//
// An image whose part here went well ends with a Succeeded event carrying
// its digest: it is pushed and verified (or pulled), and what comes next
// (tags, tests) is the caller's. A failed image fails alone: its
// descendants are reported skipped and everything else goes on. When ctx
// ends, running images are reported interrupted; images never started are
// not reported.
func (r *Runner) Run(ctx context.Context, job Job) <-chan Event {
	events := make(chan Event)
	go func() {
		defer close(events)
		pool := r.Pool
		if pool == nil {
			pool = NewPool(Builder{Name: DefaultBuilder, Engine: r.Engine, Jobs: r.Jobs})
		}
		x := &execution{Runner: r, Job: job, events: events, pool: pool, slotFreed: make(chan struct{}),
			builtOn: map[string]string{}, digests: map[string]string{}}
		x.run(ctx)
	}()
	return events
}

func (r *execution) run(ctx context.Context) {
	p := r.Plan
	if err := os.MkdirAll(r.Logs, 0o755); err != nil {
		for _, s := range p.Steps {
			r.emit(Event{Image: s.Name, Status: store.Failed, Err: fmt.Errorf("log directory: %w", err)})
		}
		return
	}
	priority := r.priorities(p)
	waiting := make(map[string]int, len(p.Steps)) // parents not yet pushed
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
	slotFreed := r.slotFreed
	finished := make(chan outcome)
	inFlight := 0

	for len(ready) > 0 || inFlight > 0 {
		if ctx.Err() != nil {
			ready = nil // nothing new starts; what runs is being cancelled
		}
		// Longest remaining path first: the run's wall time approaches the
		// critical path instead of waiting on a slow branch started late.
		// An image whose builders are all busy waits without holding up
		// the images other builders can take.
		slices.SortStableFunc(ready, func(a, b string) int { return cmp.Compare(priority[b], priority[a]) })
		var waits []string
		for _, name := range ready {
			s := p.Step(name)
			b, err := r.pool.Place(s.RunsOn, r.preferred(s))
			switch {
			case err != nil:
				r.emit(Event{Image: name, Status: store.Failed, Err: err})
				r.skipDescendants(p, name, children)
			case b == nil:
				waits = append(waits, name)
			default:
				inFlight++
				go func(s *Step, b *Builder) {
					var slot sync.Once
					freeSlot := func() {
						slot.Do(func() {
							r.pool.Release(b.Name)
							slotFreed <- struct{}{}
						})
					}
					status := r.safeImage(ctx, s, b, freeSlot)
					freeSlot()
					finished <- outcome{s.Name, status}
				}(s, b)
			}
		}
		ready = waits
		if inFlight == 0 {
			if len(ready) > 0 {
				// The slots are another run's (a pool outlives runs): look
				// again in a while.
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
			}
			continue
		}
		select {
		case <-slotFreed:
		case o := <-finished:
			inFlight--
			switch o.status {
			case store.Succeeded:
				// Children build on the pushed image while the caller goes on
				// with it (tags, tests).
				for _, child := range children[o.name] {
					if waiting[child]--; waiting[child] == 0 {
						ready = append(ready, child)
					}
				}
			case store.Failed:
				r.skipDescendants(p, o.name, children)
			}
			// Interrupted: cut short by ctx, not a failure; what waits below it
			// never started, and is neither failed nor skipped.
		}
	}
}

// answers reports whether b's engine answers a ping now; an engine that
// cannot be pinged counts as answering.
func answers(ctx context.Context, b *Builder) bool {
	pinger, ok := b.Engine.(interface{ Ping(context.Context) error })
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pinger.Ping(ctx) == nil
}

// replace marks lost down for why and waits for a slot for s on another
// builder with its labels; release gives that slot back.
func (r *execution) replace(ctx context.Context, s *Step, lost *Builder, why error) (*Builder, func(), error) {
	r.pool.MarkDown(lost.Name, why)
	for {
		b, err := r.pool.Place(s.RunsOn, "")
		if err != nil {
			return nil, nil, fmt.Errorf("no other builder to move to: %w", err)
		}
		if b != nil {
			return b, func() { r.pool.Release(b.Name); r.slotFreed <- struct{}{} }, nil
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// DefaultBuilder names the one builder of a runner without a pool.
const DefaultBuilder = "default"

// preferred is the builder s had best build on: the one that built its
// first parent in this run, whose pull of it is then local.
func (r *execution) preferred(s *Step) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, parent := range s.Parents {
		if b, ok := r.builtOn[parent]; ok {
			return b
		}
	}
	return ""
}

// onBuilder returns s as builder b builds it: a parent built on another
// builder is named by its pushed digest, which b pulls from staging.
func (r *execution) onBuilder(s *Step, b *Builder) *Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.builtOn[s.Name] = b.Name
	var pins [][2]string
	for _, parent := range s.Parents {
		if other, digest := r.builtOn[parent], r.digests[parent]; other != b.Name && digest != "" {
			ref := r.Plan.Step(parent).Ref.String()
			pins = append(pins, [2]string{ref, ref + "@" + digest})
		}
	}
	if len(pins) == 0 && !(b.Legacy && s.BuildKit) {
		return s
	}
	pinned := *s
	if b.Legacy {
		pinned.BuildKit = false // the node's engine is too old for BuildKit
	}
	pinned.Args = maps.Clone(s.Args)
	for _, pin := range pins {
		for k, v := range pinned.Args {
			if v == pin[0] {
				pinned.Args[k] = pin[1]
			}
		}
		if pinned.DockerfileContent != nil {
			pinned.DockerfileContent = bytes.ReplaceAll(pinned.DockerfileContent, []byte(pin[0]), []byte(pin[1]))
		}
	}
	return &pinned
}

// skipDescendants reports every image below failed as skipped, saying why.
func (r *execution) skipDescendants(p *Plan, failed string, children map[string][]string) {
	skipped := map[string]bool{}
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
	prio := make(map[string]time.Duration, len(p.Steps))
	for i := len(p.Steps) - 1; i >= 0; i-- { // Steps are in dependency order
		s := p.Steps[i]
		cost, ok := r.Cost[s.Name]
		if !ok || cost <= 0 {
			cost = time.Minute
		}
		prio[s.Name] += cost
		for _, parent := range s.Parents {
			prio[parent] = max(prio[parent], prio[s.Name])
		}
	}
	return prio
}

// image builds, pushes and verifies one image (or pulls it); freeSlot
// frees its build slot. It reports the image's end but for a success,
// which the caller reports once the rest of the image's work is done.
func (r *execution) image(ctx context.Context, s *Step, b *Builder, freeSlot func()) store.Status {
	node := *r.Runner
	node.Engine = b.Engine
	original := s
	s = r.onBuilder(s, b)
	logPath := filepath.Join(r.Logs, s.Name+".log")
	log, err := CreateLog(logPath)
	if err != nil {
		r.emit(Event{Image: s.Name, Status: store.Failed, Err: fmt.Errorf("log: %w", err)})
		return store.Failed
	}
	defer log.Close()
	r.emit(Event{Image: s.Name, Status: store.Running, Log: logPath, Builder: b.Name})
	st := &Stages{Image: s.Name, Log: log, Emit: r.emit, Now: r.now}

	var digest string
	if r.Pull {
		err = st.Run(ctx, StagePull, func(ctx context.Context) (err error) {
			freeSlot()
			digest, err = node.pull(ctx, s, log)
			return err
		})
		return r.end(ctx, st, err, digest, s)
	}
	attempts := 0
	err = st.RunWith(ctx, StageBuild, func(ctx context.Context) (err error) {
		defer freeSlot()
		attempts, err = node.Build(ctx, s, log, BuildOptions{})
		if err == nil || !r.Reschedule || ctx.Err() != nil || answers(ctx, b) {
			return err
		}
		// The builder stopped answering: once, on another with the labels.
		moved, release, perr := r.replace(ctx, original, b, err)
		if perr != nil {
			return errors.Join(err, perr)
		}
		defer release()
		fmt.Fprintf(log, "==> builder %s stopped answering (%v): building again on %s\n", b.Name, err, moved.Name)
		r.emit(Event{Image: s.Name, Builder: moved.Name})
		b, s, node.Engine = moved, r.onBuilder(original, moved), moved.Engine
		more, err := node.Build(ctx, s, log, BuildOptions{})
		attempts += more
		return err
	}, func(done *Event) { done.Attempts = attempts })
	if err == nil {
		err = st.Run(ctx, StagePush, func(ctx context.Context) (err error) {
			ctx, cancel := context.WithTimeout(ctx, pushTimeout)
			defer cancel()
			digest, err = node.Push(ctx, s.Ref.String(), log)
			return err
		})
	}
	if err == nil {
		err = st.Run(ctx, StageVerify, func(ctx context.Context) error {
			return VerifyDigest(ctx, r.Registry, s.Ref.String(), digest)
		})
	}
	return r.end(ctx, st, err, digest, s)
}

// end reports how the runner's part of s ended: pushed as digest (or
// pulled), or stopped by err.
func (r *execution) end(ctx context.Context, st *Stages, err error, digest string, s *Step) store.Status {
	done := Event{Image: s.Name, Status: store.Succeeded, Digest: digest, Tags: []string{s.Tag()}}
	status := st.End(ctx, err, done)
	if status == store.Succeeded {
		r.mu.Lock()
		r.digests[s.Name] = digest
		r.mu.Unlock()
		r.emit(done)
	}
	return status
}

// BuildOptions say how Build builds a step.
type BuildOptions struct {
	// Tag is what the engine tags the build; "" is the step's Ref.
	Tag string
	// NoPull builds on the engine's own copies of the base images (an
	// image built here and not pushed) instead of pulling them afresh.
	NoPull bool
}

// Build builds s from scratch (no cache, base images pulled, within the
// image's timeout) into log, and again from scratch, after a backoff,
// while the failing step's output matches one of RetryOn and retries are
// left. It returns how many builds it took.
func (r *Runner) Build(ctx context.Context, s *Step, log *Log, opts BuildOptions) (attempts int, err error) {
	var passing string // the pattern the last failure matched
	classify := func(err error) bool {
		passing = ""
		if attempts > r.BuildRetries {
			return false
		}
		text := strings.Join(append(log.lines(), err.Error()), "\n")
		for _, re := range r.RetryOn {
			if re.MatchString(text) {
				passing = re.String()
				return true
			}
		}
		return false
	}
	p := retry.Policy{Base: buildRetryWait, Max: 4 * buildRetryWait, Budget: retry.Forever}
	err = retry.Do(ctx, p, func(ctx context.Context) error {
		attempts++
		log.resetTail()
		return r.build(ctx, s, log, opts)
	}, func(err error, wait time.Duration) {
		fmt.Fprintf(log, "==> build failed (%v), matching build.retry_on %q: building again from scratch in %s (try %d of %d)\n",
			err, passing, wait.Round(time.Second), attempts+1, r.BuildRetries+1)
	}, retry.WithClassifier(classify))
	return attempts, err
}

// build builds s once.
func (r *Runner) build(ctx context.Context, s *Step, log io.Writer, opts BuildOptions) error {
	if !s.BuildKit && len(s.Secrets) > 0 {
		return errors.New(`the classic builder has no build secrets, and this builder builds with it (builder = "legacy"): give the image runs_on labels of a builder that uses BuildKit`)
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	auths, err := r.Registry.BuildAuths()
	if err != nil {
		return err
	}
	// No build labels: the classic builder adds each as a step of its own,
	// a container commit that costs seconds; the record holds the same facts.
	_, err = r.Engine.Build(ctx, engine.BuildSpec{
		Context: s.Context, Dockerfile: s.Dockerfile, DockerfileContent: s.DockerfileContent,
		Tags: []string{cmp.Or(opts.Tag, s.Ref.String())}, Args: s.Args, Target: s.Target,
		NoCache: true, Pull: !opts.NoPull, RegistryAuths: auths,
		BuildKit: s.BuildKit, Secrets: s.Secrets,
	}, log)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("build timed out after %s", s.Timeout)
	}
	return err
}

// buildRetryWait is the first wait before a build is tried again: long
// enough for a mirror's hiccup to pass.
const buildRetryWait = 10 * time.Second

// safeImage is image, with a panic in it (a bug of ours, or of a library)
// failing that image alone instead of the whole process, a daemon's
// included. The stack goes to the image's log.
func (r *execution) safeImage(ctx context.Context, s *Step, b *Builder, freeSlot func()) (status store.Status) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("nightshift failed: panic: %v", p)
			if log, lerr := AppendLog(filepath.Join(r.Logs, s.Name+".log")); lerr == nil {
				fmt.Fprintf(log, "==> %v\n%s", err, debug.Stack())
				log.Close()
			}
			status = store.Failed
			r.emit(Event{Image: s.Name, Status: store.Failed, Err: err})
		}
	}()
	return r.image(ctx, s, b, freeSlot)
}

// Push pushes ref once through the engine, trying again when the failure
// is passing (a 5xx, a 429, a reset) within RetryBudget: the engine skips
// layers that landed. It returns the digest the registry accepted.
func (r *Runner) Push(ctx context.Context, ref string, log io.Writer) (string, error) {
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

// maxRetryWait caps the wait between two tries of a push or pull: with
// the budget bounding the whole, short waits give more tries (a push is a
// dozen requests, and the engine retries only its layer uploads).
const maxRetryWait = 15 * time.Second

// pull resolves s's digest in the registry and pulls exactly that image
// through the engine, trying again when the failure looks passing. The
// image is then tested by digest: what gets tagged validated is what ran.
func (r *Runner) pull(ctx context.Context, s *Step, log io.Writer) (string, error) {
	digest, err := r.Registry.Digest(ctx, s.Ref.String())
	if err != nil {
		return "", err
	}
	auth, err := r.Registry.EngineAuth()
	if err != nil {
		return "", err
	}
	pinned := s.Pinned(digest)
	err = r.retry(ctx, log, "pull", func() error { return r.Engine.Pull(ctx, pinned, auth, log) })
	return digest, err
}

// Fetch pulls ref through the engine, trying again when the failure is
// passing, as a push is.
func (r *Runner) Fetch(ctx context.Context, ref string, log io.Writer) error {
	auth, err := r.Registry.EngineAuth()
	if err != nil {
		return err
	}
	return r.retry(ctx, log, "pull", func() error { return r.Engine.Pull(ctx, ref, auth, log) })
}

// VerifyDigest checks that ref resolves to want in the registry: a push or
// a tag that did not land must never count as a success.
func VerifyDigest(ctx context.Context, reg Registry, ref, want string) error {
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
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	r.events <- e
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
