package pipeline

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/internal/testenv"
	"nightshift/source"
	"nightshift/store"
)

// ensureStack is a git repository with a base image (its Dockerfile in its
// context) and a child, and the pipeline of its configuration over
// in-memory engine and registry.
func ensureStack(t *testing.T, files map[string]string) (*Pipeline, *stubEngine, *stubRegistry, string) {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{
		"docker/base/Dockerfile": "FROM scratch\n",
		"docker/Dockerfile.cpu":  "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\n",
		"README.md":              "readme\n",
		"nightshift.toml": `[staging]
registry = "reg.example:5000"
namespace = "ns"
[[image]]
name = "base"
dockerfile = "docker/base/Dockerfile"
context = "docker/base"
[[image]]
name = "cpu"
dockerfile = "docker/Dockerfile.cpu"
context = "docker/cpu"
`,
		"docker/cpu/keep": "",
		".gitignore":      "nightshift.db\nlogs/\n",
	}
	for k, v := range files {
		all[k] = v
	}
	for p, content := range all {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testenv.CommitAll(dir, "stack"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "nightshift.toml"))
	if err != nil {
		t.Fatal(err)
	}
	reg := newStubRegistry()
	eng := &stubEngine{reg: reg}
	p := New(cfg, nil, WithEngine(eng), WithRegistry(reg), WithStoreOpener(func() (*store.DB, error) {
		return store.Open(cfg.Store.Path, time.Second)
	}))
	p.claimSettle = time.Millisecond
	t.Cleanup(func() { p.Close() })
	return p, eng, reg, dir
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	p, eng, reg, dir := ensureStack(t, nil)
	ctx := context.Background()
	baseTree, err := source.Object(ctx, dir, "HEAD", "docker/base")
	if err != nil {
		t.Fatal(err)
	}

	// Missing, without --push and no wait: built here, not pushed; no
	// store needed to find that out, one to record the build.
	res, err := p.Ensure(ctx, EnsureRequest{Images: []string{"base"}, Poll: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := EnsureResult{Image: "base", Tag: baseTree, Ref: "reg.example:5000/ns/base:" + baseTree, Outcome: OutcomeBuilt}
	if len(res) != 1 || res[0] != want {
		t.Fatalf("ensure base = %+v, want %+v", res, want)
	}
	if reg.get(want.Ref) != "" {
		t.Errorf("a build without --push pushed %s", want.Ref)
	}

	// With --push: the child's parent first, the child on it by digest.
	res, err = p.Ensure(ctx, EnsureRequest{Images: []string{"cpu"}, Push: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Outcome != OutcomePushed || res[0].Digest != "sha256:cpu" || len(res[0].Tag) != 40 || res[0].Tag == baseTree {
		t.Fatalf("ensure --push cpu = %+v, want cpu pushed under a hash of its own", res)
	}
	if got := reg.get(want.Ref); got != "sha256:base" {
		t.Errorf("base:%s = %q after ensuring its child, want it pushed", baseTree, got)
	}
	last := eng.specs[len(eng.specs)-1]
	if pinned := "reg.example:5000/ns/base@sha256:base"; last.Args["BASE_IMAGE"] != pinned || !last.Pull || !strings.Contains(last.Tags[0], ":"+res[0].Tag+"-try-") {
		t.Errorf("cpu built with BASE_IMAGE %q, pull %v, tags %v; want %s, pulled, under an attempt tag", last.Args["BASE_IMAGE"], last.Pull, last.Tags, pinned)
	}

	// Again: exists, nothing built.
	builds := len(eng.builds)
	again, err := p.Ensure(ctx, EnsureRequest{All: true, Push: true})
	if err != nil || len(again) != 2 || again[0].Outcome != OutcomeExists || again[1] != (EnsureResult{Image: "cpu", Tag: res[0].Tag, Ref: res[0].Ref, Digest: res[0].Digest, Outcome: OutcomeExists}) {
		t.Errorf("ensure --all again = %+v, %v; want both existing", again, err)
	}
	if len(eng.builds) != builds {
		t.Errorf("ensuring existing images built %v", eng.builds[builds:])
	}

	runs, err := p.db.Runs(0)
	if err != nil || len(runs) != 2 || runs[0].Kind != store.KindEnsure || runs[0].Status != store.Succeeded || len(runs[0].Images) != 2 {
		t.Errorf("runs = %+v, %v; want two ensure runs (the third built nothing), the newest of base and cpu", runs, err)
	}

	// A change to a tracked file of the context, not committed: exit 2,
	// naming it; so is an untracked one.
	os.WriteFile(filepath.Join(dir, "docker/base/Dockerfile"), []byte("FROM scratch\nLABEL x=y\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "docker/cpu/new.sh"), []byte("echo\n"), 0o644)
	_, err = p.Ensure(ctx, EnsureRequest{Images: []string{"cpu"}, Push: true})
	var ps config.Problems
	if !errors.As(err, &ps) || !strings.Contains(err.Error(), "docker/base/Dockerfile (changed)") || !strings.Contains(err.Error(), "new.sh (untracked)") {
		t.Errorf("dirty inputs: err = %v, want problems naming both files", err)
	}
}

// A racing host's claim that lands after this one's is what both report.
func TestEnsureClaimRace(t *testing.T) {
	t.Parallel()
	p, _, reg, _ := ensureStack(t, nil)
	racer := &racingRegistry{stubRegistry: reg}
	p.registry = racer
	res, err := p.Ensure(context.Background(), EnsureRequest{Images: []string{"base"}, Push: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Digest != "sha256:other" || res[0].Outcome != OutcomeExists {
		t.Errorf("ensure = %+v, want the racer's digest, which the tag points at", res)
	}
	if got := reg.get(res[0].Ref); got != "sha256:other" {
		t.Errorf("tag = %s", got)
	}
}

// racingRegistry is a registry where another host points every tag that
// is claimed at its own build right after.
type racingRegistry struct{ *stubRegistry }

func (r *racingRegistry) Tag(ctx context.Context, ref, tag string) error {
	if err := r.stubRegistry.Tag(ctx, ref, tag); err != nil {
		return err
	}
	repo, _, _ := strings.Cut(ref, "@")
	r.put(repo+":"+tag, "sha256:other")
	return nil
}

// Two builders pushing the same layers at once can make the registry
// refuse one of them; when the other's push landed, the content tag is
// there, and the refused builder takes it instead of failing.
func TestEnsurePushLostToAnotherBuilder(t *testing.T) {
	t.Parallel()
	p, eng, reg, _ := ensureStack(t, nil)
	p.engine = &losingPush{stubEngine: eng}
	res, err := p.Ensure(context.Background(), EnsureRequest{Images: []string{"base"}, Push: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Outcome != OutcomeExists || res[0].Digest != "sha256:other" {
		t.Errorf("ensure = %+v, want the other builder's image", res)
	}
	if got := reg.get(res[0].Ref); got != "sha256:other" {
		t.Errorf("tag = %s", got)
	}
}

// losingPush is an engine whose push is refused while another builder's
// push of the same content tag lands.
type losingPush struct{ *stubEngine }

func (e *losingPush) Push(_ context.Context, ref, _ string, _ io.Writer) (string, error) {
	content, _, _ := strings.Cut(ref, "-try-")
	e.reg.put(content, "sha256:other")
	return "", &engine.RegistryError{Code: "MANIFEST_BLOB_UNKNOWN", Message: "manifest blob unknown: blob unknown to registry"}
}
