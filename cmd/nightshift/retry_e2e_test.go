package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/store"
)

// A build whose step fails once on a passing failure (apt's "Temporary
// failure resolving") is built again from scratch and passes: the image
// succeeds, recorded flaky; one failing for a lasting reason is not
// retried. The first build fails because a marker is in its context; the
// test takes the marker away while nightshift waits to try again, so the
// second build, sent a fresh context, passes.
func TestBuildRetriedAfterPassingFailure(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	step := `RUN if [ -e /ctx/fail ]; then echo "Err:1 http://deb.debian.org/debian bookworm InRelease"; ` +
		`echo "  Temporary failure resolving 'deb.debian.org'"; exit 100; fi`
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.flaky":  "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY ctx /ctx\n" + step + "\n",
		"docker/Dockerfile.broken": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo 'E: Unable to locate package libfoo-dev'; exit 100\n",
		"docker/ctx/keep":          "",
		"docker/.dockerignore":     "",
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "retry-e2e"

[[image]]
name = "flaky"
dockerfile = "docker/Dockerfile.flaky"

[[image]]
name = "broken"
dockerfile = "docker/Dockerfile.broken"
`,
	})
	dir := filepath.Dir(cfg)
	marker := filepath.Join(dir, "docker", "ctx", "fail")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2e.bin, "run", "-c", cfg, "--progress", "lines", "--json", filepath.Join(dir, "run.json"), "--junit", filepath.Join(dir, "junit.xml"))
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e2e.docker.Addr)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first build failed and nightshift waits to try again (at least
	// five seconds): now the marker goes.
	waitFor(t, func() bool {
		log, _ := os.ReadFile(filepath.Join(dir, "logs", "1", "flaky.log"))
		return strings.Contains(string(log), "building again from scratch")
	})
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailed {
		t.Fatalf("run: %v, want exit 1 (broken fails)\n%s", err, out.String())
	}

	var rec store.Run
	readJSON(t, filepath.Join(dir, "run.json"), &rec)
	flaky := rec.Image("flaky")
	if flaky == nil || flaky.Status != store.Succeeded || !flaky.Flaky || flaky.Stage("build").Attempts != 2 {
		t.Fatalf("flaky recorded as %+v, want succeeded on its second build, flaky", flaky)
	}
	if got := digest(t, flaky.Ref); got != flaky.Digest {
		t.Errorf("flaky's run tag is at %s, want the recorded %s", got, flaky.Digest)
	}
	broken := rec.Image("broken")
	if broken == nil || broken.Status != store.Failed || broken.Stage("build").Attempts != 0 {
		t.Errorf("broken recorded as %+v, want failed at its one build", broken)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "logs", "1", "broken.log"))
	if strings.Contains(string(log), "building again") {
		t.Errorf("broken, failing for a lasting reason, was built again:\n%s", log)
	}
	if !strings.Contains(out.String(), "succeeded (flaky build)") {
		t.Errorf("the summary does not say flaky built on a retry:\n%s", out.String())
	}
	junit, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil || !strings.Contains(string(junit), "then passed on attempt 2") {
		t.Errorf("the JUnit report does not say flaky's build was flaky (%v)", err)
	}
}
