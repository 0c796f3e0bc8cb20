package rebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"nightshift/engine"
	"nightshift/store"
)

// The tests of Runner.Run run in a synctest bubble: time is fake (a push's
// back-off and a build's timeout pass at once), synctest.Wait tells when
// every goroutine is stuck, and a scheduler that never finishes is reported
// as a deadlock instead of hanging the test.

const (
	transientPushErr = "received unexpected HTTP status: 503 Service Unavailable"
	stubAuth         = "stub-auth"
)

// buildBehavior is what the stub engine does when asked to build an image.
type buildBehavior struct {
	output  []string      // lines written to the log first
	sleep   time.Duration // then waits this long (fake time)
	release chan struct{} // then, if set, waits until it is closed
	hang    bool          // then, if set, waits until ctx is done
	panics  bool          // then, if set, panics
	err     error         // then fails with this
	// flaky fails the first builds, printing flakyLine first.
	flaky     int
	flakyLine string
}

// pushBehavior is what the stub engine does when asked to push an image.
type pushBehavior struct {
	output    []string      // lines written to the log on every attempt
	release   chan struct{} // if set, every attempt waits until it is closed
	transient int           // the first attempts that fail with a 503
	err       error         // every attempt fails with this
}

// stubEngine is an in-memory Engine. Behaviors are set up before a run and
// only read during it.
type stubEngine struct {
	reg    *stubRegistry
	builds map[string]buildBehavior
	pushes map[string]pushBehavior

	mu         sync.Mutex
	started    []string // images in the order their builds started
	specs      map[string]engine.BuildSpec
	running    int
	maxRunning int
	pushCalls  map[string]int
	auths      []string
}

func newStubEngine(reg *stubRegistry) *stubEngine {
	return &stubEngine{
		reg:       reg,
		builds:    make(map[string]buildBehavior),
		pushes:    make(map[string]pushBehavior),
		specs:     make(map[string]engine.BuildSpec),
		pushCalls: make(map[string]int),
	}
}

// imageOf is the image name of "reg.test/ns/<name>:<tag>".
func imageOf(ref string) string {
	ref = ref[strings.LastIndex(ref, "/")+1:]
	return ref[:strings.LastIndex(ref, ":")]
}

func digestOf(ref string) string {
	return "sha256:pushed-" + strings.NewReplacer("/", "-", ":", "-").Replace(ref)
}

func (e *stubEngine) Build(ctx context.Context, spec engine.BuildSpec, log io.Writer) (string, error) {
	if len(spec.Tags) != 1 {
		return "", fmt.Errorf("stub engine: want one tag, got %q", spec.Tags)
	}
	name := imageOf(spec.Tags[0])
	b := e.builds[name]
	e.mu.Lock()
	e.started = append(e.started, name)
	e.specs[name] = spec
	e.running++
	e.maxRunning = max(e.maxRunning, e.running)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running--
		e.mu.Unlock()
	}()

	for _, l := range b.output {
		fmt.Fprintln(log, l)
	}
	e.mu.Lock()
	tries := 0
	for _, n := range e.started {
		if n == name {
			tries++
		}
	}
	e.mu.Unlock()
	if tries <= b.flaky {
		fmt.Fprintln(log, b.flakyLine)
		return "", errors.New("The command '/bin/sh -c apt-get update' returned a non-zero code: 100")
	}
	if b.sleep > 0 {
		select {
		case <-time.After(b.sleep):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if b.release != nil {
		select {
		case <-b.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if b.panics {
		panic("stub engine: boom")
	}
	if b.hang {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if b.err != nil {
		return "", b.err
	}
	return "sha256:image-" + name, nil
}

func (e *stubEngine) Pull(_ context.Context, ref, _ string, log io.Writer) error {
	fmt.Fprintf(log, "pulled %s\n", ref)
	return nil
}

func (e *stubEngine) Push(ctx context.Context, ref, auth string, log io.Writer) (string, error) {
	name := imageOf(ref)
	p := e.pushes[name]
	e.mu.Lock()
	e.pushCalls[name]++
	n := e.pushCalls[name]
	e.auths = append(e.auths, auth)
	e.mu.Unlock()

	for _, l := range p.output {
		fmt.Fprintln(log, l)
	}
	if p.release != nil {
		select {
		case <-p.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	switch {
	case p.err != nil:
		return "", p.err
	case n <= p.transient:
		return "", &engine.RegistryError{Message: transientPushErr} // as the engine types it
	}
	d := digestOf(ref)
	e.reg.put(ref, d)
	return d, nil
}

func (e *stubEngine) startOrder() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.started)
}

func (e *stubEngine) inBuild() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running
}

// stubRegistry is an in-memory Registry: a map of ref to digest.
type stubRegistry struct {
	mu      sync.Mutex
	digests map[string]string
	// elsewhere makes Digest of a ref report this digest instead of what
	// was pushed: a push that did not land.
	elsewhere map[string]string
	tagCalls  []string
}

func newStubRegistry() *stubRegistry {
	return &stubRegistry{digests: make(map[string]string), elsewhere: make(map[string]string)}
}

func (r *stubRegistry) put(ref, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.digests[ref] = digest
}

func (r *stubRegistry) get(ref string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.digests[ref]
	return d, ok
}

func (r *stubRegistry) Tag(_ context.Context, ref, tag string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tagCalls = append(r.tagCalls, ref+" "+tag)
	repo, d, byDigest := strings.Cut(ref, "@")
	if !byDigest {
		var ok bool
		if d, ok = r.digests[ref]; !ok {
			return fmt.Errorf("tag %s as %s: MANIFEST_UNKNOWN", ref, tag)
		}
		repo = ref[:strings.LastIndex(ref, ":")]
	}
	r.digests[repo+":"+tag] = d
	return nil
}

func (r *stubRegistry) Digest(_ context.Context, ref string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.elsewhere[ref]; ok {
		return d, nil
	}
	d, ok := r.digests[ref]
	if !ok {
		return "", fmt.Errorf("%s: MANIFEST_UNKNOWN", ref)
	}
	return d, nil
}

func (r *stubRegistry) EngineAuth() (string, error)   { return stubAuth, nil }
func (r *stubRegistry) BuildAuths() ([]string, error) { return []string{"other-auth", stubAuth}, nil }

// eventLog records the events of a run.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) record(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *eventLog) of(image string) []Event {
	var out []Event
	for _, e := range l.all() {
		if e.Image == image {
			out = append(out, e)
		}
	}
	return out
}

// final is the last event about image as a whole.
func (l *eventLog) final(image string) (Event, bool) {
	evs := l.of(image)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Stage == "" {
			return evs[i], true
		}
	}
	return Event{}, false
}

// trace is image's events as "status" or "stage:status".
func (l *eventLog) trace(image string) []string {
	var out []string
	for _, e := range l.of(image) {
		s := string(e.Status)
		if e.Stage != "" {
			s = e.Stage + ":" + s
		}
		out = append(out, s)
	}
	return out
}

// index is the position of the first event matching image, stage and
// status, or -1.
func (l *eventLog) index(image, stage string, status store.Status) int {
	return slices.IndexFunc(l.all(), func(e Event) bool {
		return e.Image == image && e.Stage == stage && e.Status == status
	})
}

var succeededTrace = []string{
	"running",
	"build:running", "build:succeeded",
	"push:running", "push:succeeded",
	"verify:running", "verify:succeeded",
	"succeeded",
}

// step is an image reg.test/ns/<name> with the given parents.
func step(image string, parents ...string) Step {
	ref, latest, err := refs("reg.test/ns", image, "t")
	if err != nil {
		panic(err)
	}
	return Step{Name: image, Ref: ref, Latest: latest, Parents: parents, Timeout: time.Hour}
}

type harness struct {
	eng    *stubEngine
	reg    *stubRegistry
	events *eventLog
	runner *Runner
	job    Job
}

// newHarness sets up a run of steps (in dependency order) with jobs builds
// at once.
func newHarness(t *testing.T, jobs int, steps ...Step) *harness {
	t.Helper()
	reg := newStubRegistry()
	h := &harness{
		eng:    newStubEngine(reg),
		reg:    reg,
		events: &eventLog{},
	}
	h.runner = &Runner{Engine: h.eng, Registry: reg, Jobs: jobs}
	h.job = Job{
		Plan: &Plan{Tag: "t", Repo: "reg.test/ns", Steps: steps},
		Logs: filepath.Join(t.TempDir(), "logs"),
	}
	return h
}

// start runs the job in the background, recording its events; the channel
// gets the images that failed.
func (h *harness) start(ctx context.Context) <-chan []string {
	done := make(chan []string, 1)
	events := h.runner.Run(ctx, h.job)
	go func() {
		var failed []string
		for e := range events {
			h.events.record(e)
			if e.Stage == "" && e.Status == store.Failed {
				failed = append(failed, e.Image)
			}
		}
		done <- failed
	}()
	return done
}

func (h *harness) run(ctx context.Context) []string { return <-h.start(ctx) }

func TestRunnerRun(t *testing.T) {
	t.Parallel()

	t.Run("parents before children, every stage in order", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			//   base
			//   /  \
			//  cpu  gpu    solo
			//   \  /
			//   full
			h := newHarness(t, 4,
				step("base"), step("cpu", "base"), step("gpu", "base"),
				step("full", "cpu", "gpu"), step("solo"))
			h.eng.builds["base"] = buildBehavior{sleep: time.Minute}
			h.eng.builds["cpu"] = buildBehavior{sleep: 3 * time.Minute}
			h.eng.builds["gpu"] = buildBehavior{sleep: time.Minute}
			at := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
			h.runner.Now = func() time.Time { return at }

			if failed := h.run(t.Context()); len(failed) != 0 {
				t.Fatalf("Run returned failed images %q, want none", failed)
			}

			for _, s := range h.job.Plan.Steps {
				if got := h.events.trace(s.Name); !slices.Equal(got, succeededTrace) {
					t.Errorf("events of %s:\n got %q\nwant %q", s.Name, got, succeededTrace)
				}
				buildStart := h.events.index(s.Name, StageBuild, store.Running)
				for _, p := range s.Parents {
					// A child builds on its parent once the parent's push is
					// verified, while the parent's later stages go on.
					if done := h.events.index(p, StageVerify, store.Succeeded); done < 0 || done > buildStart {
						t.Errorf("%s started building (event %d) before its parent %s was pushed and verified (event %d)", s.Name, buildStart, p, done)
					}
				}

				pushed := digestOf(s.Ref.String())
				if got, _ := h.reg.get(s.Ref.String()); got != pushed {
					t.Errorf("registry has %s at %q, want the pushed %q", s.Ref, got, pushed)
				}
				if got, ok := h.reg.get(s.Latest.String()); ok {
					t.Errorf("registry has %s at %q: latest is the pipeline's to move", s.Latest, got)
				}
				final, _ := h.events.final(s.Name)
				if final.Digest != pushed || !slices.Equal(final.Tags, []string{"t"}) {
					t.Errorf("%s succeeded with digest %q tags %q, want %q [t]", s.Name, final.Digest, final.Tags, pushed)
				}
				spec := h.eng.specs[s.Name]
				if !spec.NoCache || !spec.Pull || !slices.Equal(spec.Tags, []string{s.Ref.String()}) || !slices.Equal(spec.RegistryAuths, []string{"other-auth", stubAuth}) {
					t.Errorf("%s built with %+v, want NoCache, Pull, tag %s and the registries' credentials", s.Name, spec, s.Ref)
				}
			}
			if got := len(h.eng.startOrder()); got != len(h.job.Plan.Steps) {
				t.Errorf("%d builds, want one per image (%d)", got, len(h.job.Plan.Steps))
			}
			for _, e := range h.events.all() {
				if !e.Time.Equal(at) {
					t.Fatalf("event %+v has time %v, want Runner.Now's %v", e, e.Time, at)
				}
			}
			for _, a := range h.eng.auths {
				if a != stubAuth {
					t.Errorf("pushed with auth %q, want the registry's %q", a, stubAuth)
				}
			}
		})
	})

	t.Run("never more than Jobs builds at once", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			const jobs, n = 2, 5
			var steps []Step
			release := make(map[string]chan struct{})
			for i := range n {
				s := step(fmt.Sprintf("img%d", i))
				steps = append(steps, s)
				release[s.Name] = make(chan struct{})
			}
			h := newHarness(t, jobs, steps...)
			for name, ch := range release {
				h.eng.builds[name] = buildBehavior{release: ch}
			}
			done := h.start(t.Context())

			// Each round: let everything settle, check the number of builds
			// under way, then let the oldest one finish.
			for i := range n {
				synctest.Wait()
				started := h.eng.startOrder()
				if want := min(jobs, n-i); h.eng.inBuild() != want {
					t.Fatalf("round %d: %d builds under way (started %q), want %d", i, h.eng.inBuild(), started, want)
				}
				close(release[started[i]])
			}
			if failed := <-done; len(failed) != 0 {
				t.Fatalf("Run returned failed images %q, want none", failed)
			}
			if h.eng.maxRunning != jobs {
				t.Errorf("at most %d builds at once, want %d", h.eng.maxRunning, jobs)
			}
			for _, s := range steps {
				if e, _ := h.events.final(s.Name); e.Status != store.Succeeded {
					t.Errorf("%s ended %q, want succeeded", s.Name, e.Status)
				}
			}
		})
	})

	t.Run("a child starts when its parent is done, not waiting on unrelated images", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			slow := make(chan struct{})
			h := newHarness(t, 2, step("slow"), step("base"), step("child", "base"))
			h.eng.builds["slow"] = buildBehavior{release: slow}
			done := h.start(t.Context())

			synctest.Wait() // everything that can happen without slow has happened
			if e, _ := h.events.final("child"); e.Status != store.Succeeded {
				t.Errorf("with slow still building, child is %q (events %q), want succeeded", e.Status, h.events.trace("child"))
			}
			if e, _ := h.events.final("slow"); e.Status != store.Running {
				t.Errorf("slow is %q before it is released, want running", e.Status)
			}
			close(slow)
			if failed := <-done; len(failed) != 0 {
				t.Fatalf("Run returned failed images %q, want none", failed)
			}
			if e, _ := h.events.final("slow"); e.Status != store.Succeeded {
				t.Errorf("slow ended %q, want succeeded", e.Status)
			}
		})
	})

	t.Run("a push does not hold a build slot", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			upload := make(chan struct{})
			h := newHarness(t, 1, step("big"), step("small"))
			h.eng.pushes["big"] = pushBehavior{release: upload}
			done := h.start(t.Context())

			synctest.Wait() // big is stuck pushing
			if e, _ := h.events.final("small"); e.Status != store.Succeeded {
				t.Errorf("with Jobs=1 and big pushing, small is %q (events %q), want succeeded", e.Status, h.events.trace("small"))
			}
			close(upload)
			if failed := <-done; len(failed) != 0 {
				t.Fatalf("Run returned failed images %q, want none", failed)
			}
			if got := h.eng.startOrder(); !slices.Equal(got, []string{"big", "small"}) {
				t.Errorf("builds started in order %q, want [big small]", got)
			}
		})
	})

	t.Run("a failure stays local", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, 2,
				step("base"), step("bad", "base"), step("kid", "bad"),
				step("grandkid", "kid"), step("other", "base"), step("solo"))
			h.eng.builds["bad"] = buildBehavior{err: errors.New("RUN make: exit code 2")}

			failed := h.run(t.Context())
			if !slices.Equal(failed, []string{"bad"}) {
				t.Errorf("Run returned %q, want [bad]", failed)
			}
			for _, name := range []string{"base", "other", "solo"} {
				if got := h.events.trace(name); !slices.Equal(got, succeededTrace) {
					t.Errorf("events of %s: %q, want %q", name, got, succeededTrace)
				}
			}
			wantBad := []string{"running", "build:running", "build:failed", "failed"}
			if got := h.events.trace("bad"); !slices.Equal(got, wantBad) {
				t.Errorf("events of bad: %q, want %q", got, wantBad)
			}
			if e, _ := h.events.final("bad"); e.Err == nil || e.Err.Error() != "build: RUN make: exit code 2" {
				t.Errorf("bad failed with %v, want %q", e.Err, "build: RUN make: exit code 2")
			}
			for _, tc := range []struct{ name, why string }{
				{"kid", "parent bad failed"},
				{"grandkid", "ancestor bad failed (via kid)"},
			} {
				evs := h.events.of(tc.name)
				if len(evs) != 1 || evs[0].Status != store.Skipped || evs[0].Stage != "" {
					t.Errorf("events of %s: %+v, want one skipped", tc.name, evs)
					continue
				}
				if evs[0].Err == nil || evs[0].Err.Error() != tc.why {
					t.Errorf("%s skipped because %v, want %q", tc.name, evs[0].Err, tc.why)
				}
			}
			for _, name := range h.eng.startOrder() {
				if name == "kid" || name == "grandkid" {
					t.Errorf("%s was built below a failed image", name)
				}
			}
			if _, ok := h.reg.get("reg.test/ns/bad:latest"); ok {
				t.Error("the failed image was tagged latest")
			}
		})
	})

	t.Run("a failure's tail is the failing stage's last lines", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var many []string
			for i := 1; i <= tailLines+10; i++ {
				many = append(many, fmt.Sprintf("build line %d", i))
			}
			h := newHarness(t, 2, step("bbad"), step("pbad"))
			h.eng.builds["bbad"] = buildBehavior{output: many, err: errors.New("exit code 1")}
			h.eng.builds["pbad"] = buildBehavior{output: []string{"compiling", "linking"}}
			h.eng.pushes["pbad"] = pushBehavior{
				output: []string{"pushing layer 1", "pushing layer 2"},
				err:    errors.New("denied: requested access to the resource is denied"),
			}
			h.run(t.Context())

			// bbad failed in its build: the tail is the last of its output.
			e, _ := h.events.final("bbad")
			if e.Status != store.Failed || len(e.Tail) != tailLines {
				t.Fatalf("bbad ended %q with %d tail lines, want failed with %d", e.Status, len(e.Tail), tailLines)
			}
			// Only the engine's words: the error itself is in the record's
			// Error, and nightshift's "==> build failed" line in the file only.
			if last := many[len(many)-tailLines:]; !slices.Equal(e.Tail, last) {
				t.Errorf("bbad's tail\n %q\nwant the build's last lines\n %q", e.Tail, last)
			}
			if e.Err == nil || !strings.Contains(e.Err.Error(), "exit code 1") {
				t.Errorf("bbad's error = %v, want the build's", e.Err)
			}

			// pbad failed in its push: the build's lines are not in the tail.
			e, _ = h.events.final("pbad")
			if e.Status != store.Failed || e.Err == nil || !strings.HasPrefix(e.Err.Error(), "push: ") {
				t.Fatalf("pbad ended %q with %v, want failed in push", e.Status, e.Err)
			}
			tail := strings.Join(e.Tail, "\n")
			for _, want := range []string{"pushing layer 1", "pushing layer 2"} {
				if !strings.Contains(tail, want) {
					t.Errorf("pbad's tail %q lacks %q", e.Tail, want)
				}
			}
			for _, unwanted := range []string{"compiling", "linking", "==> build"} {
				if strings.Contains(tail, unwanted) {
					t.Errorf("pbad's tail %q holds %q, from before the push", e.Tail, unwanted)
				}
			}

			// The log file has everything, and the start event says where.
			for name, want := range map[string][]string{
				"bbad": append([]string{"==> build bbad"}, many...),
				"pbad": {"==> build pbad", "compiling", "linking", "==> push pbad", "pushing layer 1", "pushing layer 2", "denied: requested access"},
			} {
				path := filepath.Join(h.job.Logs, name+".log")
				if e := h.events.of(name)[0]; e.Status != store.Running || e.Log != path {
					t.Errorf("%s's first event %+v, want running with log %s", name, e, path)
				}
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range want {
					if !strings.Contains(string(data), w) {
						t.Errorf("log of %s lacks %q:\n%s", name, w, data)
					}
				}
			}
		})
	})

	t.Run("verify mismatch fails the image and never tags latest", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, 1, step("ghost"), step("kid", "ghost"))
			h.reg.elsewhere["reg.test/ns/ghost:t"] = "sha256:something-else"

			if failed := h.run(t.Context()); !slices.Equal(failed, []string{"ghost"}) {
				t.Errorf("Run returned %q, want [ghost]", failed)
			}
			want := []string{"running", "build:running", "build:succeeded", "push:running", "push:succeeded", "verify:running", "verify:failed", "failed"}
			if got := h.events.trace("ghost"); !slices.Equal(got, want) {
				t.Errorf("events of ghost: %q, want %q", got, want)
			}
			e, _ := h.events.final("ghost")
			if e.Err == nil || !strings.HasPrefix(e.Err.Error(), "verify: ") || !strings.Contains(e.Err.Error(), "sha256:something-else") {
				t.Errorf("ghost failed with %v, want a verify error naming the digest found", e.Err)
			}
			if len(h.reg.tagCalls) != 0 {
				t.Errorf("registry tagged %q, want nothing tagged", h.reg.tagCalls)
			}
			if d, ok := h.reg.get("reg.test/ns/ghost:latest"); ok {
				t.Errorf("ghost:latest is %s, want it untouched", d)
			}
			if e, _ := h.events.final("kid"); e.Status != store.Skipped {
				t.Errorf("kid is %q, want skipped", e.Status)
			}
		})
	})

	t.Run("priorities", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			cost  map[string]time.Duration // default 1m
			first string
		}{
			{"the longest chain first", nil, "long"},
			{"chains weighed by cost", map[string]time.Duration{"short": time.Hour}, "short"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					// short is first in the plan, so plan order alone would start it first.
					h := newHarness(t, 1, step("short"), step("long"), step("long2", "long"), step("long3", "long2"))
					h.job.Cost = tc.cost
					if failed := h.run(t.Context()); len(failed) != 0 {
						t.Fatalf("Run returned failed images %q, want none", failed)
					}
					order := h.eng.startOrder()
					if len(order) != 4 || order[0] != tc.first {
						t.Errorf("builds started in order %q, want %s first", order, tc.first)
					}
				})
			})
		}
	})

	t.Run("a build that overruns its timeout fails", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			s := step("stuck")
			s.Timeout = 90 * time.Minute
			h := newHarness(t, 1, s, step("fine"))
			h.eng.builds["stuck"] = buildBehavior{hang: true}
			begin := time.Now()

			if failed := h.run(t.Context()); !slices.Equal(failed, []string{"stuck"}) {
				t.Errorf("Run returned %q, want [stuck]", failed)
			}
			e, _ := h.events.final("stuck")
			if e.Status != store.Failed || e.Err == nil || !strings.Contains(e.Err.Error(), "timed out") {
				t.Errorf("stuck ended %q with %v, want failed, timed out", e.Status, e.Err)
			}
			if i := h.events.index("stuck", StageBuild, store.Failed); i < 0 {
				t.Errorf("no failed build stage for stuck: %q", h.events.trace("stuck"))
			}
			if took := time.Since(begin); took < s.Timeout {
				t.Errorf("stuck failed after %s, before its timeout %s", took, s.Timeout)
			}
			if e, _ := h.events.final("fine"); e.Status != store.Succeeded {
				t.Errorf("fine ended %q, want succeeded", e.Status)
			}
		})
	})

	t.Run("log directory that cannot be made fails every image", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, 1, step("a"), step("b", "a"))
			file := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			h.job.Logs = filepath.Join(file, "logs")

			if failed := h.run(t.Context()); !slices.Equal(failed, []string{"a", "b"}) {
				t.Errorf("Run returned %q, want [a b]", failed)
			}
			for _, name := range []string{"a", "b"} {
				if got := h.events.trace(name); !slices.Equal(got, []string{"failed"}) {
					t.Errorf("events of %s: %q, want [failed]", name, got)
				}
			}
			if got := h.eng.startOrder(); len(got) != 0 {
				t.Errorf("built %q without a log directory", got)
			}
		})
	})
}

func TestRunnerPushRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		budget    time.Duration
		push      pushBehavior
		wantCalls int
		wantErr   string // "" for success
	}{
		{"transient error tried again", time.Minute, pushBehavior{transient: 2}, 3, ""},
		// Waits of 1-2 s, then 2-4 s (6 s at most); a third (4-8 s) would end past 6.5 s.
		{"transient error every time, within the budget", 6500 * time.Millisecond, pushBehavior{transient: 100}, 3, "push: " + transientPushErr},
		{"permanent error fails at once", time.Minute, pushBehavior{err: errors.New("unauthorized: authentication required")}, 1, "push: unauthorized: authentication required"},
		{"no retries asked for", 0, pushBehavior{transient: 1}, 1, "push: " + transientPushErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, 1, step("img"))
				h.runner.RetryBudget = tc.budget
				h.eng.pushes["img"] = tc.push

				failed := h.run(t.Context())
				if got := h.eng.pushCalls["img"]; got != tc.wantCalls {
					t.Errorf("%d push calls, want %d", got, tc.wantCalls)
				}
				e, _ := h.events.final("img")
				if tc.wantErr == "" {
					if len(failed) != 0 || e.Status != store.Succeeded {
						t.Fatalf("Run returned %q, img ended %q (%v), want success", failed, e.Status, e.Err)
					}
					if got, _ := h.reg.get("reg.test/ns/img:t"); got != digestOf("reg.test/ns/img:t") {
						t.Errorf("img:t is %q, want the pushed digest", got)
					}
					return
				}
				if !slices.Equal(failed, []string{"img"}) || e.Status != store.Failed {
					t.Fatalf("Run returned %q, img ended %q, want img failed", failed, e.Status)
				}
				if e.Err == nil || e.Err.Error() != tc.wantErr {
					t.Errorf("img failed with %v, want %q", e.Err, tc.wantErr)
				}
			})
		})
	}
}

// A panic while building one image fails that image and skips what builds
// on it; the process and the other images go on.
func TestRunnerPanic(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 2, step("a"), step("child", "a"), step("other"))
		h.eng.builds["a"] = buildBehavior{output: []string{"step 1"}, panics: true}
		failed := h.run(t.Context())
		if !slices.Equal(failed, []string{"a"}) {
			t.Fatalf("failed %q, want [a]", failed)
		}
		want := map[string]store.Status{"a": store.Failed, "child": store.Skipped, "other": store.Succeeded}
		for name, st := range want {
			if e, _ := h.events.final(name); e.Status != st {
				t.Errorf("%s ended %q, want %q", name, e.Status, st)
			}
		}
		if e, _ := h.events.final("a"); e.Err == nil || !strings.Contains(e.Err.Error(), "panic: stub engine: boom") {
			t.Errorf("a failed with %v, want the panic", e.Err)
		}
		log, err := os.ReadFile(filepath.Join(h.job.Logs, "a.log"))
		if err != nil || !strings.Contains(string(log), "step 1") || !strings.Contains(string(log), "run_test.go") {
			t.Errorf("a's log lacks its output or the stack (%v):\n%s", err, log)
		}
	})
}

func TestRunnerCancel(t *testing.T) {
	t.Parallel()

	t.Run("running images are interrupted, waiting ones untouched", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, 2, step("a"), step("b"), step("queued"))
			h.eng.builds["a"] = buildBehavior{hang: true}
			h.eng.builds["b"] = buildBehavior{hang: true}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := h.start(ctx)

			synctest.Wait()
			if got := h.eng.startOrder(); len(got) != 2 || slices.Contains(got, "queued") {
				t.Fatalf("builds under way: %q, want a and b", got)
			}
			cancel()
			<-done

			want := []string{"running", "build:running", "build:interrupted", "interrupted"}
			for _, name := range []string{"a", "b"} {
				if got := h.events.trace(name); !slices.Equal(got, want) {
					t.Errorf("events of %s: %q, want %q", name, got, want)
				}
				if e, _ := h.events.final(name); !errors.Is(e.Err, context.Canceled) {
					t.Errorf("%s interrupted with %v, want context.Canceled", name, e.Err)
				}
			}
			if evs := h.events.of("queued"); len(evs) != 0 {
				t.Errorf("queued, never started, got events %+v", evs)
			}
			if got := h.eng.startOrder(); slices.Contains(got, "queued") {
				t.Errorf("queued was built after the cancel: %q", got)
			}
		})
	})

	// Run's documentation: "images never started because ctx ended are
	// neither failed nor reported". A child of an image interrupted by the
	// cancel never starts because ctx ended, yet it is reported skipped with
	// "parent a failed", though a did not fail.
	t.Run("children of interrupted images are not reported", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, 1, step("a"), step("child", "a"))
			h.eng.builds["a"] = buildBehavior{hang: true}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := h.start(ctx)

			synctest.Wait()
			cancel()
			<-done

			if e, _ := h.events.final("a"); e.Status != store.Interrupted {
				t.Errorf("a ended %q, want interrupted", e.Status)
			}
			if evs := h.events.of("child"); len(evs) != 0 {
				t.Errorf("child, never started because ctx ended, got events %+v; want none", evs)
			}
		})
	})
}

func TestTailWriter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		max    int
		writes []string
		reset  int // writes before the reset; 0 for none
		want   []string
	}{
		{"whole lines", 3, []string{"a\nb\n"}, 0, []string{"a", "b"}},
		{"keeps the last max", 2, []string{"a\nb\nc\n", "d\n"}, 0, []string{"c", "d"}},
		{"lines split across writes", 3, []string{"he", "llo\nwor", "ld\n"}, 0, []string{"hello", "world"}},
		{"an unfinished line counts", 3, []string{"a\nprogress 50%"}, 0, []string{"a", "progress 50%"}},
		{"reset forgets what came before", 3, []string{"old\n", "half", "new\n"}, 2, []string{"new"}},
		{"empty lines kept", 3, []string{"a\n\nb\n"}, 0, []string{"a", "", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := &tailWriter{max: tc.max}
			for i, s := range tc.writes {
				if tc.reset > 0 && i == tc.reset {
					w.reset()
				}
				w.write([]byte(s))
			}
			if got := w.lines(); !slices.Equal(got, tc.want) {
				t.Errorf("lines() = %q, want %q", got, tc.want)
			}
		})
	}
}

// A build whose failing step's output matches retry_on is built again from
// scratch, and recorded as tried more than once; one that does not match,
// or that is out of retries, fails.
func TestRunnerBuildRetries(t *testing.T) {
	t.Parallel()
	const resolving = "Temporary failure resolving 'deb.debian.org'"
	for _, tc := range []struct {
		name         string
		retries      int
		flaky        int
		line         string
		wantBuilds   int
		wantStatus   store.Status
		wantAttempts int
	}{
		{"a passing failure, then a pass", 1, 1, resolving, 2, store.Succeeded, 2},
		{"passing failures past the retries", 1, 5, resolving, 2, store.Failed, 2},
		{"a lasting failure is not retried", 3, 1, "E: Unable to locate package libfoo-dev", 1, store.Failed, 1},
		{"no retries asked for", 0, 1, resolving, 1, store.Failed, 1},
		{"two retries", 2, 2, resolving, 3, store.Succeeded, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, 1, step("img"))
				h.runner.BuildRetries = tc.retries
				h.runner.RetryOn = []*regexp.Regexp{regexp.MustCompile(`Temporary failure resolving`)}
				h.eng.builds["img"] = buildBehavior{flaky: tc.flaky, flakyLine: tc.line}
				h.run(t.Context())

				if got := len(h.eng.startOrder()); got != tc.wantBuilds {
					t.Errorf("%d builds, want %d", got, tc.wantBuilds)
				}
				if e, _ := h.events.final("img"); e.Status != tc.wantStatus {
					t.Errorf("img ended %s (%v), want %s", e.Status, e.Err, tc.wantStatus)
				}
				i := slices.IndexFunc(h.events.all(), func(e Event) bool { return e.Stage == StageBuild && e.Status.Done() })
				if i < 0 || h.events.all()[i].Attempts != tc.wantAttempts {
					t.Errorf("the build stage ended with %+v, want %d attempts", h.events.all()[i], tc.wantAttempts)
				}
				log, err := os.ReadFile(filepath.Join(h.job.Logs, "img.log"))
				if err != nil {
					t.Fatal(err)
				}
				if retried := strings.Contains(string(log), "building again from scratch"); retried != (tc.wantBuilds > 1) {
					t.Errorf("the log says a retry: %v, want %v:\n%s", retried, tc.wantBuilds > 1, log)
				}
			})
		})
	}
}
