package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"nightshift/internal/testenv"
	"nightshift/packages"
	"nightshift/store"
)

// pipImage is a child whose "pip" (a script: the images have busybox
// alone) lists numpy at version.
func pipImage(version string, more ...string) string {
	return `ARG BASE_IMAGE=base
FROM ${BASE_IMAGE}
RUN mkdir -p /usr/local/bin && echo numpy==` + version + ` > /pip.txt && \
    printf '#!/bin/sh\n[ "$*" = "list --format=freeze" ] || exit 2\ncat /pip.txt\n' > /usr/local/bin/pip && \
    chmod +x /usr/local/bin/pip` + strings.Join(append([]string{""}, more...), "\nRUN ") + "\n"
}

// Two nights of a stack against the real engine and registry: after each
// push the images' layers and packages are read (by the default pip
// command, and a command of one image alone; dpkg-query and conda are not
// in these images); the second night, with numpy upgraded in cpu and a
// file added, shows the diff since the first, a manifest, and a mismatch
// inside a [packages] consistent group, which fails the validation of
// both images of the group and of them alone.
func TestPackageManifestsDiffAndConsistency(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, map[string]string{
		"docker/Dockerfile.base": base,
		"docker/Dockerfile.cpu":  pipImage("1.25.2"),
		"docker/Dockerfile.gpu":  pipImage("1.25.2"),
		"tests/shell.yaml": `schemaVersion: 2.0.0
commandTests:
  - name: shell
    command: sh
    args: ["-c", "echo ok"]
    expectedOutput: ['ok']
`,
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "packages-e2e"

[validate]
tests = ["tests/shell.yaml"]

[packages]
consistent = [["cpu", "gpu"]]

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "cpu"
dockerfile = "docker/Dockerfile.cpu"
[[image.packages]]
name = "files"
command = "ls /etc/ci"
format = "lines"

[[image]]
name = "gpu"
dockerfile = "docker/Dockerfile.gpu"
`,
	})
	dir := filepath.Dir(cfg)

	if res := nightshift(t, nil, "run", "-c", cfg); res.code != exitOK {
		t.Fatalf("night 1 exited %d, want 0\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker", "Dockerfile.cpu"), []byte(pipImage("1.26.0", "touch /etc/ci/extra")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CommitAll(dir, "cpu: numpy 1.26.0"); err != nil {
		t.Fatal(err)
	}
	res := nightshift(t, nil, "run", "-c", cfg, "--json", filepath.Join(dir, "run2.json"))
	if res.code != exitFailed {
		t.Fatalf("night 2 exited %d, want 1 (cpu and gpu disagree on numpy)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var night2 store.Run
	readJSON(t, filepath.Join(dir, "run2.json"), &night2)
	for _, name := range []string{"cpu", "gpu"} {
		im := night2.Image(name)
		if im.Status != store.Failed || im.Validation == nil || im.Validation.Status != store.Failed ||
			!strings.Contains(im.Error, "pip numpy: 1.25.2 in gpu; 1.26.0 in cpu") {
			t.Errorf("%s: %s (%q), validation %+v; want failed by the numpy mismatch", name, im.Status, im.Error, im.Validation)
		}
		if tag := im.Ref + "-validated"; lookup(t, tag) {
			t.Errorf("%s was tagged validated despite the mismatch", name)
		}
	}
	if im := night2.Image("base"); im.Status != store.Succeeded || !lookup(t, im.Ref+"-validated") {
		t.Errorf("base, in no group: %s; want succeeded and validated", im.Status)
	}
	cpu := night2.Image("cpu")
	if d := cpu.Packages; d == nil || d.SinceRun != 1 || d.Changed != 1 || d.Added != 1 || d.Removed != 0 {
		t.Errorf("cpu's recorded package diff = %+v, want since run 1: numpy changed, extra added", d)
	}

	res = nightshift(t, nil, "diff", "-c", cfg, "--run", "2", "--json")
	var diffs []packages.ImageDiff
	if err := json.Unmarshal([]byte(res.stdout), &diffs); res.code != exitOK || err != nil {
		t.Fatalf("diff --json exited %d: %v\n%s\n%s", res.code, err, res.stdout, res.stderr)
	}
	want := `[{"image":"base","since_run":1,"added":[],"removed":[],"changed":[]},` +
		`{"image":"cpu","since_run":1,"added":[{"name":"extra","version":"","source":"files"}],"removed":[],"changed":[{"name":"numpy","from":"1.25.2","to":"1.26.0","source":"pip"}]},` +
		`{"image":"gpu","since_run":1,"added":[],"removed":[],"changed":[]}]`
	if got, _ := json.Marshal(diffs); string(got) != want {
		t.Errorf("diff --json:\n got %s\nwant %s", got, want)
	}
	if res := nightshift(t, nil, "diff", "-c", cfg, "--run", "2"); !strings.Contains(res.stdout, "cpu  since run 1: 1 added, 1 changed") ||
		!strings.Contains(res.stdout, "pip    numpy  1.25.2 -> 1.26.0") {
		t.Errorf("diff:\n%s\n%s", res.stdout, res.stderr)
	}

	res = nightshift(t, nil, "consistency", "-c", cfg, "--run", "2", "--json")
	if want := `[{"name":"numpy","source":"pip","versions":{"1.25.2":["gpu"],"1.26.0":["cpu"]}}]`; res.code != exitOK || compact(t, res.stdout) != want {
		t.Errorf("consistency --json exited %d:\n got %s\nwant %s\n%s", res.code, res.stdout, want, res.stderr)
	}

	res = nightshift(t, nil, "manifest", "-c", cfg, "--run", "2", "--image", "cpu")
	for _, want := range []string{
		"# cpu\n", "- Ref: `" + cpu.Ref + "`", "- Digest: `" + digest(t, cpu.Ref) + "`",
		"| 1 |", "` COPY ", "` RUN mkdir -p /usr/local/bin", "` RUN touch /etc/ci/extra ` |",
		"## dpkg\n\n`dpkg-query -W`: not in this image.",
		"## pip\n\n`pip list --format=freeze`: 1 packages.", "| numpy | 1.26.0 |",
		"## conda\n\n`conda list --export`: not in this image.",
		"## files\n\n`ls /etc/ci`: 2 packages.", "| extra |  |",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("manifest lacks %q:\n%s\n%s", want, res.stdout, res.stderr)
		}
	}
	if res := nightshift(t, nil, "manifest", "-c", cfg, "--run", "2", "--image", "nope"); res.code != exitUsage {
		t.Errorf("manifest of an image without contents exited %d, want %d", res.code, exitUsage)
	}
	if res := nightshift(t, nil, "show", "-c", cfg, "2"); !regexp.MustCompile(`package diff +since run 1 +1 added, 1 changed\n +pip numpy 1.25.2 -> 1.26.0\n`).MatchString(res.stdout) {
		t.Errorf("show 2 does not say cpu's packages changed:\n%s", res.stdout)
	}
}

// lookup reports whether the test registry answers a HEAD of ref.
func lookup(t *testing.T, ref string) bool {
	t.Helper()
	_, err := remote.Head(mustRef(t, ref))
	return err == nil
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
