package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// fakeAPI imitates the few Docker Engine endpoints RunContainer calls, so
// that an engine stuck in one of them can be played: each step either
// answers, or hangs until the request is abandoned.
type fakeAPI struct {
	hangAttach bool // the attach handshake never completes
	hangStart  bool // the start never answers
	openStream bool // the attached stream stays open after the exit
	removeFail bool // DELETE /containers/{id} fails

	mu     sync.Mutex
	calls  []string
	exited chan int // the container's exit code, once it exits
	conns  []interface{ Close() error }
}

const fakeID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var fakeRoute = regexp.MustCompile(`^(?:/v[0-9.]+)?/containers/(create|[0-9a-f]+)(?:/([a-z]+))?$`)

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := fakeRoute.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	call := r.Method + " " + m[1]
	if m[2] != "" {
		call = m[2]
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	exit := func(code int) {
		f.mu.Lock()
		defer f.mu.Unlock()
		select {
		case f.exited <- code:
		default:
		}
	}
	switch call {
	case "POST create":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"Id": fakeID, "Warnings": []string{}})
	case "attach":
		if f.hangAttach {
			<-r.Context().Done()
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		// One stdout frame: header (stream 1, big-endian length), payload.
		buf.Write([]byte{1, 0, 0, 0, 0, 0, 0, 3})
		buf.WriteString("hi\n")
		buf.Flush()
		f.mu.Lock()
		f.conns = append(f.conns, conn)
		f.mu.Unlock()
	case "wait":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case code := <-f.exited:
			json.NewEncoder(w).Encode(map[string]any{"StatusCode": code})
			if !f.openStream {
				f.closeStreams()
			}
		case <-r.Context().Done():
		}
	case "start":
		if f.hangStart {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusNoContent)
		exit(0)
	case "kill":
		w.WriteHeader(http.StatusNoContent)
		exit(137)
	case "DELETE " + fakeID:
		if f.removeFail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"message": "driver is busy"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPI) closeStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func (f *fakeAPI) called(call string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == call {
			return true
		}
	}
	return false
}

func fakeEngine(t *testing.T, f *fakeAPI) *Engine {
	t.Helper()
	f.exited = make(chan int, 1)
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		f.closeStreams()
		srv.CloseClientConnections()
		srv.Close()
	})
	c, err := client.New(client.WithHost("tcp://" + srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Engine{c: c}
}

// TestRunContainerTimeoutBoundsEverything checks that spec.Timeout bounds
// the attach, the start and the reading of the output, not only the wait
// for the exit: an engine stuck in any of them ends the run at its timeout,
// and the container is still removed.
func TestRunContainerTimeoutBoundsEverything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		api  *fakeAPI
	}{
		{"attach hangs", &fakeAPI{hangAttach: true}},
		{"start hangs", &fakeAPI{hangStart: true}},
		{"output never ends", &fakeAPI{openStream: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := fakeEngine(t, tc.api)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			run, err := e.RunContainer(ctx, ContainerSpec{Image: "img", Cmd: []string{"true"}, Timeout: time.Second})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("RunContainer: %v", err)
			}
			if !run.TimedOut {
				t.Errorf("run %+v: want it timed out", run)
			}
			if took > 5*time.Second {
				t.Errorf("took %s with a timeout of 1s", took)
			}
			if !tc.api.called("DELETE " + fakeID) {
				t.Errorf("the container was not removed; calls: %q", tc.api.calls)
			}
		})
	}
}

// TestRunContainerReportsLeftBehind checks that a container the engine
// refuses to remove is an error, marked ErrLeftBehind, and not silence.
func TestRunContainerReportsLeftBehind(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{removeFail: true}
	e := fakeEngine(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := e.RunContainer(ctx, ContainerSpec{Image: "img", Cmd: []string{"true"}, Timeout: 10 * time.Second})
	if !errors.Is(err, ErrLeftBehind) || !strings.Contains(err.Error(), "driver is busy") {
		t.Fatalf("RunContainer = %+v, %v; want an ErrLeftBehind with the engine's message", run, err)
	}
	if run.ExitCode != 0 || string(run.Stdout) != "hi\n" {
		t.Errorf("run %+v: the outcome is still returned", run)
	}
}
