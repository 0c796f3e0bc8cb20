package promote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/notify"
	"nightshift/store"
)

// fakeRegistry holds refs (repo:tag and repo@digest) and their digests,
// and notes every call.
type fakeRegistry struct {
	mu    sync.Mutex
	refs  map[string]string
	calls []string
	// wrong makes a copy to this repository land another digest.
	wrong string
}

func newFake() *fakeRegistry { return &fakeRegistry{refs: map[string]string{}} }

func (f *fakeRegistry) put(ref, digest string) {
	f.refs[ref] = digest
	repo, _, _ := strings.Cut(ref, ":")
	if i := strings.LastIndex(ref, ":"); i > 0 && !strings.Contains(ref[i:], "/") {
		repo = ref[:i]
	}
	f.refs[repo+"@"+digest] = digest
}

func (f *fakeRegistry) Copy(_ context.Context, src, dst string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "copy "+src+" "+dst)
	d, ok := f.refs[src]
	if !ok {
		return "", fmt.Errorf("%s: MANIFEST_UNKNOWN", src)
	}
	if f.wrong != "" && strings.HasPrefix(dst, f.wrong) {
		d = "sha256:other"
	}
	f.put(dst, d)
	return d, nil
}

func (f *fakeRegistry) Tag(_ context.Context, ref, tag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "tag "+ref+" "+tag)
	d, ok := f.refs[ref]
	if !ok {
		return fmt.Errorf("%s: MANIFEST_UNKNOWN", ref)
	}
	repo, _, _ := strings.Cut(ref, "@")
	f.put(repo+":"+tag, d)
	return nil
}

func (f *fakeRegistry) Digest(_ context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.refs[ref]; ok {
		return d, nil
	}
	return "", fmt.Errorf("%s: MANIFEST_UNKNOWN", ref)
}

func (f *fakeRegistry) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.calls)
	slices.Sort(out)
	return out
}

const tag = "2026-11-23-02-00-00-1a2b3c4d"

var when = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func testConfig(promoteNamespace string) *config.Config {
	cfg := &config.Config{Staging: config.Staging{Registry: "reg:5000", Namespace: "ci-staging"},
		Promote: config.Promote{Registry: "reg:5000", Namespace: promoteNamespace, Name: `{{ replace .Name "_" "-" }}`}}
	if promoteNamespace == "ci-staging" {
		cfg.Promote.Name = config.DefaultPromoteName
	}
	return cfg
}

// night records a nightly run of base (validated), cpu (built, validation
// failed), gpu (failed to build) and lint (built, validated only by a later
// validation run of the night); the registry holds what it pushed.
func night(t *testing.T, reg *fakeRegistry) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "nightshift.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ok := &store.Validation{Status: store.Succeeded}
	end := when.Add(-time.Hour)
	image := func(name string, st store.Status, v *store.Validation) store.ImageResult {
		im := store.ImageResult{Name: name, Status: st, Validation: v}
		if st != store.Failed || v != nil {
			im.Digest = "sha256:" + name
			reg.put("reg:5000/ci-staging/"+name+":"+tag, im.Digest)
		}
		return im
	}
	r := &store.Run{Tag: tag, Commit: "1a2b3c4d5e6f", Status: store.Failed, Finished: &end, Images: []store.ImageResult{
		image("base", store.Succeeded, ok), image("cpu", store.Failed, &store.Validation{Status: store.Failed}),
		image("gpu", store.Failed, nil), image("lint", store.Succeeded, nil),
	}}
	if err := db.CreateRun(r); err != nil {
		t.Fatal(err)
	}
	v := &store.Run{Tag: tag, Kind: store.KindValidate, Status: store.Succeeded, Finished: &end,
		Images: []store.ImageResult{{Name: "lint", Status: store.Succeeded, Digest: "sha256:lint", Validation: ok}}}
	if err := db.CreateRun(v); err != nil {
		t.Fatal(err)
	}
	return db
}

func promoter(cfg *config.Config, db *store.DB, reg Registry, routes ...notify.Route) *Promoter {
	return New(cfg, db, reg, WithClock(func() time.Time { return when }), WithRoutes(routes))
}

// Across namespaces: each image the night validated (by its run or a
// validation run of the night) is copied once and tagged for the other
// tags; what was not validated, or not pushed, is refused with the reason;
// the promotion is recorded and announced to whoever wants it.
func TestPromoteAcrossNamespaces(t *testing.T) {
	t.Parallel()
	reg := newFake()
	db := night(t, reg)
	p := promoter(testConfig("release"), db, reg, notify.Route{Notifier: "email", On: []string{"promote"}}, notify.Route{Notifier: "discord", On: []string{"failure"}})
	res, err := p.Promote(context.Background(), Request{From: tag, To: []string{"stable", "{{ .Year }}.{{ .Quarter }}-stable"}, By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"copy reg:5000/ci-staging/base@sha256:base reg:5000/release/base:stable",
		"copy reg:5000/ci-staging/lint@sha256:lint reg:5000/release/lint:stable",
		"tag reg:5000/release/base@sha256:base 2026.4-stable",
		"tag reg:5000/release/lint@sha256:lint 2026.4-stable",
	}
	if got := reg.called(); !slices.Equal(got, want) {
		t.Errorf("registry calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !res.Failed() || len(res.Refused) != 2 {
		t.Fatalf("refused %+v: want cpu and gpu", res.Refused)
	}
	for i, w := range []string{
		"cpu: not validated in night 1: its validation failed (--force promotes it anyway)",
		"gpu: nothing was pushed in night 1 (failed)",
	} {
		if got := res.Refused[i].Name + ": " + res.Refused[i].Reason; got != w {
			t.Errorf("refused[%d] = %q, want %q", i, got, w)
		}
	}
	rec, err := db.Run(res.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Promotions) != 1 {
		t.Fatalf("promotions %+v, want one", rec.Promotions)
	}
	pr := rec.Promotions[0]
	if !pr.When.Equal(when) || pr.By != "alice" || pr.Forced || !slices.Equal(pr.Tags, []string{"stable", "2026.4-stable"}) || len(pr.Refused) != 2 {
		t.Errorf("promotion %+v", pr)
	}
	if len(pr.Images) != 2 || pr.Images[0] != (store.PromotedImage{Name: "base", Digest: "sha256:base", Ref: "reg:5000/release/base:stable",
		Repository: "reg:5000/release/base", Validated: true}) {
		t.Errorf("promoted images %+v", pr.Images)
	}
	rels, err := db.Releases("lint")
	if err != nil || len(rels) != 2 || rels[0].Run != 1 {
		t.Errorf("releases of lint = %+v, %v; want both tags on run 1", rels, err)
	}
	msgs, err := db.Messages(res.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Notifier != "email" {
		t.Fatalf("messages %+v, want one to email", msgs)
	}
	var s notify.Summary
	if err := json.Unmarshal(msgs[0].Payload, &s); err != nil {
		t.Fatal(err)
	}
	if s.Event != notify.EventPromote || s.Promotion == nil || len(s.Promotion.Images) != 2 {
		t.Errorf("message %+v", s)
	}
}

// --force promotes what the night did not validate, and the record says
// so, image by image; an image nothing was pushed of stays refused.
func TestPromoteForced(t *testing.T) {
	t.Parallel()
	reg := newFake()
	db := night(t, reg)
	res, err := promoter(testConfig("release"), db, reg).Promote(context.Background(),
		Request{From: tag, To: []string{"stable"}, Images: []string{"cpu", "gpu"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Promotion == nil || !res.Promotion.Forced || len(res.Promotion.Images) != 1 || res.Promotion.Images[0].Validated {
		t.Fatalf("promotion %+v: want cpu, forced, not validated", res.Promotion)
	}
	if len(res.Refused) != 1 || res.Refused[0].Name != "gpu" {
		t.Errorf("refused %+v, want gpu", res.Refused)
	}
	if d, _ := reg.Digest(context.Background(), "reg:5000/release/cpu:stable"); d != "sha256:cpu" {
		t.Errorf("release/cpu:stable = %q", d)
	}
}

// In place, a promotion is manifest tags in the staging repository, and
// never over nightshift's own tags there.
func TestPromoteInPlace(t *testing.T) {
	t.Parallel()
	reg := newFake()
	db := night(t, reg)
	p := promoter(testConfig("ci-staging"), db, reg)
	res, err := p.Promote(context.Background(), Request{From: tag, To: []string{"stable"}, Images: []string{"base"}})
	if err != nil || res.Failed() {
		t.Fatalf("Promote = %+v, %v", res, err)
	}
	if got := reg.called(); !slices.Equal(got, []string{"tag reg:5000/ci-staging/base@sha256:base stable"}) {
		t.Errorf("registry calls %v, want one manifest tag", got)
	}
	for _, to := range []string{"latest", tag + "-validated"} {
		_, err := p.Promote(context.Background(), Request{From: tag, To: []string{to}})
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("promote in place to %s: %v, want a UsageError", to, err)
		}
	}
}

// A dry run plans as a promotion would, and touches neither the registry
// nor the record.
func TestPromoteDryRun(t *testing.T) {
	t.Parallel()
	reg := newFake()
	db := night(t, reg)
	res, err := promoter(testConfig("release"), db, reg).Promote(context.Background(), Request{From: tag, To: []string{"stable"}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 || res.Steps[0].Targets[0] != "reg:5000/release/base:stable" || res.Steps[0].InPlace || len(res.Refused) != 2 {
		t.Errorf("plan %+v", res)
	}
	if got := reg.called(); len(got) > 0 {
		t.Errorf("a dry run called the registry: %v", got)
	}
	if r, _ := db.Run(res.Run.ID); len(r.Promotions) > 0 || res.Promotion != nil {
		t.Errorf("a dry run recorded %+v", r.Promotions)
	}
}

// A target that does not end up at the night's digest fails its image
// alone; what failed is recorded as not promoted, with why.
func TestPromoteVerifiesTheTarget(t *testing.T) {
	t.Parallel()
	reg := newFake()
	reg.wrong = "reg:5000/release/lint"
	db := night(t, reg)
	res, err := promoter(testConfig("release"), db, reg).Promote(context.Background(), Request{From: tag, To: []string{"stable"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Failed() || res.Steps[1].Image != "lint" || res.Steps[1].Err == nil || res.Steps[0].Err != nil {
		t.Fatalf("steps %+v: want lint failed, base promoted", res.Steps)
	}
	pr := res.Promotion
	if pr == nil || len(pr.Images) != 1 || pr.Refused[len(pr.Refused)-1].Name != "lint" ||
		!strings.Contains(pr.Refused[len(pr.Refused)-1].Reason, "not sha256:lint as the night recorded") {
		t.Errorf("promotion %+v", pr)
	}
}

// What cannot be carried out as asked is a UsageError, before anything is
// done.
func TestPromoteUsage(t *testing.T) {
	t.Parallel()
	reg := newFake()
	db := night(t, reg)
	p := promoter(testConfig("release"), db, reg)
	for _, req := range []Request{
		{From: "2020-01-01-00-00-00-deadbeef", To: []string{"stable"}},
		{From: tag, To: []string{"stable"}, Images: []string{"docs"}},
		{From: tag, To: []string{"-stable"}},
		{From: tag, To: []string{"{{ .Nope }}"}},
		{From: tag},
	} {
		_, err := p.Promote(context.Background(), req)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("Promote(%+v) = %v, want a UsageError", req, err)
		}
	}
	if got := reg.called(); len(got) > 0 {
		t.Errorf("refused requests called the registry: %v", got)
	}
}
