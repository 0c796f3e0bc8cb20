package main

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"nightshift/store"
	"nightshift/validate/jenkins/jenkinstest"
)

// A stack whose images validate in every way a night can go: base and good
// pass, bad fails a test, hang's test hangs past its timeout.
var validateStack = map[string]string{
	"docker/Dockerfile.base": base,
	"docker/Dockerfile.good": "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo good > /etc/ci/good\n",
	"docker/Dockerfile.bad":  "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo bad > /etc/ci/bad\n",
	"docker/Dockerfile.hang": "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo hang > /etc/ci/hang\n",
	"tests/common.yaml": `schemaVersion: 2.0.0
commandTests:
  - name: no network unless asked
    command: ls
    args: [/sys/class/net]
    expectedOutput: ['^lo\n$']
fileExistenceTests:
  - name: busybox
    path: /bin/busybox
    permissions: -rwxr-xr-x
    isExecutableBy: any
`,
	"tests/base.yaml": `schemaVersion: 2.0.0
fileContentTests:
  - name: base marker
    path: /etc/ci/base
    expectedContents: ['^base\n$']
`,
	"tests/good.yaml": `schemaVersion: 2.0.0
globalEnvVars:
  - key: GREETING
    value: hello
commandTests:
  - name: setup is seen by the command
    setup: [["sh", "-c", "echo prepared > /etc/ci/state"]]
    command: cat
    args: [/etc/ci/state]
    expectedOutput: ['^prepared\n$']
  - name: environment
    command: sh
    args: ["-c", "env >&2"]
    envVars:
      - key: WHO
        value: $GREETING world
    expectedError: ['(?m)^GREETING=hello$', '(?m)^WHO=\$GREETING world$']
    excludedOutput: ['.']
`,
	"tests/bad.yaml": `schemaVersion: 2.0.0
commandTests:
  - name: python imports
    command: sh
    args: ["-c", "echo 'ModuleNotFoundError: numpy' >&2; exit 1"]
    expectedOutput: ['^ok$']
`,
	"tests/hang.yaml": `schemaVersion: 2.0.0
commandTests:
  - name: hangs
    command: sleep
    args: ["300"]
    timeout: 2s
`,
	"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "validate-e2e"
latest    = "validated"

[build]
jobs = 2

[validate]
tests     = ["tests/common.yaml"]
ancestors = true

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
tests = ["tests/base.yaml"]

[[image]]
name = "good"
dockerfile = "docker/Dockerfile.good"
tests = ["tests/good.yaml"]

[[image]]
name = "bad"
dockerfile = "docker/Dockerfile.bad"
tests = ["tests/bad.yaml"]

[[image]]
name = "hang"
dockerfile = "docker/Dockerfile.hang"
tests = ["tests/hang.yaml"]
`,
}

func TestValidation(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, validateStack)
	dir := filepath.Dir(cfg)
	repo := e2e.registry.Addr + "/validate-e2e/"

	res := nightshift(t, nil, "run", "-c", cfg, "--progress", "lines",
		"--json", filepath.Join(dir, "run.json"), "--junit", filepath.Join(dir, "junit.xml"))
	if res.code != exitFailed {
		t.Fatalf("exit %d, want 1 (bad and hang fail validation)\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	var rec store.Run
	readJSON(t, filepath.Join(dir, "run.json"), &rec)

	tests := func(im *store.ImageResult) map[string]store.TestResult {
		out := map[string]store.TestResult{}
		if im.Validation != nil {
			for _, tr := range im.Validation.Tests {
				out[tr.Name] = tr
			}
		}
		return out
	}
	for name, want := range map[string][]string{
		"base": {"no network unless asked", "busybox", "base marker"},
		"good": {"no network unless asked", "busybox", "base marker", "setup is seen by the command", "environment"},
	} {
		im := rec.Image(name)
		if im == nil || im.Status != store.Succeeded || im.Validation == nil || im.Validation.Status != store.Succeeded {
			t.Fatalf("%s recorded as %+v, want succeeded and validated\n%s", name, im, res.stdout)
		}
		got := tests(im)
		if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, slices.Sorted(slices.Values(want))) {
			t.Errorf("%s ran %q, want %q (validate.tests, its ancestors', its own)", name, names, want)
		}
		for _, tr := range got {
			if !tr.Passed || tr.Flaky || tr.Attempts != 1 {
				t.Errorf("%s: %+v, want a pass at the first attempt", name, tr)
			}
		}
		pushed := digest(t, im.Ref)
		for _, tag := range []string{rec.Tag + "-validated", "latest"} {
			if got := digest(t, repo+name+":"+tag); got != pushed {
				t.Errorf("%s:%s is %s, want the pushed %s", name, tag, got, pushed)
			}
		}
		if !slices.Equal(im.Tags, []string{rec.Tag, rec.Tag + "-validated", "latest"}) {
			t.Errorf("%s's tags = %q", name, im.Tags)
		}
	}

	bad := rec.Image("bad")
	imports := tests(bad)["python imports"]
	if bad.Status != store.Failed || bad.Validation.Status != store.Failed || bad.Error != "test: 1 of 4 tests failed: python imports" ||
		imports.Passed || !strings.Contains(imports.Output, "ModuleNotFoundError: numpy") || len(imports.Errors) == 0 {
		t.Errorf("bad recorded as %s %q, its test as %+v; want failed by python imports, with its output", bad.Status, bad.Error, imports)
	}
	hang := rec.Image("hang")
	hangs := tests(hang)["hangs"]
	if hang.Status != store.Failed || hangs.Passed || !strings.Contains(strings.Join(hangs.Errors, " "), "timed out after 2s") || hangs.Seconds > 60 {
		t.Errorf("hang recorded as %s, its test as %+v; want killed at its 2s timeout", hang.Status, hangs)
	}
	for _, name := range []string{"bad", "hang"} {
		for _, tag := range []string{rec.Tag + "-validated", "latest"} {
			if _, err := remote.Head(mustRef(t, repo+name+":"+tag)); err == nil {
				t.Errorf("%s:%s exists: an image that fails validation gets neither tag", name, tag)
			}
		}
	}
	// Every test container is gone, the one killed at its timeout too.
	for _, name := range []string{"base", "good", "bad", "hang"} {
		out, err := exec.Command("docker", "-H", e2e.docker.Addr, "ps", "-aq", "--filter", "ancestor="+rec.Image(name).Ref).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("containers of %s left behind: %q %v", name, out, err)
		}
	}
	junit, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`name="test: bad.yaml: python imports" classname="bad"`, `name="test: hang.yaml: hangs" classname="hang"`, `name="validated" classname="good"`} {
		if !strings.Contains(string(junit), want) {
			t.Errorf("JUnit report lacks %s", want)
		}
	}
	if !strings.Contains(res.stdout, "FAIL python imports") {
		t.Errorf("progress does not name the failed test:\n%s", res.stdout)
	}

	show := nightshift(t, nil, "show", "1", "-c", cfg)
	for _, want := range []string{`validation\s+failed\s+1 of 4 tests failed: python imports`, `FAIL\s+python imports\s+[0-9.]+s\s+tests/bad.yaml`, `\| +Expected string '\^ok\$' not found in output`} {
		if !regexp.MustCompile(want).MatchString(show.stdout) {
			t.Errorf("nightshift show lacks %s:\n%s", want, show.stdout)
		}
	}

	// The second half of a two-job setup: validate what is in the registry,
	// through the project's Jenkins job too.
	srv := jenkinstest.New(jenkinstest.Config{User: "bot", Token: "jenkins-token", Crumbs: true, Jobs: []jenkinstest.Job{{
		Path: "ci/test-images", Params: map[string]string{"base_param": "", "good_param": "", "NIGHTLY_TAG": ""},
		Result: "SUCCESS", Duration: 50 * time.Millisecond, Console: "all tests passed\nFinished: SUCCESS\n",
	}}})
	defer srv.Close()
	withJenkins := filepath.Join(dir, "jenkins.toml")
	text := strings.ReplaceAll(validateStack["nightshift.toml"], "%REGISTRY%", e2e.registry.Addr) +
		"\n[validate.jenkins]\nurl = \"" + srv.URL + "\"\njob = \"ci/test-images\"\nuser = \"bot\"\npoll = \"20ms\"\n" +
		"parameters = { NIGHTLY_TAG = \"{{.Tag}}\" }\n"
	if err := os.WriteFile(withJenkins, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	token := []string{"NIGHTSHIFT_JENKINS_TOKEN=jenkins-token"}
	res = nightshift(t, token, "validate", "-c", withJenkins, "--run", "1", "--only", "base,good", "--json", filepath.Join(dir, "validate.json"))
	if res.code != exitOK {
		t.Fatalf("validate: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	var val store.Run
	readJSON(t, filepath.Join(dir, "validate.json"), &val)
	wantParams := map[string]string{"base_param": repo + "base:" + rec.Tag, "good_param": repo + "good:" + rec.Tag, "NIGHTLY_TAG": rec.Tag}
	builds := srv.Builds("ci/test-images")
	if val.Kind != store.KindValidate || val.Night != rec.ID || val.Tag != rec.Tag || val.Commit != rec.Commit || val.Jenkins == nil || val.Jenkins.Status != store.Succeeded ||
		len(builds) != 1 || !maps.Equal(builds[0].Params, wantParams) {
		t.Errorf("validation run %+v, Jenkins builds %+v; want a validation of %s with the job given %v", val, builds, rec.Tag, wantParams)
	}
	for _, im := range val.Images {
		if im.Status != store.Succeeded || im.Digest != rec.Image(im.Name).Digest || im.Stage("pull") == nil || im.Stage("build") != nil {
			t.Errorf("%s in the validation run: %+v; want pulled at the digest the run pushed, validated, never built", im.Name, im)
		}
	}

	// The job fails: the images fail validation, and the run exits 1.
	srv.SetJob(jenkinstest.Job{Path: "ci/test-images", Params: map[string]string{"base_param": "", "good_param": "", "NIGHTLY_TAG": ""},
		Result: "FAILURE", Duration: 50 * time.Millisecond, Console: "FAIL: test_compile\nFinished: FAILURE\n"})
	res = nightshift(t, token, "validate", "-c", withJenkins, "--tag", rec.Tag, "--only", "base,good", "--json", filepath.Join(dir, "failed.json"))
	if res.code != exitFailed {
		t.Fatalf("validate with a failing job: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	readJSON(t, filepath.Join(dir, "failed.json"), &val)
	for _, im := range val.Images {
		if im.Status != store.Failed || !strings.Contains(im.Error, "ci/test-images #2 FAILURE") || im.Validation.Status != store.Failed {
			t.Errorf("%s: %s %q, want failed by the job", im.Name, im.Status, im.Error)
		}
	}
	if val.Jenkins == nil || !slices.Contains(val.Jenkins.Console, "FAIL: test_compile") {
		t.Errorf("the record lacks the job's console: %+v", val.Jenkins)
	}

	// bad fails its own tests: the job still runs with the others, and
	// bad's parameter keeps the job's default (a partial validation).
	const badDefault = "registry.example/ci/bad:stable"
	srv.SetJob(jenkinstest.Job{Path: "ci/test-images", Params: map[string]string{"base_param": "", "good_param": "", "bad_param": badDefault, "NIGHTLY_TAG": ""},
		Result: "SUCCESS", Duration: 50 * time.Millisecond, Console: "Finished: SUCCESS\n"})
	res = nightshift(t, token, "validate", "-c", withJenkins, "--run", "1", "--only", "base,good,bad", "--json", filepath.Join(dir, "partial.json"))
	if res.code != exitFailed {
		t.Fatalf("validate with bad failing its tests: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	readJSON(t, filepath.Join(dir, "partial.json"), &val)
	builds = srv.Builds("ci/test-images")
	wantParams["bad_param"] = badDefault
	if last := builds[len(builds)-1]; !maps.Equal(last.Params, wantParams) {
		t.Errorf("the partial job got %v, want %v (bad's default kept)", last.Params, wantParams)
	}
	if val.Jenkins == nil || val.Jenkins.Status != store.Succeeded || !slices.Equal(val.Jenkins.Partial, []store.PartialImage{{Name: "bad"}}) {
		t.Errorf("recorded job %+v, want a passing partial validation without bad", val.Jenkins)
	}
	for _, name := range []string{"base", "good"} {
		if im := val.Image(name); im == nil || im.Status != store.Succeeded || im.Validation.Status != store.Succeeded {
			t.Errorf("%s in the partial validation: %+v, want validated", name, im)
		}
	}
	if im := val.Image("bad"); im == nil || im.Status != store.Failed {
		t.Errorf("bad in the partial validation: %+v, want failed", im)
	}
	if _, err := remote.Head(mustRef(t, repo+"bad:"+rec.Tag+"-validated")); err == nil {
		t.Error("bad, failing its tests, was tagged validated by a partial validation")
	}
	if !strings.Contains(res.stdout, "partial validation: without bad (the job's defaults)") {
		t.Errorf("the summary does not say the validation was partial:\n%s", res.stdout)
	}
}

// A test file that breaks the schema is a configuration problem, located
// in the file, found before anything is built.
func TestValidationConfigProblems(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	files := maps.Clone(validateStack)
	files["tests/good.yaml"] = "schemaVersion: 2.0.0\ncommandTests:\n  - name: no command\n    args: [x]\n    expectedOutput: ['(']\n"
	cfg := stack(t, files)
	res := nightshift(t, nil, "config", "check", "-c", cfg)
	if res.code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"tests/good.yaml:3: commandTests[1].command: ", "tests/good.yaml:5: commandTests[1].expectedOutput"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}
