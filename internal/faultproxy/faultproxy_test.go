package faultproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is the real server behind the proxy: it counts requests, keeps
// the bodies and Host headers it got, and answers 201 with a Location.
type backend struct {
	srv   *httptest.Server
	n     atomic.Int32
	mu    sync.Mutex
	hosts []string
	body  []string
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.n.Add(1)
		b.mu.Lock()
		b.hosts = append(b.hosts, r.Host)
		b.body = append(b.body, string(body))
		b.mu.Unlock()
		w.Header().Set("Location", "http://"+r.Host+"/v2/ns/img/blobs/uploads/1")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "from the backend")
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// seen returns the Host headers and bodies the server got so far.
func (b *backend) seen() (hosts, bodies []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.hosts...), append([]string(nil), b.body...)
}

func start(t *testing.T, target string, opts ...Option) *Proxy {
	t.Helper()
	p, err := Start(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// oneShot is a client that never reuses a connection, so that Go's
// transport never re-sends a request on its own after a dropped one: each
// request meets exactly one decision.
func oneShot() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// outcome is what a client saw: a status and body, or an error.
func outcome(c *http.Client, method, url, body string) string {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		return "error"
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Sprintf("%d then error after %q", resp.StatusCode, b)
	}
	return fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
}

func TestEachFault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault      Fault
		wantPrefix string
		forwarded  bool
	}{
		{BadGateway, "502 ", false},
		{Unavailable, "503 ", false},
		{TooManyRequests, `429 1 {"errors":[{"code":"TOOMANYREQUESTS"`, false},
		{DropBefore, "error", false},
		{DropAfter, "error", true},
		{ResetMidBody, `201 then error after "from the"`, true},
		{SlowBody, "201  from the backend", true},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			b := newBackend(t)
			p := start(t, b.srv.URL, WithRate(1), WithFaults(tc.fault), WithSlow(200*time.Millisecond))
			got := outcome(oneShot(), http.MethodPut, "http://"+p.Addr()+"/v2/ns/img/manifests/x", "manifest")
			if !strings.HasPrefix(got, tc.wantPrefix) {
				t.Errorf("client saw %q, want %q...", got, tc.wantPrefix)
			}
			if forwarded := b.n.Load() == 1; forwarded != tc.forwarded {
				t.Errorf("forwarded = %v, want %v", forwarded, tc.forwarded)
			}
			if _, bodies := b.seen(); tc.forwarded && bodies[0] != "manifest" {
				t.Errorf("the server got body %q, want the whole request", bodies[0])
			}
			if s := p.Stats(); s.Requests != 1 || s.Injected() != 1 || s.Faults[tc.fault] != 1 {
				t.Errorf("stats %v, want 1 request meeting %s", s, tc.fault)
			}
		})
	}
}

func TestForwardsAsTheProxy(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := start(t, strings.TrimPrefix(b.srv.URL, "http://"), WithRate(0))
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Errorf("proxy listens on %s, want 127.0.0.1 only", p.Addr())
	}
	resp, err := oneShot().Post("http://"+p.Addr()+"/v2/ns/img/blobs/uploads/", "application/octet-stream", strings.NewReader("layer"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The server builds its upload URLs from the Host it was sent: they must
	// lead back through the proxy.
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "http://"+p.Addr()+"/") {
		t.Errorf("Location %q does not lead through the proxy %s", loc, p.Addr())
	}
	hosts, bodies := b.seen()
	if resp.StatusCode != http.StatusCreated || bodies[0] != "layer" || hosts[0] != p.Addr() {
		t.Errorf("got %d; server saw body %q, Host %q", resp.StatusCode, bodies[0], hosts[0])
	}
	if s := p.Stats(); s.Requests != 1 || s.Injected() != 0 {
		t.Errorf("stats %v, want 1 request and no fault at rate 0", s)
	}
}

func TestSameSeedSameDecisions(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	seq := func(seed uint64) []string {
		p := start(t, b.srv.URL, WithSeed(seed), WithRate(0.5), WithSlow(10*time.Millisecond))
		c := oneShot()
		var out []string
		for i := range 40 {
			out = append(out, outcome(c, http.MethodGet, fmt.Sprintf("http://%s/v2/ns/img/blobs/%d", p.Addr(), i), ""))
		}
		if p.Seed() != seed {
			t.Errorf("Seed() = %d, want %d", p.Seed(), seed)
		}
		return out
	}
	a, again, other := seq(7), seq(7), seq(8)
	if strings.Join(a, "|") != strings.Join(again, "|") {
		t.Errorf("seed 7 twice gave different outcomes:\n%q\n%q", a, again)
	}
	if strings.Join(a, "|") == strings.Join(other, "|") {
		t.Errorf("seeds 7 and 8 gave the same 40 outcomes: %q", a)
	}
	kinds := map[string]bool{}
	for _, o := range a {
		kinds[strings.SplitN(o, " ", 2)[0]] = true
	}
	if !kinds["201"] || len(kinds) < 3 {
		t.Errorf("half of 40 requests failing showed only %v", kinds)
	}
}

func TestSpare(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := start(t, b.srv.URL, WithRate(1), WithFaults(Unavailable),
		WithSpare(func(r *http.Request) bool { return r.Method == http.MethodGet }))
	c := oneShot()
	if got := outcome(c, http.MethodGet, "http://"+p.Addr()+"/v2/", ""); !strings.HasPrefix(got, "201 ") {
		t.Errorf("spared GET: %q, want it forwarded", got)
	}
	if got := outcome(c, http.MethodHead, "http://"+p.Addr()+"/v2/", ""); !strings.HasPrefix(got, "503 ") {
		t.Errorf("HEAD: %q, want a 503", got)
	}
	if s := p.Stats(); s.Requests != 2 || s.Spared != 1 || s.Injected() != 1 {
		t.Errorf("stats %v, want 2 requests, 1 spared, 1 fault", s)
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]Option{
		"rate above 1": {WithRate(1.5)},
		"no fault":     {WithFaults()},
		"None a fault": {WithFaults(None)},
	} {
		if p, err := Start("127.0.0.1:1", opts...); err == nil {
			p.Close()
			t.Errorf("%s: Start succeeded", name)
		}
	}
	if _, err := Start("http://"); err == nil {
		t.Error("a target without a host was accepted")
	}
}
