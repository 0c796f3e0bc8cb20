package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// The end-to-end tests run the real binary against a private Docker Engine
// and registry, started once for the package by TestMain.
var e2e struct {
	bin      string
	docker   *testenv.Process
	registry *testenv.Process
	setupErr error
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if len(testenv.Missing()) == 0 && !testing.Short() {
		dir, err := os.MkdirTemp("", "ns-e2e-")
		if err != nil {
			e2e.setupErr = err
		} else {
			defer os.RemoveAll(dir)
			e2e.setupErr = setupE2E(dir)
			defer e2e.docker.Stop()
			defer e2e.registry.Stop()
		}
	}
	return m.Run()
}

func setupE2E(dir string) error {
	e2e.bin = filepath.Join(dir, "nightshift")
	if out, err := exec.Command("go", "build", "-o", e2e.bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	var err error
	if e2e.docker, err = testenv.StartDockerd(filepath.Join(dir, "d")); err != nil {
		return err
	}
	e2e.registry, err = testenv.StartRegistry(filepath.Join(dir, "registry"))
	return err
}

func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; -short given")
	}
	testenv.Require(t)
	if e2e.setupErr != nil {
		t.Fatalf("starting the engine and registry: %v", e2e.setupErr)
	}
}

// stack writes a test image stack into a fresh git repository and returns
// the config path. files maps paths in the repo to contents; nightshift.toml
// gets the registry address through %REGISTRY%.
func stack(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, content := range files {
		content = strings.ReplaceAll(content, "%REGISTRY%", e2e.registry.Addr)
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testenv.CommitAll(dir, "test stack"); err != nil {
		t.Fatalf("git: %v", err)
	}
	return filepath.Join(dir, "nightshift.toml")
}

type result struct {
	code           int
	stdout, stderr string
}

// nightshift runs the binary with the test engine as DOCKER_HOST.
func nightshift(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2e.bin, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_HOST="+e2e.docker.Addr), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("nightshift %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{code, out.String(), errb.String()}
}

const base = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc/ci && echo base > /etc/ci/base
`

// The stack of the nightly: a base, two children (one through ARG
// BASE_IMAGE, one through a bare FROM), a grandchild, an independent image,
// and a branch whose parent fails.
var nightlyStack = map[string]string{
	"docker/Dockerfile.base": base,
	"docker/Dockerfile.cpu": `ARG BASE_IMAGE=base
FROM ${BASE_IMAGE}
ARG RUN_TAG
RUN echo "cpu ${RUN_TAG}" > /etc/ci/cpu
`,
	"docker/Dockerfile.lint": `FROM base AS tools
RUN echo lint > /etc/ci/lint
`,
	"docker/Dockerfile.gpu": `ARG BASE_IMAGE=cpu
FROM ${BASE_IMAGE}
RUN echo gpu > /etc/ci/gpu
`,
	"docker/Dockerfile.docs": `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo docs > /README"]
`,
	"docker/Dockerfile.broken": `ARG BASE_IMAGE=base
FROM ${BASE_IMAGE}
RUN echo "fetching the mirror" && echo "mirror moved: 404" >&2 && exit 3
`,
	"docker/Dockerfile.broken_child": `ARG BASE_IMAGE=broken
FROM ${BASE_IMAGE}
RUN true
`,
	"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "ci-staging"

[build]
jobs = 2

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "cpu"
dockerfile = "docker/Dockerfile.cpu"
build_args = { RUN_TAG = "{{ .Tag }}" }

[[image]]
name = "lint"
dockerfile = "docker/Dockerfile.lint"

[[image]]
name = "gpu"
dockerfile = "docker/Dockerfile.gpu"

[[image]]
name = "docs"
dockerfile = "docker/Dockerfile.docs"

[[image]]
name = "broken"
dockerfile = "docker/Dockerfile.broken"

[[image]]
name = "broken_child"
dockerfile = "docker/Dockerfile.broken_child"
`,
}

func TestNightlyRun(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, nightlyStack)
	dir := filepath.Dir(cfg)
	junitPath := filepath.Join(dir, "junit.xml")
	jsonPath := filepath.Join(dir, "run.json")

	res := nightshift(t, nil, "run", "-c", cfg, "--junit", junitPath, "--json", jsonPath)
	if res.code != exitFailed {
		t.Fatalf("run exited %d, want %d (one image fails)\nstdout:\n%s\nstderr:\n%s", res.code, exitFailed, res.stdout, res.stderr)
	}

	var rec store.Run
	readJSON(t, jsonPath, &rec)
	if rec.Status != store.Failed || rec.Finished == nil || rec.Commit == "" || rec.Dirty {
		t.Errorf("run record: status %s, finished %v, commit %q, dirty %v; want failed, finished, a commit, clean", rec.Status, rec.Finished, rec.Commit, rec.Dirty)
	}
	want := map[string]store.Status{
		"base": store.Succeeded, "cpu": store.Succeeded, "lint": store.Succeeded, "gpu": store.Succeeded,
		"docs": store.Succeeded, "broken": store.Failed, "broken_child": store.Skipped,
	}
	for n, st := range want {
		if im := rec.Image(n); im == nil || im.Status != st {
			t.Errorf("image %s = %+v, want status %s", n, im, st)
		}
	}

	repo := e2e.registry.Addr + "/ci-staging/"
	layers := map[string][]string{}
	for n, st := range want {
		im := rec.Image(n)
		if st != store.Succeeded || im == nil {
			continue
		}
		if im.Ref != repo+n+":"+rec.Tag {
			t.Errorf("%s ref = %q, want %q", n, im.Ref, repo+n+":"+rec.Tag)
		}
		// What landed: both tags, on the digest the record names.
		for _, tag := range []string{rec.Tag, "latest"} {
			if got := digest(t, repo+n+":"+tag); got != im.Digest {
				t.Errorf("%s:%s is %s in the registry, record says %s", n, tag, got, im.Digest)
			}
		}
		layers[n] = layerDigests(t, im.Ref)
	}
	// Children build on this run's parent: their layers extend the parent's.
	for child, parent := range map[string]string{"cpu": "base", "lint": "base", "gpu": "cpu"} {
		if !extends(layers[child], layers[parent]) {
			t.Errorf("%s layers %v do not extend %s layers %v", child, layers[child], parent, layers[parent])
		}
	}
	if extends(layers["docs"], layers["base"]) && len(layers["base"]) > 0 {
		t.Errorf("docs should not build on base")
	}

	// A failed image fails alone, with its reason and its log kept.
	broken := rec.Image("broken")
	if broken.Error == "" || !strings.HasPrefix(broken.Error, "build:") {
		t.Errorf("broken error = %q, want a build failure", broken.Error)
	}
	if !strings.Contains(strings.Join(broken.Tail, "\n"), "mirror moved: 404") {
		t.Errorf("broken tail %q lacks the failing step's output", broken.Tail)
	}
	if log, err := os.ReadFile(broken.Log); err != nil || !strings.Contains(string(log), "fetching the mirror") {
		t.Errorf("broken log %s: %v, want the build output", broken.Log, err)
	}
	if _, err := remote.Head(mustRef(t, repo+"broken:latest")); err == nil {
		t.Errorf("broken:latest exists in the registry; a failed build must push nothing")
	}
	if child := rec.Image("broken_child"); child.Error != "parent broken failed" {
		t.Errorf("broken_child error = %q, want %q", child.Error, "parent broken failed")
	}

	// The JUnit report: one test case per image and stage.
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Class   string `xml:"classname,attr"`
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(junitPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatalf("junit: %v", err)
	}
	if len(suites.Suites) != 1 || suites.Suites[0].Tests != 7*4 || suites.Suites[0].Failures != 1 {
		t.Errorf("junit: %+v, want one suite of 28 tests with 1 failure", suites)
	}

	// history --json: newest first, the contract's fields.
	res = nightshift(t, nil, "history", "-c", cfg, "--json")
	if res.code != 0 {
		t.Fatalf("history exited %d: %s", res.code, res.stderr)
	}
	var hist []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &hist); err != nil {
		t.Fatalf("history --json: %v\n%s", err, res.stdout)
	}
	if len(hist) != 1 {
		t.Fatalf("history has %d runs, want 1", len(hist))
	}
	for _, k := range []string{"id", "tag", "commit", "status", "started", "finished", "images"} {
		if _, ok := hist[0][k]; !ok {
			t.Errorf("history run lacks %q", k)
		}
	}
	for _, im := range hist[0]["images"].([]any) {
		im := im.(map[string]any)
		for _, k := range []string{"name", "status", "ref", "digest"} {
			if _, ok := im[k]; !ok {
				t.Errorf("history image %v lacks %q", im, k)
			}
		}
		if want := rec.Image(im["name"].(string)); want == nil || im["digest"] != want.Digest || im["status"] != string(want.Status) {
			t.Errorf("history image %v disagrees with the run's record", im)
		}
	}

	res = nightshift(t, nil, "show", "-c", cfg, fmt.Sprint(rec.ID))
	if res.code != 0 || !strings.Contains(res.stdout, "mirror moved: 404") || !strings.Contains(res.stdout, rec.Image("gpu").Digest) {
		t.Errorf("show exited %d, output:\n%s", res.code, res.stdout)
	}

	// The next night: latest moves to the new build, the old tag stays.
	firstBase := rec.Image("base")
	time.Sleep(1100 * time.Millisecond) // tags have a resolution of one second
	res = nightshift(t, nil, "run", "-c", cfg, "--only", "cpu", "--with-deps", "--json", jsonPath)
	if res.code != 0 {
		t.Fatalf("second run exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var second store.Run
	readJSON(t, jsonPath, &second)
	if len(second.Images) != 2 || second.Image("base") == nil || second.Image("cpu") == nil {
		t.Fatalf("--only cpu --with-deps built %+v, want base and cpu", second.Images)
	}
	if got := digest(t, repo+"base:latest"); got != second.Image("base").Digest {
		t.Errorf("base:latest = %s after the second run, want %s", got, second.Image("base").Digest)
	}
	if got := digest(t, firstBase.Ref); got != firstBase.Digest {
		t.Errorf("the first run's base tag moved: %s, want %s", got, firstBase.Digest)
	}
}

// Bad configuration is exit 2 with every problem at once, before anything
// is built; an unreachable engine or a locked store is exit 3.
func TestExitCodes(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	files := map[string]string{
		"docker/Dockerfile.base": base,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "exit-codes"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
`,
	}
	cfg := stack(t, files)

	bad := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "exit-codes"
colour = "blue"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.nope"
depends_on = ["ghost"]
`,
	})
	res := nightshift(t, nil, "run", "-c", bad)
	if res.code != exitUsage {
		t.Errorf("bad config: exit %d, want %d\n%s", res.code, exitUsage, res.stderr)
	}
	for _, want := range []string{"nightshift.toml:5: staging.colour", "nightshift.toml:9: image[1].dockerfile", "nightshift.toml:10: image[1].depends_on"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("bad config stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	if _, err := remote.Head(mustRef(t, e2e.registry.Addr+"/exit-codes/base:latest")); err == nil {
		t.Errorf("a bad config pushed an image")
	}
	if res := nightshift(t, nil, "config", "check", "-c", bad); res.code != exitUsage {
		t.Errorf("config check of a bad config: exit %d, want %d", res.code, exitUsage)
	}
	// A cycle of FROM lines is found by reading the Dockerfiles; it is
	// reported along with the file's own problems, not after they are fixed.
	cyclic := stack(t, map[string]string{
		"docker/Dockerfile.a": "FROM b\n",
		"docker/Dockerfile.b": "ARG BASE_IMAGE=a\nFROM ${BASE_IMAGE}\n",
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "exit-codes"
colour = "blue"

[[image]]
name = "a"
dockerfile = "docker/Dockerfile.a"

[[image]]
name = "b"
dockerfile = "docker/Dockerfile.b"
`,
	})
	res = nightshift(t, nil, "config", "check", "-c", cyclic)
	for _, want := range []string{"nightshift.toml:5: staging.colour: unknown key", "nightshift.toml:7: image[1].dockerfile: dependency cycle: a -> b -> a"} {
		if res.code != exitUsage || !strings.Contains(res.stderr, want) {
			t.Errorf("config check of a cyclic stack: exit %d, stderr lacks %q:\n%s", res.code, want, res.stderr)
		}
	}
	if res := nightshift(t, nil, "config", "check", "-c", cfg); res.code != 0 {
		t.Errorf("config check of a good config: exit %d: %s", res.code, res.stderr)
	}
	if res := nightshift(t, nil, "run", "-c", cfg, "--only", "ghost"); res.code != exitUsage {
		t.Errorf("--only of an unknown image: exit %d, want %d", res.code, exitUsage)
	}

	res = nightshift(t, []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}, "run", "-c", cfg)
	if res.code != exitUnavailable || !strings.Contains(res.stderr, "Docker Engine") {
		t.Errorf("engine down: exit %d, want %d\n%s", res.code, exitUnavailable, res.stderr)
	}

	closed, err := testenv.FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	down := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"nightshift.toml":        strings.Replace(files["nightshift.toml"], "%REGISTRY%", closed, 1),
	})
	res = nightshift(t, nil, "run", "-c", down)
	if res.code != exitUnavailable || !strings.Contains(res.stderr, closed) {
		t.Errorf("registry down: exit %d, want %d\n%s", res.code, exitUnavailable, res.stderr)
	}

	db, err := store.Open(filepath.Join(filepath.Dir(cfg), "nightshift.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res = nightshift(t, nil, "run", "-c", cfg)
	db.Close()
	if res.code != exitUnavailable || !strings.Contains(res.stderr, "in use by another nightshift") {
		t.Errorf("store locked: exit %d, want %d\n%s", res.code, exitUnavailable, res.stderr)
	}
}

// A run killed outright leaves "running" on disk; the next start records it
// as interrupted. A run stopped by SIGTERM records itself interrupted.
func TestInterruptedRuns(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.slow": `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sleep", "60"]
`,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "interrupted"

[[image]]
name = "slow"
dockerfile = "docker/Dockerfile.slow"
`,
	})
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		cmd := exec.Command(e2e.bin, "run", "-c", cfg, "--progress", "lines")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+e2e.docker.Addr)
		var out syncBuffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Contains(out.String(), "slow build") })
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		if sig == syscall.SIGTERM {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailed {
				t.Errorf("SIGTERM: %v, want exit %d", err, exitFailed)
			}
		}
		// history opens the store and leaves a crashed run as it finds it; run
		// (and later the daemon) marks it.
		nightshift(t, nil, "run", "-c", cfg, "--only", "nothing") // exit 2 after the store was opened
		res := nightshift(t, nil, "history", "-c", cfg, "--json")
		var runs []store.Run
		if err := json.Unmarshal([]byte(res.stdout), &runs); err != nil || len(runs) == 0 {
			t.Fatalf("history: %v\n%s", err, res.stdout)
		}
		got := runs[0]
		if got.Status != store.Interrupted || got.Image("slow") == nil || got.Image("slow").Status != store.Interrupted {
			t.Errorf("after %v: run %+v, want it and its image interrupted", sig, got)
		}
	}
}

// syncBuffer is a bytes.Buffer that a process may write while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustRef(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func digest(t *testing.T, ref string) string {
	t.Helper()
	desc, err := remote.Head(mustRef(t, ref))
	if err != nil {
		t.Errorf("HEAD %s: %v", ref, err)
		return ""
	}
	return desc.Digest.String()
}

func layerDigests(t *testing.T, ref string) []string {
	t.Helper()
	img, err := remote.Image(mustRef(t, ref))
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

// extends reports whether child's layers start with all of parent's and add more.
func extends(child, parent []string) bool {
	if len(parent) == 0 || len(child) <= len(parent) {
		return false
	}
	for i := range parent {
		if child[i] != parent[i] {
			return false
		}
	}
	return true
}

// Credentials from staging.username and password_file reach both the engine
// (push) and nightshift's own registry client (verify, tag); wrong ones are
// found before anything is built.
func TestRegistryCredentials(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	reg, err := testenv.StartRegistryWithAuth(filepath.Join(t.TempDir(), "registry"), "ci-bot", "s3cret-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		// The child's build pulls its parent from the private registry.
		"docker/Dockerfile.child": "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo child > /etc/ci/child\n",
		"nightshift.toml": strings.ReplaceAll(`
[staging]
registry  = "AUTHREG"
namespace = "private"
username  = "ci-bot"
password_file = "../pw"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "child"
dockerfile = "docker/Dockerfile.child"
`, "AUTHREG", reg.Addr),
	})
	pw := filepath.Join(filepath.Dir(filepath.Dir(cfg)), "pw")
	for _, tc := range []struct {
		password string
		code     int
	}{{"wrong", exitUnavailable}, {"s3cret-pw", exitOK}} {
		if err := os.WriteFile(pw, []byte(tc.password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		res := nightshift(t, nil, "run", "-c", cfg)
		if res.code != tc.code {
			t.Fatalf("password %q: exit %d, want %d\n%s\n%s", tc.password, res.code, tc.code, res.stdout, res.stderr)
		}
		if strings.Contains(res.stdout+res.stderr, "s3cret-pw") {
			t.Fatalf("the password leaked into the output")
		}
		if tc.code == exitUnavailable && !strings.Contains(res.stderr, "cannot push to") {
			t.Errorf("wrong password: stderr %q does not say why", res.stderr)
		}
	}
	ref, err := name.ParseReference(reg.Addr+"/private/base:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref); err == nil {
		t.Error("the registry answered without credentials: its auth is not on")
	}
	if _, err := remote.Head(ref, remote.WithAuth(&authn.Basic{Username: "ci-bot", Password: "s3cret-pw"})); err != nil {
		t.Errorf("base:latest with credentials: %v", err)
	}
	child, err := name.ParseReference(reg.Addr+"/private/child:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(child, remote.WithAuth(&authn.Basic{Username: "ci-bot", Password: "s3cret-pw"})); err != nil {
		t.Errorf("child:latest with credentials: %v", err)
	}
}
