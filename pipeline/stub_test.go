package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/rebuild"
	"nightshift/registry"
	"nightshift/store"
)

func mustTag(s string) name.Tag {
	t, err := name.NewTag(s)
	if err != nil {
		panic(err)
	}
	return t
}

// newTestPipeline is a pipeline over eng and reg, recording in a fresh
// store, its logs in a temporary directory.
func newTestPipeline(t *testing.T, eng Engine, reg Registry) (*Pipeline, *store.DB) {
	t.Helper()
	db := openDB(t)
	cfg := &config.Config{Store: config.Store{Logs: t.TempDir()}, Build: config.Build{Jobs: 2}}
	return New(cfg, db, WithEngine(eng), WithRegistry(reg)), db
}

// runPrepared starts prep as req says and waits for its end.
func runPrepared(ctx context.Context, p *Pipeline, prep *Prepared, req Request) (*store.Run, error) {
	r, err := p.start(ctx, req, prep, nil)
	if err != nil {
		return nil, err
	}
	return r.Wait()
}

// stubEngine builds and pushes in memory; images named in fail fail to
// build, and the build of hang closes hanging and waits for ctx to end.
// It runs no containers (tests replace the tester), but for the info
// commands of an image named in lists, which print lists[image].
type stubEngine struct {
	reg     *stubRegistry
	fail    map[string]bool
	hang    string
	hanging chan struct{}
	lists   map[string]string

	mu     sync.Mutex
	builds []string
	specs  []engine.BuildSpec
	pulls  []string
}

func (e *stubEngine) Ping(context.Context) error { return nil }

func (e *stubEngine) Build(ctx context.Context, spec engine.BuildSpec, log io.Writer) (string, error) {
	name := imageOf(spec.Tags[0])
	e.mu.Lock()
	e.builds = append(e.builds, name)
	e.specs = append(e.specs, spec)
	e.mu.Unlock()
	fmt.Fprintf(log, "building %s\n", name)
	if name == e.hang {
		close(e.hanging)
		<-ctx.Done()
		return "", ctx.Err()
	}
	if e.fail[name] {
		fmt.Fprintf(log, "make: *** [all] Error 2\n")
		return "", errors.New("RUN make: exit code 2")
	}
	return "sha256:image-" + name, nil
}

func (e *stubEngine) Pull(_ context.Context, ref, _ string, log io.Writer) error {
	e.mu.Lock()
	e.pulls = append(e.pulls, ref)
	e.mu.Unlock()
	fmt.Fprintf(log, "pulled %s\n", ref)
	return nil
}

func (e *stubEngine) Push(_ context.Context, ref, _ string, _ io.Writer) (string, error) {
	d := "sha256:" + imageOf(ref)
	e.reg.put(ref, d)
	return d, nil
}

var errNoContainers = errors.New("stub engine: no containers")

func (e *stubEngine) ImageConfig(context.Context, string) (engine.ImageConfig, error) {
	return engine.ImageConfig{}, errNoContainers
}
func (e *stubEngine) RunContainer(_ context.Context, spec engine.ContainerSpec) (engine.Run, error) {
	if out, ok := e.listOf(spec.Image); ok {
		return engine.Run{Stdout: []byte(out)}, nil
	}
	return engine.Run{}, errNoContainers
}

// listOf is what the info commands print in image, a ref of the run.
func (e *stubEngine) listOf(image string) (string, bool) {
	ref, err := name.NewTag(image)
	if err != nil {
		return "", false
	}
	repo := ref.RepositoryStr()
	out, ok := e.lists[repo[strings.LastIndex(repo, "/")+1:]]
	return out, ok
}
func (e *stubEngine) RemoveImage(context.Context, string) error { return errNoContainers }
func (e *stubEngine) CreateContainer(_ context.Context, spec engine.ContainerSpec) (string, error) {
	if _, ok := e.listOf(spec.Image); ok {
		return spec.Image, nil
	}
	return "", errNoContainers
}
func (e *stubEngine) CopyFromContainer(_ context.Context, id, _ string) (io.ReadCloser, error) {
	if _, ok := e.listOf(id); ok {
		return io.NopCloser(strings.NewReader("")), nil // every path is there
	}
	return nil, errNoContainers
}
func (e *stubEngine) RemoveContainer(_ context.Context, id string) error {
	if _, ok := e.listOf(id); ok {
		return nil
	}
	return errNoContainers
}

// stubRegistry is a map of ref to digest.
type stubRegistry struct {
	mu      sync.Mutex
	digests map[string]string
}

func newStubRegistry() *stubRegistry { return &stubRegistry{digests: map[string]string{}} }

func (r *stubRegistry) Ping(context.Context) error { return nil }
func (r *stubRegistry) History(_ context.Context, ref string) ([]registry.Step, error) {
	return []registry.Step{{CreatedBy: "COPY . /", Digest: "sha256:" + strings.Repeat("0", 64), Size: 1}}, nil
}
func (r *stubRegistry) CheckPush(context.Context, string) error { return nil }
func (r *stubRegistry) EngineAuth() (string, error)             { return "", nil }
func (r *stubRegistry) BuildAuths() ([]string, error)           { return nil, nil }

func (r *stubRegistry) put(ref, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.digests[ref] = digest
}

func (r *stubRegistry) get(ref string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.digests[ref]
}

func (r *stubRegistry) Tag(_ context.Context, ref, tag string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if repo, d, ok := strings.Cut(ref, "@"); ok {
		r.digests[repo+":"+tag] = d
		return nil
	}
	return fmt.Errorf("stub registry: tag %s by digest only", ref)
}

func (r *stubRegistry) Digest(_ context.Context, ref string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.digests[ref]
	if !ok {
		return "", fmt.Errorf("%s: MANIFEST_UNKNOWN", ref)
	}
	return d, nil
}

func (r *stubRegistry) Lookup(_ context.Context, ref string) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.digests[ref]
	return d, ok, nil
}

// imageOf is the image name of "<repo>/<name>:<tag>" or "<repo>/<name>@<digest>".
func imageOf(ref string) string {
	ref = ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.IndexAny(ref, ":@"); i >= 0 {
		return ref[:i]
	}
	return ref
}

// fixedTests passes every image's tests but those of the images in fail.
type fixedTests struct{ fail []string }

func (f fixedTests) Test(_ context.Context, s *rebuild.Step, _ string, log io.Writer) *store.Validation {
	fmt.Fprintf(log, "testing %s\n", s.Name)
	if slices.Contains(f.fail, s.Name) {
		return &store.Validation{Status: store.Failed, Error: "1 of 2 tests failed: python imports",
			Tests: []store.TestResult{{Name: "shell", Passed: true}, {Name: "python imports"}}}
	}
	return &store.Validation{Status: store.Succeeded, Tests: []store.TestResult{{Name: "shell", Passed: true}}}
}
