// Package promote releases a night's images under release tags
// (`nightshift promote`): only those the record shows validated that
// night, unless forced; in place as manifest tags, or into another
// repository or registry by a copy that mounts blobs rather than moving
// them; each target's digest checked against the source's; every
// promotion recorded with its run and announced through the outbox.
package promote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/config"
	"nightshift/notify"
	"nightshift/store"
)

// Registry is what a promotion does in registries; registry.Pair is one.
// Copy reads src in the staging registry and writes dst, a tag in the
// target registry; Tag and Digest act in the target registry.
type Registry interface {
	Copy(ctx context.Context, src, dst string) (string, error)
	Tag(ctx context.Context, ref, tag string) error
	Digest(ctx context.Context, ref string) (string, error)
}

// Request is one promotion, as `nightshift promote` asks for it.
type Request struct {
	From   string   // the tag of the nightly run whose images are promoted
	To     []string // target tags: templates of config.ReleaseData
	Images []string // the images to promote; none: every image of the night
	Force  bool     // promote images the night did not validate, too
	DryRun bool     // say what would be done, and do nothing
	By     string   // who promotes, for the record
}

// UsageError is a request that cannot be carried out as asked: an unknown
// tag or image, a target tag that is no tag.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usage(format string, args ...any) error { return &UsageError{fmt.Errorf(format, args...)} }

// Step is the promotion of one image.
type Step struct {
	Image     string
	Digest    string   // what the night pushed, and what every target must be
	Source    string   // the image in staging, by digest
	Targets   []string // one ref per target tag
	InPlace   bool     // the target repository is the staging one: manifest tags only
	Validated bool     // the night validated it
	Err       error    // why it failed; nil if it was promoted (or, in a dry run, not tried)
}

// Result is what a promotion did, or in a dry run would do.
type Result struct {
	Run     *store.Run // the night's nightly run
	Tags    []string   // the target tags, rendered
	Steps   []Step     // the images promoted or tried, in the night's order
	Refused []store.RefusedImage
	// Promotion is what was recorded with Run; nil in a dry run, and when
	// nothing was promoted.
	Promotion *store.Promotion
}

// Failed reports whether some image asked for was not promoted.
func (r *Result) Failed() bool {
	return len(r.Refused) > 0 || slices.ContainsFunc(r.Steps, func(s Step) bool { return s.Err != nil })
}

// Promoter promotes the images of one configuration's nights.
type Promoter struct {
	cfg    *config.Config
	db     *store.DB
	reg    Registry
	routes []notify.Route
	now    func() time.Time
	log    *slog.Logger
	jobs   int
}

// Option configures a Promoter.
type Option func(*Promoter)

// WithRoutes queues the news of a promotion for the routes that want it.
func WithRoutes(routes []notify.Route) Option { return func(p *Promoter) { p.routes = routes } }

// WithLogger logs through l.
func WithLogger(l *slog.Logger) Option { return func(p *Promoter) { p.log = l } }

// WithClock reads the time from now (tests).
func WithClock(now func() time.Time) Option { return func(p *Promoter) { p.now = now } }

// New returns the promoter of cfg's images, which reads and records in db
// and promotes through reg.
func New(cfg *config.Config, db *store.DB, reg Registry, opts ...Option) *Promoter {
	p := &Promoter{cfg: cfg, db: db, reg: reg, now: time.Now, log: slog.New(slog.DiscardHandler), jobs: 10}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Promote carries out req: it plans from the record (a UsageError when req
// cannot be carried out), stops there for a dry run, else promotes each
// image the gate lets through, several at once, and records and announces
// what was promoted. An image that fails fails alone (Step.Err); the
// error is for what stops the whole promotion.
func (p *Promoter) Promote(ctx context.Context, req Request) (*Result, error) {
	res, err := p.plan(req)
	if err != nil || req.DryRun {
		return res, err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, p.jobs)
	for i := range res.Steps {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s := &res.Steps[i]
			s.Err = p.promote(ctx, s, res.Tags)
			if s.Err != nil {
				p.log.Error("promotion failed", "image", s.Image, "err", s.Err)
			}
		})
	}
	wg.Wait()
	return res, p.record(res, req)
}

// plan reads the night of req.From and decides each image's fate.
func (p *Promoter) plan(req Request) (*Result, error) {
	if len(req.To) == 0 {
		return nil, usage("no target tag: give --to NAME")
	}
	run, err := p.db.NightlyTagged(req.From)
	if errors.Is(err, store.ErrNotFound) {
		return nil, usage("no nightly run has the tag %q (see 'nightshift history')", req.From)
	}
	if err != nil {
		return nil, err
	}
	night, err := p.db.Night(run.ID)
	if err != nil {
		return nil, err
	}
	when := p.now().UTC()
	res := &Result{Run: run}
	for _, t := range req.To {
		tag, err := config.RenderReleaseTag(t, config.NewReleaseData(when, "", run.Tag, run.Commit))
		if err != nil {
			return nil, usage("--to %q: %v", t, err)
		}
		if !slices.Contains(res.Tags, tag) {
			res.Tags = append(res.Tags, tag)
		}
	}
	names := req.Images
	if len(names) == 0 {
		names = night.Names()
	}
	for _, n := range names {
		if _, ok := night.Image(n); !ok {
			return nil, usage("run %d (%s) has no image %q; it has %v", run.ID, run.Tag, n, night.Names())
		}
	}
	for _, n := range night.Names() {
		if !slices.Contains(names, n) {
			continue
		}
		im, _ := night.Image(n)
		s, why, err := p.step(run, &night, &im, res.Tags, req.Force)
		switch {
		case err != nil:
			return nil, err
		case why != "":
			res.Refused = append(res.Refused, store.RefusedImage{Name: n, Reason: why})
		default:
			res.Steps = append(res.Steps, s)
		}
	}
	return res, nil
}

// step decides the promotion of one image of the night: its step, or why
// it is refused.
func (p *Promoter) step(run *store.Run, night *store.Night, im *store.NightImage, tags []string, force bool) (Step, string, error) {
	digest := ""
	if im.Build != nil {
		digest = im.Build.Digest
	}
	if digest == "" && im.Check != nil {
		digest = im.Check.Digest
	}
	if digest == "" {
		return Step{}, fmt.Sprintf("nothing was pushed in night %d (%s)", night.ID(), im.Status()), nil
	}
	validated := im.Validated()
	if !validated && !force {
		return Step{}, fmt.Sprintf("not validated in night %d: %s (--force promotes it anyway)", night.ID(), notValidated(im)), nil
	}
	src, err := p.repository(p.cfg.Staging.Registry, p.cfg.Staging.Namespace, im.Name)
	if err != nil {
		return Step{}, "", err
	}
	last, err := config.RenderPromoteName(p.cfg.Promote.Name, im.Name)
	if err != nil {
		return Step{}, "", usage("promote.name: %v", err)
	}
	dst, err := p.repository(p.cfg.Promote.Registry, p.cfg.Promote.Namespace, last)
	if err != nil {
		return Step{}, "", err
	}
	s := Step{Image: im.Name, Digest: digest, Source: src.Digest(digest).String(), InPlace: src.Name() == dst.Name(), Validated: validated}
	for _, t := range tags {
		if s.InPlace && (t == "latest" || t == run.Tag || t == run.Tag+"-validated") {
			return Step{}, "", usage("--to %s: that tag of %s is nightshift's own in staging; promote to another tag, or to another namespace ([promote] namespace)", t, src.Name())
		}
		s.Targets = append(s.Targets, dst.Tag(t).String())
	}
	return s, "", nil
}

func (p *Promoter) repository(host, namespace, image string) (name.Repository, error) {
	return config.ImageRepository(host+"/"+namespace, image)
}

// notValidated says why the night did not validate im.
func notValidated(im *store.NightImage) string {
	switch v := im.Validation(); v {
	case "":
		return "the night validated nothing of it"
	case store.Failed:
		return "its validation failed"
	case store.Skipped:
		return "it had nothing to test"
	default:
		return "its validation is " + string(v)
	}
}

// promote carries out s: tags in place, or a copy and tags; then every
// target must be s.Digest.
func (p *Promoter) promote(ctx context.Context, s *Step, tags []string) error {
	from := s.Source
	if !s.InPlace {
		got, err := p.reg.Copy(ctx, s.Source, s.Targets[0])
		if err != nil {
			return err
		}
		if got != s.Digest {
			return fmt.Errorf("copied %s, which the registry says is %s, not %s as the night recorded", s.Source, got, s.Digest)
		}
		ref, err := name.NewTag(s.Targets[0], name.WeakValidation)
		if err != nil {
			return err
		}
		from = ref.Context().Digest(s.Digest).String()
		tags = tags[1:]
	}
	for _, t := range tags {
		if err := p.reg.Tag(ctx, from, t); err != nil {
			return err
		}
	}
	for _, target := range s.Targets {
		got, err := p.reg.Digest(ctx, target)
		if err != nil {
			return fmt.Errorf("verify %s: %w", target, err)
		}
		if got != s.Digest {
			return fmt.Errorf("%s is %s after the promotion, not %s", target, got, s.Digest)
		}
	}
	return nil
}

// record writes what was promoted with the run, and queues the news, in
// one transaction.
func (p *Promoter) record(res *Result, req Request) error {
	pr := store.Promotion{When: p.now().UTC(), By: req.By, Tags: res.Tags, Forced: req.Force, Refused: res.Refused}
	for _, s := range res.Steps {
		if s.Err != nil {
			pr.Refused = append(pr.Refused, store.RefusedImage{Name: s.Image, Reason: s.Err.Error()})
			continue
		}
		ref, err := name.NewTag(s.Targets[0], name.WeakValidation)
		if err != nil {
			return err
		}
		pr.Images = append(pr.Images, store.PromotedImage{Name: s.Image, Digest: s.Digest, Ref: s.Targets[0],
			Repository: ref.Context().Name(), Validated: s.Validated})
	}
	if len(pr.Images) == 0 {
		return nil
	}
	msgs, err := notify.Promoted(p.routes, res.Run, pr, p.cfg.Promote.Registry+"/"+p.cfg.Promote.Namespace, p.cfg.HTTP.PublicURL)
	if err != nil {
		return err
	}
	run, err := p.db.Promote(res.Run.ID, pr, msgs...)
	if err != nil {
		return fmt.Errorf("record the promotion with run %d: %w", res.Run.ID, err)
	}
	res.Run, res.Promotion = run, &pr
	return nil
}
