package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in synctest bubbles: time only moves when every goroutine
// is blocked, so "sleep two days" is instant and exact.

// testClock is the bubble's fake clock moved to a chosen date (the bubble
// starts in 2000), and able to jump like a wall clock after a suspend.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func newTestClock(at time.Time) *testClock { return &testClock{off: time.Until(at)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off).UTC() // UTC also drops the monotonic reading, as a stepped wall clock would
}

func (c *testClock) NewTimer(d time.Duration) Timer { return RealClock().NewTimer(d) }

// jump steps the wall clock without the passing of time.
func (c *testClock) jump(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// memState is State in memory.
type memState struct {
	mu       sync.Mutex
	last     time.Time
	readErr  error
	writeErr error
}

func (m *memState) LastFire() (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, m.readErr
}

func (m *memState) SetLastFire(t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writeErr != nil {
		return m.writeErr
	}
	m.last = t
	return nil
}

func (m *memState) get() time.Time {
	t, _ := m.LastFire()
	return t
}

// started is one call of run as the test saw it.
type started struct {
	Trigger
	At        time.Time // Clock time when run was called
	LastFire  time.Time // State when run was called
	CtxErrEnd error     // ctx.Err() when run returned
}

// harness is a Scheduler with a test clock, an in-memory State, and a
// record of runs and events.
type harness struct {
	t      *testing.T
	s      *Scheduler
	clock  *testClock
	state  *memState
	mu     sync.Mutex
	runs   []started
	events []Event
	errc   chan error
}

// behave is what a run does after it has been recorded.
type behave func(ctx context.Context, t Trigger) error

func returnNil(context.Context, Trigger) error { return nil }

// blockUntil makes runs wait for a value on release, or for ctx.
func blockUntil(release <-chan struct{}) behave {
	return func(ctx context.Context, _ Trigger) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func newHarness(t *testing.T, cfg Config, now, lastFire time.Time, b behave, opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, clock: newTestClock(now), state: &memState{last: lastFire}}
	run := func(ctx context.Context, tr Trigger) error {
		h.mu.Lock()
		i := len(h.runs)
		h.runs = append(h.runs, started{Trigger: tr, At: h.clock.Now(), LastFire: h.state.get()})
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			h.runs[i].CtxErrEnd = ctx.Err()
			h.mu.Unlock()
		}()
		return b(ctx, tr)
	}
	opts = append([]Option{
		WithClock(h.clock),
		WithLogger(slog.New(slog.DiscardHandler)),
		WithEvents(func(e Event) {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
		}),
	}, opts...)
	s, err := New(cfg, h.state, run, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.s = s
	return h
}

// start runs Start in the background; stop (deferred by the caller) shuts
// the scheduler down and returns Start's error.
func (h *harness) start() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	h.errc = make(chan error, 1)
	go func() { h.errc <- h.s.Start(ctx) }()
	synctest.Wait()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			h.s.Shutdown(0)
			cancel()
			err = <-h.errc
		})
		return err
	}
}

func (h *harness) sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func (h *harness) started() []started {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.runs)
}

func (h *harness) times() []time.Time {
	var ts []time.Time
	for _, r := range h.started() {
		ts = append(ts, r.Time)
	}
	return ts
}

// kinds lists the kinds of events so far, leaving out the ones named.
func (h *harness) kinds(except ...string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ks []string
	for _, e := range h.events {
		if !slices.Contains(except, e.Kind) {
			ks = append(ks, e.Kind)
		}
	}
	return ks
}

func (h *harness) eventsOf(kind string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var es []Event
	for _, e := range h.events {
		if e.Kind == kind {
			es = append(es, e)
		}
	}
	return es
}

func utc(mon time.Month, d, h, m int) time.Time { return time.Date(2026, mon, d, h, m, 0, 0, time.UTC) }

func equalTimes(a, b []time.Time) bool { return slices.EqualFunc(a, b, time.Time.Equal) }

func TestFiresAtSpecTimes(t *testing.T) {
	t.Parallel()
	tokyo := mustLoad(t, "Asia/Tokyo")
	tests := []struct {
		spec string
		for_ time.Duration
		want []time.Time
	}{
		{"CRON_TZ=UTC 0 2 * * *", 71 * time.Hour, []time.Time{utc(1, 1, 2, 0), utc(1, 2, 2, 0), utc(1, 3, 2, 0)}},
		{"CRON_TZ=UTC 30 0 2 * * *", 27 * time.Hour, []time.Time{utc(1, 1, 2, 0).Add(30 * time.Second), utc(1, 2, 2, 0).Add(30 * time.Second)}},
		{"CRON_TZ=UTC @daily", 71 * time.Hour, []time.Time{utc(1, 2, 0, 0), utc(1, 3, 0, 0)}},
		{"CRON_TZ=Asia/Tokyo 0 2 * * *", 47 * time.Hour, []time.Time{time.Date(2026, 1, 2, 2, 0, 0, 0, tokyo), time.Date(2026, 1, 3, 2, 0, 0, 0, tokyo)}},
		{"@every 6h", 20 * time.Hour, []time.Time{utc(1, 1, 6, 0), utc(1, 1, 12, 0), utc(1, 1, 18, 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := utc(1, 1, 0, 0)
				h := newHarness(t, Config{Spec: tc.spec}, start, start, returnNil)
				stop := h.start()
				defer stop()
				if got := h.s.Next(); !got.Equal(tc.want[0]) {
					t.Errorf("Next() = %v, want %v", got, tc.want[0])
				}
				h.sleep(tc.for_)

				if got := h.times(); !equalTimes(got, tc.want) {
					t.Fatalf("fired for %v, want %v", got, tc.want)
				}
				for _, r := range h.started() {
					if r.Reason != ReasonSchedule || !r.At.Equal(r.Time) || r.Only != nil {
						t.Errorf("run %+v: want Reason %q, called at its time (no jitter), all images", r, ReasonSchedule)
					}
				}
				if got, want := h.state.get(), tc.want[len(tc.want)-1]; !got.Equal(want) {
					t.Errorf("last fire = %v, want %v", got, want)
				}
				if got, want := len(h.eventsOf(EventRunDone)), len(tc.want); got != want {
					t.Errorf("%d run-done events, want %d", got, want)
				}
				if err := stop(); err != nil {
					t.Errorf("Start after Shutdown = %v, want nil", err)
				}
			})
		})
	}
}

func TestDSTFiresOncePerDay(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	tests := []struct {
		name  string
		start time.Time
		want  []time.Time // in UTC
	}{
		// 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist.
		{"spring forward", utc(3, 27, 12, 0), []time.Time{utc(3, 28, 1, 30), utc(3, 29, 1, 0), utc(3, 30, 0, 30), utc(3, 31, 0, 30)}},
		// 2026-10-25 03:00 CEST goes back to 02:00 CET: 02:30 happens twice.
		{"fall back", utc(10, 23, 12, 0), []time.Time{utc(10, 24, 0, 30), utc(10, 25, 0, 30), utc(10, 26, 1, 30), utc(10, 27, 1, 30)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, Config{Spec: "CRON_TZ=Europe/Berlin 30 2 * * *"}, tc.start, tc.start, returnNil)
				stop := h.start()
				defer stop()
				h.sleep(4 * 24 * time.Hour)

				got := h.times()
				if !equalTimes(got, tc.want) {
					t.Errorf("fired at %v, want %v", got, tc.want)
				}
				days := map[string]int{}
				for _, ft := range got {
					days[ft.In(berlin).Format(time.DateOnly)]++
				}
				for day, n := range days {
					if n != 1 {
						t.Errorf("%s: %d fires, want 1", day, n)
					}
				}
				if len(days) != 4 {
					t.Errorf("fired on %d Berlin days, want 4: %v", len(days), days)
				}
			})
		})
	}
}

func TestCoalesce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := newHarness(t, Config{}, utc(1, 1, 12, 0), time.Time{}, blockUntil(release))
		stop := h.start()
		defer stop()

		if got := h.s.Trigger(Trigger{Only: []string{"a"}}); got != Started {
			t.Fatalf("first Trigger = %v, want %v", got, Started)
		}
		synctest.Wait()
		if act, ok := h.s.Active(); !ok || act.Reason != ReasonAPI || !slices.Equal(act.Only, []string{"a"}) {
			t.Errorf("Active() = %+v, %v; want the api run for [a]", act, ok)
		}
		for _, only := range [][]string{{"b"}, {"c"}, {"b"}} {
			if got := h.s.Trigger(Trigger{Reason: "api", Only: only}); got != Coalesced {
				t.Errorf("Trigger during a run = %v, want %v", got, Coalesced)
			}
		}
		release <- struct{}{}
		synctest.Wait()
		if act, ok := h.s.Active(); !ok || !slices.Equal(act.Only, []string{"b", "c"}) {
			t.Errorf("Active() after the first run = %+v, %v; want the merged run for [b c]", act, ok)
		}
		release <- struct{}{}
		synctest.Wait()

		if runs := h.started(); len(runs) != 2 {
			t.Fatalf("%d runs, want 2 (3 triggers during a run make one more): %+v", len(runs), runs)
		}
		if _, ok := h.s.Active(); ok {
			t.Error("Active() after both runs: still active")
		}
		want := []string{"fired", "coalesced", "coalesced", "coalesced", "run-done", "fired", "run-done"}
		if got := h.kinds(); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	})
}

func TestReject(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := newHarness(t, Config{Overlap: OverlapReject}, utc(1, 1, 12, 0), time.Time{}, blockUntil(release))
		stop := h.start()
		defer stop()

		want := []Outcome{Started, Rejected, Rejected}
		for i, w := range want {
			if got := h.s.Trigger(Trigger{}); got != w {
				t.Errorf("Trigger %d = %v, want %v", i, got, w)
			}
			synctest.Wait()
		}
		release <- struct{}{}
		synctest.Wait()
		if got := h.s.Trigger(Trigger{}); got != Started {
			t.Errorf("Trigger after the run = %v, want %v", got, Started)
		}
		synctest.Wait()
		release <- struct{}{}
		synctest.Wait()
		if n := len(h.started()); n != 2 {
			t.Errorf("%d runs, want 2", n)
		}
		for _, e := range h.eventsOf(EventRejected) {
			if e.Err != nil {
				t.Errorf("rejected because busy: Err = %v, want nil", e.Err)
			}
		}
	})
}

// A scheduled fire during a run follows Overlap too, and is still recorded.
func TestScheduledFireDuringRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		overlap string
		want    []Trigger // runs after the api one
		kinds   []string
	}{
		{OverlapCoalesce, []Trigger{{Reason: ReasonSchedule, Time: utc(1, 1, 3, 0)}, {Reason: ReasonSchedule, Time: utc(1, 1, 4, 0)}},
			[]string{"fired", "coalesced", "coalesced", "coalesced", "run-done", "fired", "run-done", "fired", "run-done"}},
		{OverlapReject, []Trigger{{Reason: ReasonSchedule, Time: utc(1, 1, 4, 0)}},
			[]string{"fired", "rejected", "rejected", "rejected", "run-done", "fired", "run-done"}},
	}
	for _, tc := range tests {
		t.Run(tc.overlap, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				start := utc(1, 1, 0, 30)
				first := true
				h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 * * * *", Overlap: tc.overlap}, start, start,
					func(ctx context.Context, tr Trigger) error {
						if first { // only the api run is long
							first = false
							return blockUntil(release)(ctx, tr)
						}
						return nil
					})
				stop := h.start()
				defer stop()
				h.s.Trigger(Trigger{Reason: "api"})
				h.sleep(2*time.Hour + 45*time.Minute) // 03:15: fires at 01:00, 02:00, 03:00 came during the run
				if got := h.state.get(); !got.Equal(utc(1, 1, 3, 0)) {
					t.Errorf("last fire during the run = %v, want 03:00", got)
				}
				release <- struct{}{}
				h.sleep(time.Hour) // 04:15

				runs := h.started()
				var got []Trigger
				for _, r := range runs[1:] {
					got = append(got, r.Trigger)
				}
				if !slices.EqualFunc(got, tc.want, func(a, b Trigger) bool { return a.Reason == b.Reason && a.Time.Equal(b.Time) }) {
					t.Errorf("runs after the api one: %+v, want %+v", got, tc.want)
				}
				if got := h.kinds(); !slices.Equal(got, tc.kinds) {
					t.Errorf("events %v, want %v", got, tc.kinds)
				}
			})
		})
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	night := utc(1, 2, 2, 0)
	tests := []struct {
		name    string
		p, t    Trigger
		want    Trigger
		wantNil bool
	}{
		{"union", Trigger{Reason: "api", Only: []string{"a"}}, Trigger{Reason: "api", Only: []string{"b", "a"}}, Trigger{Reason: "api", Only: []string{"a", "b"}}, false},
		{"all wins", Trigger{Reason: "api", Only: []string{"a"}}, Trigger{Reason: "api"}, Trigger{Reason: "api"}, true},
		{"all stays", Trigger{Reason: "api"}, Trigger{Reason: "api", Only: []string{"a"}}, Trigger{Reason: "api"}, true},
		{"the nightly fire names the run", Trigger{Reason: "api", Only: []string{"a"}}, Trigger{Reason: ReasonSchedule, Time: night}, Trigger{Reason: ReasonSchedule, Time: night}, true},
		{"api does not rename a nightly run", Trigger{Reason: ReasonCatchUp, Time: night}, Trigger{Reason: "api", Time: night.Add(time.Hour)}, Trigger{Reason: ReasonCatchUp, Time: night}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := merge(tc.p, tc.t)
			if got.Reason != tc.want.Reason || !got.Time.Equal(tc.want.Time) || !slices.Equal(got.Only, tc.want.Only) || (got.Only == nil) != tc.wantNil {
				t.Errorf("merge = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCatchUp(t *testing.T) {
	t.Parallel()
	const spec = "CRON_TZ=UTC 0 2 * * *"
	tests := []struct {
		name      string
		cfg       Config
		last, now time.Time
		wantRun   *Trigger
		wantKinds []string
		wantLast  time.Time
	}{
		{
			name: "run-once within grace", last: utc(1, 1, 2, 0), now: utc(1, 2, 5, 0),
			wantRun:   &Trigger{Reason: ReasonCatchUp, Time: utc(1, 2, 2, 0)},
			wantKinds: []string{"missed-run", "fired", "run-done"}, wantLast: utc(1, 2, 2, 0),
		},
		{
			name: "run-once at exactly grace", last: utc(1, 1, 2, 0), now: utc(1, 2, 8, 0),
			wantRun:   &Trigger{Reason: ReasonCatchUp, Time: utc(1, 2, 2, 0)},
			wantKinds: []string{"missed-run", "fired", "run-done"}, wantLast: utc(1, 2, 2, 0),
		},
		{
			name: "run-once beyond grace skips", last: utc(1, 1, 2, 0), now: utc(1, 2, 8, 0).Add(time.Second),
			wantKinds: []string{"missed-skipped"}, wantLast: utc(1, 2, 2, 0),
		},
		{
			name: "a shorter grace", cfg: Config{Grace: time.Hour}, last: utc(1, 1, 2, 0), now: utc(1, 2, 3, 30),
			wantKinds: []string{"missed-skipped"}, wantLast: utc(1, 2, 2, 0),
		},
		{
			name: "skip mode", cfg: Config{Missed: MissedSkip}, last: utc(1, 1, 2, 0), now: utc(1, 2, 2, 5),
			wantKinds: []string{"missed-skipped"}, wantLast: utc(1, 2, 2, 0),
		},
		{
			name: "first start never catches up", last: time.Time{}, now: utc(1, 2, 5, 0),
			wantKinds: nil, wantLast: utc(1, 2, 5, 0),
		},
		{
			name: "several missed nights make one run", last: utc(1, 1, 2, 0), now: utc(1, 5, 3, 0),
			wantRun:   &Trigger{Reason: ReasonCatchUp, Time: utc(1, 5, 2, 0)},
			wantKinds: []string{"missed-run", "fired", "run-done"}, wantLast: utc(1, 5, 2, 0),
		},
		{
			name: "nothing missed", last: utc(1, 2, 2, 0), now: utc(1, 2, 5, 0),
			wantKinds: nil, wantLast: utc(1, 2, 2, 0),
		},
		{
			name: "last fire in the future", last: utc(1, 3, 2, 0), now: utc(1, 2, 5, 0),
			wantKinds: nil, wantLast: utc(1, 3, 2, 0),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				cfg := tc.cfg
				cfg.Spec = spec
				h := newHarness(t, cfg, tc.now, tc.last, returnNil)
				stop := h.start()
				defer stop()

				runs := h.started()
				switch {
				case tc.wantRun == nil && len(runs) > 0:
					t.Errorf("runs %+v, want none", runs)
				case tc.wantRun != nil && (len(runs) != 1 || runs[0].Reason != tc.wantRun.Reason || !runs[0].Time.Equal(tc.wantRun.Time)):
					t.Errorf("runs %+v, want one %+v", runs, *tc.wantRun)
				}
				if got := h.kinds(); !slices.Equal(got, tc.wantKinds) {
					t.Errorf("events %v, want %v", got, tc.wantKinds)
				}
				if got := h.state.get(); !got.Equal(tc.wantLast) {
					t.Errorf("last fire = %v, want %v", got, tc.wantLast)
				}
				for _, e := range h.eventsOf(EventMissedSkipped) {
					if !e.Time.Equal(tc.wantLast) || !e.Trigger.Time.Equal(tc.wantLast) {
						t.Errorf("missed-skipped event %+v: Time should be the missed time %v", e, tc.wantLast)
					}
				}
			})
		})
	}
}

// A run that dies with the process is not run again at the next start: the
// fire was recorded before the run began.
func TestCrashedRunIsNotRepeated(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := utc(1, 1, 0, 0)
		h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 2 * * *"}, start, start, blockUntil(make(chan struct{})))
		stop := h.start()
		h.sleep(2*time.Hour + time.Minute)
		runs := h.started()
		if len(runs) != 1 || !runs[0].LastFire.Equal(utc(1, 1, 2, 0)) {
			t.Fatalf("runs %+v: want one, started with 02:00 already in State", runs)
		}
		stop() // the "crash": the run never finished

		h.clock.jump(time.Hour)
		again := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 2 * * *"}, h.clock.Now(), h.state.get(), returnNil)
		stop = again.start()
		defer stop()
		if runs := again.started(); len(runs) != 0 {
			t.Errorf("restart ran %+v; the 02:00 run must not run again", runs)
		}
		again.sleep(24 * time.Hour)
		if got, want := again.times(), []time.Time{utc(1, 2, 2, 0)}; !equalTimes(got, want) {
			t.Errorf("after restart fired %v, want %v", got, want)
		}
	})
}

func TestJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		jitter   time.Duration
		rand     func(n int64) int64
		wantN    time.Duration // the bound rand is asked for
		wantWait time.Duration // how long after its time each run starts
	}{
		{"none drawn", 10 * time.Minute, func(int64) int64 { return 0 }, 10 * time.Minute, 0},
		{"the largest draw", 10 * time.Minute, func(n int64) int64 { return n - 1 }, 10 * time.Minute, 10*time.Minute - 1},
		{"capped before the next fire", 3 * time.Hour, func(n int64) int64 { return n - 1 }, time.Hour, time.Hour - 1},
		{"a source out of range is clamped", 10 * time.Minute, func(n int64) int64 { return n + 5 }, 10 * time.Minute, 10*time.Minute - 1},
		{"a negative draw is clamped", 10 * time.Minute, func(int64) int64 { return -1 }, 10 * time.Minute, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var asked []time.Duration
				r := func(n int64) int64 {
					mu.Lock()
					asked = append(asked, time.Duration(n))
					mu.Unlock()
					return tc.rand(n)
				}
				start := utc(1, 1, 0, 0)
				h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 * * * *", Jitter: tc.jitter}, start, start, returnNil, WithRand(r))
				stop := h.start()
				defer stop()
				h.sleep(2*time.Hour + tc.wantWait + time.Minute) // past the 02:00 fire, before the 03:00 one

				runs := h.started()
				if got, want := h.times(), []time.Time{utc(1, 1, 1, 0), utc(1, 1, 2, 0)}; !equalTimes(got, want) {
					t.Fatalf("fired for %v, want %v (one per hour whatever the jitter)", got, want)
				}
				for _, r := range runs {
					if wait := r.At.Sub(r.Time); wait != tc.wantWait {
						t.Errorf("run for %v started %v after it, want %v", r.Time, wait, tc.wantWait)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				for _, n := range asked {
					if n != tc.wantN {
						t.Errorf("rand asked for [0, %v), want [0, %v)", n, tc.wantN)
					}
				}
			})
		})
	}
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		start := utc(1, 1, 0, 0)
		calls := 0
		h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 * * * *"}, start, start, func(context.Context, Trigger) error {
			calls++
			switch calls {
			case 1:
				panic("kaboom")
			case 2:
				panic(boom)
			}
			return nil
		})
		stop := h.start()
		defer stop()
		h.sleep(3*time.Hour + time.Minute)

		if got, want := h.times(), []time.Time{utc(1, 1, 1, 0), utc(1, 1, 2, 0), utc(1, 1, 3, 0)}; !equalTimes(got, want) {
			t.Fatalf("fired for %v, want %v: the schedule goes on after a panic", got, want)
		}
		panics := h.eventsOf(EventPanic)
		if len(panics) != 2 || !strings.Contains(panics[0].Err.Error(), "kaboom") || !errors.Is(panics[1].Err, boom) {
			t.Errorf("panic events %+v: want kaboom, then one wrapping boom", panics)
		}
		if _, ok := h.s.Active(); ok {
			t.Error("still active after the panics")
		}
		if got := h.s.Trigger(Trigger{}); got != Started {
			t.Errorf("Trigger after panics = %v, want %v", got, Started)
		}
		synctest.Wait()
		want := []string{"fired", "panic", "fired", "panic", "fired", "run-done", "fired", "run-done"}
		if got := h.kinds(); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	})
}

func TestRunError(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		failed := errors.New("ci_gpu failed")
		h := newHarness(t, Config{}, utc(1, 1, 0, 0), time.Time{}, func(context.Context, Trigger) error { return failed })
		h.s.Trigger(Trigger{}) // before Start: works
		synctest.Wait()
		stop := h.start()
		defer stop()
		if es := h.eventsOf(EventRunError); len(es) != 1 || !errors.Is(es[0].Err, failed) {
			t.Errorf("run-error events %+v, want one with the run's error", es)
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	const grace = time.Hour
	tests := []struct {
		name        string
		finishAfter time.Duration // the run ends by itself after this; 0: only when cancelled
		wantCtxErr  error
		wantTook    time.Duration
	}{
		{"the run finishes within grace", 10 * time.Minute, nil, 10 * time.Minute},
		{"beyond grace the run is cancelled", 0, context.Canceled, grace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, Config{}, utc(1, 1, 0, 0), time.Time{}, func(ctx context.Context, _ Trigger) error {
					if tc.finishAfter == 0 {
						<-ctx.Done()
						time.Sleep(time.Minute) // cleaning up after cancellation
						return ctx.Err()
					}
					time.Sleep(tc.finishAfter)
					return nil
				})
				stop := h.start()
				defer stop()
				h.s.Trigger(Trigger{})
				if got := h.s.Trigger(Trigger{Only: []string{"x"}}); got != Coalesced {
					t.Fatalf("second Trigger = %v, want %v", got, Coalesced)
				}
				synctest.Wait()

				before := h.clock.Now()
				done := make(chan struct{})
				go func() {
					h.s.Shutdown(grace)
					close(done)
				}()
				synctest.Wait()
				if got := h.s.Trigger(Trigger{}); got != Rejected {
					t.Errorf("Trigger during Shutdown = %v, want %v", got, Rejected)
				}
				<-done
				took := h.clock.Now().Sub(before)
				if tc.finishAfter == 0 {
					tc.wantTook += time.Minute
				}
				if took != tc.wantTook {
					t.Errorf("Shutdown returned after %v, want %v", took, tc.wantTook)
				}

				runs := h.started()
				if len(runs) != 1 {
					t.Fatalf("runs %+v, want one: the pending run is dropped", runs)
				}
				if runs[0].CtxErrEnd != tc.wantCtxErr {
					t.Errorf("run's ctx.Err() at its end = %v, want %v", runs[0].CtxErrEnd, tc.wantCtxErr)
				}
				if ds := h.eventsOf(EventDropped); len(ds) != 1 || !slices.Equal(ds[0].Trigger.Only, []string{"x"}) {
					t.Errorf("dropped events %+v, want the pending run for [x]", ds)
				}
				if _, ok := h.s.Active(); ok {
					t.Error("active after Shutdown")
				}
				if !h.s.Next().IsZero() {
					t.Error("Next() after Shutdown is not zero")
				}
				if err := stop(); err != nil {
					t.Errorf("Start after Shutdown = %v, want nil", err)
				}
			})
		})
	}
}

// Start's ctx is the hard stop: the run is cancelled at once and Start
// returns only after it has returned.
func TestStartCtxCancelsRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var returned bool
		start := utc(1, 1, 0, 0)
		h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 2 * * *"}, start, start, func(ctx context.Context, _ Trigger) error {
			<-ctx.Done()
			time.Sleep(time.Minute)
			returned = true
			return ctx.Err()
		})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- h.s.Start(ctx) }()
		h.sleep(3 * time.Hour)
		h.s.Trigger(Trigger{}) // pending behind the 02:00 run
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Start = %v, want context.Canceled", err)
		}
		if !returned {
			t.Error("Start returned before run did")
		}
		if n := len(h.started()); n != 1 {
			t.Errorf("%d runs, want 1", n)
		}
		if got := h.s.Trigger(Trigger{}); got != Rejected {
			t.Errorf("Trigger after Start returned = %v, want %v", got, Rejected)
		}
		if err := h.s.Start(context.Background()); err == nil {
			t.Error("a second Start succeeded")
		}
		h.s.Shutdown(time.Hour) // no run: returns at once
	})
}

// A wall clock that jumps (suspend, NTP step) neither fires twice nor
// early, and a fire that wakes up after further scheduled times is one
// catch-up.
func TestClockJumps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		jump        time.Duration // at 01:00, an hour before the 02:00 fire
		want        []Trigger
		wantSkipped int
	}{
		{"back two hours", -2 * time.Hour, []Trigger{{Reason: ReasonSchedule, Time: utc(1, 1, 2, 0)}, {Reason: ReasonSchedule, Time: utc(1, 2, 2, 0)}}, 0},
		{"forward three days", 72 * time.Hour, []Trigger{{Reason: ReasonCatchUp, Time: utc(1, 4, 2, 0)}, {Reason: ReasonSchedule, Time: utc(1, 5, 2, 0)}}, 0},
		{"forward past grace", 7 * time.Hour, []Trigger{{Reason: ReasonSchedule, Time: utc(1, 2, 2, 0)}, {Reason: ReasonSchedule, Time: utc(1, 3, 2, 0)}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := utc(1, 1, 0, 0)
				h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 2 * * *"}, start, start, returnNil)
				stop := h.start()
				defer stop()
				h.sleep(time.Hour)
				h.clock.jump(tc.jump)
				for range 2 {
					// Sleep to the next 02:30 on the jumped clock.
					now := h.clock.Now()
					next := time.Date(now.Year(), now.Month(), now.Day(), 2, 30, 0, 0, time.UTC)
					if !next.After(now) {
						next = next.AddDate(0, 0, 1)
					}
					h.sleep(next.Sub(now))
				}
				var got []Trigger
				for _, r := range h.started() {
					got = append(got, r.Trigger)
				}
				if !slices.EqualFunc(got, tc.want, func(a, b Trigger) bool { return a.Reason == b.Reason && a.Time.Equal(b.Time) }) {
					t.Errorf("runs %+v, want %+v", got, tc.want)
				}
				if got := len(h.eventsOf(EventMissedSkipped)); got != tc.wantSkipped {
					t.Errorf("%d missed-skipped events, want %d", got, tc.wantSkipped)
				}
			})
		})
	}
}

func TestStateErrors(t *testing.T) {
	t.Parallel()
	broken := errors.New("disk on fire")
	tests := []struct {
		name            string
		readErr, wrErr  error
		wantStateErrors int
	}{
		{"read fails: no catch-up, the schedule goes on", broken, nil, 1},
		{"write fails: the run happens anyway", nil, broken, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := utc(1, 1, 3, 0)
				h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 2 * * *"}, start, utc(1, 1, 1, 0), returnNil)
				h.state.readErr, h.state.writeErr = tc.readErr, tc.wrErr
				stop := h.start()
				defer stop()
				h.sleep(24 * time.Hour)

				want := []time.Time{utc(1, 2, 2, 0)}
				if tc.readErr == nil {
					want = append([]time.Time{utc(1, 1, 2, 0)}, want...) // the catch-up
				}
				if got := h.times(); !equalTimes(got, want) {
					t.Errorf("fired for %v, want %v", got, want)
				}
				es := h.eventsOf(EventStateError)
				if len(es) < tc.wantStateErrors || !errors.Is(es[0].Err, broken) {
					t.Errorf("state-error events %+v, want at least %d wrapping %v", es, tc.wantStateErrors, broken)
				}
			})
		})
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := utc(1, 1, 0, 0)
		h := newHarness(t, Config{Spec: "CRON_TZ=UTC 0 2 * * *", Jitter: time.Hour}, start, start, returnNil, WithRand(func(n int64) int64 { return n / 2 }))
		if got := h.s.Next(); !got.Equal(utc(1, 1, 2, 0)) {
			t.Errorf("Next() before Start = %v, want 02:00", got)
		}
		stop := h.start()
		defer stop()
		h.sleep(2*time.Hour + 15*time.Minute) // before the jittered 02:30 fire
		if got := h.s.Next(); !got.Equal(utc(1, 1, 2, 0)) {
			t.Errorf("Next() while the fire waits for its jitter = %v, want 02:00", got)
		}
		h.sleep(30 * time.Minute)
		if got := h.s.Next(); !got.Equal(utc(1, 2, 2, 0)) {
			t.Errorf("Next() after the fire = %v, want tomorrow 02:00", got)
		}
		stop()
		if got := h.s.Next(); !got.IsZero() {
			t.Errorf("Next() after Shutdown = %v, want zero", got)
		}

		none := newHarness(t, Config{}, start, time.Time{}, returnNil)
		if got := none.s.Next(); !got.IsZero() {
			t.Errorf("Next() without a Spec = %v, want zero", got)
		}
	})
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	run := func(context.Context, Trigger) error { return nil }
	tests := []struct {
		name  string
		cfg   Config
		state State
		run   func(context.Context, Trigger) error
		want  string
	}{
		{"bad spec", Config{Spec: "61 * * * *"}, &memState{}, run, "minute field"},
		{"bad missed", Config{Missed: "later"}, &memState{}, run, `missed "later"`},
		{"bad overlap", Config{Overlap: "queue"}, &memState{}, run, `overlap "queue"`},
		{"negative jitter", Config{Jitter: -time.Second}, &memState{}, run, "negative"},
		{"no run", Config{}, &memState{}, nil, "no run function"},
		{"schedule without state", Config{Spec: "@daily"}, nil, run, "State"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, tc.state, tc.run)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// records is a record function for TriggerRecorded that numbers records
// from 100 and remembers what it was asked; fail makes the next call fail.
type records struct {
	mu     sync.Mutex
	next   uint64
	joined []uint64
	fail   error
}

func (r *records) record(joined uint64) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.joined = append(r.joined, joined)
	if err := r.fail; err != nil {
		r.fail = nil
		return 0, err
	}
	if joined != 0 {
		return joined, nil
	}
	r.next++
	return 100 + r.next, nil
}

func (r *records) calls() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.joined)
}

// Every admitted trigger learns the record of the run that carries it out:
// its own when it starts one or is the first to wait, the pending run's
// when it joins one. The run gets the record; a rejected trigger makes
// none.
func TestTriggerRecorded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := newHarness(t, Config{}, utc(1, 1, 12, 0), time.Time{}, blockUntil(release))
		stop := h.start()
		defer stop()
		recs := &records{}

		type answer struct {
			out Outcome
			id  uint64
			err error
		}
		ask := func(tr Trigger) answer {
			out, id, err := h.s.TriggerRecorded(tr, recs.record)
			return answer{out, id, err}
		}
		if got := ask(Trigger{Record: 55}); got != (answer{Started, 101, nil}) {
			t.Fatalf("first trigger = %+v, want started with record 101 (its own Record ignored)", got)
		}
		synctest.Wait()
		if act, _ := h.s.Active(); act.Record != 101 {
			t.Errorf("the active run's record = %d, want 101", act.Record)
		}
		// A plain Trigger waits first, without a record: the first trigger
		// that follows its run gives the pending run one, the next shares it.
		h.s.Trigger(Trigger{Only: []string{"a"}})
		if got := ask(Trigger{Only: []string{"b"}}); got != (answer{Coalesced, 102, nil}) {
			t.Errorf("the first trigger with a record to wait = %+v, want coalesced with record 102", got)
		}
		if got := ask(Trigger{Only: []string{"c"}}); got != (answer{Coalesced, 102, nil}) {
			t.Errorf("the second trigger to wait = %+v, want coalesced with the pending run's record 102", got)
		}
		// A failing record leaves the pending run as it was.
		recs.mu.Lock()
		recs.fail = errors.New("store is read-only")
		recs.mu.Unlock()
		if got := ask(Trigger{Only: []string{"d"}}); got.out != Rejected || got.id != 0 || got.err == nil || !strings.Contains(got.err.Error(), "store is read-only") {
			t.Errorf("a trigger whose record failed = %+v, want rejected with the error", got)
		}
		h.s.Trigger(Trigger{Only: []string{"e"}}) // no record: joins the pending one's
		if got, want := recs.calls(), []uint64{0, 0, 102, 102}; !slices.Equal(got, want) {
			t.Errorf("record was called with %v, want %v", got, want)
		}

		release <- struct{}{}
		synctest.Wait()
		act, ok := h.s.Active()
		if !ok || act.Record != 102 || !slices.Equal(act.Only, []string{"a", "b", "c", "e"}) {
			t.Errorf("the pending run started as %+v, want record 102 for [a b c e] (not d)", act)
		}
		release <- struct{}{}
		synctest.Wait()
		runs := h.started()
		if len(runs) != 2 || runs[0].Record != 101 || runs[1].Record != 102 {
			t.Errorf("runs %+v, want records 101 and 102", runs)
		}
		if n := len(h.eventsOf(EventRejected)); n != 1 {
			t.Errorf("%d rejected events, want the one whose record failed", n)
		}

		// A failing record for a run that would start starts nothing.
		recs.mu.Lock()
		recs.fail = errors.New("disk full")
		recs.mu.Unlock()
		if got := ask(Trigger{}); got.out != Rejected || got.err == nil {
			t.Errorf("a starting trigger whose record failed = %+v, want rejected", got)
		}
		synctest.Wait()
		if _, ok := h.s.Active(); ok || len(h.started()) != 2 {
			t.Errorf("a run started without its record")
		}
		if got := ask(Trigger{}); got != (answer{Started, 103, nil}) {
			t.Errorf("the next trigger = %+v, want started with record 103", got)
		}
		release <- struct{}{}
		synctest.Wait()
	})
}

// With Overlap "reject" a busy scheduler makes no record, and a stopped
// one says so; the pending run dropped at shutdown names its record.
func TestTriggerRecordedRejectedAndDropped(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := newHarness(t, Config{Overlap: OverlapReject}, utc(1, 1, 12, 0), time.Time{}, blockUntil(release))
		stop := h.start()
		defer stop()
		recs := &records{}
		h.s.TriggerRecorded(Trigger{}, recs.record)
		synctest.Wait()
		if out, id, err := h.s.TriggerRecorded(Trigger{}, recs.record); out != Rejected || id != 0 || err != nil {
			t.Errorf("a trigger during a run = %v, %d, %v; want rejected, no record, no error", out, id, err)
		}
		if got := recs.calls(); !slices.Equal(got, []uint64{0}) {
			t.Errorf("record was called with %v, want once for the started run", got)
		}
		release <- struct{}{}
		synctest.Wait()
	})
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{}, utc(1, 1, 12, 0), time.Time{}, blockUntil(make(chan struct{})))
		stop := h.start()
		recs := &records{}
		h.s.TriggerRecorded(Trigger{}, recs.record)
		synctest.Wait()
		h.s.TriggerRecorded(Trigger{}, recs.record)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if ds := h.eventsOf(EventDropped); len(ds) != 1 || ds[0].Trigger.Record != 102 {
			t.Errorf("dropped events %+v, want the pending run with record 102", ds)
		}
		if out, id, err := h.s.TriggerRecorded(Trigger{}, recs.record); out != Rejected || id != 0 || !errors.Is(err, ErrStopped) {
			t.Errorf("a trigger after Shutdown = %v, %d, %v; want rejected with ErrStopped", out, id, err)
		}
		if n := len(recs.calls()); n != 2 {
			t.Errorf("record was called %d times, want 2", n)
		}
	})
}
