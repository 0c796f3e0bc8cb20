package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"nightshift/internal/testenv"
)

// buildkitEnv is a private dockerd and registry for a BuildKit test, and a
// build directory holding Debian's static busybox.
type buildkitEnv struct {
	e        *Engine
	registry string // host:port
	dir      string // the build context
}

func startBuildkitEnv(t *testing.T) *buildkitEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("engine test; -short given")
	}
	testenv.Require(t)
	dir, err := os.MkdirTemp("", "ns-bk-") // short: the socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	proc, err := testenv.StartDockerd(filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.Stop)
	reg, err := testenv.StartRegistry(filepath.Join(dir, "r"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	c, err := client.New(client.WithHost(proc.Addr))
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{c: c}
	t.Cleanup(func() { e.Close() })
	build := filepath.Join(dir, "build")
	if err := os.MkdirAll(build, 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(build, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	return &buildkitEnv{e: e, registry: reg.Addr, dir: build}
}

// dockerfile writes a Dockerfile into the context and returns its path.
func (env *buildkitEnv) dockerfile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(env.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const busyboxBase = "FROM scratch AS base\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"

// meet is a RUN step of stage me that waits, through a cache mount both
// stages share, until stage other has started: a build that ran the two
// one after the other would fail it, and never hang (it gives up after a
// minute).
func meet(id, me, other string) string {
	return fmt.Sprintf("FROM base AS %[2]s\n"+
		"RUN --mount=type=cache,id=%[1]s,target=/meet,sharing=shared sh -c '"+
		"echo %[2]s started; touch /meet/%[2]s; i=0; "+
		"until [ -e /meet/%[3]s ]; do i=$((i+1)); [ $i -lt 600 ] || exit 1; sleep 0.1; done; "+
		"echo %[2]s met %[3]s; echo %[2]s > /%[2]s.txt'\n", id, me, other)
}

// A BuildKit build through the engine's /grpc and /session endpoints does
// what the classic builder cannot: a tmpfs mount, a secret that reaches the
// step and never the log, independent stages at once; with build args and
// a target stage, and nothing reused (each step runs).
func TestBuildKitFeatures(t *testing.T) {
	env := startBuildkitEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const envToken, fileToken = "env-s3cret-4b1d", "file-s3cret-77aa"
	t.Setenv("NIGHTSHIFT_TEST_PIP_TOKEN", envToken)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(fileToken), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

	id := "meet-" + randomHex(4)
	df := env.dockerfile(t, "Dockerfile.features", busyboxBase+meet(id, "a", "b")+meet(id, "b", "a")+
		"FROM base AS final\n"+
		"ARG GREETING\n"+
		"COPY --from=a /a.txt /a.txt\n"+
		"COPY --from=b /b.txt /b.txt\n"+
		"RUN --mount=type=tmpfs,target=/scratch sh -c 'echo x > /scratch/f && grep \" /scratch tmpfs \" /proc/mounts && echo greeting=$GREETING'\n"+
		"RUN [ ! -e /scratch/f ]\n"+
		"RUN --mount=type=secret,id=pip_token,required sh -c 'sha256sum /run/secrets/pip_token'\n"+
		"RUN --mount=type=secret,id=netrc,required sh -c 'sha256sum /run/secrets/netrc'\n"+
		"FROM final AS never\n"+
		"RUN exit 1\n")

	for try := range 2 { // the second build must run every step again: no cache
		var log bytes.Buffer
		imageID, err := env.e.Build(ctx, BuildSpec{
			Context: env.dir, Dockerfile: df, Tags: []string{env.registry + "/ns/features:1"},
			Args: map[string]string{"GREETING": "hello-args"}, Target: "final",
			NoCache: true, Pull: true, BuildKit: true,
			Secrets: map[string]Secret{"pip_token": {Env: "NIGHTSHIFT_TEST_PIP_TOKEN"}, "netrc": {File: tokenFile}},
		}, &log)
		out := log.String()
		if err != nil {
			t.Fatalf("build %d: %v\n%s", try+1, err, out)
		}
		if !strings.HasPrefix(imageID, "sha256:") {
			t.Errorf("image ID %q", imageID)
		}
		for _, want := range []string{"greeting=hello-args", "tmpfs /scratch tmpfs", "a met b", "b met a",
			sum(envToken) + "  /run/secrets/pip_token", sum(fileToken) + "  /run/secrets/netrc"} {
			if !strings.Contains(out, want) {
				t.Errorf("build %d: the log lacks %q:\n%s", try+1, want, out)
			}
		}
		for _, secret := range []string{envToken, fileToken} {
			if strings.Contains(out, secret) {
				t.Errorf("build %d: a secret's value is in the log", try+1)
			}
		}
		if strings.Contains(out, "CACHED") {
			t.Errorf("build %d reused a cached step:\n%s", try+1, out)
		}
		// The two stages' steps overlap in the progress's times: each
		// started before the other ended.
		a, b := stepTimesIn(t, out, "[a 1/1] RUN"), stepTimesIn(t, out, "[b 1/1] RUN")
		if a[0] >= b[1] || b[0] >= a[1] {
			t.Errorf("build %d: stages a %v and b %v did not run at once:\n%s", try+1, a, b, out)
		}
		if try == 0 {
			t.Logf("progress of the first build:\n%s", out)
		}
	}
}

// stepTimesIn reads the start and end of the step called name from the
// summary of a BuildKit build's log.
func stepTimesIn(t *testing.T, log, name string) [2]float64 {
	t.Helper()
	_, summary, _ := strings.Cut(log, "==> steps")
	for _, line := range strings.Split(summary, "\n") {
		var start, end float64
		var rest string
		if n, _ := fmt.Sscanf(line, "%f %f %s", &start, &end, &rest); n == 3 && strings.Contains(line, "  "+name) {
			return [2]float64{start, end}
		}
	}
	t.Fatalf("no step %q in the summary:\n%s", name, summary)
	return [2]float64{}
}

// A failing step is named by the *BuildError, with its last lines.
func TestBuildKitFailure(t *testing.T) {
	env := startBuildkitEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	df := env.dockerfile(t, "Dockerfile.fail", busyboxBase+"RUN echo one; echo two; exit 3\n")
	var log bytes.Buffer
	_, err := env.e.Build(ctx, BuildSpec{Context: env.dir, Dockerfile: df, Tags: []string{"fail:1"}, NoCache: true, BuildKit: true}, &log)
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("error %#v, want a *BuildError\n%s", err, log.String())
	}
	if be.Step != "[3/3] RUN echo one; echo two; exit 3" || !slices.Equal(be.Lines, []string{"one", "two"}) {
		t.Errorf("step %q, lines %q", be.Step, be.Lines)
	}

	// Heredocs need the Dockerfile frontend 1.4; Docker 20.10's built-in
	// frontend is older, and rejects one as it parses the file.
	df = env.dockerfile(t, "Dockerfile.heredoc", busyboxBase+"RUN <<EOT\necho heredoc-ran\nEOT\n")
	log.Reset()
	_, err = env.e.Build(ctx, BuildSpec{Context: env.dir, Dockerfile: df, Tags: []string{"heredoc:1"}, NoCache: true, BuildKit: true}, &log)
	switch {
	case err == nil && strings.Contains(log.String(), "heredoc-ran"):
		t.Log("this engine's Dockerfile frontend runs heredocs")
	case errors.As(err, &be) && be.Step == "":
		t.Logf("this engine's Dockerfile frontend rejects heredocs: %v", err)
	default:
		t.Errorf("heredoc build: %v\n%s", err, log.String())
	}
}

// A base image comes from a registry that wants a login: BuildKit pulls it
// afresh with the credentials the build carries, served through the
// session; without them the pull is refused.
func TestBuildKitPullsWithCredentials(t *testing.T) {
	env := startBuildkitEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, err := testenv.StartRegistryWithAuth(filepath.Join(t.TempDir(), "auth"), "ci", "pa55word")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	b, err := json.Marshal(registry.AuthConfig{Username: "ci", Password: "pa55word", ServerAddress: reg.Addr})
	if err != nil {
		t.Fatal(err)
	}
	auth := base64.URLEncoding.EncodeToString(b)

	base := reg.Addr + "/ns/base:1"
	var log bytes.Buffer
	df := env.dockerfile(t, "Dockerfile.base", busyboxBase)
	if _, err := env.e.Build(ctx, BuildSpec{Context: env.dir, Dockerfile: df, Tags: []string{base}, NoCache: true, BuildKit: true}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if _, err := env.e.Push(ctx, base, auth, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}

	child := env.dockerfile(t, "Dockerfile.child", "FROM "+base+"\nRUN echo child\n")
	spec := BuildSpec{Context: env.dir, Dockerfile: child, Tags: []string{"child:1"}, NoCache: true, Pull: true, BuildKit: true}
	log.Reset()
	if _, err := env.e.Build(ctx, spec, &log); err == nil {
		t.Errorf("the base was pulled without credentials:\n%s", log.String())
	}
	spec.RegistryAuths = []string{auth}
	log.Reset()
	if _, err := env.e.Build(ctx, spec, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if strings.Contains(log.String(), "pa55word") {
		t.Error("the password is in the log")
	}
}

// A build's deadline stops it in the engine: its step's process ends.
func TestBuildKitDeadline(t *testing.T) {
	env := startBuildkitEnv(t)
	// An argument of its own, to find the step's process by.
	const seconds = "617"
	df := env.dockerfile(t, "Dockerfile.slow", busyboxBase+"RUN echo sleeping; sleep "+seconds+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var log bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := env.e.Build(ctx, BuildSpec{Context: env.dir, Dockerfile: df, Tags: []string{"slow:1"}, NoCache: true, BuildKit: true}, &log)
		done <- err
	}()
	// Seen running first, so that its end below means something.
	for !sleeping(t, seconds) {
		select {
		case err := <-done:
			t.Fatalf("the build ended (%v) before its step was seen running:\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := <-done; err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("build ended with %v before its deadline:\n%s", err, log.String())
	}
	wait, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	for sleeping(t, seconds) {
		select {
		case <-wait.Done():
			t.Fatal("the step of the build whose deadline passed still runs")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sleeping reports whether a process "sleep <seconds>" runs on this machine.
func sleeping(t *testing.T, seconds string) bool {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		// Its own process, or the shell's when sleep runs inside it.
		b, err := os.ReadFile(p)
		if err == nil && (bytes.HasPrefix(b, []byte("sleep\x00"+seconds+"\x00")) || bytes.Contains(b, []byte("; sleep "+seconds))) {
			return true
		}
	}
	return false
}
