package registry

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// retryTransport retries requests that failed for a passing reason (a
// reset connection, 429, 5xx), waiting as long as Retry-After asks or else
// with jittered exponential backoff, until the budget is spent.
type retryTransport struct {
	next   http.RoundTripper
	budget time.Duration
}

const (
	backoffBase = 250 * time.Millisecond
	backoffMax  = 30 * time.Second
)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	deadline := time.Now().Add(t.budget)
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			r = req.Clone(ctx)
			if req.Body != nil && req.Body != http.NoBody {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := t.next.RoundTrip(r)
		wait, again := retryAfter(resp, err, attempt)
		replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		if !again || !replayable || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return resp, err
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// retryAfter says whether a response or error is worth another try, and
// how long to wait before it.
func retryAfter(resp *http.Response, err error, attempt int) (time.Duration, bool) {
	backoff := min(backoffBase<<attempt, backoffMax)
	backoff = backoff/2 + rand.N(backoff/2+1) // jitter: many clients must not retry in step
	if err != nil {
		return backoff, passing(err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusRequestTimeout,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return 0, false
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		return d, true
	}
	return backoff, true
}

// passing reports whether a transport error may go away by itself: a reset
// or refused connection, a timeout, a connection cut short. A TLS handshake
// with a plain-HTTP server, a bad certificate or an unknown host will not.
func passing(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	return false
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
