package registry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
			rt := &retryTransport{next: http.DefaultTransport, budget: tt.budget}
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
	rt := &retryTransport{next: http.DefaultTransport, budget: time.Second}
	req, _ := http.NewRequest(http.MethodGet, url+"/v2/", nil)
	if _, err := rt.RoundTrip(req); err == nil {
		t.Fatal("RoundTrip to a closed port succeeded")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
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
