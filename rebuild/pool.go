package rebuild

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Builder is one build host of a pool: an engine with labels, building up to
// Jobs images at once.
type Builder struct {
	Name   string
	Labels []string
	Jobs   int
	Engine Engine
	// Legacy builds every image with the engine's classic builder.
	Legacy bool
	// Down is why the node cannot build in this run (it did not answer at
	// the start); nil when it can.
	Down error
}

// has reports whether n has every label of want.
func (n *Builder) has(want []string) bool {
	for _, w := range want {
		if !slices.Contains(n.Labels, w) {
			return false
		}
	}
	return true
}

// Pool places builds on nodes: each on a node with all of the image's
// labels and a free slot. It is safe for concurrent use, and outlives runs
// (the daemon's metrics read it).
type Pool struct {
	mu    sync.Mutex
	nodes []*pooled
}

type pooled struct {
	Builder
	busy   int
	builds int
}

// NewPool makes a pool of nodes, in order of preference on a tie.
func NewPool(nodes ...Builder) *Pool {
	p := &Pool{}
	for _, n := range nodes {
		n.Jobs = max(n.Jobs, 1)
		p.nodes = append(p.nodes, &pooled{Builder: n})
	}
	return p
}

// UnplaceableError says why no node of the pool can build an image.
type UnplaceableError struct {
	Labels []string
	// Down are the nodes that have the labels but cannot build.
	Down []Builder
}

func (e *UnplaceableError) Error() string {
	if len(e.Down) == 0 {
		return fmt.Sprintf("no builder has all of the labels %s", strings.Join(e.Labels, ", "))
	}
	var why []string
	for _, n := range e.Down {
		why = append(why, fmt.Sprintf("builder %s unreachable: %v", n.Name, n.Down))
	}
	return strings.Join(why, "; ")
}

// Place takes a slot for an image that needs labels, on a node that is up
// and has them all: prefer when it is one of those and has a slot free,
// else the least busy (by the share of its slots in use; the earlier
// node on a tie). It returns nil and a nil error when every such node is
// busy (try again once a slot is freed), and an *UnplaceableError when no
// node can ever take the image. The caller gives the slot back with
// Release.
func (p *Pool) Place(labels []string, prefer string) (*Builder, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var capable []*pooled
	var down []Builder
	for _, n := range p.nodes {
		switch {
		case !n.has(labels):
		case n.Down != nil:
			down = append(down, n.Builder)
		default:
			capable = append(capable, n)
		}
	}
	if len(capable) == 0 {
		return nil, &UnplaceableError{Labels: labels, Down: down}
	}
	var best *pooled
	for _, n := range capable {
		if n.busy >= n.Jobs {
			continue
		}
		if n.Name == prefer {
			best = n
			break
		}
		if best == nil || load(n) < load(best) {
			best = n
		}
	}
	if best == nil {
		return nil, nil
	}
	best.busy++
	best.builds++
	node := best.Builder
	return &node, nil
}

// load is the share of n's slots in use.
func load(n *pooled) float64 { return float64(n.busy) / float64(n.Jobs) }

// Release gives back a slot Place took on the node named name.
func (p *Pool) Release(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.nodes {
		if n.Name == name && n.busy > 0 {
			n.busy--
		}
	}
}

// MarkDown takes the node named name out of the pool for why: it stopped
// answering. Builds on it go on (and fail on their own); no new one starts.
func (p *Pool) MarkDown(name string, why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.nodes {
		if n.Name == name && n.Down == nil {
			n.Down = why
		}
	}
}

// BuilderStats is a node's share of the work so far.
type BuilderStats struct {
	Name   string
	Jobs   int
	Busy   int // slots in use now
	Builds int // builds started on it since the pool was made
	Up     bool
}

// Stats returns every node's figures, in the pool's order.
func (p *Pool) Stats() []BuilderStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []BuilderStats
	for _, n := range p.nodes {
		out = append(out, BuilderStats{Name: n.Name, Jobs: n.Jobs, Busy: n.busy, Builds: n.builds, Up: n.Down == nil})
	}
	return out
}

// SetDown marks the builder named name down for why, or up again with a
// nil why: what a run found at its start.
func (p *Pool) SetDown(name string, why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.nodes {
		if n.Name == name {
			n.Down = why
		}
	}
}
