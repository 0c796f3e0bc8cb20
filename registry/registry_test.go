package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRegistry answers the API base and upload starts and cancels as a
// registry does, after failing the requests fail says to fail.
type fakeRegistry struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newFakeRegistry(t *testing.T, fail func(n int, r *http.Request, w http.ResponseWriter) bool) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.Path)
		n := len(f.seen)
		f.mu.Unlock()
		if fail(n, r, w) {
			return
		}
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/"):
			w.Header().Set("Location", r.URL.Path+"upload-1")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRegistry) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeRegistry) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func client(t *testing.T, host string) *Client {
	t.Helper()
	c, err := New(host, WithBasicAuth("ci", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hangUp closes the connection of a request without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// A registry's passing failures at the start of a run (a 503, a dropped
// connection) no longer stop it: the push check is retried too.
func TestPingAndCheckPushRetryPassingFailures(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry(t, func(n int, r *http.Request, w http.ResponseWriter) bool {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable) // GET /v2/ of Ping
		case 3:
			hangUp(w) // CheckPush's ping, or its upload start
		case 5:
			w.WriteHeader(http.StatusBadGateway)
		default:
			return false
		}
		return true
	})
	c := client(t, reg.host())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v (requests %v)", err, reg.requests())
	}
	if err := c.CheckPush(t.Context(), "ci/base"); err != nil {
		t.Fatalf("CheckPush: %v (requests %v)", err, reg.requests())
	}
	if got := reg.requests(); len(got) < 6 {
		t.Errorf("requests %v: want the failed ones sent again", got)
	}
}

// Ping's context still bounds it: a registry that never recovers fails
// the run when the caller's timeout passes, saying what went wrong last.
func TestPingBoundedByContext(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry(t, func(_ int, _ *http.Request, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	c := client(t, reg.host())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Ping(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("Ping = %v, want the deadline and the last 503", err)
	}
}

// A permanent answer is not retried.
func TestCheckPushRefusedAtOnce(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry(t, func(_ int, r *http.Request, w http.ResponseWriter) bool {
		if r.Method != http.MethodPost {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
		return true
	})
	err := client(t, reg.host()).CheckPush(t.Context(), "ci/base")
	if err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Errorf("CheckPush = %v, want the registry's DENIED", err)
	}
	posts := 0
	for _, r := range reg.requests() {
		if strings.HasPrefix(r, "POST") {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("%d upload starts, want 1: a denial is final", posts)
	}
}

// A build gets the credentials of every registry Docker's config.json
// knows, and the staging registry's own for its host.
func TestBuildAuths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := `{"auths": {
		"base.example:5000": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("puller:pull-pw")) + `"},
		"127.0.0.1:5999": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("someone:else")) + `"}
	}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New("127.0.0.1:5999", WithBasicAuth("ci-bot", "s3cret"), WithDockerConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := c.BuildAuths()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range encoded {
		b, err := base64.URLEncoding.DecodeString(e)
		if err != nil {
			t.Fatal(err)
		}
		var a struct{ Username, Password, ServerAddress string }
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		got[a.ServerAddress] = a.Username + ":" + a.Password
	}
	want := map[string]string{"base.example:5000": "puller:pull-pw", "127.0.0.1:5999": "ci-bot:s3cret"}
	if !maps.Equal(got, want) {
		t.Errorf("build credentials %v, want %v", got, want)
	}
}
