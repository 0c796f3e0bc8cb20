package rebuild_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/internal/faultproxy"
	"nightshift/internal/testenv"
	"nightshift/rebuild"
	"nightshift/registry"
	"nightshift/store"
)

// A nightly's build and push stages with the real engine and registry: a
// parent and a child built by BuildKit (a secret, a tmpfs mount), an image
// kept on the classic builder, and a BuildKit image whose step fails, whose
// record names the step and its last lines.
func TestRunnerBuildKit(t *testing.T) {
	dir, docker, reg := startE2E(t)
	t.Setenv("DOCKER_HOST", docker.Addr)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker-config"))
	const token = "pip-s3cret-e2e"
	t.Setenv("NIGHTSHIFT_E2E_PIP_TOKEN", token)

	files := map[string]string{
		"docker/Dockerfile.base": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
		"docker/Dockerfile.cpu": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS tools\nRUN echo tools > /tools\n" +
			"FROM ${BASE_IMAGE}\nCOPY --from=tools /tools /tools\n" +
			"RUN --mount=type=tmpfs,target=/tmp/build sh -c 'echo built > /tmp/build/x && cat /tmp/build/x'\n" +
			"RUN --mount=type=secret,id=pip_token,required sh -c 'test -s /run/secrets/pip_token && echo token-ok'\n",
		"docker/Dockerfile.lint": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo classic\n",
		// A FROM naming a stack image: nightshift rewrites the Dockerfile.
		"docker/Dockerfile.gpu": "FROM ci_base\nRUN echo gpu\n",
		"docker/Dockerfile.bad": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about to fail; echo last words; exit 7\n",
	}
	repo := writeRepo(t, dir, files)
	toml := `[source]
repo = "repo"
[staging]
registry = "` + reg.Addr + `"
namespace = "ci"
[[image]]
name = "ci_base"
dockerfile = "docker/Dockerfile.base"
[[image]]
name = "ci_cpu"
dockerfile = "docker/Dockerfile.cpu"
depends_on = ["ci_base"]
secrets = { pip_token = "env:NIGHTSHIFT_E2E_PIP_TOKEN" }
[[image]]
name = "ci_lint"
dockerfile = "docker/Dockerfile.lint"
depends_on = ["ci_base"]
builder = "legacy"
[[image]]
name = "ci_gpu"
dockerfile = "docker/Dockerfile.gpu"
[[image]]
name = "ci_bad"
dockerfile = "docker/Dockerfile.bad"
depends_on = ["ci_base"]
`
	plan := newPlan(t, dir, repo, reg.Addr, toml)

	if plan.Step("ci_gpu").DockerfileContent == nil {
		t.Fatal("ci_gpu's FROM was not rewritten: the test misses the Dockerfile sent from memory")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, err := engine.Connect(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	rc, err := registry.New(reg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	runner := &rebuild.Runner{Engine: eng, Registry: rc, Jobs: 3}
	ends, logOf := run(t, ctx, runner, plan, filepath.Join(dir, "logs"))

	for _, image := range []string{"ci_base", "ci_cpu", "ci_lint", "ci_gpu"} {
		ev := ends[image]
		if ev.Status != store.Succeeded || !strings.HasPrefix(ev.Digest, "sha256:") {
			t.Errorf("%s ended %s (%v), digest %q:\n%s", image, ev.Status, ev.Err, ev.Digest, logOf(image))
			continue
		}
		// The runner verified it; the registry serves it under its run tag.
		if got, err := rc.Digest(ctx, plan.Step(image).Ref.String()); err != nil || got != ev.Digest {
			t.Errorf("%s: the registry has %q (%v), the runner pushed %q", image, got, err, ev.Digest)
		}
	}
	cpu := logOf("ci_cpu")
	for _, want := range []string{"token-ok", "built", "==> steps"} {
		if !strings.Contains(cpu, want) {
			t.Errorf("ci_cpu's log lacks %q:\n%s", want, cpu)
		}
	}
	if strings.Contains(cpu, token) {
		t.Error("the secret's value is in ci_cpu's log")
	}
	// The classic builder's own words: its steps are numbered so.
	if lint := logOf("ci_lint"); !strings.Contains(lint, "Step 1/") || strings.Contains(lint, "==> steps") {
		t.Errorf("ci_lint was not built by the classic builder:\n%s", lint)
	}

	bad := ends["ci_bad"]
	want := []string{"> [2/2] RUN echo about to fail; echo last words; exit 7:", "about to fail", "last words"}
	if bad.Status != store.Failed || strings.Join(bad.Tail, "\n") != strings.Join(want, "\n") {
		t.Errorf("ci_bad ended %s (%v) with tail %q, want failed with %q", bad.Status, bad.Err, bad.Tail, want)
	}
}

// A base image's pull that meets a passing registry failure (503) inside
// BuildKit fails the build with BuildKit's words, which the default
// retry_on knows: the build is tried again and passes.
func TestRunnerBuildKitRetriesAPull(t *testing.T) {
	dir, docker, reg := startE2E(t)
	t.Setenv("DOCKER_HOST", docker.Addr)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker-config"))
	// The first read of ci_base's manifest by the engine's BuildKit (the
	// child's build resolving its base; its resolver says it is containerd's)
	// gets a 503; every other request passes.
	var failed atomic.Bool
	proxy, err := faultproxy.Start(reg.Addr, faultproxy.WithRate(1), faultproxy.WithFaults(faultproxy.Unavailable),
		faultproxy.WithSpare(func(r *http.Request) bool {
			read := r.Method == http.MethodGet || r.Method == http.MethodHead
			pull := read && strings.HasPrefix(r.UserAgent(), "containerd/") && strings.Contains(r.URL.Path, "/ci_base/manifests/")
			return !pull || !failed.CompareAndSwap(false, true)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	repo := writeRepo(t, dir, map[string]string{
		"docker/Dockerfile.base": "FROM scratch\nCOPY busybox /bin/busybox\n",
		"docker/Dockerfile.cpu":  "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN [\"/bin/busybox\", \"true\"]\n",
	})
	plan := newPlan(t, dir, repo, proxy.Addr(), `[source]
repo = "repo"
[staging]
registry = "`+proxy.Addr()+`"
namespace = "ci"
[[image]]
name = "ci_base"
dockerfile = "docker/Dockerfile.base"
[[image]]
name = "ci_cpu"
dockerfile = "docker/Dockerfile.cpu"
depends_on = ["ci_base"]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, err := engine.Connect(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	rc, err := registry.New(proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var retryOn []*regexp.Regexp
	for _, expr := range config.DefaultRetryOn() {
		retryOn = append(retryOn, regexp.MustCompile(expr))
	}
	runner := &rebuild.Runner{Engine: eng, Registry: rc, Jobs: 2, BuildRetries: 1, RetryOn: retryOn, RetryBudget: time.Minute}
	var attempts int
	ends, logOf := run(t, ctx, runner, plan, filepath.Join(dir, "logs"), func(ev rebuild.Event) {
		if ev.Image == "ci_cpu" && ev.Stage == rebuild.StageBuild && ev.Status != store.Running {
			attempts = ev.Attempts
		}
	})
	if !failed.Load() {
		t.Fatal("the engine never read ci_base's manifest through the proxy: nothing was tested")
	}
	if cpu := ends["ci_cpu"]; cpu.Status != store.Succeeded || attempts != 2 {
		t.Errorf("ci_cpu ended %s (%v) after %d builds, want succeeded after 2:\n%s", cpu.Status, cpu.Err, attempts, logOf("ci_cpu"))
	}
}

// startE2E starts a private dockerd and registry under a short temporary
// directory, which it returns.
func startE2E(t *testing.T) (string, *testenv.Process, *testenv.Process) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; -short given")
	}
	testenv.Require(t)
	dir, err := os.MkdirTemp("", "ns-rbk-") // short: the socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	docker, err := testenv.StartDockerd(filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(docker.Stop)
	reg, err := testenv.StartRegistry(filepath.Join(dir, "r"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	return dir, docker, reg
}

// writeRepo writes files and Debian's static busybox (docker/busybox) into
// dir/repo, and returns its path.
func writeRepo(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	repo := filepath.Join(dir, "repo")
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "docker", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	return repo
}

// newPlan plans a run of every image of the config toml, staged at
// registry.
func newPlan(t *testing.T, dir, repo, registry, toml string) *rebuild.Plan {
	t.Helper()
	cfg, err := config.Parse([]byte(toml), "nightshift.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	g, ps := rebuild.NewGraph(cfg.File, repo, registry+"/ci", cfg.Images)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	start := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	plan, err := rebuild.NewPlan(cfg, g, repo, rebuild.Commit{Hash: strings.Repeat("ab", 20), Short: "abababab"}, start, g.Order())
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// run carries out plan, passing every event to each of also, and returns
// how each image ended and a reader of the images' logs.
func run(t *testing.T, ctx context.Context, runner *rebuild.Runner, plan *rebuild.Plan, logs string, also ...func(rebuild.Event)) (map[string]rebuild.Event, func(string) string) {
	t.Helper()
	ends := map[string]rebuild.Event{}
	for ev := range runner.Run(ctx, rebuild.Job{Plan: plan, Logs: logs}) {
		for _, f := range also {
			f(ev)
		}
		if ev.Stage == "" && ev.Status != store.Running {
			ends[ev.Image] = ev
		}
	}
	return ends, func(image string) string {
		b, err := os.ReadFile(filepath.Join(logs, image+".log"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}
