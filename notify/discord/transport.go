package discord

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// maxErrorBody bounds how much of an error response is kept: Discord's
// JSON errors are small, a proxy's HTML page need not be.
const maxErrorBody = 64 << 10

// errForeign is a request the transport refuses to send: not one to this
// notifier's webhook. It means discordgo changed how it builds URLs.
var errForeign = errors.New("refusing a request that is not to the configured webhook")

// transport moves discordgo's requests onto the configured webhook URL and
// remembers the response to each.
//
// discordgo builds its URLs from package-level endpoint variables
// (https://discord.com/api/v9/webhooks/<id>/<token>); assigning them would
// redirect every session in the process, so the host and path prefix are
// rewritten here, per notifier, instead.
type transport struct {
	base   http.RoundTripper
	target *url.URL // the configured webhook URL
	suffix string   // "/webhooks/<id>/<token>", the part both URLs share

	mu   sync.Mutex
	last *response
}

// response is what Notify classifies by: discordgo hides the status of some
// failures behind its own errors.
type response struct {
	status int
	header http.Header
	body   []byte // of an error response only
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, t.suffix) {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, errForeign
	}
	u := *t.target
	// The configured query (thread_id, say) and discordgo's (wait=true) both
	// count; discordgo's wins a tie.
	q := u.Query()
	for k, vs := range req.URL.Query() {
		q[k] = vs
	}
	u.RawQuery = q.Encode()

	out := req.Clone(req.Context())
	out.URL = &u
	out.Host = "" // http.NewRequest set it to discord.com; the URL's host is the one
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}

	res := &response{status: resp.StatusCode, header: resp.Header.Clone()}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Read the error now: discordgo may return (on a malformed
		// rate-limit header) before it reads the body itself.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		res.body = b
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	t.mu.Lock()
	t.last = res
	t.mu.Unlock()
	return resp, nil
}

// take returns the response to the last request and forgets it, so that
// the next request's classification never sees a stale one.
func (t *transport) take() *response {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := t.last
	t.last = nil
	return res
}
