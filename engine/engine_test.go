package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"nightshift/retry"
)

func TestRegistryCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg       string
		code      string
		transient bool
	}{
		// A permanent denial is final, whatever digits its text holds.
		{"denied: requested access to the resource is denied (1a429b3c)", "DENIED", false},
		{"denied: requested access to the resource is denied", "DENIED", false},
		{"toomanyrequests: too many requests (faultproxy)", "TOOMANYREQUESTS", true},
		{"toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading", "TOOMANYREQUESTS", true},
		{"unavailable: the registry is read only", "UNAVAILABLE", true},
		{"unauthorized: authentication required", "UNAUTHORIZED", false},
		{"name unknown: repository name not known to registry", "NAME_UNKNOWN", false},
		{"manifest_invalid: manifest invalid", "MANIFEST_INVALID", false},
		{"blob upload unknown: blob upload unknown to registry", "BLOB_UPLOAD_UNKNOWN", false},
		// After a "<ref>: " prefix, or a sentence of the engine's.
		{"127.0.0.1:5000/ci/base:2026-11-23: name unknown: repository name not known to registry", "NAME_UNKNOWN", false},
		{"pull access denied for 127.0.0.1:5000/ci/base, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", "DENIED", false},
		{"manifest for 127.0.0.1:5000/ci/base:x not found: manifest unknown: manifest unknown", "MANIFEST_UNKNOWN", false},
		// distribution's errcode.Errors: the first code decides, as in moby.
		{"errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required\n", "DENIED", false},
		{"errors:\ntoomanyrequests: slow down\ndenied: no\n", "TOOMANYREQUESTS", true},
		// No registry code: the engine lost the registry on the way.
		{"EOF", "", true},
		{`Put "http://127.0.0.1:5000/v2/ci/base/manifests/x": EOF`, "", true},
		{`Patch "http://127.0.0.1:5000/v2/ci/base/blobs/uploads/1?_state=x": read tcp 127.0.0.1:40000->127.0.0.1:5000: read: connection reset by peer`, "", true},
		{"received unexpected HTTP status: 502 Bad Gateway", "", true},
		{"received unexpected HTTP status: 429 Too Many Requests", "", true},
		// Not the registry's spelling: no code.
		{"Denied: by someone", "", true},
		{"access denied: 403", "", true},
		{"", "", true},
	} {
		err := transferError(&streamError{tc.msg})
		var re *RegistryError
		if !errors.As(err, &re) || re.Code != tc.code || re.Message != tc.msg {
			t.Errorf("%q: %#v, want a *RegistryError with code %q", tc.msg, err, tc.code)
			continue
		}
		if got := retry.Transient(err); got != tc.transient {
			t.Errorf("%q: transient = %v, want %v", tc.msg, got, tc.transient)
		}
	}
}

// engineAnswering is an engine whose API answers's push and pull the way answer says.
func engineAnswering(t *testing.T, answer http.HandlerFunc) *Engine {
	t.Helper()
	srv := httptest.NewServer(answer)
	t.Cleanup(srv.Close)
	c, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithAPIVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Engine{c: c}
}

// stream answers with the engine's JSON messages.
func stream(lines ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for _, l := range lines {
			io.WriteString(w, l+"\n")
		}
	}
}

func status(code int, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, `{"message":"`+msg+`"}`)
	}
}

// The errors of Push and Pull say whether trying again may help, by type:
// the registry's code in the engine's stream, the client's error types,
// Go's network errors.
func TestPushPullErrorsTyped(t *testing.T) {
	t.Parallel()
	const ref = "127.0.0.1:5000/ci/base:x"
	for _, tc := range []struct {
		name      string
		answer    http.HandlerFunc
		transient bool
	}{
		{"denied with 429 in its text", stream(`{"status":"The push refers to repository [127.0.0.1:5000/ci/base]"}`,
			`{"errorDetail":{"message":"denied: requested access to the resource is denied (1a429b3c)"},"error":"denied: requested access to the resource is denied (1a429b3c)"}`), false},
		{"toomanyrequests", stream(`{"errorDetail":{"message":"toomanyrequests: too many requests"},"error":"toomanyrequests: too many requests"}`), true},
		{"EOF from the registry", stream(`{"errorDetail":{"message":"Put \"http://127.0.0.1:5000/v2/ci/base/manifests/x\": EOF"},"error":"x"}`), true},
		{"reset by the registry", stream(`{"errorDetail":{"message":"read tcp 127.0.0.1:1->127.0.0.1:5000: read: connection reset by peer"},"error":"x"}`), true},
		{"engine unavailable", status(http.StatusServiceUnavailable, "shutting down"), true},
		{"engine failed inside", status(http.StatusInternalServerError, "layer store busy"), true},
		{"engine overloaded", status(http.StatusTooManyRequests, "slow down"), true},
		{"no such image", status(http.StatusNotFound, "An image does not exist locally with the tag: "+ref), false},
		{"refused by the engine", status(http.StatusBadRequest, "invalid reference format"), false},
		{"engine gone mid-stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":"Preparing","id":"ab`)
			http.NewResponseController(w).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := engineAnswering(t, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, pushErr := e.Push(ctx, ref, "", io.Discard)
			pullErr := e.Pull(ctx, ref, "", io.Discard)
			for op, err := range map[string]error{"push": pushErr, "pull": pullErr} {
				if err == nil {
					t.Fatalf("%s succeeded", op)
				}
				if got := retry.Transient(err); got != tc.transient {
					t.Errorf("%s: %v: transient = %v, want %v", op, err, got, tc.transient)
				}
				if !strings.HasPrefix(err.Error(), ref+": ") {
					t.Errorf("%s: %q does not name the ref", op, err)
				}
			}
		})
	}
}

func TestPushDigest(t *testing.T) {
	t.Parallel()
	e := engineAnswering(t, stream(`{"status":"x: digest: sha256:abc size: 528"}`, `{"aux":{"Tag":"x","Digest":"sha256:abc","Size":528}}`))
	d, err := e.Push(context.Background(), "127.0.0.1:5000/ci/base:x", "", io.Discard)
	if err != nil || d != "sha256:abc" {
		t.Errorf("Push = %q, %v; want the digest", d, err)
	}
}

// A build's failure is the build's: never transient, whatever it says.
func TestBuildStreamErrorNotTransient(t *testing.T) {
	t.Parallel()
	err := readStream(strings.NewReader(`{"errorDetail":{"message":"EOF"},"error":"EOF"}`), io.Discard, func(json.RawMessage) {})
	if err == nil || retry.Transient(err) {
		t.Errorf("readStream = %v, transient %v; want a failure that is not transient", err, retry.Transient(err))
	}
}
