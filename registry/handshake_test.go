package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// handshakes answers HEAD of any manifest, counting GET /v2/; with bearer,
// as a token registry does: /v2/ wants a token, /token gives one.
func handshakes(t *testing.T, bearer bool) (host string, pings *atomic.Int64) {
	t.Helper()
	pings = new(atomic.Int64)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			pings.Add(1)
			if bearer {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, srv.URL))
				w.WriteHeader(http.StatusUnauthorized)
			}
		case r.URL.Path == "/token":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"token":"t"}`)
		case bearer && r.Header.Get("Authorization") != "Bearer t":
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
			w.Header().Set("Content-Length", "2")
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), pings
}

// A registry without tokens is asked for its challenge once for all
// repositories; one with tokens, once per repository, as the tokens are.
func TestHandshakeOnceWithoutTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bearer   bool
		min, max int64
	}{{false, 1, 2}, {true, 5, 7}} {
		host, pings := handshakes(t, tc.bearer)
		c, err := New(host)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := c.Digest(context.Background(), fmt.Sprintf("%s/ns/image%d:t", host, i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := pings.Load(); n < tc.min || n > tc.max {
			t.Errorf("bearer %v: %d handshakes for 5 repositories, want %d to %d", tc.bearer, n, tc.min, tc.max)
		}
	}
}
