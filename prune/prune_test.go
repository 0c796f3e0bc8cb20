package prune

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/registry"
	"nightshift/store"
)

// fakeRegistry keeps tags by repository as distribution does, deleting
// every tag on a digest at once.
type fakeRegistry struct {
	mu      sync.Mutex
	tags    map[string]map[string]string // repo -> tag -> digest
	deletes []string
	refuse  bool
}

func (f *fakeRegistry) put(repo, tag, digest string) {
	if f.tags[repo] == nil {
		f.tags[repo] = map[string]string{}
	}
	f.tags[repo][tag] = digest
}

func (f *fakeRegistry) Tags(_ context.Context, repo string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.tags[repo])), nil
}

func (f *fakeRegistry) Digest(_ context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := strings.LastIndex(ref, ":")
	if d, ok := f.tags[ref[:i]][ref[i+1:]]; ok {
		return d, nil
	}
	return "", fmt.Errorf("%s: MANIFEST_UNKNOWN", ref)
}

func (f *fakeRegistry) Delete(_ context.Context, repo, digest string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse {
		return fmt.Errorf("delete %s@%s: %w: 405 UNSUPPORTED", repo, digest, registry.ErrDeleteRefused)
	}
	f.deletes = append(f.deletes, repo+"@"+digest)
	maps.DeleteFunc(f.tags[repo], func(_, d string) bool { return d == digest })
	return nil
}

func (f *fakeRegistry) left(repo string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.tags[repo]))
}

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const (
	base = "reg:5000/ci-staging/base"
	cpu  = "reg:5000/ci-staging/cpu"
)

func tagOf(id int) string { return fmt.Sprintf("2026-11-%02d-02-00-00-c0ffee%02d", 20+id, id) }

// setup records five nightly runs, one a day, and a validation of run 3:
// run 1's cpu is the same image as run 4's (nothing changed); run 2 was
// promoted in place to stable; run 3's cpu failed to build, yet a tag of
// its name points somewhere; and an ensure run. The registry holds what
// they pushed, latest, stable, and a tag somebody made by hand.
func setup(t *testing.T, ret config.Retention) (*Pruner, *store.DB, *fakeRegistry, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "nightshift.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := &fakeRegistry{tags: map[string]map[string]string{}}
	logs := filepath.Join(dir, "logs")
	create := func(r *store.Run) {
		t.Helper()
		end := r.Started.Add(time.Hour)
		r.Status, r.Finished = store.Succeeded, &end
		if err := db.CreateRun(r); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(logs, fmt.Sprint(r.ID)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for id := 1; id <= 5; id++ {
		tag := tagOf(id)
		bd, cd := fmt.Sprintf("sha256:base%d", id), fmt.Sprintf("sha256:cpu%d", id)
		if id == 1 {
			cd = "sha256:cpu4"
		}
		ims := []store.ImageResult{{Name: "base", Status: store.Succeeded, Digest: bd}, {Name: "cpu", Status: store.Succeeded, Digest: cd}}
		reg.put(base, tag, bd)
		reg.put(cpu, tag, cd)
		if id == 3 {
			ims[1] = store.ImageResult{Name: "cpu", Status: store.Failed}
			reg.put(cpu, tag, "sha256:hand-made")
		}
		create(&store.Run{Tag: tag, Kind: store.KindNightly, Started: now.AddDate(0, 0, id-6), Images: ims})
	}
	reg.put(base, tagOf(3)+"-validated", "sha256:base3")
	create(&store.Run{Tag: tagOf(3), Kind: store.KindValidate, Night: 3, Started: now.AddDate(0, 0, -2),
		Images: []store.ImageResult{{Name: "base", Status: store.Succeeded, Digest: "sha256:base3", Validation: &store.Validation{Status: store.Succeeded}}}})
	create(&store.Run{Tag: "ensure-abc", Kind: store.KindEnsure, Started: now.AddDate(0, 0, -9),
		Images: []store.ImageResult{{Name: "base", Status: store.Succeeded, Digest: "sha256:ensured"}}})
	reg.put(base, "ensure-abc", "sha256:ensured")
	reg.put(base, "latest", "sha256:base5")
	reg.put(base, "stable", "sha256:base2")
	reg.put(base, "by-hand", "sha256:base1")
	if _, err := db.Promote(2, store.Promotion{When: now, Tags: []string{"stable"}, Images: []store.PromotedImage{
		{Name: "base", Digest: "sha256:base2", Ref: base + ":stable", Repository: base, Validated: true}}}); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Staging: config.Staging{Registry: "reg:5000", Namespace: "ci-staging"}, Store: config.Store{Logs: logs},
		Retention: ret, Images: []config.Image{{Name: "base"}, {Name: "cpu"}}}
	return New(cfg, db, reg, WithClock(func() time.Time { return now })), db, reg, logs
}

func names(tags []Tag) []string {
	var out []string
	for _, t := range tags {
		out = append(out, fmt.Sprintf("%s:%s", t.Image, t.Tag))
	}
	return out
}

func why(tags []Tag, image, tag string) (Why, string) {
	for _, t := range tags {
		if t.Image == image && t.Tag == tag {
			return t.Why, t.Detail
		}
	}
	return -1, ""
}

// keep_last = 2 keeps runs 4 and 5; run 2 stays for its promotion; runs 1
// and 3 go, by digest, but for run 1's cpu, which is run 4's image too,
// run 1's base, on which somebody put a tag by hand (a digest's deletion
// would delete it too), and run 3's cpu tag, which is not what run 3
// made. latest, the release tag and the ensure run's tag stay.
func TestPrune(t *testing.T) {
	t.Parallel()
	p, db, reg, logs := setup(t, config.Retention{Enabled: true, KeepLast: 2})
	rep, err := p.Prune(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"base:" + tagOf(3), "base:" + tagOf(3) + "-validated"}; !slices.Equal(names(rep.Deleted), want) {
		t.Errorf("deleted %v, want %v", names(rep.Deleted), want)
	}
	if want := []string{base + "@sha256:base3"}; !slices.Equal(reg.deletes, want) {
		t.Errorf("DELETEs %v, want %v: one per digest", reg.deletes, want)
	}
	if got, want := reg.left(base), []string{tagOf(1), tagOf(2), tagOf(4), tagOf(5), "by-hand", "ensure-abc", "latest", "stable"}; !slices.Equal(got, want) {
		t.Errorf("base keeps %v, want %v", got, want)
	}
	for _, c := range []struct {
		image, tag string
		want       Why
		detail     string
	}{
		{"cpu", tagOf(1), Shared, "its digest is also " + tagOf(4) + "'s, which is kept"},
		{"base", tagOf(1), Shared, "its digest is also by-hand's, which is kept"},
		{"cpu", tagOf(3), Moved, "it points at sha256:hand-made, not at nothing as run 3 recorded"},
		{"base", "latest", Latest, ""},
		{"base", "stable", Release, "release tag, promoted from run 2"},
		{"base", tagOf(2), Promoted, "run 2 was promoted"},
		{"base", tagOf(5), Retained, "run 5 is one of the last 2"},
		{"base", "ensure-abc", OtherKind, "run 7 is of kind ensure: retention is for nightly runs"},
	} {
		w, detail := why(append(rep.Kept, rep.Unknown...), c.image, c.tag)
		if w != c.want || detail != c.detail {
			t.Errorf("%s:%s is %d (%s), want %d (%s)", c.image, c.tag, w, detail, c.want, c.detail)
		}
	}
	if !slices.Equal(rep.Pruned, []uint64{1, 3, 6}) || rep.Nights != 5 || rep.Beyond != 3 {
		t.Errorf("pruned runs %v of %d nights, %d beyond; want 1, 3 and 3's validation run 6, of 5 nights, 3 beyond (2 promoted)", rep.Pruned, rep.Nights, rep.Beyond)
	}
	for id, gone := range map[int]bool{1: true, 2: false, 3: true, 4: false, 6: true, 7: false} {
		_, err := os.Stat(filepath.Join(logs, fmt.Sprint(id)))
		if os.IsNotExist(err) != gone {
			t.Errorf("logs of run %d: %v; want gone %v", id, err, gone)
		}
		r, err := db.Run(uint64(id))
		if err != nil {
			t.Fatal(err)
		}
		if (r.Pruned != nil) != gone {
			t.Errorf("run %d pruned = %v, want %v", id, r.Pruned, gone)
		}
	}

	// Again: nothing left to do.
	reg.deletes = nil
	rep, err = p.Prune(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted)+len(rep.Pruned)+len(reg.deletes) > 0 {
		t.Errorf("a second prune deleted %v and pruned %v", names(rep.Deleted), rep.Pruned)
	}
}

// The unknown tags are those no recorded run made, and those not where
// their run left them.
func TestPruneUnknown(t *testing.T) {
	t.Parallel()
	p, _, _, _ := setup(t, config.Retention{Enabled: true, KeepLast: 2})
	rep, err := p.Prune(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"base:by-hand", "cpu:" + tagOf(3)}; !slices.Equal(names(rep.Unknown), want) {
		t.Errorf("unknown %v, want %v", names(rep.Unknown), want)
	}
}

// A dry run says the same and changes nothing.
func TestPruneDryRun(t *testing.T) {
	t.Parallel()
	p, db, reg, logs := setup(t, config.Retention{Enabled: true, KeepLast: 2})
	rep, err := p.Prune(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 2 || !slices.Equal(rep.Pruned, []uint64{1, 3, 6}) {
		t.Errorf("dry run: deleted %v, pruned %v", names(rep.Deleted), rep.Pruned)
	}
	if len(reg.deletes) > 0 || len(reg.left(base)) != 10 {
		t.Errorf("a dry run deleted %v", reg.deletes)
	}
	if r, _ := db.Run(1); r.Pruned != nil {
		t.Error("a dry run marked run 1 pruned")
	}
	if _, err := os.Stat(filepath.Join(logs, "1")); err != nil {
		t.Errorf("a dry run deleted logs: %v", err)
	}
}

// keep_days keeps what started within so many days; with keep_last too,
// what either keeps stays.
func TestPruneKeepDays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ret    config.Retention
		pruned []uint64
	}{
		{config.Retention{Enabled: true, KeepDays: 3}, []uint64{1, 3, 6}}, // runs 3..5 started within 3 days? 3 started 3 days ago: not after
		{config.Retention{Enabled: true, KeepDays: 4}, []uint64{1}},       // run 3 started 3 days ago
		{config.Retention{Enabled: true, KeepDays: 1, KeepLast: 3}, []uint64{1}},
	} {
		p, _, _, _ := setup(t, tc.ret)
		rep, err := p.Prune(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Pruned, tc.pruned) {
			t.Errorf("%+v: pruned %v, want %v", tc.ret, rep.Pruned, tc.pruned)
		}
	}
}

// A registry that refuses deletes is reported once, as Refused, and
// nothing is deleted or marked pruned.
func TestPruneRefused(t *testing.T) {
	t.Parallel()
	p, db, reg, logs := setup(t, config.Retention{Enabled: true, KeepLast: 2})
	reg.refuse = true
	rep, err := p.Prune(context.Background(), false)
	var refused *Refused
	if !errors.As(err, &refused) || rep != nil {
		t.Fatalf("Prune = %+v, %v; want *Refused", rep, err)
	}
	if !strings.Contains(err.Error(), "storage: delete: enabled: true") || !strings.Contains(err.Error(), "nothing was pruned") {
		t.Errorf("the refusal does not say what to change: %v", err)
	}
	if r, _ := db.Run(1); r.Pruned != nil {
		t.Error("run 1 marked pruned after a refusal")
	}
	if _, err := os.Stat(filepath.Join(logs, "1")); err != nil {
		t.Errorf("logs deleted after a refusal: %v", err)
	}
	p.cfg.Retention = config.Retention{}
	if _, err := p.Prune(context.Background(), true); !errors.Is(err, ErrNoRetention) {
		t.Errorf("Prune without retention = %v, want ErrNoRetention", err)
	}
}
