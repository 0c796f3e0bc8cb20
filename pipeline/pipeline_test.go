package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/store"
)

var t0 = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func ptr(t time.Time) *time.Time { return &t }

// testPlan is base <- cpu <- lint, each building on the one before.
func testPlan() *rebuild.Plan {
	step := func(image, base string) rebuild.Step {
		s := rebuild.Step{
			Name: image, Ref: mustTag("reg.test/ns/" + image + ":t"), Latest: mustTag("reg.test/ns/" + image + ":latest"),
			Base: base, Timeout: time.Hour,
		}
		if base != "" {
			s.Parents = []string{base}
			s.BaseRef = "reg.test/ns/" + base + ":t"
		}
		return s
	}
	return &rebuild.Plan{
		Tag: "t", Commit: "abc123", Repo: "reg.test/ns", Start: t0,
		Steps: []rebuild.Step{step("base", ""), step("cpu", "base"), step("lint", "cpu")},
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	plan := testPlan()
	digest := "sha256:0123"
	buildErr := errors.New("build: RUN make: exit code 2")
	tail := []string{"make: *** [all] Error 2", "==> build failed: RUN make: exit code 2"}

	// The events of a run in which base succeeds, cpu fails in its build
	// and lint is skipped. Each step checks the record as it then stands.
	steps := []struct {
		e     rebuild.Event
		check func(t *testing.T, run *store.Run)
	}{
		{rebuild.Event{Image: "base", Status: store.Running, Time: at(0), Log: "/logs/1/base.log"}, func(t *testing.T, run *store.Run) {
			want := []store.ImageResult{{
				Name: "base", Status: store.Running, Ref: "reg.test/ns/base:t",
				Started: ptr(at(0)), Log: "/logs/1/base.log",
			}}
			if !reflect.DeepEqual(run.Images, want) {
				t.Errorf("after the first event, images = %+v, want %+v", run.Images, want)
			}
		}},
		{rebuild.Event{Image: "base", Stage: rebuild.StageBuild, Status: store.Running, Time: at(1)}, func(t *testing.T, run *store.Run) {
			want := []store.Stage{{Name: rebuild.StageBuild, Status: store.Running, Started: at(1)}}
			if got := run.Image("base").Stages; !reflect.DeepEqual(got, want) {
				t.Errorf("stages = %+v, want %+v", got, want)
			}
		}},
		{rebuild.Event{Image: "base", Stage: rebuild.StageBuild, Status: store.Succeeded, Time: at(10)}, func(t *testing.T, run *store.Run) {
			want := []store.Stage{{Name: rebuild.StageBuild, Status: store.Succeeded, Started: at(1), Finished: ptr(at(10))}}
			if got := run.Image("base").Stages; !reflect.DeepEqual(got, want) {
				t.Errorf("stages = %+v, want %+v (the running stage finished, not a new one)", got, want)
			}
		}},
		{rebuild.Event{Image: "base", Stage: rebuild.StagePush, Status: store.Running, Time: at(10)}, nil},
		{rebuild.Event{Image: "base", Stage: rebuild.StagePush, Status: store.Succeeded, Time: at(20), Digest: digest}, func(t *testing.T, run *store.Run) {
			if got := run.Image("base").Digest; got != digest {
				t.Errorf("digest after push = %q, want %q", got, digest)
			}
		}},
		{rebuild.Event{Image: "base", Stage: rebuild.StageVerify, Status: store.Running, Time: at(20)}, nil},
		{rebuild.Event{Image: "base", Stage: rebuild.StageVerify, Status: store.Succeeded, Time: at(21), Digest: digest}, nil},
		{rebuild.Event{Image: "base", Stage: rebuild.StageTag, Status: store.Running, Time: at(21)}, func(t *testing.T, run *store.Run) {
			if got := run.Image("base").Digest; got != digest {
				t.Errorf("an event without a digest changed it to %q", got)
			}
		}},
		{rebuild.Event{Image: "base", Stage: rebuild.StageTag, Status: store.Succeeded, Time: at(22), Digest: digest}, nil},
		{rebuild.Event{Image: "base", Status: store.Succeeded, Time: at(22), Digest: digest, Tags: []string{"t", "latest"}}, nil},

		{rebuild.Event{Image: "cpu", Status: store.Running, Time: at(23), Log: "/logs/1/cpu.log"}, nil},
		{rebuild.Event{Image: "cpu", Stage: rebuild.StageBuild, Status: store.Running, Time: at(23)}, nil},
		{rebuild.Event{Image: "cpu", Stage: rebuild.StageBuild, Status: store.Failed, Time: at(40), Err: buildErr}, nil},
		{rebuild.Event{Image: "cpu", Status: store.Failed, Time: at(40), Err: buildErr, Tail: tail}, nil},

		{rebuild.Event{Image: "lint", Status: store.Skipped, Time: at(40), Err: errors.New("parent cpu failed")}, nil},
	}
	run := &store.Run{Tag: "t", Status: store.Running, Started: t0, Images: []store.ImageResult{}}
	for i, s := range steps {
		apply(run, plan, s.e)
		if s.check != nil {
			t.Run(fmt.Sprintf("event %d %s %s %s", i, s.e.Image, s.e.Stage, s.e.Status), func(t *testing.T) {
				s.check(t, run)
			})
		}
	}

	stage := func(name string, st store.Status, from, to int, err string) store.Stage {
		return store.Stage{Name: name, Status: st, Started: at(from), Finished: ptr(at(to)), Error: err}
	}
	want := []store.ImageResult{
		{
			Name: "base", Status: store.Succeeded, Ref: "reg.test/ns/base:t", Digest: digest,
			Tags: []string{"t", "latest"}, Started: ptr(at(0)), Finished: ptr(at(22)), Log: "/logs/1/base.log",
			Stages: []store.Stage{
				stage(rebuild.StageBuild, store.Succeeded, 1, 10, ""),
				stage(rebuild.StagePush, store.Succeeded, 10, 20, ""),
				stage(rebuild.StageVerify, store.Succeeded, 20, 21, ""),
				stage(rebuild.StageTag, store.Succeeded, 21, 22, ""),
			},
		},
		{
			Name: "cpu", Status: store.Failed, Ref: "reg.test/ns/cpu:t", Parent: "base",
			Started: ptr(at(23)), Finished: ptr(at(40)), Log: "/logs/1/cpu.log",
			Error: buildErr.Error(), Tail: tail,
			Stages: []store.Stage{stage(rebuild.StageBuild, store.Failed, 23, 40, buildErr.Error())},
		},
		{
			Name: "lint", Status: store.Skipped, Ref: "reg.test/ns/lint:t", Parent: "cpu",
			Finished: ptr(at(40)), Error: "parent cpu failed",
		},
	}
	if !reflect.DeepEqual(run.Images, want) {
		for i := range max(len(run.Images), len(want)) {
			var g, w store.ImageResult
			if i < len(run.Images) {
				g = run.Images[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("image %d:\n got %+v\nwant %+v", i, g, w)
			}
		}
	}
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "nightshift.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLastDurations(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	image := func(name string, st store.Status, d time.Duration) store.ImageResult {
		return store.ImageResult{Name: name, Status: st, Started: ptr(t0), Finished: ptr(t0.Add(d))}
	}
	// Oldest first; Runs hands them back newest first.
	for _, images := range [][]store.ImageResult{
		{image("base", store.Succeeded, 10*time.Minute), image("cpu", store.Succeeded, 3*time.Minute), image("lint", store.Succeeded, 2*time.Minute)},
		{image("base", store.Succeeded, 5*time.Minute), image("cpu", store.Failed, time.Minute), image("lint", store.Succeeded, 0)},
		{image("base", store.Interrupted, time.Second), {Name: "cpu", Status: store.Skipped}},
	} {
		if err := db.CreateRun(&store.Run{Tag: "t", Status: store.Failed, Started: t0, Images: images}); err != nil {
			t.Fatal(err)
		}
	}
	cost := lastDurations(db, testPlan())

	const unknown time.Duration = 0 // no estimate: the runner counts such an image a minute
	for _, tc := range []struct {
		name string
		want time.Duration
	}{
		{"base", 5 * time.Minute}, // the latest success, not the older one nor the later interruption
		{"cpu", 3 * time.Minute},  // the latest success, skipping the later failure
		{"lint", unknown},         // the latest success took no time: no estimate
		{"never-built", unknown},
	} {
		if got := cost[tc.name]; got != tc.want {
			t.Errorf("cost(%q) = %s, want %s", tc.name, got, tc.want)
		}
	}

	if got := lastDurations(openDB(t), testPlan())["base"]; got != unknown {
		t.Errorf("without history, cost(base) = %s, want %s", got, unknown)
	}
}

// Run records every image of a run as it goes, and the run's end.
func TestRun(t *testing.T) {
	t.Parallel()
	reg := newStubRegistry()
	p, db := newTestPipeline(t, &stubEngine{reg: reg, fail: map[string]bool{"cpu": true}}, reg)
	p.cfg.Build.Jobs = 1
	prep := &Prepared{Source: source.Checkout{Commit: "abc123", Subject: "Bump tools"}, Plan: testPlan()}
	var observed []string
	progress := make(chan Update)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for u := range progress {
			run, e := u.Run, u.Event
			if im := run.Image(e.Image); im == nil || (e.Stage == "" && im.Status != e.Status) {
				t.Errorf("Progress saw %s %s before it was recorded", e.Image, e.Status)
			}
			observed = append(observed, e.Image+" "+e.Stage+" "+string(e.Status))
		}
	}()

	got, err := runPrepared(t.Context(), p, prep, Request{Trigger: "cli", Progress: progress})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	<-followed
	if got.Status != store.Failed || got.Finished == nil || got.Commit != "abc123" || got.Trigger != "cli" {
		t.Errorf("run ended %q finished %v commit %q trigger %q, want failed, finished, abc123, cli", got.Status, got.Finished, got.Commit, got.Trigger)
	}
	if want := []string{"base", "cpu", "lint"}; !slices.Equal(got.Planned, want) {
		t.Errorf("planned %q, want %q", got.Planned, want)
	}
	for name, want := range map[string]store.Status{"base": store.Succeeded, "cpu": store.Failed, "lint": store.Skipped} {
		im := got.Image(name)
		if im == nil || im.Status != want {
			t.Errorf("%s recorded as %+v, want %s", name, im, want)
		}
	}
	if im := got.Image("cpu"); im != nil && !slices.Contains(im.Tail, "make: *** [all] Error 2") {
		t.Errorf("cpu's tail %q lacks the build's last line", im.Tail)
	}
	if im := got.Image("base"); im != nil && (im.Digest != "sha256:base" || len(im.Stages) != 5) {
		t.Errorf("base recorded with digest %q and %d stages, want sha256:base and 5", im.Digest, len(im.Stages))
	}
	if want := 12 + 4 + 1; len(observed) != want { // base, cpu to its failed build, lint skipped
		t.Errorf("Progress saw %d events, want %d: %q", len(observed), want, observed)
	}

	stored, err := db.Run(got.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Compared as JSON: the returned end time still has its monotonic reading.
	storedJSON, _ := json.Marshal(stored)
	gotJSON, _ := json.Marshal(got)
	if !bytes.Equal(storedJSON, gotJSON) {
		t.Errorf("stored record\n%s\ndiffers from the returned one\n%s", storedJSON, gotJSON)
	}
}

// A cancelled run is recorded as interrupted: the image under way, and the
// images that never started (store.Run.MarkInterrupted says "before this
// image started"). Fails today: the runner reports the children of the
// interrupted image as skipped because their "parent failed", and the
// record keeps that.
func TestRunCancelledRecordsUnstartedImagesAsInterrupted(t *testing.T) {
	t.Parallel()
	reg := newStubRegistry()
	eng := &stubEngine{reg: reg, hang: "base", hanging: make(chan struct{})}
	p, _ := newTestPipeline(t, eng, reg)
	prep := &Prepared{Source: source.Checkout{Commit: "abc123"}, Plan: testPlan()}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		<-eng.hanging
		cancel()
	}()
	got, err := runPrepared(ctx, p, prep, Request{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.Status != store.Interrupted || !strings.HasPrefix(got.Error, "run cancelled") {
		t.Errorf("run ended %q (%q), want interrupted, cancelled", got.Status, got.Error)
	}
	base := got.Image("base")
	if base == nil || base.Status != store.Interrupted || len(base.Stages) != 1 || base.Stages[0].Status != store.Interrupted {
		t.Errorf("base recorded as %+v, want interrupted in its build", base)
	}
	for _, name := range []string{"cpu", "lint"} {
		im := got.Image(name)
		if im == nil || im.Status != store.Interrupted || !strings.HasSuffix(im.Error, "before this image started") {
			t.Errorf("%s, never started, recorded as %+v; want interrupted before it started", name, im)
		}
	}
}

// A triggered run takes over the queued record made when it was triggered;
// one that cannot start ends that record, saying why.
func TestQueuedRecord(t *testing.T) {
	t.Parallel()
	reg := newStubRegistry()
	p, db := newTestPipeline(t, &stubEngine{reg: reg}, reg)
	queue := func() uint64 {
		r := &store.Run{Status: store.Queued, Trigger: "api", TriggeredBy: "alice", Started: t0}
		if err := db.CreateRun(r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}

	id := queue()
	prep := &Prepared{Source: source.Checkout{Commit: "abc123"}, Plan: testPlan()}
	got, err := runPrepared(t.Context(), p, prep, Request{Record: id})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.Status != store.Succeeded || got.TriggeredBy != "alice" || got.Trigger != "api" || got.Commit != "abc123" {
		t.Errorf("the queued run ended as %+v, want run %d succeeded, triggered by alice through the api", got, id)
	}
	if runs, _ := db.Runs(0); len(runs) != 1 {
		t.Errorf("%d records, want the queued one only", len(runs))
	}

	id = queue()
	if _, err := p.start(t.Context(), Request{Record: id}, nil, &UsageError{errors.New("no image \"gpu\"")}); err == nil {
		t.Fatal("start with an error started")
	}
	r, err := db.Run(id)
	if err != nil || r.Status != store.Failed || r.Finished == nil || !strings.Contains(r.Error, `could not start: no image "gpu"`) {
		t.Errorf("the queued run that could not start: %+v (%v), want failed, saying why", r, err)
	}

	id = queue()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.start(cancelled, Request{Record: id}, nil, &Unavailable{context.Canceled}); err == nil {
		t.Fatal("start with an error started")
	}
	if r, err := db.Run(id); err != nil || r.Status != store.Interrupted {
		t.Errorf("the queued run cancelled before it started: %+v (%v), want interrupted", r, err)
	}
}

// A rebuild never starts in the second of the run before it: its tag,
// which holds the start to the second, would be that run's.
func TestDistinctStart(t *testing.T) {
	t.Parallel()
	reg := newStubRegistry()
	p, db := newTestPipeline(t, &stubEngine{reg: reg}, reg)
	now := time.Date(2026, 12, 4, 2, 0, 0, 400e6, time.UTC)
	p.now = func() time.Time { return now }
	if got, err := p.distinctStart(t.Context()); err != nil || !got.Equal(now) {
		t.Fatalf("with no run recorded: %v, %v; want now", got, err)
	}
	if err := db.CreateRun(&store.Run{Tag: "t", Status: store.Succeeded, Started: now.Add(-300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	got, err := p.distinctStart(t.Context())
	if want := time.Date(2026, 12, 4, 2, 0, 1, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("after a run that started in this second: %v, %v; want %v", got, err, want)
	}
	now = now.Add(time.Second)
	if got, err := p.distinctStart(t.Context()); err != nil || !got.Equal(now) {
		t.Errorf("a second later: %v, %v; want now", got, err)
	}
}
