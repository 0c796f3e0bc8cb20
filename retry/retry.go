// Package retry is nightshift's one way of trying again: jittered
// exponential backoff within a budget, a server's requested wait as the
// floor of the next one, and a decision of what is worth another try made
// from error types, never from the words of a message.
package retry

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy says how long to wait between tries, and for how long to try.
type Policy struct {
	Base time.Duration // first wait
	Max  time.Duration // cap on one wait; 0: no cap
	// Budget is how long after the first try a try may still start; 0
	// means one try only, Forever leaves the end to the context.
	Budget time.Duration
}

// Forever is a Budget that leaves ending the tries to the context.
const Forever time.Duration = math.MaxInt64

// Backoff is the wait after attempt+1 failed tries (attempt counts from
// 0): Base doubled attempt times, capped at Max, then drawn from its upper
// half so that clients failing together do not come back together.
func (p Policy) Backoff(attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	d := p.Base
	for i := 0; i < attempt && (p.Max <= 0 || d < p.Max); i++ {
		if d > math.MaxInt64/2 {
			d = math.MaxInt64
			break
		}
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	return d/2 + rand.N(d/2+1)
}

// Option changes how Do decides and waits.
type Option func(*options)

type options struct {
	transient func(error) bool
	now       func() time.Time
	sleep     func(context.Context, time.Duration) error
}

// WithClassifier replaces Transient as the judge of which failures are
// tried again, for callers with stricter rules (a request that must not be
// sent twice unless the server cannot have seen it).
func WithClassifier(transient func(error) bool) Option {
	return func(o *options) { o.transient = transient }
}

// withClock makes Do read the time and wait on a clock of the caller's
// (tests).
func withClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(o *options) { o.now, o.sleep = now, sleep }
}

// Do calls f until it returns nil, returns an error that is not transient,
// ctx ends, or the next try would start after p's budget; it returns f's
// last error. The wait before a try is p's backoff, or the server's wait
// carried by the error (After) when that is longer. onRetry, when not nil,
// is told each failure that will be tried again and the wait before the
// next try (for logs). When ctx ends during a wait, the error says so and
// holds the last failure too.
func Do(ctx context.Context, p Policy, f func(ctx context.Context) error, onRetry func(err error, wait time.Duration), opts ...Option) error {
	o := options{transient: Transient, now: time.Now, sleep: Sleep}
	for _, opt := range opts {
		opt(&o)
	}
	start := o.now()
	for attempt := 0; ; attempt++ {
		err := f(ctx)
		// Once ctx is done, nothing is tried again: the caller gave up.
		if err == nil || ctx.Err() != nil || !o.transient(err) {
			return err
		}
		wait := p.Backoff(attempt)
		if after, ok := After(err); ok {
			wait = max(wait, after)
		}
		if p.Budget <= 0 || wait > p.Budget || o.now().Sub(start) > p.Budget-wait {
			return err
		}
		if onRetry != nil {
			onRetry(err, wait)
		}
		if cerr := o.sleep(ctx, wait); cerr != nil {
			return &interrupted{ctx: cerr, last: err}
		}
	}
}

// Sleep waits d, or until ctx ends and returns its error: the wait between
// tries, and between polls.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// interrupted is Do's error when ctx ended while it waited to try again.
type interrupted struct{ ctx, last error }

func (e *interrupted) Error() string   { return e.ctx.Error() + " (last error: " + e.last.Error() + ")" }
func (e *interrupted) Unwrap() []error { return []error{e.ctx, e.last} }
func (e *interrupted) Transient() bool { return false }

// Transient reports whether err may pass if what failed is tried again,
// from its types only:
//   - an error in the chain with a Transient() bool method decides (an HTTP
//     status, a registry's error code, an engine's error type);
//   - context.Canceled is not: someone gave up;
//   - a dropped connection is: io.EOF, io.ErrUnexpectedEOF, ECONNRESET,
//     ECONNREFUSED, EPIPE, ECONNABORTED;
//   - a net.Error whose Timeout() is true is. A context's deadline is one
//     too, since it may be one try's: whether it was the caller's own only
//     the caller knows, and Do, which knows ctx, stops once ctx is done.
//
// Anything else (a TLS or certificate error, an unknown host, a refused
// request) is not.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.EPIPE, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// After returns the wait a server asked for, carried by an error in err's
// chain with a RetryAfter() time.Duration method (Retry-After, Discord's
// retry_after).
func After(err error) (time.Duration, bool) {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return max(ra.RetryAfter(), 0), true
	}
	return 0, false
}

// ParseRetryAfter reads a Retry-After header: a number of seconds (a
// fraction too, as Discord sends) or an HTTP date, which counts from now.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsNaN(s) || s > math.MaxInt64/float64(time.Second) {
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
