package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"nightshift/internal/testenv"
)

// recorder notes every request through it: method, path and query.
type recorder struct {
	mu   sync.Mutex
	seen []string
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	line := req.Method + " " + req.URL.Path
	if req.URL.RawQuery != "" {
		line += "?" + req.URL.RawQuery
	}
	r.seen = append(r.seen, line)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	return out
}

// uploads are the requests that send blob bytes: PATCH and PUT of uploads.
func uploads(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if (strings.HasPrefix(r, "PATCH ") || strings.HasPrefix(r, "PUT ")) && strings.Contains(r, "/blobs/uploads/") {
			out = append(out, r)
		}
	}
	return out
}

func startRegistry(t *testing.T, deletes bool) string {
	t.Helper()
	testenv.Require(t)
	start := testenv.StartRegistry
	if !deletes {
		start = testenv.StartRegistryWithoutDelete
	}
	p, err := start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p.Addr
}

// pushRandom writes an image of a few random layers to ref and returns its
// digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// A copy to another repository of the same registry mounts every blob,
// the config too, and sends none; to another registry, the missing blobs
// go from registry to registry. Either way the target's digest is the
// source's.
func TestCopyMountsWithinARegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry")
	}
	t.Parallel()
	host := startRegistry(t, true)
	other := startRegistry(t, true)
	rec := &recorder{next: http.DefaultTransport}
	c, err := New(host, WithTransport(rec))
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(other, WithTransport(rec))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	digest := pushRandom(t, host+"/ci-staging/ci_cpu:2026-01-01")
	src := host + "/ci-staging/ci_cpu@" + digest

	got, err := c.Copy(ctx, src, c, host+"/release/ci-cpu:stable")
	if err != nil {
		t.Fatal(err)
	}
	reqs := rec.take()
	if got != digest {
		t.Errorf("Copy returned %s, want %s", got, digest)
	}
	if up := uploads(reqs); len(up) > 0 {
		t.Errorf("a copy within the registry sent blobs: %v\nall requests: %v", up, reqs)
	}
	mounts := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "POST ") && strings.Contains(r, "mount=") && strings.Contains(r, "from=ci-staging%2Fci_cpu") {
			mounts++
		}
	}
	if mounts != 4 { // three layers and the config
		t.Errorf("%d blobs mounted, want 4 (3 layers, the config)\nrequests: %v", mounts, reqs)
	}
	if d, err := c.Digest(ctx, host+"/release/ci-cpu:stable"); err != nil || d != digest {
		t.Errorf("release/ci-cpu:stable = %s, %v; want %s", d, err, digest)
	}

	// Again: the target has it all, so only the manifest is looked at.
	if _, err := c.Copy(ctx, src, c, host+"/release/ci-cpu:stable"); err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.take() {
		if strings.Contains(r, "/blobs/") {
			t.Errorf("a copy over an identical tag touched a blob: %s", r)
		}
	}

	// Another registry: the blobs must travel, and do, without an engine.
	if got, err := c.Copy(ctx, src, o, other+"/release/ci-cpu:stable"); err != nil || got != digest {
		t.Fatalf("Copy to another registry = %s, %v; want %s", got, err, digest)
	}
	if up := uploads(rec.take()); len(up) == 0 {
		t.Errorf("a copy to another registry sent no blob")
	}
	if d, err := o.Digest(ctx, other+"/release/ci-cpu:stable"); err != nil || d != digest {
		t.Errorf("the other registry's tag = %s, %v; want %s", d, err, digest)
	}
}

// Tags lists a repository's tags (none for one the registry does not
// know); Delete by digest removes every tag on it, and a digest already
// gone is no error.
func TestTagsAndDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry")
	}
	t.Parallel()
	host := startRegistry(t, true)
	c, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo := host + "/ci-staging/base"
	old := pushRandom(t, repo+":night-1")
	if err := c.Tag(ctx, repo+":night-1", "night-1-validated"); err != nil {
		t.Fatal(err)
	}
	pushRandom(t, repo+":night-2")

	tags, err := c.Tags(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if want := []string{"night-1", "night-1-validated", "night-2"}; !slices.Equal(tags, want) {
		t.Errorf("Tags = %v, want %v", tags, want)
	}
	if err := c.Delete(ctx, repo, old); err != nil {
		t.Fatal(err)
	}
	if tags, err = c.Tags(ctx, repo); err != nil || !slices.Equal(tags, []string{"night-2"}) {
		t.Errorf("after deleting night-1's digest: Tags = %v, %v; want [night-2]", tags, err)
	}
	if err := c.Delete(ctx, repo, old); err != nil {
		t.Errorf("deleting a digest already gone: %v", err)
	}
	if tags, err := c.Tags(ctx, host+"/ci-staging/never-pushed"); err != nil || len(tags) != 0 {
		t.Errorf("Tags of an unknown repository = %v, %v; want none", tags, err)
	}
}

// A registry that does not delete (distribution as shipped) is told apart
// by its answer's status and error code: ErrDeleteRefused.
func TestDeleteRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry")
	}
	t.Parallel()
	host := startRegistry(t, false)
	c, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	repo := host + "/ci-staging/base"
	digest := pushRandom(t, repo+":night-1")
	err = c.Delete(context.Background(), repo, digest)
	if !errors.Is(err, ErrDeleteRefused) {
		t.Fatalf("Delete = %v, want ErrDeleteRefused", err)
	}
	if d, err := c.Digest(context.Background(), repo+":night-1"); err != nil || d != digest {
		t.Errorf("night-1 = %s, %v after a refused delete; want it still there", d, err)
	}
}

// Only the status or the error code decides a refusal: the same words in
// another answer are not one.
func TestRefusalByCodeNotWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		status     int
		refused    bool
	}{
		{"405 without a body", "", http.StatusMethodNotAllowed, true},
		{"UNSUPPORTED code", `{"errors":[{"code":"UNSUPPORTED","message":"x"}]}`, http.StatusBadRequest, true},
		{"denied, mentioning unsupported", `{"errors":[{"code":"DENIED","message":"The operation is unsupported"}]}`, http.StatusForbidden, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := newFakeRegistry(t, func(_ int, r *http.Request, w http.ResponseWriter) bool {
				if r.Method != http.MethodDelete {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
				return true
			})
			err := client(t, reg.host()).Delete(context.Background(), reg.host()+"/ci/base", "sha256:"+strings.Repeat("a", 64))
			if err == nil || errors.Is(err, ErrDeleteRefused) != tc.refused {
				t.Errorf("Delete = %v; refused %v, want %v", err, errors.Is(err, ErrDeleteRefused), tc.refused)
			}
		})
	}
}
