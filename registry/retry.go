package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"nightshift/retry"
)

// retryTransport sends a request again when it failed for a passing
// reason: a transport error retry.Transient accepts (a reset, EOF, a
// timeout), or an answer whose status says so (408, 429, 5xx), waiting at
// least as long as Retry-After asks, within the policy's budget. When no
// try succeeds, the caller gets the last answer as the server gave it.
type retryTransport struct {
	next   http.RoundTripper
	policy retry.Policy
}

// maxErrorBody bounds what is kept of a failed answer's body.
const maxErrorBody = 64 << 10

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return t.next.RoundTrip(req) // a body that cannot be sent again is sent once
	}
	var resp *http.Response
	tries := 0
	err := retry.Do(req.Context(), t.policy, func(ctx context.Context) error {
		r := req
		if tries > 0 {
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return err
				}
				r.Body = body
			}
		}
		tries++
		res, err := t.next.RoundTrip(r)
		if err != nil {
			return err
		}
		if passingStatus(res.StatusCode) {
			return newStatusError(r, res)
		}
		if err := readSmallBody(r, res); err != nil {
			return err // cut off mid-body: asked again
		}
		resp = res
		return nil
	}, nil)
	if se, ok := err.(*statusError); ok {
		return se.resp, nil // out of tries: the caller reads the answer itself
	}
	return resp, err
}

// maxBufferedBody bounds the answers read whole inside the retry loop: a
// manifest's limit in distribution.
const maxBufferedBody = 4 << 20

// readSmallBody reads the whole body of a small answer to a GET (a
// manifest, a tags list, a config blob) before handing it on, so that a
// connection reset mid-body is a failed try the loop sends again, not an
// error in the caller's read that nobody retries. Larger answers stream.
func readSmallBody(req *http.Request, res *http.Response) error {
	if req.Method != http.MethodGet || res.ContentLength < 0 || res.ContentLength > maxBufferedBody {
		return nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Redacted(), err)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

// passingStatus reports whether an answer with this status may be
// different if the request is sent again.
func passingStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// statusError is an answer with a passing status: transient, with the
// server's Retry-After. It holds the answer, its body read, in case it is
// the last one.
type statusError struct {
	req   *http.Request
	resp  *http.Response
	after time.Duration
}

func newStatusError(req *http.Request, resp *http.Response) *statusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	after, _ := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return &statusError{req: req, resp: resp, after: after}
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.req.Method, e.req.URL.Redacted(), e.resp.Status)
}

func (e *statusError) Transient() bool { return true }

func (e *statusError) RetryAfter() time.Duration { return e.after }
