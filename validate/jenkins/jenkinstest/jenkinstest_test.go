package jenkinstest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"nightshift/validate/jenkins/jenkinstest"
)

// These tests speak raw HTTP to the imitation, to hold it to what Jenkins
// does: a client's tests are only as good as the fake they run against.

const (
	user  = "ci-bot"
	token = "0123456789abcdef-api-token"
)

func start(t *testing.T, cfg jenkinstest.Config) *jenkinstest.Server {
	t.Helper()
	srv := jenkinstest.New(cfg)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

// call sends one request, with the test credentials unless header["auth"]
// is "none", without following redirects; form goes as an url-encoded
// body; the other header entries are added.
func call(t *testing.T, srv *jenkinstest.Server, method, u string, form url.Values, header map[string]string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		if k != "auth" {
			req.Header.Set(k, v)
		}
	}
	if header["auth"] != "none" {
		req.SetBasicAuth(user, token)
	}
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func decode(t *testing.T, a answer) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
	return v
}

func TestCrumbIsRequiredAndBoundToTheSession(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{User: user, Token: token, Crumbs: true, Jobs: []jenkinstest.Job{{Path: "tests", Params: map[string]string{"image": ""}}}})
	trigger := srv.URL + "/job/tests/buildWithParameters"

	a := call(t, srv, "POST", trigger, url.Values{"image": {"x"}}, nil)
	if a.status != http.StatusForbidden || !strings.Contains(a.body, "<title>Error 403 No valid crumb was included in the request</title>") {
		t.Fatalf("POST without crumb = %d %q, want 403 No valid crumb", a.status, a.body)
	}

	a = call(t, srv, "GET", srv.URL+"/crumbIssuer/api/json", nil, nil)
	v := decode(t, a)
	crumb, _ := v["crumb"].(string)
	if a.status != 200 || crumb == "" || v["crumbRequestField"] != "Jenkins-Crumb" {
		t.Fatalf("crumb issuer = %d %v", a.status, v)
	}
	cookie := a.header.Get("Set-Cookie")
	if !strings.HasPrefix(cookie, "JSESSIONID.") {
		t.Fatalf("crumb issuer set cookie %q, want a JSESSIONID.xxxx session", cookie)
	}
	cookie, _, _ = strings.Cut(cookie, ";")

	// The crumb alone does not pass: it belongs to the session.
	if a := call(t, srv, "POST", trigger, url.Values{"image": {"x"}}, map[string]string{"Jenkins-Crumb": crumb}); a.status != http.StatusForbidden {
		t.Errorf("POST with crumb but no session cookie = %d, want 403", a.status)
	}
	a = call(t, srv, "POST", trigger, url.Values{"image": {"x"}}, map[string]string{"Jenkins-Crumb": crumb, "Cookie": cookie})
	if a.status != http.StatusCreated || a.header.Get("Location") != srv.URL+"/queue/item/1/" {
		t.Fatalf("POST with crumb and cookie = %d, Location %q; want 201 and the queue item", a.status, a.header.Get("Location"))
	}
	// As a form field, too.
	a = call(t, srv, "POST", trigger, url.Values{"image": {"y"}, "Jenkins-Crumb": {crumb}}, map[string]string{"Cookie": cookie})
	if a.status != http.StatusCreated {
		t.Errorf("POST with crumb as a form field = %d, want 201", a.status)
	}

	srv.ExpireSessions()
	if a := call(t, srv, "POST", trigger, url.Values{"image": {"z"}}, map[string]string{"Jenkins-Crumb": crumb, "Cookie": cookie}); a.status != http.StatusForbidden {
		t.Errorf("POST with an expired session = %d, want 403", a.status)
	}
}

func TestCrumbsOff(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{{Path: "tests"}}})
	if a := call(t, srv, "GET", srv.URL+"/crumbIssuer/api/json", nil, nil); a.status != http.StatusNotFound {
		t.Errorf("crumb issuer with crumbs off = %d, want 404", a.status)
	}
	if a := call(t, srv, "POST", srv.URL+"/job/tests/build", nil, nil); a.status != http.StatusCreated {
		t.Errorf("POST without crumb, crumbs off = %d, want 201", a.status)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{User: user, Token: token, Jobs: []jenkinstest.Job{{Path: "tests"}}})

	a := call(t, srv, "GET", srv.URL+"/job/tests/api/json", nil, map[string]string{"auth": "none"})
	if a.status != http.StatusForbidden || !strings.Contains(a.body, "Authentication required") || a.header.Get("X-You-Are-Authenticated-As") != "anonymous" {
		t.Errorf("anonymous = %d %v %q, want 403 Authentication required", a.status, a.header, a.body)
	}

	req, _ := http.NewRequest("GET", srv.URL+"/job/tests/api/json", nil)
	req.SetBasicAuth(user, "wrong")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "Invalid password/token for user: "+user) {
		t.Errorf("wrong token = %d %q, want 401 Invalid password/token", resp.StatusCode, b)
	}

	if a := call(t, srv, "GET", srv.URL+"/job/tests/api/json", nil, nil); a.status != http.StatusOK {
		t.Errorf("right token = %d, want 200", a.status)
	}
}

func TestQueueItemLifecycle(t *testing.T) {
	t.Parallel()
	const step = time.Minute // the queue wait and the build's duration
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	wait := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	srv := start(t, jenkinstest.Config{
		LeftItemTTL: 3 * step,
		Now:         clock,
		Jobs:        []jenkinstest.Job{{Path: "a/b", Params: map[string]string{"image": "default", "other": "d"}, QueueWait: step, Duration: step, Result: "UNSTABLE"}},
	})
	item := srv.URL + "/queue/item/1/api/json"
	build := srv.URL + "/job/a/job/b/1/api/json"

	a := call(t, srv, "POST", srv.URL+"/job/a/job/b/buildWithParameters?other=q", url.Values{"image": {"ci_cpu:tag"}, "unknown": {"dropped"}}, nil)
	if a.status != http.StatusCreated {
		t.Fatalf("trigger = %d %q", a.status, a.body)
	}
	look := func(method, u string, form url.Values) answer {
		t.Helper()
		return call(t, srv, method, u, form, nil)
	}

	wait(step / 2)
	v := decode(t, look("GET", item, nil))
	if _, ok := v["executable"]; ok {
		t.Errorf("waiting item has executable: %v", v)
	}
	if _, ok := v["cancelled"]; ok {
		t.Errorf("waiting item has cancelled: %v", v)
	}
	if why, _ := v["why"].(string); why == "" || v["_class"] != "hudson.model.Queue$WaitingItem" {
		t.Errorf("waiting item = %v, want a why", v)
	}
	// An identical request is folded into the waiting item.
	a = look("POST", srv.URL+"/job/a/job/b/buildWithParameters", url.Values{"image": {"ci_cpu:tag"}, "other": {"q"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != srv.URL+"/queue/item/1/" {
		t.Errorf("identical trigger = %d %q, want 303 to item 1", a.status, a.header.Get("Location"))
	}

	wait(step) // the item left at step; the build runs until 2 steps
	v = decode(t, look("GET", item, nil))
	exe, _ := v["executable"].(map[string]any)
	if v["cancelled"] != false || exe == nil || exe["number"] != 1.0 || exe["url"] != srv.URL+"/job/a/job/b/1/" {
		t.Errorf("left item = %v, want executable build 1", v)
	}
	b := decode(t, look("GET", build, nil))
	if b["building"] != true || b["result"] != nil || b["queueId"] != 1.0 {
		t.Errorf("running build = %v", b)
	}

	wait(step)
	b = decode(t, look("GET", build, nil))
	if b["building"] != false || b["result"] != "UNSTABLE" || b["duration"].(float64) != float64(step.Milliseconds()) {
		t.Errorf("finished build = %v", b)
	}
	builds := srv.Builds("a/b")
	if len(builds) != 1 || builds[0].Params["image"] != "ci_cpu:tag" || builds[0].Params["other"] != "q" || len(builds[0].Params) != 2 {
		t.Errorf("builds = %+v, want the given parameters, undefined ones dropped", builds)
	}
	c := call(t, srv, "GET", srv.URL+"/job/a/job/b/1/consoleText", nil, nil)
	if !strings.HasSuffix(c.body, "Finished: UNSTABLE\n") {
		t.Errorf("console = %q", c.body)
	}

	// Left at step, remembered for 3 steps more: still there just before.
	wait(step + step*4/10) // 3.9 steps
	if a := look("GET", item, nil); a.status != http.StatusOK {
		t.Errorf("item shortly before its TTL = %d, want 200", a.status)
	}
	wait(step / 5)
	if a := look("GET", item, nil); a.status != http.StatusNotFound {
		t.Errorf("item long after it left = %d, want 404 (forgotten)", a.status)
	}
}

func TestCancelAndStop(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{
		{Path: "queued", QueueWait: time.Hour},
		{Path: "hangs", Hang: true},
	}})
	call(t, srv, "POST", srv.URL+"/job/queued/build", nil, nil)
	call(t, srv, "POST", srv.URL+"/job/hangs/build", nil, nil)

	if a := call(t, srv, "GET", srv.URL+"/queue/cancelItem?id=1", nil, nil); a.status != http.StatusMethodNotAllowed {
		t.Errorf("GET cancelItem = %d, want 405", a.status)
	}
	if a := call(t, srv, "POST", srv.URL+"/queue/cancelItem?id=1", nil, nil); a.status != http.StatusNoContent {
		t.Errorf("cancelItem = %d %q, want 204", a.status, a.body)
	}
	v := decode(t, call(t, srv, "GET", srv.URL+"/queue/item/1/api/json", nil, nil))
	if v["cancelled"] != true || v["executable"] != nil {
		t.Errorf("cancelled item = %v", v)
	}
	if a := call(t, srv, "POST", srv.URL+"/queue/cancelItem?id=2", nil, nil); a.status != http.StatusInternalServerError {
		t.Errorf("cancelItem of an item that left = %d, want 500", a.status)
	}
	if a := call(t, srv, "POST", srv.URL+"/queue/cancelItem?id=99", nil, nil); a.status != http.StatusNotFound || !strings.Contains(a.body, "Provided id (99) not found") {
		t.Errorf("cancelItem of an unknown item = %d %q, want 404", a.status, a.body)
	}

	a := call(t, srv, "POST", srv.URL+"/job/hangs/1/stop", nil, nil)
	if a.status != http.StatusFound || a.header.Get("Location") != srv.URL+"/job/hangs/1/" {
		t.Errorf("stop = %d %q, want 302 back to the build", a.status, a.header.Get("Location"))
	}
	b := decode(t, call(t, srv, "GET", srv.URL+"/job/hangs/1/api/json", nil, nil))
	if b["building"] != false || b["result"] != "ABORTED" {
		t.Errorf("stopped build = %v", b)
	}
	if got := srv.Cancelled(); len(got) != 1 || got[0] != 1 {
		t.Errorf("Cancelled = %v", got)
	}
	if bs := srv.Builds("hangs"); len(bs) != 1 || !bs[0].Stopped {
		t.Errorf("Builds = %+v", bs)
	}
}

func TestNotFoundAndWrongKinds(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{Jobs: []jenkinstest.Job{
		{Path: "f/g/plain"},
		{Path: "f/param", Params: map[string]string{"a": ""}},
		{Path: "off", Disabled: true},
	}})
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"POST", "/job/nope/buildWithParameters", 404},
		{"POST", "/job/f/job/nope/build", 404},
		{"GET", "/job/f/job/g/job/plain/7/api/json", 404},
		{"GET", "/job/f/api/json", 200}, // a folder
		{"GET", "/job/f/job/g/api/json", 200},
		{"GET", "/job/f/job/g/job/plain/build", 405},
		{"POST", "/job/f/job/g/job/plain/buildWithParameters", 500}, // not parameterized
		{"POST", "/job/f/job/param/build", 400},                     // wants the form
		{"POST", "/job/off/build", 409},
		{"POST", "/job/f/job/g/job/plain/build", 201},
	} {
		if a := call(t, srv, tc.method, srv.URL+tc.path, nil, nil); a.status != tc.status {
			t.Errorf("%s %s = %d %q, want %d", tc.method, tc.path, a.status, a.body, tc.status)
		}
	}
}

func TestRootURLAndFailures(t *testing.T) {
	t.Parallel()
	srv := start(t, jenkinstest.Config{RootURL: "http://jenkins.invalid:8080/ci", Jobs: []jenkinstest.Job{{Path: "tests"}}})
	a := call(t, srv, "POST", srv.URL+"/job/tests/build", nil, nil)
	if a.header.Get("Location") != "http://jenkins.invalid:8080/ci/queue/item/1/" {
		t.Errorf("Location = %q, want it on the configured root URL", a.header.Get("Location"))
	}
	srv.FailNext(2, http.StatusBadGateway)
	for range 2 {
		if a := call(t, srv, "GET", srv.URL+"/api/json", nil, nil); a.status != http.StatusBadGateway {
			t.Errorf("failed GET = %d, want 502", a.status)
		}
	}
	if a := call(t, srv, "GET", srv.URL+"/api/json", nil, nil); a.status != http.StatusOK {
		t.Errorf("GET after the failures = %d, want 200", a.status)
	}
}
