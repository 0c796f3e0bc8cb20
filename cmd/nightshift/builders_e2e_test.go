package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nightshift/engine"
	"nightshift/internal/testenv"
	"nightshift/store"
)

// A nightly on a pool of three private engines and one that is not there:
// each image builds on a builder with its labels (the classic builder on a
// builder = "legacy" node), a child on another
// builder than its parent pulls the parent by digest, the images only the
// missing builder could build fail with its reason (their children
// skipped), a builder stopped during a build fails that build alone, and
// everything else succeeds.
func TestBuilderPool(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir, err := os.MkdirTemp("", "nsb-") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	arm, err := testenv.StartDockerd(filepath.Join(dir, "arm"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(arm.Stop)
	doomed, err := testenv.StartDockerd(filepath.Join(dir, "doom"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(doomed.Stop)

	child := func(parent, run string) string {
		return "ARG BASE_IMAGE=" + parent + "\nFROM ${BASE_IMAGE}\nRUN " + run + "\n"
	}
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base":     base,
		"docker/Dockerfile.armchild": child("base", "echo arm > /etc/ci/arm"),
		"docker/Dockerfile.gpu":      child("base", "echo gpu > /etc/ci/gpu"),
		"docker/Dockerfile.gpuchild": child("gpu", "true"),
		"docker/Dockerfile.slow":     child("base", "echo started-slow && sleep 60"),
		"docker/Dockerfile.other":    base,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "pool-e2e"
# The dead builder's engine does not come back: no need to wait for it.
retry_budget = "3s"

[[builder]]
name   = "x86"
host   = "` + e2e.docker.Addr + `"
labels = ["amd64"]
jobs   = 2

[[builder]]
name   = "arm"
host   = "` + arm.Addr + `"
labels = ["arm64"]
jobs   = 1
builder = "legacy"

[[builder]]
name   = "gone"
host   = "unix://` + filepath.Join(dir, "gone.sock") + `"
labels = ["gpu"]

[[builder]]
name   = "doomed"
host   = "` + doomed.Addr + `"
labels = ["doomed"]

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
runs_on = ["amd64"]

[[image]]
name = "armchild"
dockerfile = "docker/Dockerfile.armchild"
runs_on = ["arm64"]

[[image]]
name = "gpu"
dockerfile = "docker/Dockerfile.gpu"
runs_on = ["gpu"]

[[image]]
name = "gpuchild"
dockerfile = "docker/Dockerfile.gpuchild"

[[image]]
name = "slow"
dockerfile = "docker/Dockerfile.slow"
runs_on = ["doomed"]

[[image]]
name = "other"
dockerfile = "docker/Dockerfile.other"
runs_on = ["amd64"]
`,
	})
	root := filepath.Dir(cfg)

	done := make(chan result, 1)
	go func() { done <- nightshift(t, nil, "run", "-c", cfg, "--json", filepath.Join(root, "run.json")) }()
	slowLog := filepath.Join(root, "logs", "1", "slow.log")
	waitFor(t, func() bool {
		b, _ := os.ReadFile(slowLog)
		return strings.Contains(string(b), "started-slow\n")
	})
	doomed.Kill() // mid-build: a stop would let the build finish first

	res := <-done
	if res.code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "builder gone unreachable") {
		t.Errorf("the unreachable builder is not reported:\n%s", res.stderr)
	}
	var rec store.Run
	readJSON(t, filepath.Join(root, "run.json"), &rec)
	for _, want := range []struct {
		image, builder string
		status         store.Status
		error          string
	}{
		{"base", "x86", store.Succeeded, ""},
		{"armchild", "arm", store.Succeeded, ""},
		{"other", "x86", store.Succeeded, ""},
		{"gpu", "", store.Failed, "builder gone unreachable: "},
		{"gpuchild", "", store.Skipped, "parent gpu failed"},
		{"slow", "doomed", store.Failed, "build: "},
	} {
		im := rec.Image(want.image)
		if im == nil || im.Builder != want.builder || im.Status != want.status || !strings.Contains(im.Error, want.error) {
			t.Errorf("%s = %+v; want builder %q, %s, error with %q", want.image, im, want.builder, want.status, want.error)
		}
	}
	baseIm := rec.Image("base")
	armLog, err := os.ReadFile(filepath.Join(root, "logs", "1", "armchild.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(armLog), "Step 1/") {
		t.Errorf("armchild, on a builder = legacy node, was not built by the classic builder:\n%s", armLog)
	}
	if pinned := baseIm.Ref + "@" + baseIm.Digest; !strings.Contains(string(armLog), pinned) {
		t.Errorf("armchild, built on arm, did not build on base by digest (%s):\n%s", pinned, armLog)
	}
	if res := nightshift(t, nil, "show", "-c", cfg, "1"); !strings.Contains(res.stdout, "builder   arm") {
		t.Errorf("show does not name armchild's builder:\n%s", res.stdout)
	}
}

// With [build] reschedule, a build whose builder stops answering is built
// again on another builder with the image's labels, and recorded there.
func TestBuilderRescheduled(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir, err := os.MkdirTemp("", "nsr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var engines []*testenv.Process
	for _, name := range []string{"one", "two"} {
		p, err := testenv.StartDockerd(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		engines = append(engines, p)
	}
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.slow": base + "RUN echo started-slow && sleep 15\n",
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "reschedule-e2e"

[build]
reschedule = true

[[builder]]
name   = "one"
host   = "` + engines[0].Addr + `"
labels = ["slow"]

[[builder]]
name   = "two"
host   = "` + engines[1].Addr + `"
labels = ["slow"]

[[image]]
name = "slow"
dockerfile = "docker/Dockerfile.slow"
runs_on = ["slow"]
`,
	})
	root := filepath.Dir(cfg)
	done := make(chan result, 1)
	go func() { done <- nightshift(t, nil, "run", "-c", cfg, "--json", filepath.Join(root, "run.json")) }()
	waitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "logs", "1", "slow.log"))
		return strings.Contains(string(b), "started-slow\n")
	})
	engines[0].Kill() // "one", the first with the label, took it

	if res := <-done; res.code != exitOK {
		t.Fatalf("exit %d, want 0 (built again on two)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var rec store.Run
	readJSON(t, filepath.Join(root, "run.json"), &rec)
	im := rec.Image("slow")
	if im == nil || im.Status != store.Succeeded || im.Builder != "two" {
		t.Fatalf("slow = %+v, want succeeded on two", im)
	}
	log, _ := os.ReadFile(filepath.Join(root, "logs", "1", "slow.log"))
	if !strings.Contains(string(log), "==> builder one stopped answering") || !strings.Contains(string(log), "building again on two") {
		t.Errorf("the log does not say the build moved:\n%s", log)
	}
	if st := im.Stage("build"); st == nil || st.Attempts != 2 {
		t.Errorf("build stage %+v, want 2 attempts", st)
	}
}

// A standalone buildkitd builder: it builds an image on a parent built by
// an engine, its image exporter pushes the image to staging itself, and
// the engine at $DOCKER_HOST pulls it by digest to read its packages and
// run its tests.
func TestBuildkitdBuilder(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir, err := os.MkdirTemp("", "nsk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bk, err := testenv.StartBuildkitd(filepath.Join(dir, "bk"), e2e.registry.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bk.Stop)
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"docker/Dockerfile.direct": `ARG BASE_IMAGE=base
FROM ${BASE_IMAGE}
RUN --mount=type=tmpfs,target=/scratch echo built > /scratch/x && cp /scratch/x /etc/ci/direct
`,
		"tests/direct.yaml": `schemaVersion: 2.0.0
fileContentTests:
  - name: built by buildkitd
    path: /etc/ci/direct
    expectedContents: ['(?m)^built$']
`,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "buildkitd-e2e"

[[builder]]
name   = "x86"
host   = "` + e2e.docker.Addr + `"
labels = ["amd64"]

[[builder]]
name     = "bk"
buildkit = "` + bk.Addr + `"
labels   = ["bk"]

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
runs_on = ["amd64"]

[[image]]
name = "direct"
dockerfile = "docker/Dockerfile.direct"
runs_on = ["bk"]
tests = ["tests/direct.yaml"]
`,
	})
	root := filepath.Dir(cfg)
	res := nightshift(t, nil, "run", "-c", cfg, "--json", filepath.Join(root, "run.json"))
	if res.code != exitOK {
		t.Fatalf("exit %d, want 0\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var rec store.Run
	readJSON(t, filepath.Join(root, "run.json"), &rec)
	im := rec.Image("direct")
	if im.Builder != "bk" || im.Validation == nil || im.Validation.Status != store.Succeeded || im.Stage("pull") == nil {
		t.Errorf("direct = %+v; want built on bk, pulled for its tests, validated", im)
	}
	if got := digest(t, im.Ref); got != im.Digest {
		t.Errorf("staging has %s at %s, the record %s", im.Ref, got, im.Digest)
	}
	log, _ := os.ReadFile(filepath.Join(root, "logs", "1", "direct.log"))
	if !strings.Contains(string(log), "by BuildKit's image exporter") {
		t.Errorf("the log does not say the exporter pushed:\n%s", log)
	}
	db, err := store.Open(filepath.Join(root, "nightshift.db"), 5e9)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if c, err := db.Contents(rec.ID, "direct"); err != nil || len(c.Layers) == 0 {
		t.Errorf("direct's contents = %+v, %v; want its layers read", c, err)
	}
}

// [validate] engine runs every image's tests on an engine of its own,
// which pulls each image by digest from staging first.
func TestValidateEngine(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir, err := os.MkdirTemp("", "nsv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tester, err := testenv.StartDockerd(filepath.Join(dir, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tester.Stop)
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"tests/base.yaml": `schemaVersion: 2.0.0
fileExistenceTests:
  - name: base marker
    path: /etc/ci/base
    shouldExist: true
`,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "validate-engine-e2e"

[validate]
engine = "` + tester.Addr + `"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
tests = ["tests/base.yaml"]
`,
	})
	root := filepath.Dir(cfg)
	if res := nightshift(t, nil, "run", "-c", cfg, "--json", filepath.Join(root, "run.json")); res.code != exitOK {
		t.Fatalf("exit %d, want 0\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var rec store.Run
	readJSON(t, filepath.Join(root, "run.json"), &rec)
	im := rec.Image("base")
	if im.Stage("pull") == nil || im.Validation == nil || im.Validation.Status != store.Succeeded {
		t.Fatalf("base = %+v; want pulled onto the test engine and validated", im)
	}
	e, err := engine.NewAt(engine.Host{URL: tester.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.ImageConfig(t.Context(), mustRef(t, im.Ref).Context().Digest(im.Digest).String()); err != nil {
		t.Errorf("the test engine does not have base by digest: %v", err)
	}
}

// A nightshift killed while an image's test runs leaves that container on
// the engine (found by make chaos); the next run removes it, by its owner
// label, and nothing of a living nightshift.
func TestKilledRunsContainersRemoved(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"tests/slow.yaml": `schemaVersion: 2.0.0
commandTests:
  - name: slow
    command: sh
    args: ["-c", "echo testing-now; sleep 120"]
`,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "orphans-e2e"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
tests = ["tests/slow.yaml"]
`,
	})
	root := filepath.Dir(cfg)
	cmd := exec.Command(e2e.bin, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e2e.docker.Addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e, err := engine.NewAt(engine.Host{URL: e2e.docker.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ours := func() []string {
		t.Helper()
		ids, err := e.Containers(t.Context(), engine.LabelOwner)
		if err != nil {
			t.Fatal(err)
		}
		var mine []string
		for id, o := range ids {
			if strings.Contains(o, fmt.Sprintf("/%d/", cmd.Process.Pid)) {
				mine = append(mine, id)
			}
		}
		return mine
	}
	waitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "logs", "1", "base.log"))
		return strings.Contains(string(b), "==> test base") && len(ours()) > 0
	})
	cmd.Process.Kill() // kill -9, mid-test
	cmd.Wait()
	if len(ours()) == 0 {
		t.Fatal("the killed run's test container is gone already: nothing to show")
	}
	os.WriteFile(filepath.Join(root, "tests", "slow.yaml"), []byte("schemaVersion: 2.0.0\n"), 0o644)
	if _, err := testenv.CommitAll(root, "no slow test"); err != nil {
		t.Fatal(err)
	}
	if res := nightshift(t, nil, "run", "-c", cfg); res.code != exitOK {
		t.Fatalf("the next run exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if left := ours(); len(left) > 0 {
		t.Errorf("the killed run's containers %v are still on the engine after the next run", left)
	}
}
