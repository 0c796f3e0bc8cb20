package rebuild

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"nightshift/config"
)

// jupyterFrom is how the images of a notebook stack name their parent:
// through ARG defaults that spell out where the parent is published.
func jupyterFrom(parent string) string {
	return "ARG REGISTRY=quay.io\nARG OWNER=jupyter\nARG BASE_IMAGE=$REGISTRY/$OWNER/" + parent + "\nFROM $BASE_IMAGE\nRUN true\n"
}

// A FROM that names a stack image under a published repository is that
// image, whatever the tag or digest and however Docker Hub is spelt.
func TestGraphPublishedEdges(t *testing.T) {
	t.Parallel()
	digest := "@sha256:" + strings.Repeat("0", 64)
	published := Published("quay.io/jupyter", "jupyter")
	tests := []struct {
		name       string
		dockerfile string
		image      config.Image // Name, Dockerfile and Line filled in
		opts       []GraphOption
		parents    []string
		base       string
	}{
		{"ARG defaults", jupyterFrom("ci_base"), config.Image{}, []GraphOption{published}, []string{"ci_base"}, "ci_base"},
		{"ARG defaults, not published", jupyterFrom("ci_base"), config.Image{}, nil, nil, ""},
		{"tag", "FROM quay.io/jupyter/ci_base:2026-01-05", config.Image{}, []GraphOption{published}, []string{"ci_base"}, "ci_base"},
		{"digest", "FROM quay.io/jupyter/ci_base" + digest, config.Image{}, []GraphOption{published}, []string{"ci_base"}, "ci_base"},
		{"Docker Hub, short", "FROM jupyter/ci_base:x", config.Image{}, []GraphOption{published}, []string{"ci_base"}, "ci_base"},
		{"Docker Hub, long", "FROM docker.io/jupyter/ci_base", config.Image{}, []GraphOption{published}, []string{"ci_base"}, "ci_base"},
		{"an earlier stage", "FROM quay.io/jupyter/ci_base AS b\nFROM scratch\nCOPY --from=b / /", config.Image{}, []GraphOption{published}, []string{"ci_base"}, ""},
		{"other namespace", "FROM quay.io/other/ci_base", config.Image{}, []GraphOption{published}, nil, ""},
		{"deeper path", "FROM quay.io/jupyter/old/ci_base", config.Image{}, []GraphOption{published}, nil, ""},
		{"build arg moves it", jupyterFrom("ci_base"),
			config.Image{BuildArgs: map[string]string{"REGISTRY": "ghcr.io"}}, []GraphOption{published}, nil, ""},
		{"build arg template", "ARG PARENT\nFROM ${PARENT}",
			config.Image{BuildArgs: map[string]string{"PARENT": "quay.io/jupyter/ci_base:{{ .Tag }}"}}, []GraphOption{published}, []string{"ci_base"}, "ci_base"},
		// depends_on names the parent: any repository of that name is it.
		{"depends_on", jupyterFrom("ci_base"), config.Image{DependsOn: []string{"ci_base"}}, nil, []string{"ci_base"}, "ci_base"},
		{"depends_on, other name", "FROM quay.io/jupyter/ci_tools", config.Image{DependsOn: []string{"ci_base"}}, nil, []string{"ci_base"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkEdges(t, tt.dockerfile, tt.image, tt.parents, tt.base, tt.opts...)
		})
	}
}

func TestGraphWarnings(t *testing.T) {
	t.Parallel()
	notebooks := map[string]string{
		"foundation/Dockerfile": "FROM ubuntu:24.04\n",
		"minimal/Dockerfile":    jupyterFrom("foundation"),
		"scipy/Dockerfile":      "# scipy\n" + jupyterFrom("minimal"),
	}
	tests := []struct {
		name   string
		files  map[string]string
		images []config.Image
		opts   []GraphOption
		want   config.Problems
	}{
		{
			name:   "children name the published parents",
			files:  notebooks,
			images: []config.Image{stackImage("scipy", 9), stackImage("foundation", 1), stackImage("minimal", 5)},
			want: config.Problems{
				problemAt(5, "image[3].dockerfile", "minimal/Dockerfile:4: minimal FROM quay.io/jupyter/foundation would build on the published foundation, not this run's; add [staging] published or depends_on"),
				problemAt(9, "image[1].dockerfile", "scipy/Dockerfile:5: scipy FROM quay.io/jupyter/minimal would build on the published minimal, not this run's; add [staging] published or depends_on"),
			},
		},
		{
			name:   "published",
			files:  notebooks,
			images: []config.Image{stackImage("scipy", 9), stackImage("foundation", 1), stackImage("minimal", 5)},
			opts:   []GraphOption{Published("quay.io/jupyter")},
		},
		{
			name:   "published on Docker Hub does not cover quay.io",
			files:  notebooks,
			images: []config.Image{stackImage("foundation", 1), stackImage("minimal", 5)},
			opts:   []GraphOption{Published("docker.io/jupyter")},
			want: config.Problems{
				problemAt(5, "image[2].dockerfile", "minimal/Dockerfile:4: minimal FROM quay.io/jupyter/foundation would build on the published foundation, not this run's; add [staging] published or depends_on"),
			},
		},
		{
			name:   "depends_on",
			files:  notebooks,
			images: []config.Image{stackImage("foundation", 1), stackImage("minimal", 5, "foundation"), stackImage("scipy", 9, "minimal")},
		},
		{
			// The image called python builds on docker.io/library/python,
			// so that repository is its upstream, not where it is published.
			name: "an upstream of the same name",
			files: map[string]string{
				"python/Dockerfile": "FROM docker.io/library/python:3.13\n",
				"tools/Dockerfile":  "FROM python:3.13 AS stack\nFROM docker.io/library/python:3.13-slim\n",
			},
			images: []config.Image{stackImage("python", 1), stackImage("tools", 4)},
		},
		{
			name:   "a staging ref",
			files:  map[string]string{"a/Dockerfile": "FROM ubuntu", "b/Dockerfile": "FROM " + testStaging + "/a:latest"},
			images: []config.Image{stackImage("a", 1), stackImage("b", 3)},
		},
		{
			name:   "outside images of other names",
			files:  map[string]string{"a/Dockerfile": "FROM ubuntu", "b/Dockerfile": "FROM quay.io/jupyter/b-base\nFROM quay.io/jupyter/ab"},
			images: []config.Image{stackImage("a", 1), stackImage("b", 3)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := writeFiles(t, tt.files)
			g, problems := NewGraph(testConfig, root, testStaging, tt.images, tt.opts...)
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			if got := g.Warnings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("warnings:\n%v\nwant:\n%v", got, tt.want)
			}
		})
	}
}

// An image published under a published repository cannot build on its own
// published self: that is this image.
func TestGraphPublishedSelf(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, map[string]string{"base/Dockerfile": "FROM quay.io/jupyter/base:2026-01-05\n"})
	images := []config.Image{{Name: "base", Dockerfile: "base/Dockerfile", Line: 3}}
	_, problems := NewGraph(testConfig, root, testStaging, images, Published("quay.io/jupyter"))
	want := config.Problems{{File: testConfig, Line: 3, Key: "image[1].dockerfile",
		Msg: "base/Dockerfile:1: FROM quay.io/jupyter/base:2026-01-05 is this image itself, which it cannot build on"}}
	if !reflect.DeepEqual(problems, want) {
		t.Errorf("problems:\n%v\nwant:\n%v", problems, want)
	}
}

// A stack shaped like a notebook-image project with a staging registry of
// its own: every child names its parent where it is published, and builds
// on this run's parent.
func TestPlanPinsPublishedParents(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, map[string]string{
		"foundation/Dockerfile": "FROM ubuntu:24.04\n",
		"base/Dockerfile":       jupyterFrom("docker-stacks-foundation"),
		"minimal/Dockerfile":    jupyterFrom("base-notebook"),
		"scipy/Dockerfile":      jupyterFrom("minimal-notebook"),
		// A literal FROM of the published parent, in an earlier stage.
		"r/Dockerfile": "FROM quay.io/jupyter/minimal-notebook:2026-01-05 AS r\nRUN true\nFROM scratch\nCOPY --from=r / /\n",
		// The parent in a build arg template.
		"julia/Dockerfile": "ARG PARENT\nFROM ${PARENT}\n",
	})
	var images []config.Image
	for i, n := range [][2]string{
		{"scipy-notebook", "scipy"}, {"r-notebook", "r"}, {"minimal-notebook", "minimal"},
		{"docker-stacks-foundation", "foundation"}, {"base-notebook", "base"}, {"julia-notebook", "julia"},
	} {
		images = append(images, config.Image{Name: n[0], Dockerfile: n[1] + "/Dockerfile", Context: n[1], Line: 10 + 4*i})
	}
	images[5].BuildArgs = map[string]string{"PARENT": "quay.io/jupyter/minimal-notebook:{{ .Short }}"}
	cfg := &config.Config{File: "stacks.toml",
		Staging: config.Staging{Registry: "staging.example.org:5000", Namespace: "jupyter-nightly",
			TagFormat: config.DefaultTagFormat, Published: []string{"quay.io/jupyter"}},
		Build: config.Build{Jobs: 2, Timeout: config.Duration{Duration: time.Hour}}}
	repo := "staging.example.org:5000/jupyter-nightly"
	g, ps := NewGraph(cfg.File, root, repo, images, Published(cfg.Staging.Published...))
	if len(ps) > 0 || len(g.Warnings()) > 0 {
		t.Fatalf("problems %v, warnings %v", ps, g.Warnings())
	}
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	commit := Commit{Hash: "1a2b3c4d5e6f"}
	p, err := NewPlan(cfg, g, root, commit, start, nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range p.Steps {
		order = append(order, s.Name)
	}
	if want := []string{"docker-stacks-foundation", "base-notebook", "minimal-notebook", "scipy-notebook", "r-notebook", "julia-notebook"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %q, want %q", order, want)
	}
	ref := func(image string) string { return repo + "/" + image + ":2026-11-23-02-00-00-1a2b3c4d" }
	for child, parent := range map[string]string{"base-notebook": "docker-stacks-foundation", "minimal-notebook": "base-notebook", "scipy-notebook": "minimal-notebook"} {
		s := p.Step(child)
		if s.Base != parent || !reflect.DeepEqual(s.Parents, []string{parent}) || s.Args["BASE_IMAGE"] != ref(parent) {
			t.Errorf("%s: base %q, parents %q, BASE_IMAGE %q; want %s, this run's %s", child, s.Base, s.Parents, s.Args["BASE_IMAGE"], parent, ref(parent))
		}
	}
	r := p.Step("r-notebook")
	if want := "FROM " + ref("minimal-notebook") + " AS r\nRUN true\nFROM scratch\nCOPY --from=r / /\n"; string(r.DockerfileContent) != want || !reflect.DeepEqual(r.Parents, []string{"minimal-notebook"}) {
		t.Errorf("r-notebook: parents %q, Dockerfile\n%s\nwant\n%s", r.Parents, r.DockerfileContent, want)
	}

	if julia := p.Step("julia-notebook"); julia.Args["PARENT"] != ref("minimal-notebook") {
		t.Errorf("julia-notebook: PARENT %q, want %q", julia.Args["PARENT"], ref("minimal-notebook"))
	}

	// Built alone, a child builds on the parent's latest in staging, never
	// on the published one.
	p, err = NewPlan(cfg, g, root, commit, start, []string{"scipy-notebook"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Step("scipy-notebook").Args["BASE_IMAGE"], repo+"/minimal-notebook:latest"; got != want {
		t.Errorf("scipy-notebook alone: BASE_IMAGE %q, want %q", got, want)
	}
}
