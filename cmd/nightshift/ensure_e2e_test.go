package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"nightshift/internal/faultproxy"
	"nightshift/internal/testenv"
	"nightshift/pipeline"
	"nightshift/store"
)

// The stack of the ensure tests: a base whose Dockerfile lies in its
// context (its tag is the context's tree hash) and a child built on it.
func ensureFiles(registry, namespace string) map[string]string {
	return map[string]string{
		"docker/base/Dockerfile": base,
		"docker/base/busybox":    "", // replaced by the binary below
		"docker/cpu/Dockerfile":  "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo cpu > /etc/ci/cpu\n",
		"README.md":              "the CI images\n",
		".gitignore":             "nightshift.db\nlogs/\n",
		"nightshift.toml": `
[staging]
registry  = "` + registry + `"
namespace = "` + namespace + `"

[[image]]
name = "base"
dockerfile = "docker/base/Dockerfile"

[[image]]
name = "cpu"
dockerfile = "docker/cpu/Dockerfile"
`,
	}
}

// ensureStack writes the stack as a git repository and returns its config.
func ensureStack(t *testing.T, registry, namespace string) string {
	t.Helper()
	cfg := stack(t, ensureFiles(registry, namespace))
	dir := filepath.Dir(cfg)
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker/base/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "docker/base/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	commit(t, dir, "busybox in the base's context", nil)
	return cfg
}

// commit writes files into the repository at dir and commits everything.
func commit(t *testing.T, dir, msg string, files map[string]string) string {
	t.Helper()
	hash, err := testenv.CommitFiles(dir, msg, files)
	if err != nil {
		t.Fatalf("git commit: %v", err)
	}
	return hash
}

func gitOutput(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// ensured runs `nightshift ensure --json` and returns its results.
func ensured(t *testing.T, cfg string, args ...string) ([]pipeline.EnsureResult, result) {
	t.Helper()
	res := nightshift(t, nil, append([]string{"ensure", "-c", cfg, "--json"}, args...)...)
	var out []pipeline.EnsureResult
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	for {
		var r pipeline.EnsureResult
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("ensure --json: %v\n%s", err, res.stdout)
		}
		out = append(out, r)
	}
	return out, res
}

// localImages lists the engine's images under repo.
func localImages(t *testing.T, repo string) []string {
	t.Helper()
	cmd := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+repo+"/*")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e2e.docker.Addr)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker images: %v", err)
	}
	// Sorted: the engine lists two tags of one image in no set order.
	images := strings.Fields(string(out))
	slices.Sort(images)
	return images
}

func ensureRuns(t *testing.T, cfg string) []store.Run {
	t.Helper()
	res := nightshift(t, nil, "history", "-c", cfg, "--json")
	var runs []store.Run
	if err := json.Unmarshal([]byte(res.stdout), &runs); err != nil {
		t.Fatalf("history: %v\n%s%s", err, res.stdout, res.stderr)
	}
	for _, r := range runs {
		if r.Kind != store.KindEnsure {
			t.Errorf("run %d is of kind %q, want ensure", r.ID, r.Kind)
		}
	}
	return runs
}

func TestEnsureE2E(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	// Every request nightshift and the engine send to the registry goes
	// through the proxy, which counts them.
	proxy, err := faultproxy.Start(e2e.registry.Addr, faultproxy.WithRate(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg := ensureStack(t, proxy.Addr(), "ensure")
	dir := filepath.Dir(cfg)
	repo := proxy.Addr() + "/ensure"
	tree := gitOutput(t, dir, "rev-parse", "HEAD:docker/base")

	// An empty registry and nobody pushing: the wait runs out, the image
	// is built here and not pushed.
	got, res := ensured(t, cfg, "--image", "base", "--wait", "2s", "--poll", "500ms")
	want := pipeline.EnsureResult{Image: "base", Tag: tree, Ref: repo + "/base:" + tree, Outcome: pipeline.OutcomeBuilt}
	if res.code != exitOK || len(got) != 1 || got[0] != want {
		t.Fatalf("ensure on an empty registry: exit %d, %+v; want %+v\n%s", res.code, got, want, res.stderr)
	}
	if !strings.Contains(res.stderr, "waiting for "+want.Ref) || !strings.Contains(res.stderr, "left, next look in") {
		t.Errorf("the wait does not say what it waits for and how long is left:\n%s", res.stderr)
	}
	if !strings.Contains(strings.Join(localImages(t, repo), " "), want.Ref) {
		t.Errorf("the engine has no %s after a local build: %v", want.Ref, localImages(t, repo))
	}
	if _, err := remote.Head(mustRef(t, want.Ref)); err == nil {
		t.Errorf("%s is in the registry: a build without --push pushed it", want.Ref)
	}

	// --push: built, pushed, verified.
	got, res = ensured(t, cfg, "--image", "base", "--push")
	if res.code != exitOK || len(got) != 1 || got[0].Outcome != pipeline.OutcomePushed || got[0].Tag != tree || got[0].Digest == "" {
		t.Fatalf("ensure --push: exit %d, %+v\n%s", res.code, got, res.stderr)
	}
	pushed := got[0]
	if d := digest(t, pushed.Ref); d != pushed.Digest {
		t.Errorf("%s is %s in the registry, ensure said %s", pushed.Ref, d, pushed.Digest)
	}
	if runs := ensureRuns(t, cfg); len(runs) != 2 || runs[0].Status != store.Succeeded || runs[0].Image("base") == nil || runs[0].Image("base").Digest != pushed.Digest {
		t.Errorf("after two builds, history has %+v; want two ensure runs, the newest with base's digest", runs)
	}

	// Again: it exists; one request, nothing built, nothing recorded.
	images := localImages(t, repo)
	before := proxy.Stats().Requests
	res = nightshift(t, nil, "ensure", "-c", cfg, "--image", "base", "--push")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || lines[len(lines)-1] != pushed.Ref+"@"+pushed.Digest {
		t.Errorf("ensure of an existing image: exit %d, last line %q; want %s@%s\n%s", res.code, lines[len(lines)-1], pushed.Ref, pushed.Digest, res.stderr)
	}
	if n := proxy.Stats().Requests - before; n != 1 {
		t.Errorf("ensure of an existing image sent %d requests to the registry, want 1", n)
	}
	if now := localImages(t, repo); strings.Join(now, " ") != strings.Join(images, " ") {
		t.Errorf("ensure of an existing image changed the engine's images: %v -> %v", images, now)
	}
	if runs := ensureRuns(t, cfg); len(runs) != 2 {
		t.Errorf("ensure of an existing image was recorded: %d runs", len(runs))
	}

	// A commit outside the context: the same tag, found.
	commit(t, dir, "docs", map[string]string{"README.md": "the CI images, documented\n"})
	out := filepath.Join(dir, "image.ref")
	got, res = ensured(t, cfg, "--image", "base", "--push", "--output", out)
	if res.code != exitOK || len(got) != 1 || got[0] != (pipeline.EnsureResult{Image: "base", Tag: tree, Ref: pushed.Ref, Digest: pushed.Digest, Outcome: pipeline.OutcomeExists}) {
		t.Errorf("after a commit outside the context: exit %d, %+v; want base:%s existing", res.code, got, tree)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != pushed.Ref+"@"+pushed.Digest+"\n" {
		t.Errorf("--output wrote %q, %v", b, err)
	}

	// The child: its tag depends on its parent's; built on the parent by
	// digest, and pushed.
	got, res = ensured(t, cfg, "--image", "cpu", "--push")
	if res.code != exitOK || len(got) != 1 || got[0].Outcome != pipeline.OutcomePushed || len(got[0].Tag) != 40 {
		t.Fatalf("ensure --push cpu: exit %d, %+v\n%s", res.code, got, res.stderr)
	}
	cpu := got[0]
	if !extends(layerDigests(t, cpu.Ref), layerDigests(t, pushed.Ref)) {
		t.Errorf("cpu does not build on base %s", pushed.Pinned())
	}

	// A commit inside the context: a new tag for base, and so for cpu.
	commit(t, dir, "base changes", map[string]string{"docker/base/motd": "hello\n"})
	newTree := gitOutput(t, dir, "rev-parse", "HEAD:docker/base")
	got, res = ensured(t, cfg, "--all", "--push")
	if res.code != exitOK || len(got) != 2 || got[0].Tag != newTree || got[0].Tag == tree || got[0].Outcome != pipeline.OutcomePushed ||
		got[1].Tag == cpu.Tag || got[1].Outcome != pipeline.OutcomePushed {
		t.Errorf("after a commit inside the context: exit %d, %+v; want both pushed under new tags (base's %s)\n%s", res.code, got, newTree, res.stderr)
	}

	// Uncommitted changes in the context: exit 2, naming them, nothing
	// pushed or recorded.
	runs := len(ensureRuns(t, cfg))
	os.WriteFile(filepath.Join(dir, "docker/base/motd"), []byte("changed\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "docker/base/new-file"), []byte("new\n"), 0o644)
	before = proxy.Stats().Requests
	res = nightshift(t, nil, "ensure", "-c", cfg, "--image", "base", "--push")
	if res.code != exitUsage || !strings.Contains(res.stderr, "docker/base/motd (changed)") || !strings.Contains(res.stderr, "docker/base/new-file (untracked)") {
		t.Errorf("a dirty context: exit %d, want %d naming both files\n%s", res.code, exitUsage, res.stderr)
	}
	if n := proxy.Stats().Requests - before; n != 0 || len(ensureRuns(t, cfg)) != runs {
		t.Errorf("a dirty context sent %d requests to the registry and recorded a run", n)
	}

	// A string "false" is no flag value: exit 2.
	if res := nightshift(t, nil, "ensure", "-c", cfg, "--image", "base", "--push", "false"); res.code != exitUsage {
		t.Errorf("--push false: exit %d, want %d", res.code, exitUsage)
	}
}

// Two hosts (two clones, two stores) push the same missing image at once:
// both succeed, saying the same ref and digest, which the tag points at,
// and every blob of that image is in the registry.
func TestEnsureTwoHostsE2E(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := ensureStack(t, e2e.registry.Addr, "two-hosts")
	var cfgs []string
	for _, host := range []string{"a", "b"} {
		clone := filepath.Join(t.TempDir(), host)
		if out, err := exec.Command("git", "clone", "--quiet", filepath.Dir(cfg), clone).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		cfgs = append(cfgs, filepath.Join(clone, "nightshift.toml"))
	}
	for round := range 3 {
		if round > 0 {
			// A new tag for each round: the base's context changes.
			origin := filepath.Dir(cfg)
			commit(t, origin, "round", map[string]string{"docker/base/round": strings.Repeat("x", round)})
			for _, c := range cfgs {
				if out, err := exec.Command("git", "-C", filepath.Dir(c), "pull", "--quiet", "--ff-only").CombinedOutput(); err != nil {
					t.Fatalf("git pull: %v\n%s", err, out)
				}
			}
		}
		results := make([][]pipeline.EnsureResult, len(cfgs))
		codes := make([]result, len(cfgs))
		var wg sync.WaitGroup
		for i, c := range cfgs {
			wg.Go(func() { results[i], codes[i] = ensured(t, c, "--image", "base", "--push") })
		}
		wg.Wait()
		for i := range cfgs {
			if codes[i].code != exitOK || len(results[i]) != 1 {
				t.Fatalf("round %d, host %d: exit %d, %+v\n%s", round, i, codes[i].code, results[i], codes[i].stderr)
			}
		}
		a, b := results[0][0], results[1][0]
		if a.Ref != b.Ref || a.Digest != b.Digest {
			t.Errorf("round %d: the hosts disagree: %s and %s", round, a.Pinned(), b.Pinned())
		}
		if d := digest(t, a.Ref); d != a.Digest {
			t.Errorf("round %d: %s points at %s, the hosts said %s", round, a.Ref, d, a.Digest)
		}
		// Every blob of what the tag points at is there.
		img, err := remote.Image(mustRef(t, a.Ref))
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err != nil {
				t.Errorf("round %d: a layer of %s: %v", round, a.Ref, err)
			}
		}
		if _, err := img.ConfigFile(); err != nil {
			t.Errorf("round %d: the config of %s: %v", round, a.Ref, err)
		}
		t.Logf("round %d: %s / %s, %s", round, a.Outcome, b.Outcome, a.Pinned())
	}
	// The race was run: both hosts built (and recorded) in some round,
	// rather than one finding the other's image before building.
	built := 0
	for _, c := range cfgs {
		if n := len(ensureRuns(t, c)); n > 0 {
			built++
		}
	}
	if built != 2 {
		t.Errorf("only %d host(s) built in 3 rounds: the race was not run", built)
	}
}
