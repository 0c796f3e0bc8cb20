package rebuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/config"
)

// Every way a Dockerfile names its parent ends on this run's build of it.
func TestPlanPointsEveryFromAtThisRun(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	files := map[string]string{
		"base":      "FROM scratch\n",
		"arg":       "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\n",
		"noDefault": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
		"otherArg":  "ARG PARENT=base\nFROM $PARENT\n",
		"literal":   "FROM base AS tools\nRUN true\nFROM reg:5000/ns/base:latest\nCOPY --from=tools / /\n",
		"ordered":   "ARG BASE_IMAGE=ubuntu:24.04\nFROM ${BASE_IMAGE}\n",
		"expr":      "ARG TAG=latest\nFROM base:${TAG}\n",
	}
	var images []config.Image
	for i, name := range []string{"base", "arg", "noDefault", "otherArg", "literal", "ordered", "expr"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		img := config.Image{Name: strings.ToLower(name), Dockerfile: name, Context: ".", Line: i + 1}
		if name == "noDefault" || name == "ordered" {
			img.DependsOn = []string{"base"}
		}
		images = append(images, img)
	}
	cfg := &config.Config{File: "ns.toml", Staging: config.Staging{Registry: "reg:5000", Namespace: "ns", TagFormat: config.DefaultTagFormat},
		Build: config.Build{Jobs: 2, Timeout: config.Duration{Duration: time.Hour}}}
	g, ps := NewGraph(cfg.File, root, "reg:5000/ns", images[:6])
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	p, err := NewPlan(cfg, g, root, Commit{Hash: "1a2b3c4d5e6f"}, start, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := "reg:5000/ns/base:2026-11-23-02-00-00-1a2b3c4d"
	for name, arg := range map[string]string{"arg": "BASE_IMAGE", "nodefault": "BASE_IMAGE", "otherarg": "PARENT"} {
		if got := p.Step(name).Args[arg]; got != ref {
			t.Errorf("%s: %s = %q, want this run's base %q", name, arg, got, ref)
		}
	}
	lit := p.Step("literal")
	if want := "FROM " + ref + " AS tools\nRUN true\nFROM " + ref + "\nCOPY --from=tools / /\n"; string(lit.DockerfileContent) != want {
		t.Errorf("literal FROMs rewritten to\n%s\nwant\n%s", lit.DockerfileContent, want)
	}
	if p.Step("arg").DockerfileContent != nil {
		t.Errorf("a Dockerfile with nothing to rewrite was rewritten")
	}
	if s := p.Step("ordered"); s.Base != "" || s.Args["BASE_IMAGE"] != "" || len(s.Parents) != 1 {
		t.Errorf("depends_on for order only: base %q, BASE_IMAGE %q, parents %v; want no base, built after base", s.Base, s.Args["BASE_IMAGE"], s.Parents)
	}

	// Content tags (ensure), and parents pinned by digest (ensure, a
	// change-detected run's unchanged parent), in plan or not.
	pinned := "reg:5000/ns/base@sha256:" + strings.Repeat("ab", 32)
	for _, names := range [][]string{{"literal", "arg"}, {"base", "literal", "arg"}} {
		p, err = NewPlan(cfg, g, root, Commit{Hash: "1a2b3c4d5e6f"}, start, names,
			Tags("pr-run", map[string]string{"arg": "pr-0a1b"}), BuildOn(map[string]string{"base": pinned}))
		if err != nil {
			t.Fatal(err)
		}
		if s := p.Step("arg"); s.Ref.String() != "reg:5000/ns/arg:pr-0a1b" || s.Args["BASE_IMAGE"] != pinned || s.BaseRef != pinned {
			t.Errorf("%v: arg's ref %s, BASE_IMAGE %q; want its content tag, on %s", names, s.Ref, s.Args["BASE_IMAGE"], pinned)
		}
		if s := p.Step("literal"); s.Ref.TagStr() != "pr-run" || !strings.Contains(string(s.DockerfileContent), "FROM "+pinned+" AS tools") {
			t.Errorf("%v: literal's ref %s, Dockerfile\n%s\nwant the run's tag, on %s", names, s.Ref, s.DockerfileContent, pinned)
		}
	}

	g, ps = NewGraph(cfg.File, root, "reg:5000/ns", append(images[:1:1], images[6]))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if _, err := NewPlan(cfg, g, root, Commit{Hash: "1a2b3c4d5e6f"}, start, nil); err == nil || !strings.Contains(err.Error(), "through an expression") {
		t.Errorf("FROM base:${TAG}: err = %v, want a clear refusal", err)
	}
}
