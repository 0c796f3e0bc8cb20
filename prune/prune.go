// Package prune applies [retention] to staging and the record
// (`nightshift prune`, and the daemon after each nightly): the tags of the
// nightly runs beyond retention are deleted from the staging registry, by
// digest as its API requires and only where no kept tag shares the
// digest; never latest, never a tag of a promoted run, never a tag no
// recorded run made. The pruned runs' logs are deleted and their records
// marked pruned.
package prune

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/config"
	"nightshift/registry"
	"nightshift/store"
)

// Registry is the staging registry; *registry.Client is one. Delete's
// error wraps registry.ErrDeleteRefused when the registry does not
// delete.
type Registry interface {
	Tags(ctx context.Context, repo string) ([]string, error)
	Digest(ctx context.Context, ref string) (string, error)
	Delete(ctx context.Context, repo, digest string) error
}

// Why says why a tag is deleted, kept or left alone.
type Why int

// The fates of a tag.
const (
	Beyond    Why = iota // its run is beyond retention: deleted
	Retained             // its run is within retention, or still running
	Promoted             // its run was promoted
	Shared               // its digest is also a kept tag's, which deleting it would delete
	Latest               // latest is never pruned
	Release              // a release tag nightshift promote made in place
	OtherKind            // its run is not a nightly run (an ensure): retention is for nightlies
	Moved                // it no longer points at what its run recorded
	Unknown              // no recorded run made it
	Failed               // its deletion failed
)

// Tag is one tag of a staging repository and its fate.
type Tag struct {
	Image  string
	Tag    string
	Digest string // "" when it was not needed to decide
	Run    uint64 // the night it belongs to; 0 if none
	Why    Why
	Detail string // the reason in words, for Shared, Moved, Failed, ...
}

// Report is what a prune did, or in a dry run would do.
type Report struct {
	Deleted []Tag // deleted, or in a dry run to be deleted
	Kept    []Tag // every tag of a recorded run that stays, and latest and release tags
	Unknown []Tag // tags no recorded run made (and tags that moved): left alone
	Failed  []Tag // deletions that failed
	// Pruned are the runs marked pruned (in a dry run, to be marked): the
	// nightly runs beyond retention and their validation runs.
	Pruned []uint64
	Nights int // nightly runs recorded
	Beyond int // of them beyond retention
}

// Refused is the registry's refusal to delete: nothing was deleted or
// marked pruned, and what to change is said.
type Refused struct {
	Registry string
	Err      error
}

func (e *Refused) Error() string {
	return fmt.Sprintf("nothing was pruned: %v. To prune, enable deletes in the configuration of the registry %s: "+
		"for distribution (docker-registry), `storage: delete: enabled: true` in its config.yml "+
		"(or REGISTRY_STORAGE_DELETE_ENABLED=true), and restart it; its garbage collector "+
		"(registry garbage-collect) then frees the space", e.Err, e.Registry)
}

func (e *Refused) Unwrap() error { return e.Err }

// ErrNoRetention is Prune's refusal without [retention] in the
// configuration.
var ErrNoRetention = errors.New("no [retention] in the configuration: set keep_last and/or keep_days to say which nightly runs to keep")

// Pruner prunes one configuration's staging namespace and records.
type Pruner struct {
	cfg  *config.Config
	db   *store.DB
	reg  Registry
	now  func() time.Time
	log  *slog.Logger
	jobs int
}

// Option configures a Pruner.
type Option func(*Pruner)

// WithClock reads the time from now (tests).
func WithClock(now func() time.Time) Option { return func(p *Pruner) { p.now = now } }

// WithLogger logs through l.
func WithLogger(l *slog.Logger) Option { return func(p *Pruner) { p.log = l } }

// New returns the pruner of cfg's staging namespace, with its records in
// db.
func New(cfg *config.Config, db *store.DB, reg Registry, opts ...Option) *Pruner {
	p := &Pruner{cfg: cfg, db: db, reg: reg, now: time.Now, log: slog.New(slog.DiscardHandler), jobs: 8}
	for _, o := range opts {
		o(p)
	}
	return p
}

// owner is what the record says of one tag of one image.
type owner struct {
	night  uint64
	digest string // what the night pushed; "" if nothing
	why    Why    // Beyond, Retained, Promoted or OtherKind
	detail string
}

// deletion is one manifest to delete, and the tags that go with it.
type deletion struct {
	repo, digest string
	tags         []Tag
}

// Prune applies retention; with dryRun it only reports. The error is for
// what stops it as a whole: no retention configured, the record or the
// registry unreadable, a registry that refuses deletes (*Refused). A
// deletion that fails fails alone (Report.Failed), and its run is not
// marked pruned.
func (p *Pruner) Prune(ctx context.Context, dryRun bool) (*Report, error) {
	if !p.cfg.Retention.Enabled {
		return nil, ErrNoRetention
	}
	h, err := p.db.History(0)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	owners, beyond, err := p.owners(h, rep)
	if err != nil {
		return nil, err
	}
	releases, err := p.releases()
	if err != nil {
		return nil, err
	}

	var dels []*deletion
	for _, image := range p.images(h) {
		ds, err := p.repository(ctx, image, owners, releases, rep)
		if err != nil {
			return nil, err
		}
		dels = append(dels, ds...)
	}
	for _, d := range dels {
		rep.Deleted = append(rep.Deleted, d.tags...)
	}
	if !dryRun && len(dels) > 0 {
		var mu sync.Mutex
		fail := func(d *deletion, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, t := range d.tags {
				t.Why, t.Detail = Failed, err.Error()
				rep.Failed = append(rep.Failed, t)
			}
		}
		// The first deletion alone: a registry that refuses deletes
		// refuses it, and then nothing at all has changed.
		if err := p.reg.Delete(ctx, dels[0].repo, dels[0].digest); errors.Is(err, registry.ErrDeleteRefused) {
			return nil, &Refused{Registry: p.cfg.Staging.Registry, Err: err}
		} else if err != nil {
			fail(dels[0], err)
		}
		p.each(len(dels)-1, func(i int) {
			d := dels[i+1]
			if err := p.reg.Delete(ctx, d.repo, d.digest); err != nil {
				fail(d, err)
			}
		})
		rep.Deleted = slices.DeleteFunc(rep.Deleted, func(t Tag) bool {
			return slices.ContainsFunc(rep.Failed, func(f Tag) bool { return f.Image == t.Image && f.Tag == t.Tag })
		})
	}

	failed := map[uint64]bool{}
	for _, t := range rep.Failed {
		failed[t.Run] = true
	}
	var prune []uint64
	for _, n := range beyond {
		if failed[n.Run.ID] {
			continue
		}
		prune = append(prune, n.Run.ID)
		for _, v := range n.Validations {
			prune = append(prune, v.ID)
		}
	}
	slices.Sort(prune)
	if err := p.markPruned(prune, dryRun, rep); err != nil {
		return rep, err
	}
	sortTags(rep.Deleted, rep.Kept, rep.Unknown, rep.Failed)
	return rep, nil
}

// owners maps image and tag to what the record says of them, and returns
// the nightly nights beyond retention that are not kept for another
// reason; it counts the nights in rep.
func (p *Pruner) owners(h store.History, rep *Report) (map[[2]string]owner, []store.Night, error) {
	ret := p.cfg.Retention
	since := p.now().AddDate(0, 0, -ret.KeepDays)
	owners := map[[2]string]owner{}
	var beyond []store.Night
	for i := range h.Nights {
		n := &h.Nights[i]
		o := owner{night: n.ID(), why: Retained}
		switch {
		case n.Run.Kind != store.KindNightly:
			o.why, o.detail = OtherKind, fmt.Sprintf("run %d is of kind %s: retention is for nightly runs", n.ID(), n.Run.Kind)
		default:
			rep.Nights++
			switch {
			case ret.KeepLast > 0 && rep.Nights <= ret.KeepLast:
				o.detail = fmt.Sprintf("run %d is one of the last %d", n.ID(), ret.KeepLast)
			case ret.KeepDays > 0 && n.Run.Started.After(since):
				o.detail = fmt.Sprintf("run %d started within %d days", n.ID(), ret.KeepDays)
			case n.Running() || !n.Run.Status.Done():
				o.detail = fmt.Sprintf("run %d is %s", n.ID(), n.Status())
			default:
				rec, err := p.db.Run(n.ID())
				if err != nil {
					return nil, nil, err
				}
				rep.Beyond++
				if rec.Promoted() {
					o.why, o.detail = Promoted, fmt.Sprintf("run %d was promoted", n.ID())
				} else {
					o.why = Beyond
					beyond = append(beyond, *n)
				}
			}
		}
		for _, image := range n.Names() {
			im, _ := n.Image(image)
			o := o
			if im.Build != nil {
				o.digest = im.Build.Digest
			}
			if o.digest == "" && im.Check != nil {
				o.digest = im.Check.Digest
			}
			for _, t := range []string{n.Run.Tag, n.Run.Tag + "-validated"} {
				if _, seen := owners[[2]string{image, t}]; !seen { // the newest night with a tag has it
					owners[[2]string{image, t}] = o
				}
			}
		}
	}
	return owners, beyond, nil
}

// releases are the refs that promotions in place made, by ref.
func (p *Pruner) releases() (map[string]store.Release, error) {
	rels, err := p.db.Releases("")
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.Release, len(rels))
	for _, r := range rels {
		out[r.Ref] = r
	}
	return out, nil
}

// images are the staging repositories to look at: every image configured
// or recorded.
func (p *Pruner) images(h store.History) []string {
	set := map[string]bool{}
	for _, img := range p.cfg.Images {
		set[img.Name] = true
	}
	for i := range h.Nights {
		for _, n := range h.Nights[i].Names() {
			set[n] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// repository sorts the tags of image's staging repository into rep, and
// returns the manifests to delete.
func (p *Pruner) repository(ctx context.Context, image string, owners map[[2]string]owner, releases map[string]store.Release, rep *Report) ([]*deletion, error) {
	repo, err := config.ImageRepository(p.cfg.Staging.Registry+"/"+p.cfg.Staging.Namespace, image)
	if err != nil {
		return nil, err
	}
	names, err := p.reg.Tags(ctx, repo.String())
	if err != nil {
		return nil, err
	}
	tags := make([]Tag, len(names))
	candidates := false
	for i, t := range names {
		tags[i] = p.classify(repo, image, t, owners, releases)
		candidates = candidates || tags[i].Why == Beyond
	}
	if !candidates {
		p.file(tags, rep)
		return nil, nil
	}
	// Whether a digest may go depends on every tag on it: read them all.
	errs := make([]error, len(tags))
	p.each(len(tags), func(i int) {
		tags[i].Digest, errs[i] = p.reg.Digest(ctx, repo.Tag(tags[i].Tag).String())
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	kept := map[string]string{} // digest -> a kept tag on it
	for i := range tags {
		t := &tags[i]
		if t.Why == Beyond {
			if o := owners[[2]string{image, t.Tag}]; o.digest != t.Digest {
				t.Why, t.Detail = Moved, fmt.Sprintf("it points at %s, not at %s as run %d recorded", t.Digest, cmp.Or(o.digest, "nothing"), t.Run)
			}
		}
		if t.Why != Beyond {
			kept[t.Digest] = cmp.Or(kept[t.Digest], t.Tag)
		}
	}
	byDigest := map[string]*deletion{}
	var dels []*deletion
	for i := range tags {
		t := &tags[i]
		if t.Why != Beyond {
			continue
		}
		if k, ok := kept[t.Digest]; ok {
			t.Why, t.Detail = Shared, fmt.Sprintf("its digest is also %s's, which is kept", k)
			continue
		}
		d := byDigest[t.Digest]
		if d == nil {
			d = &deletion{repo: repo.String(), digest: t.Digest}
			byDigest[t.Digest] = d
			dels = append(dels, d)
		}
		d.tags = append(d.tags, *t)
	}
	p.file(tags, rep)
	return dels, nil
}

// classify says what the record makes of tag t of image, before digests.
func (p *Pruner) classify(repo name.Repository, image, t string, owners map[[2]string]owner, releases map[string]store.Release) Tag {
	tag := Tag{Image: image, Tag: t}
	if t == "latest" {
		tag.Why = Latest
		return tag
	}
	if rel, ok := releases[repo.Tag(t).String()]; ok {
		tag.Why, tag.Run, tag.Detail = Release, rel.Run, fmt.Sprintf("release tag, promoted from run %d", rel.Run)
		return tag
	}
	o, ok := owners[[2]string{image, t}]
	if !ok {
		tag.Why, tag.Detail = Unknown, "no recorded run made it"
		return tag
	}
	tag.Run, tag.Why, tag.Detail = o.night, o.why, o.detail
	return tag
}

// file adds the tags that are not to be deleted to rep.
func (p *Pruner) file(tags []Tag, rep *Report) {
	for _, t := range tags {
		switch t.Why {
		case Beyond:
		case Unknown, Moved:
			rep.Unknown = append(rep.Unknown, t)
		default:
			rep.Kept = append(rep.Kept, t)
		}
	}
}

// markPruned deletes the logs of runs ids and marks them pruned, or in a
// dry run only reports them.
func (p *Pruner) markPruned(ids []uint64, dryRun bool, rep *Report) error {
	var fresh []uint64
	for _, id := range ids {
		r, err := p.db.Run(id)
		if err != nil {
			return err
		}
		if r.Pruned == nil {
			fresh = append(fresh, id)
		}
	}
	rep.Pruned = fresh
	if dryRun || len(fresh) == 0 {
		return nil
	}
	for _, id := range fresh {
		if err := os.RemoveAll(filepath.Join(p.cfg.Store.Logs, strconv.FormatUint(id, 10))); err != nil {
			return fmt.Errorf("delete the logs of run %d: %w", id, err)
		}
	}
	if err := p.db.MarkPruned(fresh, p.now().UTC()); err != nil {
		return err
	}
	p.log.Info("pruned", "runs", len(fresh), "tags", len(rep.Deleted))
	return nil
}

// each calls f(0..n-1), p.jobs at a time.
func (p *Pruner) each(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, p.jobs)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

func sortTags(lists ...[]Tag) {
	for _, l := range lists {
		slices.SortFunc(l, func(a, b Tag) int {
			return cmp.Or(cmp.Compare(a.Image, b.Image), cmp.Compare(a.Run, b.Run), cmp.Compare(a.Tag, b.Tag))
		})
	}
}
