package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nightshift/store"
)

// The stack of the change-detection tests: a base, a child built on it
// (its Dockerfile outside its context), and an independent image; shared
// install scripts rebuild everything, Markdown nothing.
var changedStack = map[string]string{
	"docker/Dockerfile.base":   base + "COPY install/common.sh /etc/ci/common.sh\n",
	"docker/install/common.sh": "echo common\n",
	// The base's context holds the child's Dockerfile too, as in many
	// projects: its build is not sent it, so its changes are not the base's.
	"docker/.dockerignore":  "Dockerfile.cpu\n",
	"docker/Dockerfile.cpu": "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nCOPY cpu.txt /etc/ci/cpu\n",
	"cpu/cpu.txt":           "cpu\n",
	"lint/Dockerfile":       "FROM scratch\nCOPY lint.txt /lint.txt\n",
	"lint/lint.txt":         "lint\n",
	"docs/README.md":        "docs\n",
	".gitignore":            "nightshift.db\nlogs/\n*.json\n*.xml\n",
	"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "changed"

[changes]
build_all = ["docker/install"]
ignore    = ["**/*.md"]

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
context = "docker"

[[image]]
name = "cpu"
dockerfile = "docker/Dockerfile.cpu"
context = "cpu"

[[image]]
name = "lint"
dockerfile = "lint/Dockerfile"
`,
}

// planJSON is `plan --json`.
type planJSON struct {
	Commit       string `json:"commit"`
	ChangedSince string `json:"changed_since"`
	Images       []struct {
		Name     string `json:"name"`
		Rebuild  bool   `json:"rebuild"`
		Reason   string `json:"reason"`
		BuildsOn string `json:"builds_on"`
	} `json:"images"`
}

func changedPlan(t *testing.T, cfg, since string) map[string]string {
	t.Helper()
	res := nightshift(t, nil, "plan", "-c", cfg, "--changed-since", since, "--json")
	var p planJSON
	if err := json.Unmarshal([]byte(res.stdout), &p); res.code != exitOK || err != nil {
		t.Fatalf("plan --changed-since --json: exit %d, %v\n%s\n%s", res.code, err, res.stdout, res.stderr)
	}
	got := map[string]string{}
	for _, im := range p.Images {
		if im.Rebuild {
			got[im.Name] = im.Reason
		} else {
			got[im.Name] = "unchanged: " + im.Reason
		}
	}
	return got
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestChangedSinceE2E(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	files := map[string]string{}
	for k, v := range changedStack {
		files[k] = v
	}
	cfg := stack(t, files)
	dir := filepath.Dir(cfg)
	repo := e2e.registry.Addr + "/changed/"
	jsonPath, junitPath := filepath.Join(dir, "run.json"), filepath.Join(dir, "junit.xml")
	if res := nightshift(t, nil, "run", "-c", cfg); res.code != exitOK {
		t.Fatalf("first run: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	latest := map[string]string{}
	for _, n := range []string{"base", "cpu", "lint"} {
		latest[n] = digest(t, repo+n+":latest")
	}

	// The child's Dockerfile: the child alone, on its parent's latest by
	// digest; the others not built, pushed or tagged.
	commit(t, dir, "cpu: new Dockerfile", map[string]string{"docker/Dockerfile.cpu": changedStack["docker/Dockerfile.cpu"] + "RUN echo v2 > /etc/ci/v\n"})
	short := gitOutput(t, dir, "rev-parse", "--short=8", "HEAD~1")
	unchanged := "unchanged: unchanged since " + short
	want := map[string]string{"base": unchanged, "cpu": "docker/Dockerfile.cpu changed", "lint": unchanged}
	if got := changedPlan(t, cfg, "HEAD~1"); !sameMap(got, want) {
		t.Errorf("a Dockerfile change: plan %v, want %v", got, want)
	}
	res := nightshift(t, nil, "run", "-c", cfg, "--changed-since", "HEAD~1", "--json", jsonPath, "--junit", junitPath)
	if res.code != exitOK {
		t.Fatalf("run --changed-since: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var rec store.Run
	readJSON(t, jsonPath, &rec)
	cpu := rec.Image("cpu")
	if len(rec.Images) != 1 || cpu == nil || cpu.Reason != "docker/Dockerfile.cpu changed" || cpu.BaseRef != repo+"base@"+latest["base"] {
		t.Errorf("run --changed-since: images %+v; want cpu alone, on base@%s", rec.Images, latest["base"])
	}
	if len(rec.Unchanged) != 2 || rec.Unchanged[0] != (store.UnchangedImage{Name: "base", Status: store.Skipped, Reason: "unchanged since " + short}) ||
		rec.ChangedSince != gitOutput(t, dir, "rev-parse", "HEAD~1") {
		t.Errorf("run --changed-since: unchanged %+v, since %s", rec.Unchanged, rec.ChangedSince)
	}
	for _, n := range []string{"base", "lint"} {
		if d := digest(t, repo+n+":latest"); d != latest[n] {
			t.Errorf("%s:latest moved (%s -> %s): an unchanged image was pushed", n, latest[n], d)
		}
		if _, err := os.Stat(filepath.Join(dir, "logs", "2", n+".log")); err == nil {
			t.Errorf("%s was built", n)
		}
	}
	if d := digest(t, repo+"cpu:latest"); d == latest["cpu"] || d != cpu.Digest {
		t.Errorf("cpu:latest = %s, want the new build %s", d, cpu.Digest)
	}
	if !extends(layerDigests(t, cpu.Ref), layerDigests(t, repo+"base@"+latest["base"])) {
		t.Errorf("cpu does not build on base's latest")
	}
	if !strings.Contains(res.stdout, "unchanged since "+short+": not rebuilt") {
		t.Errorf("the summary does not say what was unchanged:\n%s", res.stdout)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Class   string    `xml:"classname,attr"`
				Name    string    `xml:"name,attr"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(junitPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, c := range suites.Suites[0].Cases {
		if c.Name == "unchanged" && c.Skipped != nil {
			skipped++
		}
	}
	if skipped != 2 {
		t.Errorf("JUnit has %d skipped unchanged cases, want 2:\n%s", skipped, b)
	}

	// The parent's context: the parent, and the child on this run's parent.
	commit(t, dir, "base: motd", map[string]string{"docker/motd": "hello\n"})
	short = gitOutput(t, dir, "rev-parse", "--short=8", "HEAD~1")
	want = map[string]string{"base": "docker/motd changed", "cpu": "parent base rebuilt", "lint": "unchanged: unchanged since " + short}
	if got := changedPlan(t, cfg, "HEAD~1"); !sameMap(got, want) {
		t.Errorf("a parent change: plan %v, want %v", got, want)
	}
	res = nightshift(t, nil, "run", "-c", cfg, "--changed-since", "HEAD~1", "--json", jsonPath)
	readJSON(t, jsonPath, &rec)
	if res.code != exitOK || len(rec.Images) != 2 || rec.Image("cpu").Reason != "parent base rebuilt" || rec.Image("cpu").BaseRef != "" {
		t.Errorf("run after a parent change: exit %d, %+v\n%s", res.code, rec.Images, res.stderr)
	}

	// A build_all file: everything.
	commit(t, dir, "install", map[string]string{"docker/install/common.sh": "echo common v2\n"})
	all := "build_all: docker/install/common.sh"
	if got := changedPlan(t, cfg, "HEAD~1"); !sameMap(got, map[string]string{"base": all, "cpu": all, "lint": all}) {
		t.Errorf("a build_all change: plan %v", got)
	}

	// An ignored file: nothing to rebuild, quickly, and not recorded.
	commit(t, dir, "docs", map[string]string{"docs/README.md": "more docs\n", "lint/README.md": "lint docs\n"})
	runs := len(history(t, cfg))
	res = nightshift(t, nil, "run", "-c", cfg, "--changed-since", "HEAD~1")
	if res.code != exitOK || !strings.Contains(res.stdout, "nothing to rebuild: 3 image(s) unchanged") {
		t.Errorf("an ignored change: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if n := len(history(t, cfg)); n != runs {
		t.Errorf("a run with nothing to rebuild was recorded (%d runs, then %d)", runs, n)
	}

	// "full rebuild" in a commit of the range: everything.
	hash := commit(t, dir, "tidy\n\nThis one needs a Full Rebuild.", nil)
	full := `"full rebuild" in ` + hash[:8]
	if got := changedPlan(t, cfg, "HEAD~2"); !sameMap(got, map[string]string{"base": full, "cpu": full, "lint": full}) {
		t.Errorf("a full rebuild commit: plan %v", got)
	}

	// A revision the clone does not have: exit 2.
	if res := nightshift(t, nil, "run", "-c", cfg, "--changed-since", "no-such-branch"); res.code != exitUsage {
		t.Errorf("--changed-since no-such-branch: exit %d, want %d\n%s", res.code, exitUsage, res.stderr)
	}
}

func history(t *testing.T, cfg string) []store.Run {
	t.Helper()
	res := nightshift(t, nil, "history", "-c", cfg, "--json")
	var runs []store.Run
	if err := json.Unmarshal([]byte(res.stdout), &runs); err != nil {
		t.Fatalf("history: %v\n%s", err, res.stdout)
	}
	return runs
}
