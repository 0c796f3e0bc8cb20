// Package scheduler decides when nightshift runs: on a cron schedule with
// jitter, on demand, never two runs at once, and making up for a night
// missed while the host was down. It does not know what a run does; the
// caller hands it a function.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// Config is the [schedule] table, already validated elsewhere except Spec.
// Zero values take the defaults documented on each field.
type Config struct {
	// Spec is five fields, six with seconds, or a descriptor (@daily,
	// @every 1h), with an optional CRON_TZ=Area/City prefix; see ParseSpec.
	// Empty means no schedule: only Trigger starts runs.
	Spec string
	// Jitter delays each scheduled fire by a uniformly random [0, Jitter),
	// capped so that a fire never moves past the next scheduled time.
	Jitter time.Duration
	// Missed is what Start does about a fire missed while the scheduler was
	// not running: MissedRunOnce (default) or MissedSkip.
	Missed string
	// Grace is how late a missed fire may still be made up for; default 6h.
	Grace time.Duration
	// Overlap is what a trigger during a run does: OverlapCoalesce
	// (default) or OverlapReject.
	Overlap string
}

// Values of Config.Missed and Config.Overlap.
const (
	// MissedRunOnce makes up for missed fires with one run, if the latest
	// of them is within Grace.
	MissedRunOnce = "run-once"
	// MissedSkip reports missed fires and runs nothing.
	MissedSkip = "skip"
	// OverlapCoalesce turns triggers during a run into one pending run
	// that starts when the active one ends.
	OverlapCoalesce = "coalesce"
	// OverlapReject refuses triggers during a run.
	OverlapReject = "reject"
)

// DefaultGrace is Config.Grace when it is zero.
const DefaultGrace = 6 * time.Hour

// Trigger is why a run starts.
type Trigger struct {
	Reason string    // ReasonSchedule, ReasonCatchUp, ReasonAPI, or the caller's own
	Only   []string  // images; nil means all
	Time   time.Time // the scheduled time for schedule and catch-up fires
	// Record is the caller's record of the run, made by the record
	// function of TriggerRecorded; 0 if none. The scheduler only carries
	// it to run (and to the events): merged triggers share one.
	Record uint64
}

// Reasons the scheduler gives, and the default for Scheduler.Trigger.
const (
	ReasonSchedule = "schedule"
	ReasonCatchUp  = "catch-up"
	ReasonAPI      = "api"
)

// State persists the last fire time; *store.DB implements it.
type State interface {
	LastFire() (time.Time, error)
	SetLastFire(time.Time) error
}

// Outcome is what Scheduler.Trigger did with a trigger.
type Outcome string

// Outcomes of Scheduler.Trigger.
const (
	Started   Outcome = "started"   // the run started now
	Coalesced Outcome = "coalesced" // the run is pending behind the active one
	Rejected  Outcome = "rejected"  // refused: a run is active and Overlap is "reject", or the scheduler is stopped
)

// Event is something the daemon may want to log, notify or count.
type Event struct {
	Kind    string
	Trigger Trigger
	Err     error
	// Time is the missed scheduled time for EventMissedRun and
	// EventMissedSkipped, and the Clock's time when it happened otherwise.
	Time time.Time
}

// Event kinds. Every run emits EventFired when it starts and exactly one of
// EventRunDone, EventRunError or EventPanic when it ends.
const (
	EventFired         = "fired"          // a run starts; Trigger says why
	EventMissedRun     = "missed-run"     // a missed fire is made up for; EventFired (or coalesced/rejected) follows
	EventMissedSkipped = "missed-skipped" // a missed fire is skipped (Missed "skip", or later than Grace)
	EventCoalesced     = "coalesced"      // Trigger merged into the pending run
	EventRejected      = "rejected"       // Trigger refused; Err is set if the scheduler is stopped or the run's record could not be made
	EventDropped       = "dropped"        // the pending run (and its Record) was dropped by Shutdown or by Start's ctx ending
	EventPanic         = "panic"          // the run panicked; Err holds the value
	EventRunError      = "run-error"      // the run returned Err
	EventRunDone       = "run-done"       // the run returned nil
	EventStateError    = "state-error"    // State could not be read or written; Err says which
)

// ErrStopped is the Err of triggers refused because the scheduler stopped,
// and of pending runs it dropped.
var ErrStopped = errors.New("scheduler is stopped")

// Scheduler runs a function on a cron schedule and on demand, one run at a
// time. Its methods are safe for concurrent use.
type Scheduler struct {
	cfg    Config
	sched  schedule // zero when Config.Spec is empty
	state  State
	run    func(ctx context.Context, t Trigger) error
	clock  Clock
	log    *slog.Logger
	rand   func(n int64) int64
	events func(Event)

	runCtx     context.Context // parent of every run's context
	cancelRuns context.CancelFunc
	stop       chan struct{}  // closed when the scheduler stops: no more fires or triggers
	runs       sync.WaitGroup // one per goroutine that is calling run

	mu       sync.Mutex
	started  bool
	loopDone chan struct{} // closed when Start's schedule loop has returned
	closed   bool
	shutdown bool     // Shutdown was called, so Start returns nil
	active   *Trigger // the run going on
	pending  *Trigger // the coalesced run waiting for it
	next     time.Time
	nextSet  bool
}

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithClock replaces the system clock, for tests.
func WithClock(c Clock) Option { return func(s *Scheduler) { s.clock = c } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Scheduler) { s.log = l } }

// WithRand replaces the jitter source, which must return a value in [0, n)
// like rand.Int64N.
func WithRand(f func(n int64) int64) Option { return func(s *Scheduler) { s.rand = f } }

// WithEvents sets a function told about everything the scheduler decides.
// It is called synchronously from the scheduler's goroutines (never with a
// lock held, so it may call Trigger, Active or Next, but not Shutdown, which
// would wait for itself), possibly concurrently; it should return quickly.
func WithEvents(f func(Event)) Option { return func(s *Scheduler) { s.events = f } }

// New makes a Scheduler. run is called in its own goroutine, one call at a
// time, with a context cancelled when Start's ctx ends or Shutdown's grace
// runs out; a panic in run is recovered and reported as EventPanic, and the
// scheduler carries on. New checks cfg (Spec with ParseSpec) and fills in
// its defaults.
func New(cfg Config, state State, run func(ctx context.Context, t Trigger) error, opts ...Option) (*Scheduler, error) {
	if run == nil {
		return nil, errors.New("scheduler: no run function")
	}
	if cfg.Missed == "" {
		cfg.Missed = MissedRunOnce
	}
	if cfg.Missed != MissedRunOnce && cfg.Missed != MissedSkip {
		return nil, fmt.Errorf("scheduler: missed %q is not %q or %q", cfg.Missed, MissedRunOnce, MissedSkip)
	}
	if cfg.Overlap == "" {
		cfg.Overlap = OverlapCoalesce
	}
	if cfg.Overlap != OverlapCoalesce && cfg.Overlap != OverlapReject {
		return nil, fmt.Errorf("scheduler: overlap %q is not %q or %q", cfg.Overlap, OverlapCoalesce, OverlapReject)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Grace < 0 || cfg.Jitter < 0 {
		return nil, fmt.Errorf("scheduler: grace %s and jitter %s must not be negative", cfg.Grace, cfg.Jitter)
	}
	s := &Scheduler{cfg: cfg, state: state, run: run, stop: make(chan struct{})}
	if cfg.Spec != "" {
		sc, err := ParseSpec(cfg.Spec)
		if err != nil {
			return nil, err
		}
		if state == nil {
			return nil, errors.New("scheduler: a schedule needs a State to remember its last fire")
		}
		s.sched = newSchedule(sc)
	}
	for _, o := range opts {
		o(s)
	}
	if s.clock == nil {
		s.clock = RealClock()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rand == nil {
		s.rand = rand.Int64N
	}
	s.runCtx, s.cancelRuns = context.WithCancel(context.Background())
	return s, nil
}

// Start runs the schedule until ctx ends or Shutdown is called. It may be
// called once.
//
// First it decides about missed fires: it reads the last fire time from
// State; if there is none (first start ever) it records now and makes up
// for nothing; otherwise, if scheduled times fell in (last fire, now], the
// latest of them is recorded and, with Missed "run-once" and now minus it
// at most Grace, run once with Reason "catch-up" (EventMissedRun), else
// reported as EventMissedSkipped. If State cannot be read, that is reported
// as EventStateError and the schedule goes on without catching up.
//
// Then it fires at each scheduled time plus jitter, recording the time in
// State before the run is started (or coalesced or rejected per Overlap),
// so a crash mid-run does not run that time again. A fire that wakes up
// late (host suspended, clock stepped) by more than Grace, or after further
// scheduled times passed, is decided as a missed fire, once.
//
// When ctx ends, Start stops firing and accepting triggers, drops the
// pending run, cancels the active run's context at once and returns
// ctx.Err() after run has returned. After Shutdown it returns nil once
// Shutdown's wait is over and run has returned. Without a Spec it only
// waits for that, while Trigger starts runs.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.started {
		s.mu.Unlock()
		return errors.New("scheduler: Start called twice or after Shutdown")
	}
	s.started = true
	done := make(chan struct{})
	s.loopDone = done
	s.mu.Unlock()

	stopRuns := context.AfterFunc(ctx, s.cancelRuns)
	defer stopRuns()
	s.loop(ctx)
	s.emit(s.close(false)...)
	close(done)
	s.runs.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return nil
	}
	return ctx.Err()
}

// loop fires the schedule until ctx ends or the scheduler stops.
func (s *Scheduler) loop(ctx context.Context) {
	if s.sched.Schedule == nil {
		s.setNext(time.Time{})
		select {
		case <-ctx.Done():
		case <-s.stop:
		}
		return
	}
	if ctx.Err() != nil {
		return // no catch-up run into an already cancelled context
	}
	prev := s.catchUp(s.clock.Now())
	for {
		n := s.sched.next(prev)
		s.setNext(n)
		if n.IsZero() {
			s.log.Warn("the schedule has no further fire time", "spec", s.cfg.Spec, "after", prev)
		}
		planned := n.Add(s.jitter(n))
		now, ok := s.waitUntil(ctx, n.IsZero(), planned)
		if !ok {
			return
		}
		// now >= planned >= n, so due >= n; prev only grows, which is
		// what keeps one scheduled time from firing twice.
		due := s.sched.latest(prev, now)
		s.fire(due, now, due.Equal(n) && now.Sub(planned) <= s.cfg.Grace)
		prev = due
	}
}

// waitUntil waits until the Clock reads at least at (forever if never).
// It re-arms rather than trusting one timer because the wall clock may be
// stepped back while the timer runs.
func (s *Scheduler) waitUntil(ctx context.Context, never bool, at time.Time) (time.Time, bool) {
	for {
		now := s.clock.Now()
		if never {
			select {
			case <-ctx.Done():
			case <-s.stop:
			}
			return now, false
		}
		if !now.Before(at) {
			return now, true
		}
		t := s.clock.NewTimer(at.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return now, false
		case <-s.stop:
			t.Stop()
			return now, false
		case <-t.C():
		}
	}
}

// jitter picks the delay of the fire at n: [0, Jitter), and short of the
// following scheduled time.
func (s *Scheduler) jitter(n time.Time) time.Duration {
	bound := s.cfg.Jitter
	if n.IsZero() || bound <= 0 {
		return 0
	}
	if f := s.sched.next(n); !f.IsZero() {
		bound = min(bound, f.Sub(n))
	}
	j := time.Duration(s.rand(int64(bound)))
	// A source that breaks its contract must not break the bounds.
	return max(0, min(j, bound-1))
}

// catchUp makes the start-up decision about missed fires and returns the
// time after which the schedule continues.
func (s *Scheduler) catchUp(now time.Time) time.Time {
	last, err := s.state.LastFire()
	switch {
	case err != nil:
		s.emit(Event{Kind: EventStateError, Err: fmt.Errorf("read last fire time: %w", err), Time: now})
		return now
	case last.IsZero():
		// First start ever: nothing was missed, and from now on a later
		// start can tell what it missed.
		if err := s.state.SetLastFire(now); err != nil {
			s.emit(Event{Kind: EventStateError, Err: fmt.Errorf("record first start %s: %w", now, err), Time: now})
		}
		return now
	case last.After(now):
		// The clock went back, or the database came from elsewhere: times
		// up to last were already decided and must not fire again.
		s.log.Warn("the last fire time is in the future; the schedule resumes after it", "last_fire", last, "now", now)
		return last
	}
	if due := s.sched.latest(last, now); !due.IsZero() {
		s.fire(due, now, false)
	}
	return now
}

// fire decides the scheduled time due: a run on time, or a missed one to
// make up for or skip. The time is recorded before any run starts.
func (s *Scheduler) fire(due, now time.Time, onTime bool) {
	t := Trigger{Reason: ReasonSchedule, Time: due}
	var evs []Event
	run := true
	if !onTime {
		t.Reason = ReasonCatchUp
		if s.cfg.Missed == MissedRunOnce && now.Sub(due) <= s.cfg.Grace {
			evs = append(evs, Event{Kind: EventMissedRun, Trigger: t, Time: due})
		} else {
			evs = append(evs, Event{Kind: EventMissedSkipped, Trigger: t, Time: due})
			run = false
		}
	}
	var out Outcome
	s.mu.Lock()
	if s.closed {
		// Stopping: leave the time undecided so the next start sees it.
		s.mu.Unlock()
		return
	}
	// Written under the lock so that a fire is recorded exactly when it is
	// decided, never for a scheduler that stopped meanwhile.
	if err := s.state.SetLastFire(due); err != nil {
		evs = append(evs, Event{Kind: EventStateError, Trigger: t, Err: fmt.Errorf("record fire time %s: %w", due, err), Time: now})
	}
	if run {
		var ev Event
		out, ev, _ = s.admit(&t, nil)
		evs = append(evs, ev)
	}
	s.mu.Unlock()
	s.emit(evs...)
	if out == Started {
		go s.chain(t)
	}
}

// Trigger asks for a run now, with Reason "api" if t has none. It returns
// Started (the run started), Coalesced (it is pending behind the active
// run, merged with other pending triggers) or Rejected (a run is active and
// Overlap is "reject", or the scheduler is stopped). It works before Start.
func (s *Scheduler) Trigger(t Trigger) Outcome {
	out, _, _ := s.TriggerRecorded(t, nil)
	return out
}

// TriggerRecorded is Trigger for a caller that follows each run by a record
// of its own (the daemon's queued record, whose id a trigger answers with).
// Once t is admitted, record is called with the record of the run t joins:
// 0 when it has none yet (t starts a run, or is the first trigger with a
// record to join the pending run, maybe one the schedule coalesced), or
// the pending run's record, which t shares. record returns the record the
// run carries from then on as Trigger.Record. It is called with the
// scheduler's lock held, so that the run cannot start, nor another trigger
// join it, before it has its record; it must not call the Scheduler. If
// record fails, t is rejected, nothing else changes, and its error is
// returned. t.Record is ignored.
//
// It returns the outcome, the record of the run that carries t out (0 when
// rejected), and an error: record's, or ErrStopped when the scheduler is
// stopped. A trigger rejected because a run is active and Overlap is
// "reject" has no error.
func (s *Scheduler) TriggerRecorded(t Trigger, record func(joined uint64) (uint64, error)) (Outcome, uint64, error) {
	if t.Reason == "" {
		t.Reason = ReasonAPI
	}
	t.Only = slices.Clone(t.Only)
	t.Record = 0
	s.mu.Lock()
	out, ev, err := s.admit(&t, record)
	s.mu.Unlock()
	s.emit(ev)
	if out == Started {
		go s.chain(t)
	}
	return out, t.Record, err
}

// admit applies Overlap to t; s.mu is held. record, if not nil, gives the
// run t starts or joins its record (see TriggerRecorded), which t.Record is
// set to. On Started the caller must start chain(*t).
func (s *Scheduler) admit(t *Trigger, record func(joined uint64) (uint64, error)) (Outcome, Event, error) {
	now := s.clock.Now()
	if s.closed {
		return Rejected, Event{Kind: EventRejected, Trigger: *t, Err: ErrStopped, Time: now}, ErrStopped
	}
	if s.active == nil {
		if record != nil {
			id, err := record(0)
			if err != nil {
				err = fmt.Errorf("record the run: %w", err)
				return Rejected, Event{Kind: EventRejected, Trigger: *t, Err: err, Time: now}, err
			}
			t.Record = id
		}
		a := *t
		s.active = &a
		s.runs.Add(1)
		return Started, Event{Kind: EventFired, Trigger: *t, Time: now}, nil
	}
	if s.cfg.Overlap == OverlapReject {
		return Rejected, Event{Kind: EventRejected, Trigger: *t, Time: now}, nil
	}
	p := *t
	if s.pending != nil {
		p = merge(*s.pending, *t)
	}
	if record != nil {
		id, err := record(p.Record)
		if err != nil {
			err = fmt.Errorf("record the run: %w", err)
			return Rejected, Event{Kind: EventRejected, Trigger: *t, Err: err, Time: now}, err
		}
		p.Record = id
	}
	t.Record = p.Record
	s.pending = &p
	return Coalesced, Event{Kind: EventCoalesced, Trigger: *t, Time: now}, nil
}

// merge folds t into the pending trigger p: the images become the union
// (nil, all, wins), a schedule or catch-up trigger lends its Reason and
// Time so that the run covering the night is recorded as the nightly one,
// and p keeps its Record (t's, when p has none).
func merge(p, t Trigger) Trigger {
	p.Record = cmp.Or(p.Record, t.Record)
	if p.Only == nil || t.Only == nil {
		p.Only = nil
	} else {
		for _, img := range t.Only {
			if !slices.Contains(p.Only, img) {
				p.Only = append(p.Only, img)
			}
		}
	}
	if t.Reason == ReasonSchedule || t.Reason == ReasonCatchUp {
		p.Reason, p.Time = t.Reason, t.Time
	}
	return p
}

// chain calls run for t, then for the pending run while there is one.
func (s *Scheduler) chain(t Trigger) {
	defer s.runs.Done()
	for {
		done := s.call(t)
		s.mu.Lock()
		next := s.pending
		s.pending = nil
		s.active = next
		s.mu.Unlock()
		s.emit(done)
		if next == nil {
			return
		}
		t = *next
		s.emit(Event{Kind: EventFired, Trigger: t, Time: s.clock.Now()})
	}
}

// call runs one run and says how it ended.
func (s *Scheduler) call(t Trigger) (ev Event) {
	ctx, cancel := context.WithCancel(s.runCtx)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err, ok := r.(error)
			if !ok {
				err = fmt.Errorf("%v", r)
			}
			s.log.Error("run panicked", "reason", t.Reason, "panic", r, "stack", string(debug.Stack()))
			ev = Event{Kind: EventPanic, Trigger: t, Err: fmt.Errorf("run panicked: %w", err), Time: s.clock.Now()}
		}
	}()
	if err := s.run(ctx, t); err != nil {
		return Event{Kind: EventRunError, Trigger: t, Err: err, Time: s.clock.Now()}
	}
	return Event{Kind: EventRunDone, Trigger: t, Time: s.clock.Now()}
}

// Active reports whether a run is going on, and its trigger.
func (s *Scheduler) Active() (Trigger, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return Trigger{}, false
	}
	t := *s.active
	t.Only = slices.Clone(t.Only)
	return t, true
}

// Next is the next scheduled fire time, before jitter. Before Start it is
// the next one after now; it is zero without a Spec, when the spec has no
// further time, and once the scheduler has stopped.
func (s *Scheduler) Next() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed || s.sched.Schedule == nil:
		return time.Time{}
	case s.nextSet:
		return s.next
	}
	return s.sched.next(s.clock.Now())
}

func (s *Scheduler) setNext(n time.Time) {
	s.mu.Lock()
	s.next, s.nextSet = n, true
	s.mu.Unlock()
}

// Shutdown stops the scheduler: no more fires, triggers are rejected, and
// the pending coalesced run is dropped (EventDropped). It then waits up to
// grace (by the Clock) for the active run to return, cancels the run's
// context, and returns once run has returned and Start's loop has stopped,
// so nothing touches State afterwards. grace <= 0 cancels at once. It may
// be called more than once, with or without Start.
func (s *Scheduler) Shutdown(grace time.Duration) {
	s.emit(s.close(true)...)
	idle := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(idle)
	}()
	if grace > 0 {
		t := s.clock.NewTimer(grace)
		select {
		case <-idle:
		case <-t.C():
		}
		t.Stop()
	}
	s.cancelRuns()
	<-idle
	s.mu.Lock()
	done := s.loopDone
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// close stops firing and accepting triggers and drops the pending run; it
// returns the events to emit.
func (s *Scheduler) close(shutdown bool) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown = s.shutdown || shutdown
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stop)
	var evs []Event
	if s.pending != nil {
		evs = append(evs, Event{Kind: EventDropped, Trigger: *s.pending, Err: ErrStopped, Time: s.clock.Now()})
		s.pending = nil
	}
	return evs
}

// emit logs events and hands them to the WithEvents function.
func (s *Scheduler) emit(evs ...Event) {
	for _, e := range evs {
		attrs := []any{"event", e.Kind, "reason", e.Trigger.Reason}
		if !e.Trigger.Time.IsZero() {
			attrs = append(attrs, "scheduled", e.Trigger.Time)
		}
		if e.Trigger.Only != nil {
			attrs = append(attrs, "only", e.Trigger.Only)
		}
		if e.Trigger.Record != 0 {
			attrs = append(attrs, "run", e.Trigger.Record)
		}
		if e.Err != nil {
			attrs = append(attrs, "err", e.Err)
		}
		level := slog.LevelInfo
		switch e.Kind {
		case EventMissedSkipped, EventRejected, EventDropped:
			level = slog.LevelWarn
		case EventPanic, EventRunError, EventStateError:
			level = slog.LevelError
		}
		s.log.Log(context.Background(), level, "scheduler: "+e.Kind, attrs...)
		if s.events != nil {
			s.events(e)
		}
	}
}
