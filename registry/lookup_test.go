package registry

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A lookup is one HEAD: found with its digest, or not found (a 404 is an
// answer), and a passing failure is tried again.
func TestLookup(t *testing.T) {
	t.Parallel()
	const digest = "sha256:" + "ab"
	f := newFakeRegistry(t, func(n int, r *http.Request, w http.ResponseWriter) bool {
		if r.Method != http.MethodHead {
			return false
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "pw" || !strings.Contains(r.Header.Get("Accept"), "application/vnd.oci.image.index.v1+json") {
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/flaky") && n == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasSuffix(r.URL.Path, "/manifests/there"), strings.HasSuffix(r.URL.Path, "/manifests/flaky"):
			w.Header().Set("Docker-Content-Digest", digest)
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
		return true
	})
	c := client(t, f.host())
	ctx := context.Background()
	for _, tc := range []struct {
		tag      string
		found    bool
		requests int
	}{{"flaky", true, 2}, {"there", true, 1}, {"missing", false, 1}} {
		before := len(f.requests())
		d, found, err := c.Lookup(ctx, f.host()+"/ns/img:"+tc.tag)
		if err != nil || found != tc.found || (found && d != digest) {
			t.Errorf("Lookup(%s) = %q, %v, %v; want found %v", tc.tag, d, found, err, tc.found)
		}
		if n := len(f.requests()) - before; n != tc.requests {
			t.Errorf("Lookup(%s) took %d requests, want %d: %v", tc.tag, n, tc.requests, f.requests()[before:])
		}
	}
}
