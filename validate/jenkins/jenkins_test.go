package jenkins_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"nightshift/validate/jenkins"
	"nightshift/validate/jenkins/jenkinstest"
	"nightshift/validate/jenkins/result"
)

// The credentials of every secured fake. The token is distinctive so that
// a test can tell it leaked into an error.
const (
	testUser  = "nightshift"
	testToken = "11aa22bb33cc-T0KEN-do-not-leak"
)

func start(t *testing.T, cfg jenkinstest.Config) *jenkinstest.Server {
	t.Helper()
	srv := jenkinstest.New(cfg)
	t.Cleanup(srv.Close)
	return srv
}

func client(srv *jenkinstest.Server) *jenkins.Client {
	return &jenkins.Client{
		URL:       srv.URL,
		User:      testUser,
		Token:     testToken,
		HTTP:      srv.Client(),
		Poll:      2 * time.Millisecond,
		AbortWait: 5 * time.Second,
	}
}

// requested reports whether the fake answered method path with status
// (0: any status).
func requested(srv *jenkinstest.Server, method, path string, status int) bool {
	for _, r := range srv.Requests() {
		if r.Method == method && r.Path == path && (status == 0 || r.Status == status) {
			return true
		}
	}
	return false
}

func TestRunSuccessFolderJobWithParams(t *testing.T) {
	t.Parallel()
	const path = "ci/nightly/images"
	srv := start(t, jenkinstest.Config{
		User: testUser, Token: testToken, Crumbs: true,
		Jobs: []jenkinstest.Job{{
			Path:     path,
			Params:   map[string]string{"ci_cpu_param": "ci_cpu:stable", "ci_gpu_param": "ci_gpu:stable", "ci_lint_param": "ci_lint:stable"},
			Duration: 10 * time.Millisecond,
			Console:  "running unit tests\nall 1234 tests passed",
		}},
	})
	job := jenkins.Job{Path: path, Params: map[string]string{
		"ci_cpu_param": "registry.example.org/ci-staging/ci_cpu:2026-04-01-03-00-00-abc1234",
		"ci_gpu_param": "registry.example.org/ci-staging/ci_gpu:2026-04-01-03-00-00-abc1234",
		"undefined":    "Jenkins drops parameters the job does not define",
	}}
	res, err := client(srv).Run(context.Background(), job, 10*time.Second)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	want := jenkins.Result{
		Queue:  srv.URL + "/queue/item/1/",
		Number: 1,
		URL:    srv.URL + "/job/ci/job/nightly/job/images/1/",
		Result: result.Success,
	}
	if res.Queue != want.Queue || res.Number != want.Number || res.URL != want.URL || res.Result != want.Result {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if res.Duration < 10*time.Millisecond {
		t.Errorf("duration = %v, want ≥ 10ms", res.Duration)
	}
	wantConsole := []string{"Started by user nightshift", "running unit tests", "all 1234 tests passed", "Finished: SUCCESS"}
	if strings.Join(res.Console, "\n") != strings.Join(wantConsole, "\n") {
		t.Errorf("console = %q, want %q", res.Console, wantConsole)
	}

	builds := srv.Builds(path)
	if len(builds) != 1 {
		t.Fatalf("fake has %d builds, want 1", len(builds))
	}
	wantParams := map[string]string{
		"ci_cpu_param":  job.Params["ci_cpu_param"],
		"ci_gpu_param":  job.Params["ci_gpu_param"],
		"ci_lint_param": "ci_lint:stable", // not given: the default
	}
	if fmt.Sprint(builds[0].Params) != fmt.Sprint(wantParams) {
		t.Errorf("build received %v, want %v", builds[0].Params, wantParams)
	}
	// Crumbs are on: the client asked for one before its POST, and the
	// POST was not refused.
	if !requested(srv, "GET", "/crumbIssuer/api/json", 200) {
		t.Error("no crumb was fetched")
	}
	if !requested(srv, "POST", "/job/ci/job/nightly/job/images/buildWithParameters", 201) {
		t.Errorf("trigger not accepted: %+v", srv.Requests())
	}
	if requested(srv, "POST", "/job/ci/job/nightly/job/images/buildWithParameters", 403) {
		t.Error("a POST went without a valid crumb")
	}
}

func TestRunResults(t *testing.T) {
	t.Parallel()
	for _, want := range result.All() {
		t.Run(want, func(t *testing.T) {
			t.Parallel()
			srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{
				Path: "tests", Params: map[string]string{"image": ""}, Duration: 5 * time.Millisecond, Result: want,
			}}})
			c := client(srv)
			c.User, c.Token = "", ""
			res, err := c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
			if err != nil {
				t.Fatalf("Run: %v (a finished build is not an error, whatever its result)", err)
			}
			if res.Result != want {
				t.Errorf("result = %q, want %q", res.Result, want)
			}
			if last := res.Console[len(res.Console)-1]; last != "Finished: "+want {
				t.Errorf("last console line = %q", last)
			}
		})
	}
}

func TestRunWaitsInQueueThenBuilds(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{
		Path: "tests", Params: map[string]string{"image": ""}, QueueWait: 40 * time.Millisecond, Duration: 20 * time.Millisecond,
	}}})
	c := client(srv)
	begin := time.Now()
	res, err := c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Result != result.Success || res.Number != 1 {
		t.Errorf("result = %+v", res)
	}
	if took := time.Since(begin); took < 60*time.Millisecond {
		t.Errorf("Run returned after %v, before the queue wait and the build were over", took)
	}
	polls := 0
	for _, r := range srv.Requests() {
		if r.Path == "/queue/item/1/api/json" {
			polls++
		}
	}
	if polls < 2 {
		t.Errorf("queue item polled %d times, want it followed while waiting", polls)
	}
}

func TestRunTimeoutStopsHangingBuild(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{
		User: testUser, Token: testToken, Crumbs: true,
		Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, Hang: true, Console: "waiting for a GPU"}},
	})
	res, err := client(srv).Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 100*time.Millisecond)
	if err == nil {
		t.Fatal("Run of a hanging build returned no error")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Errorf("err = %v, want a timeout after 100ms", err)
	}
	if !strings.Contains(err.Error(), "stopped build "+srv.URL+"/job/tests/1/") {
		t.Errorf("err = %v, want it to say the build was stopped", err)
	}
	if res.Number != 1 || res.Result != result.Aborted {
		t.Errorf("result = %+v, want build 1 ABORTED", res)
	}
	if b := srv.Builds("tests"); len(b) != 1 || !b[0].Stopped || b[0].Result != result.Aborted {
		t.Errorf("fake builds = %+v, want build 1 stopped", b)
	}
	if !requested(srv, "POST", "/job/tests/1/stop", 302) {
		t.Error("fake never saw the stop")
	}
	if got := strings.Join(res.Console, "\n"); !strings.Contains(got, "Aborted by nightshift") {
		t.Errorf("console = %q, want Jenkins' abort line", got)
	}
}

func TestRunTimeoutWhileQueuedCancelsItem(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{
		Path: "tests", Params: map[string]string{"image": ""}, QueueWait: time.Hour,
	}}})
	res, err := client(srv).Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 50ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if !strings.Contains(err.Error(), "cancelled queue item") {
		t.Errorf("err = %v, want it to say the queue item was cancelled", err)
	}
	if res.Number != 0 || res.URL != "" || res.Result != "" || res.Queue != srv.URL+"/queue/item/1/" {
		t.Errorf("result = %+v, want only the queue item", res)
	}
	if got := srv.Cancelled(); fmt.Sprint(got) != "[1]" {
		t.Errorf("fake cancelled %v, want [1]", got)
	}
	if b := srv.Builds("tests"); len(b) != 0 {
		t.Errorf("builds = %+v, want none", b)
	}
}

func TestRunCancelWhileQueued(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{
		User: testUser, Token: testToken, Crumbs: true,
		Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, QueueWait: time.Hour}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	res, err := client(srv).Run(ctx, jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, time.Hour)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") || strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a cancellation", err)
	}
	if res.Number != 0 {
		t.Errorf("result = %+v, want no build", res)
	}
	if got := srv.Cancelled(); fmt.Sprint(got) != "[1]" {
		t.Errorf("fake cancelled %v, want [1]", got)
	}
	if !requested(srv, "POST", "/queue/cancelItem", 204) {
		t.Error("fake never saw cancelItem")
	}
}

func TestRunCancelWhileBuilding(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{
		User: testUser, Token: testToken, Crumbs: true,
		Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, Hang: true}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the client follows the build, after the session the
		// crumb belongs to expired: the stop must fetch a new crumb.
		for !requested(srv, "GET", "/job/tests/1/api/json", 200) {
			time.Sleep(time.Millisecond)
		}
		srv.ExpireSessions()
		cancel()
	}()
	res, err := client(srv).Run(ctx, jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, time.Hour)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("err = %v, want a cancellation", err)
	}
	if res.Number != 1 || res.Result != result.Aborted {
		t.Errorf("result = %+v, want build 1 ABORTED", res)
	}
	if b := srv.Builds("tests"); len(b) != 1 || !b[0].Stopped {
		t.Errorf("fake builds = %+v, want build 1 stopped", b)
	}
	if !requested(srv, "POST", "/job/tests/1/stop", 403) || !requested(srv, "POST", "/job/tests/1/stop", 302) {
		t.Errorf("want a stop refused for its stale crumb, then one accepted: %+v", srv.Requests())
	}
}

func TestRunCancelAfterBuildStartedUnseen(t *testing.T) {
	t.Parallel()
	// The build starts while the client sleeps between two looks at the
	// queue item; cancelling finds the item gone from the queue, and the
	// build it became is stopped instead.
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, QueueWait: 100 * time.Millisecond, Hang: true}}})
	c := client(srv)
	c.Poll = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := c.Run(ctx, jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 0)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("err = %v, want the caller's deadline reported as a cancellation", err)
	}
	if res.Number != 1 || res.Result != result.Aborted {
		t.Errorf("result = %+v, want build 1 ABORTED", res)
	}
	if !requested(srv, "POST", "/queue/cancelItem", 500) || !requested(srv, "POST", "/job/tests/1/stop", 302) {
		t.Errorf("want cancelItem refused (the item left the queue), then the build stopped: %+v", srv.Requests())
	}
}

func TestRunUnknownJob(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{User: testUser, Token: testToken, Crumbs: true, Jobs: []jenkinstest.Job{{Path: "nope/y"}}})
	_, err := client(srv).Run(context.Background(), jenkins.Job{Path: "nope/x", Params: map[string]string{"a": "b"}}, time.Second)
	if err == nil {
		t.Fatal("no error for an unknown job")
	}
	want := "job nope/x not found at " + srv.URL + "/job/nope/job/x/"
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "404") {
		t.Errorf("err = %v, want it to contain %q and the status", err, want)
	}
	var se *jenkins.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("err = %v, want a *StatusError 404 in its chain", err)
	}
}

func TestRunWrongCredentials(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{User: testUser, Token: "the-right-one", Crumbs: true, Jobs: []jenkinstest.Job{{Path: "tests"}}})
	_, err := client(srv).Run(context.Background(), jenkins.Job{Path: "tests"}, time.Second)
	if err == nil {
		t.Fatal("no error with a wrong token")
	}
	for _, want := range []string{`refused the credentials of user "nightshift"`, "401", "Invalid password/token for user: nightshift", srv.URL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("err = %v: the token leaked", err)
	}
}

func TestRunWithoutCredentials(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{User: testUser, Token: testToken, Jobs: []jenkinstest.Job{{Path: "tests"}}})
	c := client(srv)
	c.User, c.Token = "", ""
	_, err := c.Run(context.Background(), jenkins.Job{Path: "tests"}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "requires authentication") || !strings.Contains(err.Error(), "403") {
		t.Errorf("err = %v, want Jenkins' 403 explained as missing credentials", err)
	}
}

func TestCredentialsInURLAreUsedAndHidden(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{User: testUser, Token: testToken, Crumbs: true, Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}}}})
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword(testUser, testToken)
	var logs bytes.Buffer
	c := &jenkins.Client{
		URL: u.String(), HTTP: srv.Client(), Poll: 2 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	srv.FailNext(1, http.StatusServiceUnavailable) // a retry gets logged
	res, err := c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err != nil || res.Result != result.Success {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if strings.Contains(res.Queue+res.URL, testToken) {
		t.Errorf("result %+v shows the token", res)
	}
	if s := fmt.Sprintf("%v %+v", c, *c); strings.Contains(s, testToken) {
		t.Errorf("printed client %s shows the token", s)
	}

	if !strings.Contains(logs.String(), "jenkins build finished") || !strings.Contains(logs.String(), "retrying") {
		t.Errorf("logs = %s, want progress and the retry", logs.String())
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("logs show the token: %s", logs.String())
	}

	u.User = url.UserPassword(testUser, "wrong-"+testToken)
	c.URL = u.String()
	_, err = c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, time.Second)
	if err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("err = %v, want a refusal without the token", err)
	}
}

func TestRunConsoleTailBounded(t *testing.T) {
	t.Parallel()
	var console strings.Builder
	for i := 1; i <= 500; i++ {
		fmt.Fprintf(&console, "line %d\n", i)
		if i == 490 {
			console.WriteString(strings.Repeat("x", 100000) + "\n")
		}
	}
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Console: console.String()}}})
	res, err := client(srv).Run(context.Background(), jenkins.Job{Path: "tests"}, 10*time.Second)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res.Console) != jenkins.ConsoleLines {
		t.Fatalf("console has %d lines, want %d", len(res.Console), jenkins.ConsoleLines)
	}
	// 1 "Started by" + 501 lines + "Finished": the last 50 start at line 453.
	if res.Console[0] != "line 453" || res.Console[len(res.Console)-1] != "Finished: SUCCESS" {
		t.Errorf("console runs from %q to %q", res.Console[0], res.Console[len(res.Console)-1])
	}
	for _, l := range res.Console {
		if len(l) > 1100 {
			t.Errorf("a console line of %d bytes was kept whole", len(l))
		}
	}
	if !requested(srv, "POST", "/job/tests/build", 201) {
		t.Error("a job without parameters was not triggered through /build")
	}
}

func TestRunRetriesTransientErrorsWhilePolling(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{
		User: testUser, Token: testToken, Crumbs: true,
		Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, QueueWait: 10 * time.Millisecond, Duration: 10 * time.Millisecond}},
	})
	srv.FailNext(3, http.StatusServiceUnavailable) // the crumb and the first polls
	c := client(srv)
	res, err := c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err != nil || res.Result != result.Success {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	n := 0
	for _, r := range srv.Requests() {
		if r.Status == http.StatusServiceUnavailable {
			n++
		}
	}
	if n != 3 {
		t.Errorf("fake answered 503 %d times, want 3", n)
	}

	// Mid-run, a few polls fail with 500 and 502.
	srv.FailNext(2, http.StatusInternalServerError)
	srv.FailNext(2, http.StatusBadGateway)
	res, err = c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "y"}}, 10*time.Second)
	if err != nil || res.Result != result.Success || res.Number != 2 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

// refusingTransport fails the first n GETs as a Jenkins that is restarting
// would: connection refused.
type refusingTransport struct {
	n    atomic.Int32
	next http.RoundTripper
}

func (t *refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && t.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	return t.next.RoundTrip(r)
}

func TestRunRetriesRefusedConnections(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, Duration: 5 * time.Millisecond}}})
	tr := &refusingTransport{next: srv.Client().Transport}
	tr.n.Store(4)
	c := client(srv)
	c.HTTP = &http.Client{Transport: tr}
	res, err := c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err != nil || res.Result != result.Success {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if tr.n.Load() >= 0 {
		t.Errorf("only %d refusals were used", 4-tr.n.Load())
	}
}

// triggerProxy stands for a proxy in front of Jenkins, for the trigger
// POSTs only: it refuses the first refuse of them before they reach
// Jenkins, then answers the next lose of them with a 500 of its own after
// Jenkins got them.
type triggerProxy struct {
	refuse, lose atomic.Int32
	next         http.RoundTripper
}

func (p *triggerProxy) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/buildWithParameters") {
		return p.next.RoundTrip(r)
	}
	if p.refuse.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	if p.lose.Add(-1) >= 0 {
		resp, err := p.next.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return &http.Response{
			StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
			Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("upstream hiccup")),
			Request: r,
		}, nil
	}
	return p.next.RoundTrip(r)
}

func TestTriggerRetriedOnlyWhenJenkinsCannotHaveSeenIt(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, Duration: 5 * time.Millisecond}}})
	proxy := &triggerProxy{next: srv.Client().Transport}
	c := client(srv)
	c.HTTP = &http.Client{Transport: proxy}

	proxy.refuse.Store(2)
	res, err := c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err != nil || res.Number != 1 || res.Result != result.Success {
		t.Fatalf("Run after refused connections = %+v, %v", res, err)
	}

	// A 500 after Jenkins got the request may hide a queued build: the
	// trigger is not sent again.
	proxy.lose.Store(1)
	_, err = c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "y"}}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "upstream hiccup") {
		t.Errorf("err = %v, want the 500 reported", err)
	}
	triggers := 0
	for _, r := range srv.Requests() {
		if r.Method == "POST" && r.Path == "/job/tests/buildWithParameters" {
			triggers++
		}
	}
	if triggers != 2 {
		t.Errorf("Jenkins got %d triggers, want 2 (one per Run)", triggers)
	}
}

func TestRunTimeoutSaysWhatWentWrong(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, Hang: true}}})
	go func() {
		// Once the build runs, Jenkins (or its proxy) answers only 503.
		for len(srv.Builds("tests")) == 0 {
			time.Sleep(time.Millisecond)
		}
		srv.FailNext(1000, http.StatusServiceUnavailable)
	}()
	c := client(srv)
	c.AbortWait = 100 * time.Millisecond
	_, err := c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last error") || !strings.Contains(err.Error(), "503") {
		t.Errorf("err = %v, want a timeout naming the 503s", err)
		for _, r := range srv.Requests() {
			if r.Status != 503 {
				t.Logf("%+v", r)
			}
		}
	}
}

func TestRunIgnoresJenkinsIdeaOfItsURL(t *testing.T) {
	t.Parallel()
	// Behind a misconfigured proxy Jenkins names itself http://…:8080 in
	// Location headers and "url" fields.
	srv := start(t, jenkinstest.Config{
		RootURL: "http://jenkins.invalid:8080/ci/",
		Jobs:    []jenkinstest.Job{{Path: "nightly builds/ci tests", Params: map[string]string{"image": ""}}},
	})
	res, err := client(srv).Run(context.Background(), jenkins.Job{Path: "nightly builds/ci tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err != nil || res.Result != result.Success {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if res.Queue != srv.URL+"/queue/item/1/" || res.URL != srv.URL+"/job/nightly%20builds/job/ci%20tests/1/" {
		t.Errorf("result URLs = %q, %q, want them on %s", res.Queue, res.URL, srv.URL)
	}
}

func TestRunFindsBuildAfterQueueItemIsForgotten(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{
		LeftItemTTL: time.Nanosecond, // the item is gone by the first poll
		Jobs:        []jenkinstest.Job{{Path: "f/tests", Params: map[string]string{"image": ""}, Duration: 10 * time.Millisecond}},
	})
	res, err := client(srv).Run(context.Background(), jenkins.Job{Path: "f/tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err != nil || res.Result != result.Success || res.Number != 1 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if !requested(srv, "GET", "/queue/item/1/api/json", 404) || !requested(srv, "GET", "/job/f/job/tests/api/json", 200) {
		t.Errorf("want a 404 queue item, then a look through the job's builds: %+v", srv.Requests())
	}
}

func TestRunIdenticalTriggersShareAQueueItem(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, QueueWait: 200 * time.Millisecond}}})
	c := client(srv)
	var wg sync.WaitGroup
	results := make([]jenkins.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			results[i], errs[i] = c.Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "same"}}, 10*time.Second)
		})
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || results[i].Number != 1 || results[i].Result != result.Success {
			t.Errorf("run %d = %+v, %v; want build 1", i, results[i], errs[i])
		}
	}
	if !requested(srv, "POST", "/job/tests/buildWithParameters", http.StatusSeeOther) {
		t.Error("the second trigger was not folded into the first (303)")
	}
}

func TestRunQueueItemCancelledInJenkins(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, QueueWait: time.Hour}}})
	go func() {
		// Someone cancels the item from Jenkins' UI.
		for !requested(srv, "POST", "/job/tests/buildWithParameters", 201) {
			time.Sleep(time.Millisecond)
		}
		resp, err := srv.Client().Post(srv.URL+"/queue/cancelItem?id=1", "", nil)
		if err == nil {
			resp.Body.Close()
		}
	}()
	res, err := client(srv).Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "was cancelled in Jenkins") || errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the cancellation in Jenkins reported", err)
	}
	if res.Number != 0 || res.Queue == "" {
		t.Errorf("result = %+v", res)
	}
}

func TestRunDisabledJob(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}, Disabled: true}}})
	_, err := client(srv).Run(context.Background(), jenkins.Job{Path: "tests", Params: map[string]string{"image": "x"}}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "not buildable") || !strings.Contains(err.Error(), "409") {
		t.Errorf("err = %v, want 409 not buildable", err)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, path, want string
	}{
		{"ftp://jenkins", "tests", "want http(s)"},
		{"jenkins.example.org", "tests", "want http(s)"},
		{"http://jenkins", "", "job path is empty"},
		{"http://jenkins", "a//b", "each /-separated part"},
		{"http://jenkins", "/a", "each /-separated part"},
		{"http://jenkins", "a/../b", "each /-separated part"},
	} {
		c := &jenkins.Client{URL: tc.url}
		_, err := c.Run(context.Background(), jenkins.Job{Path: tc.path}, time.Second)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%q, %q) = %v, want %q", tc.url, tc.path, err, tc.want)
		}
	}
}
