package registry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nightshift/retry"
)

// flaky answers the first len(codes) requests with those status codes, then 200.
func flaky(t *testing.T, header http.Header, codes ...int) (*httptest.Server, *atomic.Int32, *[]string) {
	t.Helper()
	var n atomic.Int32
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		i := int(n.Add(1)) - 1
		if i < len(codes) {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(codes[i])
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &n, &bodies
}

func TestRetryTransport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		header   http.Header
		codes    []int
		budget   time.Duration
		wantCode int
		wantReqs int32
	}{
		{"success needs no retry", nil, nil, time.Minute, 200, 1},
		{"5xx then success", nil, []int{502, 503}, time.Minute, 200, 3},
		{"429 honours Retry-After seconds", http.Header{"Retry-After": {"0"}}, []int{429}, time.Minute, 200, 2},
		{"permanent error is not retried", nil, []int{400}, time.Minute, 400, 1},
		{"404 is not retried", nil, []int{404}, time.Minute, 404, 1},
		{"Retry-After beyond the budget gives up at once", http.Header{"Retry-After": {"3600"}}, []int{429}, time.Minute, 429, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, n, bodies := flaky(t, tt.header, tt.codes...)
			rt := &retryTransport{next: http.DefaultTransport, policy: retry.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond, Budget: tt.budget}}
			req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/ns/img/manifests/latest", strings.NewReader("manifest"))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || n.Load() != tt.wantReqs {
				t.Errorf("got %d after %d requests, want %d after %d", resp.StatusCode, n.Load(), tt.wantCode, tt.wantReqs)
			}
			for i, b := range *bodies {
				if b != "manifest" {
					t.Errorf("request %d sent body %q, want the whole manifest again", i+1, b)
				}
			}
		})
	}
}

func TestRetryTransportConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	rt := &retryTransport{next: http.DefaultTransport, policy: retry.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond, Budget: 50 * time.Millisecond}}
	req, _ := http.NewRequest(http.MethodGet, url+"/v2/", nil)
	if _, err := rt.RoundTrip(req); err == nil {
		t.Fatal("RoundTrip to a closed port succeeded")
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "127.0.0.1": true,
		"registry.example.org": false, "10.0.0.1:5000": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestRetryTransportDroppedConnection(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if n.Add(1) == 1 {
			hangUp(w) // the request got here; its answer never leaves
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	rt := &retryTransport{next: http.DefaultTransport, policy: retry.Policy{Base: time.Millisecond, Budget: time.Minute}}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/ns/img/manifests/latest", strings.NewReader("manifest"))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "manifest" || n.Load() != 2 {
		t.Errorf("got %q after %d requests, want the manifest echoed by the second", b, n.Load())
	}
}

func TestRetryTransportLastAnswerIntact(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"errors":[{"code":"UNAVAILABLE","message":"read only"}]}`)
	}))
	t.Cleanup(srv.Close)
	rt := &retryTransport{next: http.DefaultTransport, policy: retry.Policy{Base: time.Millisecond, Budget: 20 * time.Millisecond}}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 503 || !strings.Contains(string(b), "UNAVAILABLE") {
		t.Errorf("got %d %q, want the registry's last answer, body included", resp.StatusCode, b)
	}
}

func TestRetryTransportBodyNotReplayable(t *testing.T) {
	t.Parallel()
	srv, n, _ := flaky(t, nil, 503)
	rt := &retryTransport{next: http.DefaultTransport, policy: retry.Policy{Base: time.Millisecond, Budget: time.Minute}}
	req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/v2/ns/img/blobs/uploads/1", io.MultiReader(strings.NewReader("layer")))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || n.Load() != 1 {
		t.Errorf("got %d after %d requests, want the 503 after 1: a stream cannot be sent twice", resp.StatusCode, n.Load())
	}
}

// Found by make chaos: a manifest GET whose answer was reset mid-body
// failed the tag of latest at once, the budget unspent; the read is now a
// try of its own, sent again.
func TestRetryTransportBodyCutMidway(t *testing.T) {
	t.Parallel()
	const manifest = `{"schemaVersion": 2, "config": {"digest": "sha256:0"}, "layers": []}`
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(manifest)))
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, manifest[:len(manifest)/2])
			w.(http.Flusher).Flush()
			hangUp(w) // the rest never comes
			return
		}
		io.WriteString(w, manifest)
	}))
	t.Cleanup(srv.Close)
	rt := &retryTransport{next: http.DefaultTransport, policy: retry.Policy{Base: time.Millisecond, Budget: time.Minute}}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/ns/img/manifests/latest", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != manifest || n.Load() != 2 {
		t.Errorf("got %q (%v) after %d requests, want the whole manifest from the second", b, err, n.Load())
	}
}
