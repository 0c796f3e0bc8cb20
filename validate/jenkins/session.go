package jenkins

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nightshift/retry"
)

const (
	apiTimeout     = 30 * time.Second // one API request
	consoleTimeout = 2 * time.Minute  // one consoleText download, retries included
	maxJSON        = 8 << 20
	maxErrorBody   = 64 << 10
	maxLineLen     = 1000 // bytes of one console line kept
	backoffMax     = 30 * time.Second
)

// session is one Run's conversation with Jenkins: its URLs, its cookie
// (which a crumb is bound to) and its crumb, and the queue item it made.
type session struct {
	job         Job
	base        *url.URL // Jenkins' root, path ending in /, no user info
	jobSegs     []string
	user, token string
	hc          *http.Client
	jar         *cookiejar.Jar
	poll        time.Duration
	abortWait   time.Duration
	log         *slog.Logger
	// triggerBudget bounds the retries before Jenkins took the trigger.
	triggerBudget time.Duration

	crumbKnown        bool // crumb and crumbField hold what the issuer said
	crumbField, crumb string

	triggerSent bool
	queueID     int64
	lastErr     error // the last retried failure, nil after a success
}

func (c *Client) newSession(job Job) (*session, error) {
	segs, err := jobPath(job.Path)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(c.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("jenkins URL %q: want http(s)://host[:port]/[path/]", redactURL(c.URL))
	}
	user, token := c.User, c.Token
	if base.User != nil {
		if user == "" && token == "" {
			user = base.User.Username()
			token, _ = base.User.Password()
		}
		base.User = nil
	}
	base.RawQuery, base.Fragment = "", ""
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
		base.RawPath = ""
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{}
	if c.HTTP != nil {
		cp := *c.HTTP
		hc = &cp
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc.Jar = nil
	return &session{
		job: job, base: base, jobSegs: segs, user: user, token: token,
		hc: hc, jar: jar, poll: c.poll(), abortWait: c.abortWait(), log: c.log(),
		triggerBudget: triggerBudget,
	}, nil
}

func (s *session) jobURL() string { return s.base.JoinPath(s.jobSegs...).String() + "/" }

func (s *session) buildURL(n int) string { return s.jobURL() + strconv.Itoa(n) + "/" }

func (s *session) queueURL() string {
	return s.base.JoinPath("queue", "item", strconv.FormatInt(s.queueID, 10)).String() + "/"
}

// queueLocation matches the Location buildWithParameters answers with.
// Only the number is used: the scheme and host are Jenkins' idea of its
// own URL, which a reverse proxy may not share.
var queueLocation = regexp.MustCompile(`/queue/item/(\d+)/?$`)

// trigger asks Jenkins to queue a build and returns the queue item's id.
func (s *session) trigger(ctx context.Context) (int64, error) {
	endpoint, form := "build", url.Values{}
	if len(s.job.Params) > 0 {
		endpoint = "buildWithParameters"
		for k, v := range s.job.Params {
			form.Set(k, v)
		}
	}
	u := s.jobURL() + endpoint
	if !s.crumbKnown {
		if err := s.fetchCrumb(ctx); err != nil {
			return 0, fmt.Errorf("trigger: %w", err)
		}
	}
	var id int64
	s.triggerSent = true
	err := s.do(ctx, http.MethodPost, u, form, once, apiTimeout, func(resp *http.Response) error {
		// 201: a new queue item. 303 (200 since Jenkins 2.469): an identical
		// item was already queued and this request was folded into it.
		loc := resp.Header.Get("Location")
		switch resp.StatusCode {
		case http.StatusCreated, http.StatusOK, http.StatusSeeOther, http.StatusFound:
			if m := queueLocation.FindStringSubmatch(loc); m != nil {
				id, _ = strconv.ParseInt(m[1], 10, 64)
				return nil
			}
			if resp.StatusCode != http.StatusFound {
				break
			}
			// Jenkins redirects to the job page when the queue refused the
			// build without saying why.
			return fmt.Errorf("POST %s: Jenkins did not queue a build (%s, Location %q)", u, resp.Status, redactURL(loc))
		case http.StatusNotFound:
			return fmt.Errorf("job %s not found at %s: %w", s.job.Path, s.jobURL(), s.statusError(resp))
		case http.StatusConflict:
			return fmt.Errorf("job %s is not buildable (disabled?): %w", s.job.Path, s.statusError(resp))
		}
		if resp.StatusCode < 400 {
			return fmt.Errorf("POST %s: %s without a queue item location (Location %q)", u, resp.Status, redactURL(loc))
		}
		return s.statusError(resp)
	})
	if err != nil {
		return 0, fmt.Errorf("trigger: %w", err)
	}
	return id, nil
}

// fetchCrumb asks the crumb issuer for a crumb; a 404 means CSRF
// protection is off. The answer sets the session cookie the crumb is bound
// to, which every later request of this session sends back.
func (s *session) fetchCrumb(ctx context.Context) error {
	var c struct {
		Crumb             string `json:"crumb"`
		CrumbRequestField string `json:"crumbRequestField"`
	}
	err := s.getJSON(ctx, s.base.JoinPath("crumbIssuer", "api", "json").String(), &c)
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		s.crumbField, s.crumb = "", ""
	case err != nil:
		return fmt.Errorf("get a CSRF crumb: %w", err)
	case c.Crumb == "" || c.CrumbRequestField == "":
		return fmt.Errorf("get a CSRF crumb: the crumb issuer at %s answered without a crumb", s.base.JoinPath("crumbIssuer"))
	default:
		s.crumbField, s.crumb = c.CrumbRequestField, c.Crumb
	}
	s.crumbKnown = true
	return nil
}

// getJSON GETs u and decodes its JSON into v, retrying passing failures.
func (s *session) getJSON(ctx context.Context, u string, v any) error {
	return s.do(ctx, http.MethodGet, u, nil, idempotent, apiTimeout, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return s.statusError(resp)
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSON)).Decode(v); err != nil {
			return fmt.Errorf("GET %s: decode JSON: %w", u, err)
		}
		return nil
	})
}

// post POSTs form to u, an idempotent action (stop, cancelItem). accept
// decides which answers are success; nil accepts any 2xx or 3xx (Jenkins
// redirects after most actions).
func (s *session) post(ctx context.Context, u string, form url.Values, accept func(*http.Response) (bool, error)) error {
	return s.do(ctx, http.MethodPost, u, form, idempotent, apiTimeout, func(resp *http.Response) error {
		if accept != nil {
			if ok, err := accept(resp); ok || err != nil {
				return err
			}
		} else if resp.StatusCode < 400 {
			return nil
		}
		return s.statusError(resp)
	})
}

// consoleTail returns the last lines of the build's console text; nil,
// and a log line, if it could not be read.
func (s *session) consoleTail(ctx context.Context, n int) []string {
	ctx, cancel := context.WithTimeout(ctx, consoleTimeout)
	defer cancel()
	u := s.buildURL(n) + "consoleText"
	var lines []string
	err := s.do(ctx, http.MethodGet, u, nil, idempotent, consoleTimeout, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return s.statusError(resp)
		}
		var err error
		lines, err = tail(resp.Body, ConsoleLines, maxLineLen)
		return err
	})
	if err != nil {
		s.log.Warn("jenkins console not read", "url", u, "err", err)
	}
	return lines
}

// policy says which failures of a request may be retried.
type policy int

const (
	// idempotent requests (GETs, stop, cancelItem) are retried after any
	// transport failure, 429 and 5xx.
	idempotent policy = iota
	// once is for the trigger: it is retried only when Jenkins cannot
	// have seen it (connection refused) or said it was not ready (502, 503).
	once
)

// do sends one request, retrying it as pol allows until ctx ends, and
// hands each response to handle while the request's context lives. A
// POST carries the session's crumb; one rejected crumb is replaced once,
// at once.
func (s *session) do(ctx context.Context, method, u string, form url.Values, pol policy, timeout time.Duration, handle func(*http.Response) error) error {
	crumbRenewed := false
	try := func(ctx context.Context) error {
		err := s.send(ctx, method, u, form, timeout, handle)
		var se *StatusError
		if !crumbRenewed && method == http.MethodPost && errors.As(err, &se) && se.Status == http.StatusForbidden {
			// The crumb expired with its session, or was never asked for:
			// Jenkins says so by a 403 alone (its words vary), so a refused
			// POST gets one new crumb before the refusal stands.
			crumbRenewed = true
			s.crumbKnown = false
			err = s.send(ctx, method, u, form, timeout, handle)
		}
		return err
	}
	attempt := 0
	err := retry.Do(ctx, s.retryPolicy(), try, func(err error, wait time.Duration) {
		attempt++
		s.lastErr = err
		s.log.Warn("jenkins request failed, retrying", "method", method, "url", u, "err", err, "attempt", attempt, "retry_in", wait)
	}, retry.WithClassifier(pol.retryable))
	if err != nil {
		return s.explain(err)
	}
	s.lastErr = nil
	return nil
}

// retryPolicy backs off exponentially from the poll interval (at most 1s),
// capped; the context alone ends the tries (the run's deadline, or the
// trigger's budget).
func (s *session) retryPolicy() retry.Policy {
	return retry.Policy{Base: min(s.poll, time.Second), Max: backoffMax, Budget: retry.Forever}
}

// send performs one request with the session's credentials, cookie and
// crumb.
func (s *session) send(ctx context.Context, method, u string, form url.Values, timeout time.Duration, handle func(*http.Response) error) error {
	if method == http.MethodPost && !s.crumbKnown {
		if err := s.fetchCrumb(ctx); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(rctx, method, u, body)
	if err != nil {
		return s.scrub(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if s.user != "" || s.token != "" {
		req.SetBasicAuth(s.user, s.token)
	}
	if method == http.MethodPost && s.crumb != "" {
		req.Header.Set(s.crumbField, s.crumb)
	}
	for _, c := range s.jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return s.scrub(err)
	}
	defer resp.Body.Close()
	defer io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody)) // let the connection be reused
	if cs := resp.Cookies(); len(cs) > 0 {
		s.jar.SetCookies(req.URL, cs)
	}
	return handle(resp)
}

// retryable says whether err may pass if the request is sent again.
func (pol policy) retryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			return true
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusGatewayTimeout:
			return pol == idempotent
		}
		return false
	}
	var ue *url.Error
	if pol == once {
		// Sent again only when Jenkins cannot have seen it.
		return errors.As(err, &ue) && errors.Is(err, syscall.ECONNREFUSED)
	}
	return errors.As(err, &ue) || retry.Transient(err)
}

// jitter spreads d by ±10%.
func (s *session) jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// StatusError is an answer from Jenkins that was not the one hoped for.
type StatusError struct {
	Method string
	URL    string // without user info
	Status int
	// Message is what Jenkins said: the error page's title or text, cut
	// short.
	Message string
	// Location is where a redirect pointed, if it was one.
	Location string
	// retryAfter is the wait Jenkins (or a proxy before it) asked for.
	retryAfter time.Duration
}

// RetryAfter is the wait the answer's Retry-After asked for, 0 if none.
func (e *StatusError) RetryAfter() time.Duration { return e.retryAfter }

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Message != "" && !strings.EqualFold(e.Message, http.StatusText(e.Status)) {
		b.WriteString(": " + e.Message)
	}
	if e.Location != "" {
		b.WriteString(" (redirected to " + e.Location + ")")
	}
	return b.String()
}

// statusError reads what Jenkins said in resp.
func (s *session) statusError(resp *http.Response) *StatusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &StatusError{
		Method:  resp.Request.Method,
		URL:     redactURL(resp.Request.URL.String()),
		Status:  resp.StatusCode,
		Message: s.redact(jenkinsMessage(resp.Header.Get("Content-Type"), body)),
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Location = redactURL(resp.Header.Get("Location"))
	}
	e.retryAfter, _ = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// explain puts a sentence in front of an authentication or permission
// failure saying what to check.
func (s *session) explain(err error) error {
	var se *StatusError
	var ex explained
	if !errors.As(err, &se) || errors.As(err, &ex) {
		return err
	}
	why := ""
	switch {
	case se.Status == http.StatusUnauthorized:
		why = fmt.Sprintf("Jenkins refused the credentials of user %q (check the user name and API token)", s.user)
	case se.Status == http.StatusForbidden && s.user == "" && s.token == "":
		why = "Jenkins requires authentication (set a user and API token)"
	case se.Status == http.StatusForbidden:
		why = fmt.Sprintf("user %q lacks a permission this needs (Overall/Read, Job/Read, Job/Build, Job/Cancel), or Jenkins refused its CSRF crumb even after a new one was fetched (a proxy dropping the session cookie?)", s.user)
	case se.Status >= 300 && se.Status < 400:
		why = "unexpected redirect (a login page, or the wrong Jenkins URL?)"
	default:
		return err
	}
	return explained{fmt.Errorf("%s: %w", why, err)}
}

// explained marks an error explain already prefixed, so that an error
// passing through two requests (a crumb fetched for a POST) is explained
// once.
type explained struct{ error }

func (e explained) Unwrap() error { return e.error }

// scrub removes the token from an error's text, in case a transport error
// quotes something it should not.
func (s *session) scrub(err error) error {
	if len(s.token) < 4 || !strings.Contains(err.Error(), s.token) {
		return err
	}
	return redactedError{msg: s.redact(err.Error()), err: err}
}

func (s *session) redact(msg string) string {
	if len(s.token) < 4 {
		return msg
	}
	return strings.ReplaceAll(msg, s.token, "REDACTED")
}

// redactedError keeps the chain of err for errors.Is and errors.As but
// shows msg.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

// redactURL drops the user info of a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "…@" + raw[i+1:]
		}
		return raw
	}
	u.User = nil
	return u.String()
}

var (
	titleRe   = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	hiddenRe  = regexp.MustCompile(`(?is)<!--.*?-->|<script.*?</script>|<style.*?</style>|<head.*?</head>`)
	tagRe     = regexp.MustCompile(`(?s)<[^>]*>`)
	spaceRe   = regexp.MustCompile(`\s+`)
	errPrefix = regexp.MustCompile(`(?i)^(http )?error:? \d{3}\s*`)
)

// jenkinsMessage finds the human message in an error body: a JSON
// "message", an HTML page's title (Jetty: "Error 403 No valid crumb was
// included in the request") or text, or plain text.
func jenkinsMessage(contentType string, body []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	text := string(body)
	switch {
	case strings.HasSuffix(mt, "json"):
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &m) == nil && m.Message != "" {
			text = m.Message
		}
	case mt == "text/html" || strings.Contains(text, "<html"):
		if m := titleRe.FindStringSubmatch(text); m != nil && strings.TrimSpace(m[1]) != "" && !strings.EqualFold(strings.TrimSpace(m[1]), "Jenkins") {
			text = m[1]
		} else {
			text = tagRe.ReplaceAllString(hiddenRe.ReplaceAllString(text, " "), " ")
		}
		text = html.UnescapeString(text)
	}
	text = strings.TrimSpace(spaceRe.ReplaceAllString(text, " "))
	text = strings.TrimSuffix(errPrefix.ReplaceAllString(text, ""), " [Jenkins]")
	if len(text) > 300 {
		text = strings.ToValidUTF8(text[:300], "") + "…"
	}
	return text
}

// tail reads r to its end and returns its last n lines, each cut to
// maxLen bytes.
func tail(r io.Reader, n, maxLen int) ([]string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	ring := make([]string, 0, n)
	next := 0 // where the oldest line is, once ring is full
	push := func(line string) {
		if len(ring) < n {
			ring = append(ring, line)
			return
		}
		ring[next] = line
		next = (next + 1) % n
	}
	ordered := func() []string {
		return append(ring[next:len(ring):len(ring)], ring[:next]...)
	}
	var cur []byte
	cut := false
	for {
		frag, err := br.ReadSlice('\n')
		complete := err == nil
		if complete {
			frag = frag[:len(frag)-1]
		}
		if room := maxLen - len(cur); len(frag) > room {
			frag, cut = frag[:max(room, 0)], true
		}
		cur = append(cur, frag...)
		if complete || (err == io.EOF && (len(cur) > 0 || cut)) {
			line := strings.ToValidUTF8(strings.TrimSuffix(string(cur), "\r"), "")
			if cut {
				line += " …"
			}
			push(line)
			cur, cut = cur[:0], false
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return ordered(), nil
		default:
			return ordered(), err
		}
	}
}
