package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nightshift/pipeline"
	"nightshift/scheduler"
	"nightshift/store"
	"nightshift/web"
)

func (c *cli) daemon(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("daemon", "[flags]", `Runs nightshift on a build host: nightly runs on [schedule] cron (a night
missed while down is made up for, or skipped, by [schedule] missed), the HTTP
API, dashboard and /metrics on [http] listen, and delivery of notifications.
One daemon per database: a second one exits 3. SIGTERM or SIGINT stop it,
letting the current run finish within [schedule] shutdown_grace.
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
	handler, err := web.New(web.Config{
		DB: db, Control: d, Logs: cfg.Store.Logs, Token: cfg.HTTP.Token.Reveal(),
		PublicURL: cfg.HTTP.PublicURL, Log: c.log, Registry: metrics, Validates: cfg.Validates(),
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

// run is the scheduler's run function: one nightly.
func (d *daemonState) run(ctx context.Context, t scheduler.Trigger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d.mu.Lock()
	d.cancel = cancel
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.current, d.cancel = 0, nil
		d.mu.Unlock()
		d.wakeDelivery()
	}()
	// The pipeline only queues news; d.deliver, woken by the deferred call
	// above, sends it.
	run, err := d.p.Nightly(ctx, pipeline.Request{Selection: pipeline.Selection{Only: t.Only}, Trigger: t.Reason, Unattended: true})
	if err != nil {
		d.log.Error("the run could not start", "err", err)
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
// are told of a night skipped, and a run that panicked is recorded.
func (d *daemonState) event(e scheduler.Event) {
	switch e.Kind {
	case scheduler.EventMissedSkipped:
		reason := fmt.Sprintf("the run scheduled for %s was missed while nightshift was down, and skipped ([schedule] missed)", e.Time.Format(time.RFC3339))
		if err := d.p.QueueNews(reason); err != nil {
			d.log.Error("queueing a notification", "err", err)
		}
	case scheduler.EventPanic:
		if _, err := d.p.Recover(); err != nil {
			d.log.Error(err.Error())
		}
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

// Trigger starts a run now, or queues it behind the current one.
func (d *daemonState) Trigger(reason string, only []string) (string, error) {
	if reason == "" {
		reason = "api"
	}
	return string(d.sched.Trigger(scheduler.Trigger{Reason: reason, Only: only, Time: time.Now().UTC()})), nil
}

// Cancel cancels run id if it is the one going on.
func (d *daemonState) Cancel(id uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == id && d.cancel != nil {
		d.cancel(errors.New("cancelled through the API"))
		return nil
	}
	if _, err := d.db.Run(id); err != nil {
		return err
	}
	return fmt.Errorf("run %d is not running", id)
}

// Next is the schedule's next fire time.
func (d *daemonState) Next() time.Time { return d.sched.Next() }

var _ web.Control = (*daemonState)(nil)
