package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nightshift.db")
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestRunsNewestFirst(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	for i := range 3 {
		r := &Run{Tag: string(rune('a' + i)), Status: Succeeded}
		if err := db.CreateRun(r); err != nil {
			t.Fatal(err)
		}
		if r.ID != uint64(i+1) {
			t.Fatalf("run %d got id %d", i, r.ID)
		}
	}
	runs, err := db.Runs(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != 3 || runs[1].ID != 2 {
		t.Fatalf("Runs(2) = %+v, want ids 3, 2", runs)
	}
	if _, err := db.Run(42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Run(42) error = %v, want ErrNotFound", err)
	}
}

// A process that dies mid-run leaves "running" on disk; the next Open must
// find it and say truthfully what happened to each image.
func TestCrashLeavesTruthfulRecord(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nightshift.db")
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	r := &Run{Tag: "t", Status: Running, Started: start, Planned: []string{"base", "cpu", "lint"}}
	if err := db.CreateRun(r); err != nil {
		t.Fatal(err)
	}
	done := start.Add(time.Minute)
	err = db.UpdateRun(r.ID, func(r *Run) error {
		r.Images = append(r.Images,
			ImageResult{Name: "base", Status: Succeeded, Started: &start, Finished: &done, Digest: "sha256:aa"},
			ImageResult{Name: "cpu", Status: Running, Started: &done,
				Stages: []Stage{{Name: "build", Status: Running, Started: done}}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // the "crash": nothing finishes the run

	db, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := start.Add(time.Hour)
	interrupted, err := db.Interrupt(now, "nightshift stopped", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(interrupted) != 1 || interrupted[0].ID != r.ID {
		t.Fatalf("Interrupt returned %+v, want run %d", interrupted, r.ID)
	}
	got, err := db.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != Interrupted || got.Finished == nil || !got.Finished.Equal(now) {
		t.Errorf("run status %s finished %v, want interrupted at %v", got.Status, got.Finished, now)
	}
	want := map[string]Status{"base": Succeeded, "cpu": Interrupted, "lint": Interrupted}
	for name, st := range want {
		im := got.Image(name)
		if im == nil || im.Status != st {
			t.Errorf("image %s = %+v, want status %s", name, im, st)
		}
	}
	if s := got.Image("cpu").Stage("build"); s == nil || s.Status != Interrupted {
		t.Errorf("cpu build stage = %+v, want interrupted", s)
	}
	again, err := db.Interrupt(now, "x", nil)
	if err != nil || len(again) != 0 {
		t.Errorf("second Interrupt = %v, %v; want nothing left running", again, err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	t.Parallel()
	_, path := openTemp(t)
	_, err := Open(path, 50*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
}

func TestLastFireSurvivesReopen(t *testing.T) {
	t.Parallel()
	db, path := openTemp(t)
	if got, err := db.LastFire(); err != nil || !got.IsZero() {
		t.Fatalf("LastFire of a new store = %v, %v; want zero", got, err)
	}
	fired := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	if err := db.SetLastFire(fired); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.LastFire(); err != nil || !got.Equal(fired) {
		t.Errorf("LastFire after reopening = %v, %v; want %v", got, err, fired)
	}
}

// A queued run is active like a running one: a crash leaves it to
// Interrupt, which ends it saying it never started, with news only of the
// run it waited for.
func TestCrashEndsQueuedRunWithoutNews(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	running := &Run{Tag: "t", Status: Running, Started: start}
	queued := &Run{Status: Queued, Trigger: "api", TriggeredBy: "alice", Started: start.Add(time.Minute)}
	for _, r := range []*Run{running, queued} {
		if err := db.CreateRun(r); err != nil {
			t.Fatal(err)
		}
	}
	if queued.Status.Done() {
		t.Error("queued is done")
	}
	var told []uint64
	outbox := func(f Finish) ([]Message, error) {
		told = append(told, f.Run.ID)
		return nil, nil
	}
	now := start.Add(time.Hour)
	got, err := db.Interrupt(now, "nightshift stopped during the run", outbox)
	if err != nil || len(got) != 2 {
		t.Fatalf("Interrupt = %+v, %v; want both runs", got, err)
	}
	if len(told) != 1 || told[0] != running.ID {
		t.Errorf("news queued for runs %v, want only %d", told, running.ID)
	}
	r, err := db.Run(queued.ID)
	if err != nil || r.Status != Interrupted || r.Finished == nil || r.Error != "nightshift stopped before the run started" || r.TriggeredBy != "alice" {
		t.Errorf("the queued run after the crash: %+v, %v", r, err)
	}
}
