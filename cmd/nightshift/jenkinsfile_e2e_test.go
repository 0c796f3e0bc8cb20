package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"nightshift/store"
	"nightshift/validate/jenkins/jenkinstest"
)

// The repository's Jenkinsfile, checked as far as it can be without a
// Jenkins, and the nightshift commands it runs, run as it runs them.

const jenkinsfile = "../../Jenkinsfile"

// TestJenkinsfileIsDeclarative checks the Jenkinsfile with
// testdata/declarative.groovy, on Debian's Groovy 2.4 (the Groovy of
// Jenkins): it compiles, its declarative structure holds, it calls no
// unknown name, its shell scripts parse. Files that break each rule show
// that the check catches them.
func TestJenkinsfileIsDeclarative(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM; -short given")
	}
	t.Parallel()
	env := groovyEnv(t)
	dir := t.TempDir()
	broken := []struct {
		name, text, want string
	}{
		{"syntax", "pipeline {\n agent any\n stages { stage('a') { steps { echo 'x' }\n}\n", "broken-syntax:5: expecting '}'"},
		{"java lambda", "pipeline { agent any\n stages { stage('a') { steps { script {\n def n = 1\n def f = (x) -> x + n\n } } } } }\n", "broken-java lambda:4: expecting '}', found '->'"},
		{"unknown class", "pipeline { agent any\n stages { stage('a') { steps { script {\n try { echo 'x' } catch (org.jenkinsci.plugins.credentialsbinding.impl.CredentialMissing e) {}\n } } } } }\n",
			"broken-unknown class:3: unable to resolve class org.jenkinsci.plugins.credentialsbinding.impl.CredentialMissing"},
		{"no agent", "pipeline {\n stages { stage('a') { steps { echo 'x' } } } }\n", "broken-no agent:1: pipeline lacks its agent section"},
		{"groovy in steps", "pipeline { agent any\n stages { stage('a') { steps {\n def x = 1\n } } } }\n", "broken-groovy in steps:3: stage 'a' steps may hold only steps"},
		{"unknown step", "pipeline { agent any\n stages { stage('a') { steps {\n archiveArtifact 'x'\n } } } }\n", "broken-unknown step:3: stage 'a' steps: archiveArtifact is not a step"},
		{"unknown method", "pipeline { agent any\n stages { stage('a') { steps { script {\n withSecret { echo 'x' }\n } } } } }\ndef withSecrets(Closure body) { body() }\n",
			"broken-unknown method:3: withSecret is neither a step nor a method or variable of this file"},
		{"two stages a", "pipeline { agent any\n stages {\n stage('a') { steps { echo 'x' } }\n stage('a') { steps { echo 'y' } }\n } }\n", "broken-two stages a:4: two stages are named 'a'"},
		{"stage without steps", "pipeline { agent any\n stages {\n stage('a') { when { branch 'main' } }\n } }\n", "broken-stage without steps:3: stage 'a' needs exactly one of steps"},
		{"unknown condition", "pipeline { agent any\n stages { stage('a') {\n when { branchName 'main' }\n steps { echo 'x' } } } }\n", "broken-unknown condition:3: when: unknown branchName"},
		{"unknown post", "pipeline { agent any\n stages { stage('a') { steps { echo 'x' } } }\n post { allways { echo 'x' } } }\n", "broken-unknown post:3: post: unknown allways"},
		{"bare environment", "pipeline { agent any\n environment {\n X = params.Y\n }\n stages { stage('a') { steps { echo 'x' } } } }\n", "broken-bare environment:3: environment: the value of X must be quoted or a function call"},
		{"shell", "pipeline { agent any\n stages { stage('a') { steps {\n sh(label: 'x', script: 'if true; then echo x')\n } } } }\n", "broken-shell:3: the shell script does not parse"},
	}
	args := []string{"testdata/declarative.groovy", jenkinsfile}
	for _, b := range broken {
		p := filepath.Join(dir, "broken-"+b.name)
		if err := os.WriteFile(p, []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	cmd := exec.Command("groovy", args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("groovy exited %d (%v), want 1 (the broken files):\n%s", code, err, out)
	}
	lines := strings.Split(string(out), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, jenkinsfile+":") {
			t.Errorf("Jenkinsfile: %s", strings.TrimPrefix(l, jenkinsfile+":"))
		}
	}
	if !strings.Contains(string(out), "ok "+jenkinsfile+"\n") {
		t.Errorf("the Jenkinsfile was not found ok:\n%s", out)
	}
	for _, b := range broken {
		if !strings.Contains(string(out), filepath.Join(dir, b.want)) {
			t.Errorf("%s: the check does not say %q:\n%s", b.name, b.want, out)
		}
	}
}

// groovyEnv returns the environment groovy runs in, with JAVA_HOME set:
// Debian's groovy wants it, or a default-java that a JRE installed on its
// own does not make.
func groovyEnv(t *testing.T) []string {
	t.Helper()
	_, gerr := exec.LookPath("groovy")
	java, jerr := exec.LookPath("java")
	if gerr != nil || jerr != nil {
		msg := "the Jenkinsfile check needs groovy and java (apt-get install groovy)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	env := os.Environ()
	if os.Getenv("JAVA_HOME") == "" {
		real, err := filepath.EvalSymlinks(java)
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, "JAVA_HOME="+filepath.Dir(filepath.Dir(real)))
	}
	return env
}

// jenkinsfileScript returns the script of the Jenkinsfile's sh step that
// has label.
func jenkinsfileScript(t *testing.T, label string) string {
	t.Helper()
	b, err := os.ReadFile(jenkinsfile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)sh\(label: '` + regexp.QuoteMeta(label) + `', script: '''(.*?)'''\)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("the Jenkinsfile has no sh step labelled %q with a '''script'''", label)
	}
	if bytes.ContainsRune(m[1], '\\') {
		t.Fatalf("the script labelled %q has a backslash, which Groovy reads as an escape: it is not the script the shell gets", label)
	}
	return string(m[1])
}

// runScript runs script with sh in dir, with the Jenkinsfile's HISTORY.
func runScript(t *testing.T, script, dir, history string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HISTORY="+history)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestJenkinsfileBuilds does what the Jenkinsfile does, build after build:
// it moves a workspace's history to the build host and links it back, runs
// the rebuild and the validation with the secrets in the environment (as
// withCredentials binds them) and $BUILD_URL set, and validates a tag. The
// records, the JSON reports and the Discord summaries carry the console
// link of the build that made them; the logs of each run are where the
// Jenkinsfile archives them from.
func TestJenkinsfileBuilds(t *testing.T) {
	requireE2E(t)
	t.Parallel()

	jenkins := jenkinstest.New(jenkinstest.Config{User: "bot", Token: "jenkins-token", Crumbs: true, Jobs: []jenkinstest.Job{{
		Path: "ci/test-images", Params: map[string]string{"base_param": "", "good_param": "", "NIGHTLY_TAG": ""},
		Result: "SUCCESS", Duration: 50 * time.Millisecond, Console: "Finished: SUCCESS\n",
	}}})
	defer jenkins.Close()
	files := maps.Clone(validateStack)
	files["nightshift.toml"] = `
[staging]
registry  = "%REGISTRY%"
namespace = "jenkinsfile"

[notify]
flush_timeout = "3s"

[notify.discord]
on = ["always"]

[validate]
tests = ["tests/common.yaml"]

[validate.jenkins]
url  = "` + jenkins.URL + `"
job  = "ci/test-images"
user = "bot"
poll = "20ms"
parameters = { NIGHTLY_TAG = "{{.Tag}}" }

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "good"
dockerfile = "docker/Dockerfile.good"
`
	cfg := stack(t, files)
	ws := filepath.Dir(cfg)
	history := t.TempDir() // HISTORY_DIR on the build host
	discord := &discordImitation{}
	hook(t, cfg, discord)
	webhook, err := os.ReadFile(filepath.Join(ws, "hook"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"NIGHTSHIFT_DISCORD_WEBHOOK_URL=" + strings.TrimSpace(string(webhook)), "NIGHTSHIFT_JENKINS_TOKEN=jenkins-token"}
	build := func(n int) []string {
		return append([]string{fmt.Sprintf("BUILD_URL=https://jenkins.example.org/job/ci-images/%d/", n)}, secrets...)
	}
	console := func(n int) string { return fmt.Sprintf("https://jenkins.example.org/job/ci-images/%d/console", n) }
	lastSummary := func() string {
		got := discord.received()
		if len(got) == 0 {
			t.Fatal("Discord received nothing")
		}
		b, _ := json.Marshal(got[len(got)-1])
		return string(b)
	}

	// An earlier build, of the Jenkinsfile that kept the history in the
	// workspace; and not under Jenkins: no build URL, no console link.
	res := nightshift(t, append([]string{"BUILD_URL="}, secrets...), "run", "--no-validate", "-c", cfg, "--only", "base",
		"--json", filepath.Join(ws, "nightshift-run.json"))
	if res.code != exitOK {
		t.Fatalf("the earlier build's run exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if raw := readRaw(t, filepath.Join(ws, "nightshift-run.json")); raw["build_url"] != nil {
		t.Errorf("a run outside Jenkins records build_url %v", raw["build_url"])
	}
	if s := lastSummary(); strings.Contains(s, "console") {
		t.Errorf("the summary of a run outside Jenkins links a console: %s", s)
	}

	// Prepare: the history moves to the host, once, and stays there.
	keep := jenkinsfileScript(t, "Keep the history on the build host")
	for range 2 {
		if out, err := runScript(t, keep, ws, history); err != nil {
			t.Fatalf("the history script: %v\n%s", err, out)
		}
		for name, want := range map[string]string{"nightshift.db": filepath.Join(history, "nightshift.db"), "logs": filepath.Join(history, "logs")} {
			if target, err := os.Readlink(filepath.Join(ws, name)); err != nil || target != want {
				t.Errorf("%s in the workspace links to %q (%v), want %q", name, target, err, want)
			}
		}
		if _, err := os.Stat(filepath.Join(ws, "nightshift-run.json")); !os.IsNotExist(err) {
			t.Errorf("an earlier build's report is left for this one's: %v", err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(history, "nightshift.db")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the store on the host: %v %v, want the workspace's moved there", fi, err)
	}
	if _, err := os.Stat(filepath.Join(history, "logs", "1", "base.log")); err != nil {
		t.Errorf("the earlier build's log did not move to the host: %v", err)
	}
	// A workspace with a history of its own next to the host's is left
	// alone, and the build stops saying so.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "nightshift.db"), []byte("another history"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runScript(t, keep, other, history); err == nil || !strings.Contains(out, "merge them, or remove one") {
		t.Errorf("two histories: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(other, "nightshift.db")); string(b) != "another history" {
		t.Errorf("the workspace's own history was changed")
	}
	// HISTORY_DIR emptied, or relative, would put the history back in the
	// workspace.
	for _, bad := range []string{"", "history"} {
		if out, err := runScript(t, keep, other, bad); err == nil || !strings.Contains(out, "HISTORY_DIR must be an absolute path") {
			t.Errorf("HISTORY_DIR %q: %v\n%s", bad, err, out)
		}
	}

	// Rebuild CI images, in build 7.
	runJSON, validateJSON := filepath.Join(ws, "nightshift-run.json"), filepath.Join(ws, "nightshift-validate.json")
	res = nightshift(t, build(7), "run", "--no-validate", "--config", cfg, "--only", "base,good",
		"--junit", filepath.Join(ws, "nightshift-junit.xml"), "--json", runJSON)
	if res.code != exitOK {
		t.Fatalf("rebuild exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var rec store.Run
	readJSON(t, runJSON, &rec)
	if raw := readRaw(t, runJSON); rec.BuildURL != "https://jenkins.example.org/job/ci-images/7/" || raw["build_url"] != rec.BuildURL {
		t.Errorf("the run records build URL %q (JSON build_url %v), want build 7's", rec.BuildURL, raw["build_url"])
	}
	if s := lastSummary(); !strings.Contains(s, "Jenkins build: [console]("+console(7)+")") {
		t.Errorf("the rebuild's summary does not link build 7's console: %s", s)
	}
	// The logs the Jenkinsfile archives, logs/<run>/** of HISTORY_DIR: this
	// run's only.
	for _, im := range rec.Images {
		if im.Log != filepath.Join(ws, "logs", fmt.Sprint(rec.ID), im.Name+".log") {
			t.Errorf("%s's log is %s, not in logs/%d/ of the workspace", im.Name, im.Log, rec.ID)
		}
		if _, err := os.Stat(filepath.Join(history, "logs", fmt.Sprint(rec.ID), im.Name+".log")); err != nil {
			t.Errorf("%s's log is not on the host: %v", im.Name, err)
		}
	}

	// Validate CI images, in the same build.
	res = nightshift(t, build(7), "validate", fmt.Sprintf("--run=%d", rec.ID), "--config", cfg, "--only", "base,good",
		"--junit", filepath.Join(ws, "nightshift-validate-junit.xml"), "--json", validateJSON)
	if res.code != exitOK {
		t.Fatalf("validate exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var val store.Run
	readJSON(t, validateJSON, &val)
	if val.Kind != store.KindValidate || val.Night != rec.ID || val.BuildURL != rec.BuildURL || val.Jenkins == nil || val.Jenkins.Status != store.Succeeded {
		t.Errorf("validation run %+v; want run %d validated, by the job, recorded with build 7", val, rec.ID)
	}
	if builds := jenkins.Builds("ci/test-images"); len(builds) != 1 || builds[0].Params["NIGHTLY_TAG"] != rec.Tag {
		t.Errorf("the project's job ran %+v, want once for %s", builds, rec.Tag)
	}
	if s := lastSummary(); !strings.Contains(s, "validated") || !strings.Contains(s, console(7)) {
		t.Errorf("the validation's summary does not link build 7's console: %s", s)
	}

	// A build with VALIDATE_TAG: a validation of the tag, nothing rebuilt.
	res = nightshift(t, build(8), "validate", "--tag="+rec.Tag, "--config", cfg, "--json", validateJSON)
	if res.code != exitOK {
		t.Fatalf("validate --tag exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	readJSON(t, validateJSON, &val)
	if val.Tag != rec.Tag || val.BuildURL != "https://jenkins.example.org/job/ci-images/8/" {
		t.Errorf("validation of the tag: tag %s, build URL %q; want %s by build 8", val.Tag, val.BuildURL, rec.Tag)
	}
	if s := lastSummary(); !strings.Contains(s, console(8)) {
		t.Errorf("the summary of build 8 does not link its console: %s", s)
	}

	// The history, read on the host: every night, each with its build.
	res = nightshift(t, nil, "history", "-c", cfg, "--json")
	var hist []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &hist); err != nil || len(hist) != 4 {
		t.Fatalf("history: %v, %d runs, want 4\n%s", err, len(hist), res.stdout)
	}
	want := []any{"https://jenkins.example.org/job/ci-images/8/", rec.BuildURL, rec.BuildURL, nil}
	for i, r := range hist {
		if r["build_url"] != want[i] {
			t.Errorf("history run %v: build_url %v, want %v", r["id"], r["build_url"], want[i])
		}
	}
}

// readRaw reads a JSON record as it is written, to see its field names.
func readRaw(t *testing.T, path string) map[string]any {
	t.Helper()
	var raw map[string]any
	readJSON(t, path, &raw)
	return raw
}
