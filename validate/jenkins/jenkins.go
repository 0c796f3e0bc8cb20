// Package jenkins triggers a Jenkins job with parameters through Jenkins'
// remote access API and follows it to its result: the POST to
// buildWithParameters, the queue item it creates, the build the queue item
// becomes, and the tail of that build's console.
//
// nightshift uses it to run the project's own test pipeline against the
// images a nightly run just pushed, passing their refs as parameters. What a
// result means (does UNSTABLE pass?) is the caller's decision.
package jenkins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"nightshift/retry"
	"strconv"
	"strings"
	"time"

	"nightshift/validate/jenkins/result"
)

// ConsoleLines is the most console lines a Result keeps: the last ones.
const ConsoleLines = 50

const (
	defaultPoll      = 5 * time.Second
	defaultAbortWait = 30 * time.Second
	triggerBudget    = 2 * time.Minute
)

// Client talks to one Jenkins controller as one user. The zero values of
// its optional fields are usable defaults. A Client is safe for concurrent
// use: every Run keeps its own session (cookie and crumb).
type Client struct {
	// URL is Jenkins' root, e.g. "https://ci.example.org/jenkins/". Every
	// URL the client requests is built from it, never from the URLs Jenkins
	// reports, which follow Jenkins' configured root URL and name another
	// host or scheme behind a badly configured reverse proxy. User info in
	// it ("https://user:token@host/") is used as the credentials when User
	// is empty, and never shown.
	URL string
	// User and Token are the user name and one of its API tokens, sent with
	// basic auth on every request. Both empty: anonymous access. The token
	// never appears in an error or a log line.
	User, Token string
	// HTTP sends the requests; nil means a client with the default
	// transport. Its redirect policy and cookie jar are not used: redirects
	// are answers here (201/303 with a queue item), and the session cookie
	// a crumb is bound to is kept per Run.
	HTTP *http.Client
	// Poll is how often the queue item and the build are looked at;
	// 0 means 5s. Each wait is jittered by ±10%.
	Poll time.Duration
	// AbortWait bounds how long an interrupted Run waits for Jenkins to
	// cancel the queue item or abort the build; 0 means 30s.
	AbortWait time.Duration
	// Log receives progress (queued, started, finished) and retried
	// failures; nil discards them.
	Log *slog.Logger
}

// String describes c without its token, so that a Client printed with %v
// or %+v leaks nothing.
func (c Client) String() string {
	return fmt.Sprintf("{URL:%s User:%s}", redactURL(c.URL), c.User)
}

// Job names the job to run and the parameters to give it.
type Job struct {
	// Path is the job's full name: "name", or "folder/sub/name" for a job
	// inside folders (requested as job/folder/job/sub/job/name).
	Path string
	// Params are sent form-encoded to buildWithParameters. Jenkins ignores
	// names the job does not define and gives defined ones missing here
	// their default. With no Params the job is triggered through /build,
	// which only a job without parameters accepts.
	Params map[string]string
}

// Result is what became of one triggered build, as far as it got.
type Result struct {
	// Queue is the queue item's URL (…/queue/item/N/).
	Queue string
	// Number is the build number, 0 if the build never started.
	Number int
	// URL is the build's URL, "" if it never started.
	URL string
	// Result is one of package result's (result.Success, ...), or "" if
	// the build never finished.
	Result string
	// Duration is how long the build ran, as Jenkins measured it.
	Duration time.Duration
	// Console holds the last lines (at most ConsoleLines) of the build's
	// console text, each cut to a bounded length.
	Console []string
}

// Run triggers job, follows its queue item to the build, waits for the
// build's result and returns it with the console's last lines. A build
// that finished returns a nil error whatever its result.
//
// timeout bounds the whole wait (0: only ctx does). When it passes, or ctx
// is cancelled, Run cancels the queue item or stops the build, waits up to
// AbortWait for Jenkins to confirm, and returns what it knows with an error
// saying which happened: the error wraps context.DeadlineExceeded for the
// timeout, and the context's cause (usually context.Canceled) otherwise.
//
// Transient failures while following the build (refused connections,
// 5xx answers) are retried with jittered backoff until the deadline.
// Before Jenkins took the trigger they are retried for 2 minutes at most,
// and the trigger itself only when Jenkins cannot have acted on it
// (connection refused, 502, 503), so that a retry never queues a second
// build. Errors name the URL, the HTTP status and Jenkins' message; a
// *StatusError is in the chain when Jenkins answered.
func (c *Client) Run(ctx context.Context, job Job, timeout time.Duration) (Result, error) {
	s, err := c.newSession(job)
	if err != nil {
		return Result{}, err
	}
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		runCtx, cancel = context.WithTimeoutCause(ctx, timeout, errTimedOut)
	}
	defer cancel()

	res, err := s.run(runCtx)
	if err == nil {
		return res, nil
	}
	if runCtx.Err() == nil {
		return res, fmt.Errorf("jenkins job %s: %w", job.Path, err)
	}

	// Interrupted: undo what was started, with a context that outlives
	// the one that ended, but not for long.
	why := interrupted{msg: "cancelled", err: context.Cause(ctx)}
	if errors.Is(context.Cause(runCtx), errTimedOut) && ctx.Err() == nil {
		why = interrupted{msg: fmt.Sprintf("timed out after %v", timeout), err: context.DeadlineExceeded}
	} else if !errors.Is(why.err, context.Canceled) {
		why.msg += " (" + why.err.Error() + ")"
	}
	if s.lastErr != nil {
		// What was going wrong when time ran out explains more than the timeout.
		why.msg += fmt.Sprintf(" (last error: %v)", s.lastErr)
	}
	abortCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), c.abortWait())
	defer stop()
	res, what := s.abort(abortCtx, res)
	return res, fmt.Errorf("jenkins job %s: %w; %s", job.Path, why, what)
}

// interrupted says why a Run stopped waiting, in words, and wraps the
// context error that says it to code.
type interrupted struct {
	msg string
	err error
}

func (e interrupted) Error() string { return e.msg }
func (e interrupted) Unwrap() error { return e.err }

// errTimedOut is the cause of Run's own deadline, to tell it from the
// caller's.
var errTimedOut = errors.New("run timed out")

func (c *Client) poll() time.Duration {
	if c.Poll > 0 {
		return c.Poll
	}
	return defaultPoll
}

func (c *Client) abortWait() time.Duration {
	if c.AbortWait > 0 {
		return c.AbortWait
	}
	return defaultAbortWait
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// run triggers the job and follows it; res holds as much as was learnt
// when it returns early.
func (s *session) run(ctx context.Context) (Result, error) {
	var res Result
	// Until Jenkins took the trigger, a Jenkins that does not answer fails
	// the Run soon rather than at its timeout.
	tctx, cancel := context.WithTimeout(ctx, s.triggerBudget)
	id, err := s.trigger(tctx)
	budgetSpent := tctx.Err() != nil
	cancel()
	if err != nil && ctx.Err() == nil && budgetSpent {
		err = fmt.Errorf("trigger: no answer from Jenkins for %v (last error: %v)", s.triggerBudget, s.lastErr)
		if s.triggerSent {
			err = fmt.Errorf("%w; a build may have been queued", err)
		}
	}
	if err != nil {
		return res, err
	}
	s.queueID = id
	res.Queue = s.queueURL()
	s.log.Info("jenkins build queued", "job", s.job.Path, "queue", res.Queue)

	number, err := s.waitForStart(ctx)
	if err != nil {
		return res, err
	}
	res.Number = number
	res.URL = s.buildURL(number)
	s.log.Info("jenkins build started", "job", s.job.Path, "build", res.URL)

	b, err := s.waitForEnd(ctx, number)
	if err != nil {
		return res, err
	}
	res.Result, res.Duration = b.Result, b.duration()
	res.Console = s.consoleTail(ctx, number)
	s.log.Info("jenkins build finished", "job", s.job.Path, "build", res.URL, "result", res.Result, "duration", res.Duration)
	return res, nil
}

// queueItem is the part of {queue item}/api/json that matters here. While
// the item waits, executable and cancelled are absent; once it left the
// queue, executable is the build, or null if it was cancelled.
type queueItem struct {
	ID         int64  `json:"id"`
	Cancelled  bool   `json:"cancelled"`
	Why        string `json:"why"`
	Executable *struct {
		Number int    `json:"number"`
		URL    string `json:"url"`
	} `json:"executable"`
}

const queueTree = "id,cancelled,why,executable[number,url]"

// build is the part of {build}/api/json that matters here: result is null
// while the build runs (and may be set before it ends), duration is in
// milliseconds and 0 until it ends.
type build struct {
	Number   int    `json:"number"`
	URL      string `json:"url"`
	Building bool   `json:"building"`
	Result   string `json:"result"`
	Duration int64  `json:"duration"`
	QueueID  int64  `json:"queueId"`
}

const buildTree = "number,url,building,result,duration,queueId"

func (b build) done() bool { return !b.Building && b.Result != "" }

func (b build) duration() time.Duration { return time.Duration(b.Duration) * time.Millisecond }

// waitForStart follows the queue item until it becomes a build, and
// returns the build's number.
func (s *session) waitForStart(ctx context.Context) (int, error) {
	lastWhy := ""
	for {
		var it queueItem
		err := s.getJSON(ctx, s.queueURL()+"api/json?tree="+url.QueryEscape(queueTree), &it)
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.Status == http.StatusNotFound:
			// Jenkins forgets an item 5 minutes after it left the queue; the
			// build remembers which queue item it came from.
			n, ferr := s.findBuildByQueueID(ctx)
			if ferr != nil {
				return 0, fmt.Errorf("queue item %d is gone and no build of it was found: %w", s.queueID, ferr)
			}
			if n == 0 {
				return 0, fmt.Errorf("queue item %d is gone (%s) and no build of %s came from it", s.queueID, s.queueURL(), s.jobURL())
			}
			return n, nil
		case err != nil:
			return 0, err
		case it.Cancelled:
			return 0, fmt.Errorf("queue item %s was cancelled in Jenkins before a build started", s.queueURL())
		case it.Executable != nil && it.Executable.Number > 0:
			return it.Executable.Number, nil
		}
		if it.Why != lastWhy {
			s.log.Debug("jenkins build waiting in queue", "job", s.job.Path, "queue", s.queueURL(), "why", it.Why)
			lastWhy = it.Why
		}
		if err := retry.Sleep(ctx, s.jitter(s.poll)); err != nil {
			return 0, err
		}
	}
}

// findBuildByQueueID looks through the job's recent builds for the one the
// queue item became; 0 if none did.
func (s *session) findBuildByQueueID(ctx context.Context) (int, error) {
	var j struct {
		Builds []build `json:"builds"`
	}
	tree := "builds[number,url,queueId]{0,100}"
	if err := s.getJSON(ctx, s.jobURL()+"api/json?tree="+url.QueryEscape(tree), &j); err != nil {
		return 0, err
	}
	for _, b := range j.Builds {
		if b.QueueID == s.queueID {
			return b.Number, nil
		}
	}
	return 0, nil
}

// waitForEnd polls the build until it finished.
func (s *session) waitForEnd(ctx context.Context, number int) (build, error) {
	for {
		var b build
		if err := s.getJSON(ctx, s.buildURL(number)+"api/json?tree="+url.QueryEscape(buildTree), &b); err != nil {
			return b, err
		}
		if b.done() {
			return b, nil
		}
		if err := retry.Sleep(ctx, s.jitter(s.poll)); err != nil {
			return b, err
		}
	}
}

// abort undoes an interrupted run: it cancels the queue item, or stops the
// build, and waits for Jenkins to confirm. It returns the result as known
// afterwards and a sentence saying what was done.
func (s *session) abort(ctx context.Context, res Result) (Result, string) {
	if s.queueID == 0 {
		if s.triggerSent {
			return res, "Jenkins did not confirm the trigger in time: a build of it may have been queued"
		}
		return res, "nothing had been triggered"
	}
	if res.Number == 0 {
		n, what, err := s.cancelQueued(ctx)
		if err != nil {
			return res, fmt.Sprintf("cancelling queue item %s failed: %v; the build may still start", res.Queue, err)
		}
		if n == 0 {
			return res, what
		}
		res.Number, res.URL = n, s.buildURL(n)
	}

	if err := s.post(ctx, s.buildURL(res.Number)+"stop", nil, nil); err != nil {
		return res, fmt.Sprintf("stopping build %s failed: %v; it may still be running", res.URL, err)
	}
	s.log.Info("jenkins build stopped", "job", s.job.Path, "build", res.URL)
	b, err := s.waitForEnd(ctx, res.Number)
	if b.Result != "" && b.done() {
		res.Result, res.Duration = b.Result, b.duration()
	}
	res.Console = s.consoleTail(ctx, res.Number)
	if err != nil || !b.done() {
		return res, fmt.Sprintf("asked Jenkins to stop build %s, but it had not finished %v later", res.URL, s.abortWait)
	}
	if res.Result != result.Aborted {
		// It ended on its own before the stop reached it.
		return res, fmt.Sprintf("build %s ended %s as it was being stopped", res.URL, res.Result)
	}
	return res, fmt.Sprintf("stopped build %s (result %s)", res.URL, res.Result)
}

// cancelQueued cancels the queue item. If the item turned into a build
// meanwhile, it returns the build's number for the caller to stop.
func (s *session) cancelQueued(ctx context.Context) (number int, what string, err error) {
	u := s.base.JoinPath("queue", "cancelItem").String() + "?id=" + strconv.FormatInt(s.queueID, 10)
	err = s.post(ctx, u, nil, func(resp *http.Response) (bool, error) {
		// Jenkins ≥ 2.210 answers 204, 404 (no such item) or 500/422 (the
		// item left the queue); older ones redirect whatever happened.
		// The queue item itself says what became of it.
		switch {
		case resp.StatusCode < 400, resp.StatusCode == http.StatusNotFound,
			resp.StatusCode == http.StatusUnprocessableEntity, resp.StatusCode == http.StatusInternalServerError:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return 0, "", err
	}
	var it queueItem
	err = s.getJSON(ctx, s.queueURL()+"api/json?tree="+url.QueryEscape(queueTree), &it)
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		n, ferr := s.findBuildByQueueID(ctx)
		if ferr != nil {
			return 0, "", ferr
		}
		if n == 0 {
			return 0, fmt.Sprintf("cancelled queue item %s before a build started", s.queueURL()), nil
		}
		return n, "", nil
	case err != nil:
		return 0, "", err
	case it.Executable != nil && it.Executable.Number > 0:
		return it.Executable.Number, "", nil
	case it.Cancelled:
		s.log.Info("jenkins queue item cancelled", "job", s.job.Path, "queue", s.queueURL())
		return 0, fmt.Sprintf("cancelled queue item %s before a build started", s.queueURL()), nil
	}
	return 0, "", fmt.Errorf("queue item %s is still waiting after cancelItem", s.queueURL())
}

// jobPath turns "folder/sub/name" into the URL path segments
// job/folder/job/sub/job/name.
func jobPath(full string) ([]string, error) {
	if strings.TrimSpace(full) == "" {
		return nil, errors.New("job path is empty")
	}
	var segs []string
	for name := range strings.SplitSeq(full, "/") {
		if name == "" || name == "." || name == ".." || strings.TrimSpace(name) != name {
			return nil, fmt.Errorf("job path %q: each /-separated part must be a job or folder name", full)
		}
		segs = append(segs, "job", name)
	}
	return segs, nil
}
