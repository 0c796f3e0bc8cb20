package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nightshift/config"
	"nightshift/pipeline"
	"nightshift/scheduler"
	"nightshift/store"
	"nightshift/web"
)

func (c *cli) daemon(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("daemon", "[flags]", `Runs nightshift on a build host: nightly runs on [schedule] cron (a night
missed while down is made up for, or skipped, by [schedule] missed), the HTTP
API, dashboard and /metrics on [http] listen, and delivery of notifications.

Runs are also triggered through the API (POST /api/v1/runs, 'nightshift
trigger'), with a bearer token of [http] token_file (unnamed) or of
[http] tokens_file ("name token" a line: the run records the name as
triggered_by). A trigger answers with the id of its run, recorded at once
as queued: one run at a time, so a trigger during a run waits in the one
pending run ([schedule] overlap = "coalesce", whose triggers share its id)
or is refused with 409 and no record ("reject").

One daemon per database: a second one exits 3. SIGTERM or SIGINT stop it,
letting the current run finish within [schedule] shutdown_grace; the
pending run, if any, is then recorded interrupted, never started.
`)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	s, code := c.openSetup(*cfgPath, c.log)
	if s == nil {
		return code
	}
	defer s.close()
	cfg, db := s.cfg, s.db
	d := &daemonState{log: c.log, db: db, p: s.p, kick: make(chan struct{}, 1)}
	c.recover(s.p)

	sched, err := scheduler.New(scheduler.Config{
		Spec: cfg.Schedule.Cron, Jitter: cfg.Schedule.Jitter.Duration, Missed: cfg.Schedule.Missed,
		Grace: cfg.Schedule.Grace.Duration, Overlap: cfg.Schedule.Overlap,
	}, db, d.run, scheduler.WithLogger(c.log), scheduler.WithEvents(d.event))
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %s: schedule.cron: %v\n", cfg.File, err)
		return exitUsage
	}
	d.sched = sched

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(buildersCollector{s.p})
	handler, err := web.New(web.Config{
		DB: db, Control: d, Logs: cfg.Store.Logs, Tokens: apiTokens(cfg.HTTP),
		PublicURL: cfg.HTTP.PublicURL, Log: c.log, Registry: metrics, Validates: cfg.Validates(),
		Consistent: cfg.Packages.Consistent,
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitUsage
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %s: http.listen: %v\n", cfg.File, err)
		return exitUnavailable
	}
	// Requests live under serveCtx, so that log streams being followed end
	// when the daemon stops instead of holding the shutdown.
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return serveCtx }}
	go srv.Serve(ln)
	c.log.Info("daemon started", "listen", ln.Addr().String(), "schedule", cfg.Schedule.Cron, "next", sched.Next())

	var wg sync.WaitGroup
	deliverCtx, stopDelivery := context.WithCancel(context.Background())
	wg.Go(func() { d.deliver(deliverCtx) })
	runCtx, stopRuns := context.WithCancel(context.Background())
	schedDone := make(chan error, 1)
	go func() { schedDone <- sched.Start(runCtx) }()

	<-ctx.Done()
	c.log.Info("stopping: no new runs; the current one may finish", "grace", cfg.Schedule.ShutdownGrace.Duration)
	stopServing()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if srv.Shutdown(shutdownCtx) != nil { // no new triggers
		srv.Close()
	}
	cancel()
	sched.Shutdown(cfg.Schedule.ShutdownGrace.Duration)
	stopRuns()
	if err := <-schedDone; err != nil && !errors.Is(err, context.Canceled) {
		c.log.Error("scheduler", "err", err)
	}
	stopDelivery()
	wg.Wait()
	c.log.Info("daemon stopped")
	return exitOK
}

// daemonState is what the daemon's runs, API and deliveries share.
type daemonState struct {
	log   *slog.Logger
	db    *store.DB
	p     *pipeline.Pipeline
	sched *scheduler.Scheduler
	kick  chan struct{} // wakes the deliverer when a run has queued messages

	mu      sync.Mutex
	current uint64 // record id of the run going on, 0 if none
	cancel  context.CancelCauseFunc
}

// apiTokens are the tokens API writes accept: the unnamed one of
// token_file, then the named ones of tokens_file (which win, should one be
// the same).
func apiTokens(h config.HTTP) []web.Token {
	var ts []web.Token
	if tok := h.Token.Reveal(); tok != "" {
		ts = append(ts, web.Token{Secret: tok})
	}
	for _, t := range h.Tokens {
		ts = append(ts, web.Token{Name: t.Name, Secret: t.Token.Reveal()})
	}
	return ts
}

// run is the scheduler's run function: one nightly. A triggered run takes
// over the queued record its trigger made (t.Record), and can be cancelled
// by its id from the start.
func (d *daemonState) run(ctx context.Context, t scheduler.Trigger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d.mu.Lock()
	d.current, d.cancel = t.Record, cancel
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.current, d.cancel = 0, nil
		d.mu.Unlock()
		d.wakeDelivery()
	}()
	defer func() {
		// A panic while the run starts ends its record (the queued one, or
		// the one made) as interrupted, and no other: a run waiting behind
		// it keeps its own. The scheduler still hears of the panic.
		if v := recover(); v != nil {
			d.mu.Lock()
			id := d.current
			d.mu.Unlock()
			if id != 0 {
				if _, err := d.p.Abandon(id, fmt.Sprintf("nightshift failed: panic: %v", v)); err != nil {
					d.log.Error("recording the run that panicked", "run", id, "err", err)
				}
			}
			panic(v)
		}
	}()
	// The pipeline only queues news; d.deliver, woken by the deferred call
	// above, sends it.
	run, err := d.p.Nightly(ctx, pipeline.Request{Selection: pipeline.Selection{Only: t.Only}, Trigger: t.Reason, Unattended: true, Record: t.Record})
	if err != nil {
		if t.Record != 0 {
			d.log.Error("the run could not start", "run", t.Record, "err", err)
		} else {
			d.log.Error("the run could not start", "err", err)
		}
		return fmt.Errorf("the run could not start: %w", err)
	}
	d.mu.Lock()
	d.current = run.ID()
	d.mu.Unlock()
	if _, err := run.Wait(); err != nil {
		d.log.Error("recording the run", "run", run.ID(), "err", err)
	}
	d.prune(ctx) // [retention], as 'nightshift prune' applies it
	return nil
}

// event acts on what the scheduler reports (which it logs itself): people
// are told of a night skipped, a run that panicked is recorded, and the
// queued record of a pending run dropped at shutdown is ended.
func (d *daemonState) event(e scheduler.Event) {
	switch e.Kind {
	case scheduler.EventDropped:
		if e.Trigger.Record != 0 {
			d.endQueued(e.Trigger.Record, "the daemon stopped before the run started")
		}
		return
	case scheduler.EventMissedSkipped:
		reason := fmt.Sprintf("the run scheduled for %s was missed while nightshift was down, and skipped ([schedule] missed)", e.Time.Format(time.RFC3339))
		if err := d.p.QueueNews(reason); err != nil {
			d.log.Error("queueing a notification", "err", err)
		}
	case scheduler.EventPanic:
		// The run's own record was ended as it unwound (daemonState.run).
	default:
		return
	}
	d.wakeDelivery()
}

// deliver sends the outbox until ctx ends: when a message is due, when a
// run has queued one, and once a minute in any case. It is the daemon's
// only delivery path: nothing else in the daemon sends, so no message is
// sent twice by two senders.
func (d *daemonState) deliver(ctx context.Context) {
	del := d.p.Deliverer(false)
	for {
		next, err := del.Deliver(ctx)
		if err != nil {
			d.log.Error("delivering notifications", "err", err)
		}
		wait := time.Minute
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

func (d *daemonState) wakeDelivery() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Trigger starts a run now, or queues it behind the current one, as the
// scheduler's overlap policy says. Every accepted trigger has a record at
// once, queued until its run starts, and answers with its id: a trigger
// coalesced into the pending run shares that run's record (and adds its
// token's name to triggered_by), because the pending run is the one that
// carries it out, and the one whose end its caller waits for. A rejected
// trigger makes no record.
func (d *daemonState) Trigger(reason string, only []string, by string) (web.Triggered, error) {
	if reason == "" {
		reason = scheduler.ReasonAPI
	}
	now := time.Now().UTC()
	record := func(joined uint64) (uint64, error) {
		if joined != 0 {
			return joined, d.addTriggerer(joined, by)
		}
		r := &store.Run{Status: store.Queued, Trigger: reason, TriggeredBy: by, Started: now}
		if err := d.db.CreateRun(r); err != nil {
			return 0, err
		}
		return r.ID, nil
	}
	out, id, err := d.sched.TriggerRecorded(scheduler.Trigger{Reason: reason, Only: only, Time: now}, record)
	switch {
	case errors.Is(err, scheduler.ErrStopped):
		return web.Triggered{Outcome: string(out)}, errors.New("the daemon is stopping: it starts no more runs")
	case err != nil:
		return web.Triggered{}, err
	}
	return web.Triggered{Outcome: string(out), ID: id}, nil
}

// addTriggerer adds by to the names of who triggered queued run id.
func (d *daemonState) addTriggerer(id uint64, by string) error {
	if by == "" {
		return nil
	}
	return d.db.UpdateRun(id, func(r *store.Run) error {
		names := strings.Split(r.TriggeredBy, ", ")
		if r.TriggeredBy == "" {
			names = nil
		}
		if !slices.Contains(names, by) {
			r.TriggeredBy = strings.Join(append(names, by), ", ")
		}
		return nil
	})
}

// endQueued ends the queued record of a run that will not start, as
// interrupted: it never started, so it is not news.
func (d *daemonState) endQueued(id uint64, why string) {
	now := time.Now().UTC()
	_, err := d.db.FinishRun(id, func(r *store.Run) error {
		if r.Status == store.Queued {
			r.MarkInterrupted(now, why)
		}
		return nil
	}, nil)
	if err != nil {
		d.log.Error("recording that a queued run will not start", "run", id, "err", err)
	}
}

// Cancel cancels run id if it is the one going on; by names the API token
// that asked, for the record.
func (d *daemonState) Cancel(id uint64, by string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == id && d.cancel != nil {
		cause := "cancelled through the API"
		if by != "" {
			cause += " by " + by
		}
		d.cancel(errors.New(cause))
		return nil
	}
	r, err := d.db.Run(id)
	if err != nil {
		return err
	}
	if r.Status == store.Queued {
		return fmt.Errorf("run %d is queued: it can be cancelled once it has started", id)
	}
	return fmt.Errorf("run %d is not running", id)
}

// Next is the schedule's next fire time.
func (d *daemonState) Next() time.Time { return d.sched.Next() }

var _ web.Control = (*daemonState)(nil)
