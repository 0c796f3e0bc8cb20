package jenkins

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200000) // 400000 bytes, more than the reader's buffer
	for _, tc := range []struct {
		name, in string
		n, max   int
		want     []string
	}{
		{"empty", "", 3, 100, []string{}},
		{"fewer lines than kept", "a\nb\n", 3, 100, []string{"a", "b"}},
		{"last lines", "a\nb\nc\nd\ne\n", 2, 100, []string{"d", "e"}},
		{"no final newline", "a\nb\nc", 2, 100, []string{"b", "c"}},
		{"CRLF", "a\r\nb\r\n", 5, 100, []string{"a", "b"}},
		{"empty lines count", "a\n\n\n", 2, 100, []string{"", ""}},
		{"long line cut on a rune", "x\n" + long + "\ny\n", 2, 7, []string{"ééé …", "y"}},
		{"long last line", "x\n" + long, 2, 4, []string{"x", "éé …"}},
	} {
		got, err := tail(strings.NewReader(tc.in), tc.n, tc.max)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("%s: tail = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestJenkinsMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, contentType, body, want string
	}{
		{
			"jetty error page", "text/html;charset=iso-8859-1",
			"<html>\n<head>\n<title>Error 403 No valid crumb was included in the request</title>\n</head>\n<body><h2>HTTP ERROR 403 No valid crumb was included in the request</h2></body></html>",
			"No valid crumb was included in the request",
		},
		{
			"anonymous refused", "text/html;charset=utf-8",
			"<html><head><meta http-equiv='refresh' content='1;url=/login?from=%2F'/><script>window.location.replace('/login?from=%2F');</script></head><body style='background-color:white; color:white;'>\n\nAuthentication required\n<!--\nYou are authenticated as: anonymous\n-->\n</body></html>",
			"Authentication required",
		},
		{"json", "application/json", `{"message":"Provided id (3) not found"}`, "Provided id (3) not found"},
		{"plain", "text/plain", "  Jenkins is getting\nready to work  ", "Jenkins is getting ready to work"},
		{"entities", "text/html", "<title>Error 404 job &#039;x&#039; &amp; more</title>", "job 'x' & more"},
		{"long", "text/plain", strings.Repeat("ü", 400), strings.Repeat("ü", 150) + "…"},
	} {
		if got := jenkinsMessage(tc.contentType, []byte(tc.body)); got != tc.want {
			t.Errorf("%s: message = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://bot:s3cret@ci.example.org/jenkins/": "https://ci.example.org/jenkins/",
		"http://ci.example.org/":                     "http://ci.example.org/",
		"http://bot:s3cret@bad host/":                "…@bad host/",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnreachableJenkinsFailsSoon(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1 of the loopback: every connection is
	// refused, as by a Jenkins that is down.
	c := &Client{URL: "http://127.0.0.1:1/", Poll: time.Millisecond}
	s, err := c.newSession(Job{Path: "tests"})
	if err != nil {
		t.Fatal(err)
	}
	s.triggerBudget = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	begin := time.Now()
	_, err = s.run(ctx)
	if err == nil || !strings.Contains(err.Error(), "no answer from Jenkins for 50ms") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want Jenkins reported unreachable", err)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("gave up after %v", took)
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	refused := &url.Error{Op: "Post", URL: "http://jenkins/job/x/build", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	dropped := &url.Error{Op: "Post", URL: "http://jenkins/job/x/build", Err: io.EOF}
	for _, tc := range []struct {
		name             string
		err              error
		idempotent, once bool
	}{
		{"502", &StatusError{Status: http.StatusBadGateway}, true, true},
		{"503", &StatusError{Status: http.StatusServiceUnavailable}, true, true},
		{"429", &StatusError{Status: http.StatusTooManyRequests}, true, false},
		{"500", &StatusError{Status: http.StatusInternalServerError}, true, false},
		{"404", &StatusError{Status: http.StatusNotFound}, false, false},
		{"connection refused: Jenkins never saw it", refused, true, true},
		{"connection dropped: Jenkins may have acted", dropped, true, false},
		{"body cut short", fmt.Errorf("GET x: decode JSON: %w", io.ErrUnexpectedEOF), true, false},
		{"cancelled", &url.Error{Op: "Get", URL: "http://jenkins/", Err: context.Canceled}, false, false},
	} {
		if got := idempotent.retryable(tc.err); got != tc.idempotent {
			t.Errorf("%s: idempotent retryable = %v, want %v", tc.name, got, tc.idempotent)
		}
		if got := once.retryable(tc.err); got != tc.once {
			t.Errorf("%s: once retryable = %v, want %v", tc.name, got, tc.once)
		}
	}
}
