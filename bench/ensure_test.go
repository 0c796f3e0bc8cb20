package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/internal/testenv"
	"nightshift/pipeline"
)

// writeEnsureStack writes a one-image stack (its Dockerfile in its context)
// into a git repository and returns the config path.
func writeEnsureStack(b *testing.B, namespace string) string {
	b.Helper()
	dir := b.TempDir()
	bb, err := os.ReadFile(testenv.Busybox)
	must(b, err)
	must(b, os.MkdirAll(filepath.Join(dir, "docker"), 0o755))
	must(b, os.WriteFile(filepath.Join(dir, "docker", "busybox"), bb, 0o755))
	must(b, os.WriteFile(filepath.Join(dir, "docker", "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\n"), 0o644))
	must(b, os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("nightshift.db\nlogs/\n"), 0o644))
	must(b, os.WriteFile(filepath.Join(dir, "nightshift.toml"), []byte(fmt.Sprintf(
		"[staging]\nregistry = %q\nnamespace = %q\n\n[changes]\nignore = [\"**/*.md\"]\n\n[[image]]\nname = \"base\"\ndockerfile = \"docker/Dockerfile\"\n",
		env.registry.Addr, namespace)), 0o644))
	if _, err := testenv.CommitAll(dir, "ensure stack"); err != nil {
		b.Fatal(err)
	}
	return filepath.Join(dir, "nightshift.toml")
}

// timed runs a command n times and returns the mean wall time of one run
// and the last run's standard output.
func timed(b *testing.B, n int, name string, args ...string) (time.Duration, string) {
	b.Helper()
	var total time.Duration
	var out bytes.Buffer
	for range n {
		out.Reset()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.docker.Addr)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s %v: %v\n%s%s", name, args, err, out.String(), stderr.String())
		}
		total += time.Since(start)
	}
	return total / time.Duration(n), out.String()
}

// BenchmarkEnsureExists compares `nightshift ensure` of an image that
// exists (config, git tree hash and status, one HEAD) with one
// `curl -I` of the image's manifest, each a process of its own.
func BenchmarkEnsureExists(b *testing.B) {
	requireEnv(b)
	if _, err := exec.LookPath("curl"); err != nil {
		b.Fatal("the baseline needs curl (apt-get install curl)")
	}
	cfg := writeEnsureStack(b, "ensure-bench")
	_, out := timed(b, 1, env.bin, "ensure", "-c", cfg, "--image", "base", "--push", "--json")
	var pushed pipeline.EnsureResult
	must(b, json.Unmarshal([]byte(out), &pushed))
	tag, err := name.NewTag(pushed.Ref) // curl asks for the tag, as ensure does
	must(b, err)
	url := "http://" + tag.RegistryStr() + "/v2/" + tag.RepositoryStr() + "/manifests/" + tag.TagStr()
	const n = 20
	for range b.N {
		// Alternating halves, so that one slow moment of a shared machine
		// does not land on one side alone.
		var ensure, curl time.Duration
		for range 2 {
			e, _ := timed(b, n/2, env.bin, "ensure", "-c", cfg, "--image", "base", "--push")
			c, _ := timed(b, n/2, "curl", "-sfI", "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json", url)
			ensure, curl = ensure+e/2, curl+c/2
		}
		b.ReportMetric(ensure.Seconds()/curl.Seconds(), "ensure/curl")
		fmt.Printf("\nensure of an existing image (%d times a side): nightshift ensure %.1fms vs one curl -I of its manifest %.1fms: ratio %.2f\n",
			n, 1000*ensure.Seconds(), 1000*curl.Seconds(), ensure.Seconds()/curl.Seconds())
	}
}

// BenchmarkChangedSinceNothing compares `nightshift run --changed-since`
// after a commit that rebuilds nothing (an ignored file) with `git diff
// --name-only` of the same range, the least any change detection does.
func BenchmarkChangedSinceNothing(b *testing.B) {
	requireEnv(b)
	cfg := writeEnsureStack(b, "changed-bench")
	dir := filepath.Dir(cfg)
	must(b, os.WriteFile(filepath.Join(dir, "README.md"), []byte("docs\n"), 0o644))
	if _, err := testenv.CommitAll(dir, "docs only"); err != nil {
		b.Fatal(err)
	}
	const n = 20
	for range b.N {
		var run, diff time.Duration
		var out string
		for range 2 {
			r, o := timed(b, n/2, env.bin, "run", "-c", cfg, "--changed-since", "HEAD~1")
			d, _ := timed(b, n/2, "git", "-C", dir, "diff", "--name-only", "HEAD~1", "HEAD")
			run, diff, out = run+r/2, diff+d/2, o
		}
		if !strings.Contains(out, "nothing to rebuild") {
			b.Fatalf("run --changed-since rebuilt something:\n%s", out)
		}
		b.ReportMetric(run.Seconds()/diff.Seconds(), "run/git-diff")
		fmt.Printf("\nrun --changed-since with nothing to rebuild (%d times a side): %.1fms vs git diff --name-only of the range %.1fms: ratio %.2f\n",
			n, 1000*run.Seconds(), 1000*diff.Seconds(), run.Seconds()/diff.Seconds())
	}
}
