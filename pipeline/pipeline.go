// Package pipeline owns nightshift's runs. A Pipeline is made once from the
// configuration and the real components (engine, registry, store,
// notifiers); its methods carry out a nightly and a validation of pushed
// images, recording every transition and queueing the news, and deliver
// what is queued. Every decision about an image's fate after its push
// (latest, tests, the Jenkins job, -validated) is made here.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"nightshift/config"
	"nightshift/notify"
	"nightshift/packages"
	"nightshift/rebuild"
	"nightshift/store"
	"nightshift/validate/structure"
)

// Unavailable wraps an error of infrastructure that a run needs before any
// work begins (engine, registry, store, the source's remote).
type Unavailable struct{ Err error }

func (u *Unavailable) Error() string { return u.Err.Error() }
func (u *Unavailable) Unwrap() error { return u.Err }

// UsageError is a request that cannot be carried out as asked (an unknown
// image in --only, say).
type UsageError struct{ Err error }

func (u *UsageError) Error() string { return u.Err.Error() }
func (u *UsageError) Unwrap() error { return u.Err }

// Engine builds, pushes, pulls and runs test containers; *engine.Engine is
// one.
type Engine interface {
	rebuild.Engine
	structure.Driver
	// Ping checks that the engine answers.
	Ping(ctx context.Context) error
}

// Registry is the staging registry; *registry.Client is one.
type Registry interface {
	rebuild.Registry
	// Ping checks that the registry answers.
	Ping(ctx context.Context) error
	// CheckPush checks that the credentials may push to repo.
	CheckPush(ctx context.Context, repo string) error
	// Lookup returns the digest ref has in the registry, and whether it is
	// there at all (a 404 is found false, not an error).
	Lookup(ctx context.Context, ref string) (digest string, found bool, err error)
	// History reads an image's layers and the steps that made them.
	packages.Registry
}

// Pipeline carries out runs of one configuration.
type Pipeline struct {
	cfg       *config.Config
	db        *store.DB
	engine    Engine
	registry  Registry
	notifiers map[string]notify.Notifier
	routes    []notify.Route
	log       *slog.Logger
	now       func() time.Time
	// openDB opens the store when a verb needs it and db is nil (an
	// ensure records only when it builds); claimSettle is ensure's pause
	// before reading back a tag it pushed (tests shorten it).
	openDB      func() (*store.DB, error)
	claimSettle time.Duration
	ownDB       bool

	// testEngine, when set, runs every image's tests ([validate] engine).
	testEngine Engine
	// builders are the build hosts; pooled places builds on them.
	builders []Builder
	poolOnce sync.Once
	pooled   *rebuild.Pool

	// Tests replace the images' tests and the Jenkins job.
	tester  func(*Prepared) tester
	jenkins func(*rebuild.Plan) jenkinsJob
}

// Option configures a Pipeline.
type Option func(*Pipeline)

// WithEngine builds, pushes and tests through e.
func WithEngine(e Engine) Option { return func(p *Pipeline) { p.engine = e } }

// WithRegistry tags and verifies in r, the staging registry.
func WithRegistry(r Registry) Option { return func(p *Pipeline) { p.registry = r } }

// WithNotifiers delivers through ns, each message queued for the routes
// whose policy wants it.
func WithNotifiers(ns map[string]notify.Notifier, routes []notify.Route) Option {
	return func(p *Pipeline) { p.notifiers, p.routes = ns, routes }
}

// WithStoreOpener opens the store with open when a verb first needs it,
// for a pipeline made without one: an ensure that finds its image never
// takes the store's lock. Close closes a store opened so.
func WithStoreOpener(open func() (*store.DB, error)) Option {
	return func(p *Pipeline) { p.openDB = open }
}

// store returns the record store, opening it when needed.
func (p *Pipeline) store() (*store.DB, error) {
	if p.db == nil {
		if p.openDB == nil {
			return nil, errors.New("nightshift: no record store")
		}
		db, err := p.openDB()
		if err != nil {
			return nil, err
		}
		p.db, p.ownDB = db, true
	}
	return p.db, nil
}

// Close closes what the pipeline opened itself: a store from its opener.
func (p *Pipeline) Close() error {
	if p.ownDB {
		p.ownDB = false
		return p.db.Close()
	}
	return nil
}

// settle is ensure's pause before reading back a tag it pushed.
func (p *Pipeline) settle() time.Duration {
	if p.claimSettle > 0 {
		return p.claimSettle
	}
	return claimSettle
}

// WithLogger logs through l.
func WithLogger(l *slog.Logger) Option { return func(p *Pipeline) { p.log = l } }

// New returns the pipeline of cfg, recording in db. A run needs an engine
// and a registry (WithEngine, WithRegistry); reading and delivering do not.
func New(cfg *config.Config, db *store.DB, opts ...Option) *Pipeline {
	p := &Pipeline{cfg: cfg, db: db, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Config is the configuration the pipeline carries out.
func (p *Pipeline) Config() *config.Config { return p.cfg }

// Repo is where the staging images live: <registry>/<namespace>.
func (p *Pipeline) Repo() string { return p.cfg.Staging.Registry + "/" + p.cfg.Staging.Namespace }

// Recover records the runs that a stopped nightshift left running as
// interrupted, and queues the news. It returns them.
func (p *Pipeline) Recover() ([]store.Run, error) {
	runs, err := p.db.Interrupt(p.now().UTC(), "nightshift stopped during the run", p.outbox())
	for _, r := range runs {
		p.log.Warn("run was left running by a stopped nightshift; recorded as interrupted", "run", r.ID, "tag", r.Tag)
	}
	if err != nil {
		return runs, fmt.Errorf("marking crashed runs interrupted: %w", err)
	}
	return runs, nil
}

// QueueNews queues, for every notifier that wants it, the news that a run
// could not start, and why.
func (p *Pipeline) QueueNews(reason string) error {
	now := p.now().UTC()
	msgs, err := notify.NotStarted(p.routes, reason, p.Repo(), p.cfg.HTTP.PublicURL, now)
	if err != nil {
		return err
	}
	return p.db.Enqueue(now, msgs...)
}

// outbox is what a run queues for people when it ends.
func (p *Pipeline) outbox() func(store.Finish) ([]store.Message, error) {
	return notify.Messages(p.routes, p.Repo(), p.cfg.HTTP.PublicURL)
}

// Deliverer sends what the outbox holds; eager tries every pending message
// at once, whatever its backoff says (a person asked).
func (p *Pipeline) Deliverer(eager bool) *notify.Deliverer {
	return &notify.Deliverer{DB: p.db, Notifiers: p.notifiers, GiveUpAfter: p.cfg.Notify.GiveUpAfter.Duration, Log: p.log, Eager: eager}
}

// Flush delivers what is pending, waiting at most [notify] flush_timeout,
// and returns how many messages are left for later.
func (p *Pipeline) Flush(ctx context.Context, eager bool) (int, error) {
	return p.Deliverer(eager).Flush(ctx, p.cfg.Notify.FlushTimeout.Duration)
}

// notStarted queues the news that a run could not start, unless it was
// cancelled (Ctrl-C, the daemon stopping): then nothing was unavailable,
// and nobody needs telling.
func (p *Pipeline) notStarted(ctx context.Context, why error) {
	if ctx.Err() != nil {
		return
	}
	if err := p.QueueNews(why.Error()); err != nil {
		p.log.Error("queueing the notification that the run could not start", "err", err)
	}
}

// reach checks that the engine and the registry answer, within
// connectTimeout each, and that the registry takes pushes to repo, within
// checkTimeout: an upload started and cancelled is a few requests, each
// retried when it fails for a passing reason.
func (p *Pipeline) reach(ctx context.Context, repo string) error {
	if p.engine == nil || p.registry == nil {
		return errors.New("nightshift: a run needs an engine and a registry")
	}
	within := func(d time.Duration, f func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return f(ctx)
	}
	if len(p.builders) > 0 {
		if err := p.reachBuilders(ctx); err != nil {
			return fmt.Errorf("%w\nno [[builder]] answers: start their Docker Engines, or check their hosts", err)
		}
	} else if err := within(connectTimeout, p.engine.Ping); err != nil {
		return fmt.Errorf("%w\nStart the Docker Engine, or point DOCKER_HOST at one", err)
	}
	if err := within(connectTimeout, p.registry.Ping); err != nil {
		return err
	}
	return within(checkTimeout, func(ctx context.Context) error { return p.registry.CheckPush(ctx, repo) })
}

const (
	// connectTimeout bounds how long the engine and the registry may take
	// to answer before a run.
	connectTimeout = 10 * time.Second
	// checkTimeout bounds the check that the registry takes pushes.
	checkTimeout = time.Minute
)
