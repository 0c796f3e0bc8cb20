package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"nightshift/rebuild"
	"nightshift/store"
)

// Builder is a build host of the pool: an engine images build on (and,
// once built there, are tested on), with the labels it offers.
type Builder struct {
	Name   string
	Labels []string
	Jobs   int
	// Engine is the builder's Docker Engine; nil for one that is no engine
	// (Builds).
	Engine Engine
	// Builds is a builder that is no engine, a standalone buildkitd: it
	// builds and pushes, and runs nothing, so what it built is pulled and
	// run on the pipeline's engine.
	Builds BuildNode
	// Legacy builds every image with the engine's classic builder.
	Legacy bool
}

// BuildNode builds and pushes; *engine.Daemon is one.
type BuildNode interface {
	rebuild.Engine
	Ping(ctx context.Context) error
}

// node is what b builds with.
func (b *Builder) node() BuildNode {
	if b.Engine != nil {
		return b.Engine
	}
	return b.Builds
}

// WithBuilders builds on bs, each image on one with its runs_on labels;
// without it the pipeline's engine builds everything. The first builder
// is the engine for what is not placed by labels (ensure).
func WithBuilders(bs ...Builder) Option {
	return func(p *Pipeline) {
		p.builders = bs
		if len(bs) > 0 && p.engine == nil {
			p.engine = bs[0].Engine
		}
	}
}

// pool is the pipeline's builders as the runner places builds on them,
// made once, so that its figures (busy slots, builds) span runs.
func (p *Pipeline) pool() *rebuild.Pool {
	p.poolOnce.Do(func() {
		var nodes []rebuild.Builder
		for _, b := range p.builders {
			nodes = append(nodes, rebuild.Builder{Name: b.Name, Labels: b.Labels, Jobs: b.Jobs, Engine: b.node(), Legacy: b.Legacy})
		}
		if len(nodes) == 0 {
			nodes = []rebuild.Builder{{Name: rebuild.DefaultBuilder, Engine: p.engine, Jobs: p.cfg.Build.Jobs}}
		}
		p.pooled = rebuild.NewPool(nodes...)
	})
	return p.pooled
}

// BuilderStats are the figures of the pool's builders: busy slots, builds
// started since the pipeline was made, and whether each answered at the
// start of the last run.
func (p *Pipeline) BuilderStats() []rebuild.BuilderStats { return p.pool().Stats() }

// WithTestEngine tests images and reads their packages on e ([validate]
// engine) instead of the engine of the builder that built each.
func WithTestEngine(e Engine) Option { return func(p *Pipeline) { p.testEngine = e } }

// runsOn is the engine that runs what the builder named name built (its
// tests, its info commands), and whether that engine must pull it first:
// [validate] engine when set, else the builder's own engine, else (a
// buildkitd, which runs nothing) the pipeline's.
func (p *Pipeline) runsOn(name string) (e Engine, pull bool) {
	if p.testEngine != nil {
		return p.testEngine, true
	}
	for _, b := range p.builders {
		if b.Name == name {
			if b.Engine != nil {
				return b.Engine, false
			}
			return p.engine, true
		}
	}
	return p.engine, false
}

// reachBuilders pings every builder at once and marks those that do not
// answer down for this run, logging why. It is an error only when none
// answers.
func (p *Pipeline) reachBuilders(ctx context.Context) error {
	if len(p.builders) == 0 {
		return nil
	}
	errs := make([]error, len(p.builders))
	var wg sync.WaitGroup
	for i, b := range p.builders {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, connectTimeout)
			defer cancel()
			errs[i] = b.node().Ping(ctx)
		})
	}
	wg.Wait()
	pool := p.pool()
	var down []string
	for i, b := range p.builders {
		pool.SetDown(b.Name, errs[i])
		if errs[i] != nil {
			p.log.Warn(fmt.Sprintf("builder %s unreachable: %v", b.Name, errs[i]), "builder", b.Name)
			down = append(down, fmt.Sprintf("builder %s unreachable: %v", b.Name, errs[i]))
		}
	}
	if len(down) == len(p.builders) {
		return errors.New(strings.Join(down, "\n"))
	}
	return nil
}

// onBuilders tests each image on the engine of the builder that built (or
// pulled) it: a builder that is an engine can run what it built.
type onBuilders struct {
	x    *execution
	make func(Engine) tester

	mu sync.Mutex
	on map[string]tester
}

func (t *onBuilders) Test(ctx context.Context, s *rebuild.Step, image string, log io.Writer) *store.Validation {
	builder := t.x.builderOf(s.Name)
	t.mu.Lock()
	if t.on == nil {
		t.on = map[string]tester{}
	}
	tt, ok := t.on[builder]
	if !ok {
		e, _ := t.x.p.runsOn(builder)
		tt = t.make(e)
		t.on[builder] = tt
	}
	t.mu.Unlock()
	return tt.Test(ctx, s, image, log)
}

// builderOf is the builder image runs on in this run; "" before it starts.
func (x *execution) builderOf(image string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.builtOn[image]
}

// sweep removes, on every engine the pipeline uses, the containers a
// killed nightshift of this host left (tests, info commands): a run's own
// containers are removed as it goes, but a process killed mid-run, or
// whose engine went away, removes nothing. What fails is logged.
func (p *Pipeline) sweep(ctx context.Context) {
	type orphans interface {
		RemoveOrphans(ctx context.Context) (int, error)
	}
	engines := []any{p.engine, p.testEngine}
	for _, b := range p.builders {
		engines = append(engines, b.Engine)
	}
	seen := map[any]bool{}
	for _, e := range engines {
		o, ok := e.(orphans)
		if !ok || seen[e] {
			continue
		}
		seen[e] = true
		n, err := o.RemoveOrphans(ctx)
		if err != nil {
			p.log.Warn("removing the containers a stopped nightshift left", "err", err)
		}
		if n > 0 {
			p.log.Info("removed the containers a stopped nightshift left", "containers", n)
		}
	}
}
