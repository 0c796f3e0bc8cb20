// Package faultproxy is a reverse proxy for tests that stands in front of a
// real HTTP server (a registry) on loopback and fails a seeded share of the
// requests it is sent, the ways a flaky registry or load balancer does: a
// 502 or 503, a 429 with Retry-After, a connection closed before the
// request was forwarded, and one closed after it was (the server acted on
// it, the client never hears so), an answer cut off mid-body by a reset,
// and an answer passed on slowly. The same seed gives the same sequence of
// decisions; which request meets which decision depends on the order
// requests arrive in.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is what the proxy does to one request.
type Fault int

const (
	// None forwards the request and its answer.
	None Fault = iota
	// BadGateway answers 502 without forwarding.
	BadGateway
	// Unavailable answers 503 without forwarding.
	Unavailable
	// TooManyRequests answers 429 with Retry-After and the registry's
	// TOOMANYREQUESTS error, without forwarding.
	TooManyRequests
	// DropBefore closes the connection without forwarding the request.
	DropBefore
	// DropAfter forwards the request, then closes the connection instead
	// of passing the answer on.
	DropAfter
	// ResetMidBody forwards the request, sends the answer's status, headers
	// and half its body, then resets the connection (a TCP RST).
	ResetMidBody
	// SlowBody forwards the request and passes the answer on slowly: its
	// body in small pieces spread over the slow duration (WithSlow).
	SlowBody
)

// All lists every fault the proxy can inject.
func All() []Fault {
	return []Fault{BadGateway, Unavailable, TooManyRequests, DropBefore, DropAfter, ResetMidBody, SlowBody}
}

func (f Fault) String() string {
	switch f {
	case None:
		return "none"
	case BadGateway:
		return "502"
	case Unavailable:
		return "503"
	case TooManyRequests:
		return "429"
	case DropBefore:
		return "drop-before"
	case DropAfter:
		return "drop-after"
	case ResetMidBody:
		return "reset-mid-body"
	case SlowBody:
		return "slow-body"
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	addr   string
	seed   uint64
	rate   float64
	faults []Fault
	wait   time.Duration
	slow   time.Duration
	spare  func(*http.Request) bool
	log    *slog.Logger
	srv    *http.Server
	tr     *http.Transport
	fwd    *httputil.ReverseProxy
	done   chan struct{}

	mu       sync.Mutex
	rng      *rand.Rand
	requests int
	spared   int
	counts   map[Fault]int
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithSeed fixes the seed of the proxy's decisions; without it one is
// drawn, and logged.
func WithSeed(seed uint64) Option { return func(p *Proxy) { p.seed = seed } }

// WithRate sets the share of requests that fail, from 0 to 1; default 0.2.
func WithRate(r float64) Option { return func(p *Proxy) { p.rate = r } }

// WithFaults restricts the faults drawn to these; default All().
func WithFaults(fs ...Fault) Option { return func(p *Proxy) { p.faults = fs } }

// WithRetryAfter sets the wait a 429 asks for; default 1s. It is sent in
// whole seconds, as Retry-After carries it.
func WithRetryAfter(d time.Duration) Option { return func(p *Proxy) { p.wait = d } }

// WithSlow sets how long a SlowBody answer takes to pass on; default 2s.
func WithSlow(d time.Duration) Option { return func(p *Proxy) { p.slow = d } }

// WithSpare exempts the requests spare is true of: they are forwarded and
// draw no decision, so the others meet the same sequence of decisions.
func WithSpare(spare func(*http.Request) bool) Option { return func(p *Proxy) { p.spare = spare } }

// WithLogger logs the seed and every fault injected (at debug level).
func WithLogger(l *slog.Logger) Option { return func(p *Proxy) { p.log = l } }

// Start starts a proxy in front of target (an http URL, or host:port for
// plain HTTP) on a free port of 127.0.0.1.
func Start(target string, opts ...Option) (*Proxy, error) {
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q: want http://host:port", target)
	}
	p := &Proxy{seed: rand.Uint64(), rate: 0.2, faults: All(), wait: time.Second, slow: 2 * time.Second, counts: map[Fault]int{}, done: make(chan struct{})}
	for _, o := range opts {
		o(p)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.rate < 0 || p.rate > 1 || len(p.faults) == 0 || slices.Contains(p.faults, None) {
		return nil, fmt.Errorf("faultproxy: rate %v of faults %v: want a rate in [0, 1] and at least one fault", p.rate, p.faults)
	}
	p.rng = rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15))
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.fwd = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// The server sees the proxy's address, so that the URLs it
			// hands out (upload locations) lead back through the proxy.
			r.Out.Host = r.In.Host
		},
		Transport: p.tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("faultproxy: forwarding failed", "method", r.Method, "path", r.URL.Path, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p.addr = l.Addr().String()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	go func() {
		defer close(p.done)
		p.srv.Serve(l)
	}()
	p.log.Info("faultproxy started", "addr", p.addr, "target", u.Host, "seed", p.seed, "rate", p.rate)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Seed is the seed of the proxy's decisions.
func (p *Proxy) Seed() uint64 { return p.seed }

// SetRate changes the share of requests that fail from now on (0 to 1).
func (p *Proxy) SetRate(r float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = min(max(r, 0), 1)
}

// Stats counts what the proxy did.
type Stats struct {
	Requests int           // every request, spared ones included
	Spared   int           // exempted by WithSpare
	Faults   map[Fault]int // by fault, None excluded
}

// Injected is how many requests met a fault.
func (s Stats) Injected() int {
	n := 0
	for _, c := range s.Faults {
		n += c
	}
	return n
}

func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests (%d spared), %d faults", s.Requests, s.Spared, s.Injected())
	for _, f := range All() {
		if c := s.Faults[f]; c > 0 {
			fmt.Fprintf(&b, ", %s: %d", f, c)
		}
	}
	return b.String()
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Requests: p.requests, Spared: p.spared, Faults: map[Fault]int{}}
	for f, c := range p.counts {
		if f != None {
			s.Faults[f] = c
		}
	}
	return s
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	<-p.done
	p.tr.CloseIdleConnections()
	return err
}

// decide draws the fate of r.
func (p *Proxy) decide(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if p.spare != nil && p.spare(r) {
		p.spared++
		return None
	}
	f := None
	if p.rng.Float64() < p.rate {
		f = p.faults[p.rng.IntN(len(p.faults))]
	}
	p.counts[f]++
	return f
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.decide(r)
	if f != None {
		p.log.Debug("faultproxy: fault", "fault", f, "method", r.Method, "path", r.URL.Path, "agent", r.UserAgent())
	}
	switch f {
	case BadGateway, Unavailable:
		code := http.StatusBadGateway
		if f == Unavailable {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(code)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1>faultproxy</body></html>\n", code, http.StatusText(code))
	case TooManyRequests:
		// What a registry sends (distribution's errcode format).
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", strconv.Itoa(int((p.wait+time.Second-1)/time.Second)))
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests (faultproxy)"}]}`+"\n")
	case DropBefore:
		p.drop(w, r)
	case DropAfter:
		// The answer goes nowhere: the server acted, the client never hears.
		p.fwd.ServeHTTP(&discard{header: http.Header{}}, r.WithContext(context.WithoutCancel(r.Context())))
		p.drop(w, r)
	case ResetMidBody:
		rec := p.record(r)
		p.resetMidBody(w, r, rec)
	case SlowBody:
		rec := p.record(r)
		p.slowBody(w, r, rec)
	default:
		p.fwd.ServeHTTP(w, r)
	}
}

// record forwards r and keeps the whole answer.
func (p *Proxy) record(r *http.Request) *recorder {
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	p.fwd.ServeHTTP(rec, r)
	return rec
}

// resetMidBody writes rec's status line, headers and the first half of its
// body on r's raw connection, then resets it.
func (p *Proxy) resetMidBody(w http.ResponseWriter, r *http.Request, rec *recorder) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Debug("faultproxy: cannot hijack; aborting the handler", "err", err, "path", r.URL.Path)
		panic(http.ErrAbortHandler)
	}
	body := rec.body.Bytes()
	h := rec.header.Clone()
	h.Del("Transfer-Encoding")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	var head strings.Builder
	fmt.Fprintf(&head, "HTTP/1.1 %d %s\r\n", rec.code, http.StatusText(rec.code))
	h.Write(&head)
	head.WriteString("\r\n")
	io.WriteString(conn, head.String())
	if r.Method != http.MethodHead {
		conn.Write(body[:len(body)/2])
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0) // close with a RST, not a FIN
	}
	conn.Close()
}

// slowBody passes rec on in pieces spread over p.slow.
func (p *Proxy) slowBody(w http.ResponseWriter, r *http.Request, rec *recorder) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.code)
	rc := http.NewResponseController(w)
	rc.Flush()
	const pieces = 8
	body := rec.body.Bytes()
	step := (len(body) + pieces - 1) / pieces
	for i := 0; i < pieces; i++ {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(p.slow / pieces):
		}
		if step > 0 && i*step < len(body) {
			w.Write(body[i*step : min((i+1)*step, len(body))])
			rc.Flush()
		}
	}
}

// recorder is a ResponseWriter that keeps the answer.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (c *recorder) Header() http.Header         { return c.header }
func (c *recorder) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *recorder) WriteHeader(code int)        { c.code = code }

// drop closes the request's connection without an answer.
func (p *Proxy) drop(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot be hijacked: abort the stream instead.
		p.log.Debug("faultproxy: cannot hijack; aborting the handler", "err", err, "path", r.URL.Path)
		panic(http.ErrAbortHandler)
	}
	if err := conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		p.log.Debug("faultproxy: close", "err", err)
	}
}

// discard is a ResponseWriter that throws the answer away.
type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
