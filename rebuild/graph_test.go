package rebuild

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"nightshift/config"
)

const (
	testConfig  = "nightshift.toml"
	testStaging = "registry.example.com/ci"
)

// testStack is the stack in testdata/stack, listed out of dependency order
// on purpose:
//
//	ci_base ─┬─ ci_rust ── ci_tools ─┬─ ci_full
//	         └─ ci_node ─────────────┘
func testStack(t *testing.T) *Graph {
	t.Helper()
	images := []config.Image{
		{Name: "ci_tools", Dockerfile: "tools/Dockerfile", DependsOn: []string{"ci_rust"}, Line: 1},
		{Name: "ci_base", Dockerfile: "base/Dockerfile", Line: 6},
		{Name: "ci_node", Dockerfile: "node/Dockerfile", Line: 10},
		{Name: "ci_rust", Dockerfile: "rust/Dockerfile", Line: 14,
			BuildArgs: map[string]string{"BASE_IMAGE": "ignored:latest"}},
		{Name: "ci_full", Dockerfile: "full/Dockerfile", Line: 19,
			BuildArgs: map[string]string{"NODE_TAG": "{{ .Tag }}"}},
	}
	g, problems := NewGraph(testConfig, filepath.Join("testdata", "stack"), testStaging, images)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return g
}

func TestGraphStack(t *testing.T) {
	t.Parallel()
	g := testStack(t)
	tests := []struct {
		name    string
		parents []string
		base    string
	}{
		{"ci_base", nil, ""},
		{"ci_rust", []string{"ci_base"}, "ci_base"},  // ARG default; the BASE_IMAGE build arg is ignored
		{"ci_node", []string{"ci_base"}, "ci_base"},  // staging ref with a digest
		{"ci_tools", []string{"ci_rust"}, "ci_rust"}, // ARG BASE_IMAGE without default, depends_on
		{"ci_full", []string{"ci_node", "ci_tools"}, "ci_tools"},
	}
	for _, tt := range tests {
		n, ok := g.Node(tt.name)
		if !ok {
			t.Fatalf("no node %s", tt.name)
		}
		if !reflect.DeepEqual(n.Parents, tt.parents) || n.Base != tt.base {
			t.Errorf("%s: parents %q, base %q; want %q, %q", tt.name, n.Parents, n.Base, tt.parents, tt.base)
		}
	}
	if _, ok := g.Node("nope"); ok {
		t.Error(`Node("nope") found a node`)
	}
}

func TestGraphQueries(t *testing.T) {
	t.Parallel()
	g := testStack(t)
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"Order", g.Order(), []string{"ci_base", "ci_node", "ci_rust", "ci_tools", "ci_full"}},
		{"Children of ci_base", g.Children("ci_base"), []string{"ci_node", "ci_rust"}},
		{"Children of a leaf", g.Children("ci_full"), nil},
		{"Descendants of ci_base", g.Descendants("ci_base"), []string{"ci_node", "ci_rust", "ci_tools", "ci_full"}},
		{"Descendants of ci_rust", g.Descendants("ci_rust"), []string{"ci_tools", "ci_full"}},
		{"Descendants of a leaf", g.Descendants("ci_full"), nil},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestGraphSelect(t *testing.T) {
	t.Parallel()
	g := testStack(t)
	tests := []struct {
		only     []string
		withDeps bool
		want     []string
	}{
		{[]string{"ci_tools"}, false, []string{"ci_tools"}},
		{[]string{"ci_tools"}, true, []string{"ci_base", "ci_rust", "ci_tools"}},
		{[]string{"ci_full", "ci_node"}, false, []string{"ci_node", "ci_full"}},
		{[]string{"ci_full"}, true, []string{"ci_base", "ci_node", "ci_rust", "ci_tools", "ci_full"}},
		{[]string{"ci_base", "ci_base"}, true, []string{"ci_base"}},
	}
	for _, tt := range tests {
		got, err := g.Select(tt.only, tt.withDeps)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Select(%q, %v) = %q, %v; want %q", tt.only, tt.withDeps, got, err, tt.want)
		}
	}

	_, err := g.Select([]string{"ci_rust", "nope"}, true)
	want := `unknown image "nope"; the images are ci_tools, ci_base, ci_node, ci_rust, ci_full`
	if err == nil || err.Error() != want {
		t.Errorf("Select with an unknown name: %v, want %q", err, want)
	}
}

// writeFiles writes a repository of Dockerfiles into a temporary directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestGraphEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		image      config.Image // Name, Dockerfile and Line filled in
		parents    []string
		base       string
	}{
		{"bare name", "FROM ci_base", config.Image{}, []string{"ci_base"}, "ci_base"},
		{"bare name with tag", "FROM ci_base:2026-11-23", config.Image{}, []string{"ci_base"}, "ci_base"},
		{"staging ref", "FROM registry.example.com/ci/ci_base:nightly", config.Image{}, []string{"ci_base"}, "ci_base"},
		{"staging ref with digest only", "FROM registry.example.com/ci/ci_base@sha256:" + strings.Repeat("ab", 32), config.Image{}, []string{"ci_base"}, "ci_base"},
		{"ARG default", "ARG BASE_IMAGE=ci_base:latest\nFROM ${BASE_IMAGE}", config.Image{}, []string{"ci_base"}, "ci_base"},
		{"BASE_IMAGE build arg ignored", "ARG BASE_IMAGE=ci_base\nFROM $BASE_IMAGE",
			config.Image{BuildArgs: map[string]string{"BASE_IMAGE": "ubuntu"}}, []string{"ci_base"}, "ci_base"},
		{"build arg template", "ARG TAG=latest\nFROM ci_base:${TAG}",
			config.Image{BuildArgs: map[string]string{"TAG": "{{ .Tag }}"}}, []string{"ci_base"}, "ci_base"},
		{"other registry", "FROM other.example.com/ci/ci_base", config.Image{}, nil, ""},
		{"docker hub namesake", "FROM docker.io/library/ci_base:1", config.Image{}, nil, ""},
		// Ordering only: the outside base keeps its BASE_IMAGE.
		{"depends_on", "FROM ubuntu:24.04", config.Image{DependsOn: []string{"ci_base"}}, []string{"ci_base"}, ""},
		// The built stage rests on scratch: nothing to set BASE_IMAGE to.
		{"earlier stage only", "FROM ci_base AS tools\nFROM scratch\nCOPY --from=tools / /", config.Image{}, []string{"ci_base"}, ""},
		{"stage named like an image", "FROM ubuntu AS ci_base\nFROM ci_base", config.Image{}, nil, ""},
		{"target", "FROM ci_base AS dev\nFROM ubuntu AS prod", config.Image{Target: "dev"}, []string{"ci_base"}, "ci_base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkEdges(t, tt.dockerfile, tt.image, tt.parents, tt.base)
		})
	}
}

// checkEdges reads a graph of ci_base (FROM ubuntu) and app, built from
// dockerfile, and checks the parents and base of app.
func checkEdges(t *testing.T, dockerfile string, app config.Image, parents []string, base string, opts ...GraphOption) {
	t.Helper()
	root := writeFiles(t, map[string]string{
		"base/Dockerfile": "FROM ubuntu:24.04\n",
		"app/Dockerfile":  dockerfile,
	})
	app.Name, app.Dockerfile, app.Line = "app", "app/Dockerfile", 5
	ciBase := config.Image{Name: "ci_base", Dockerfile: "base/Dockerfile", Line: 1}
	g, problems := NewGraph(testConfig, root, testStaging, []config.Image{ciBase, app}, opts...)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	n, _ := g.Node("app")
	if !reflect.DeepEqual(n.Parents, parents) || n.Base != base {
		t.Errorf("parents %q, base %q; want %q, %q", n.Parents, n.Base, parents, base)
	}
	if want := []string{"ci_base", "app"}; !reflect.DeepEqual(g.Order(), want) {
		t.Errorf("Order = %q, want %q", g.Order(), want)
	}
}

// stackImage is the config.Image called name, built from <name>/Dockerfile.
func stackImage(name string, line int, dependsOn ...string) config.Image {
	return config.Image{Name: name, Dockerfile: name + "/Dockerfile", Line: line, DependsOn: dependsOn}
}

// problemAt is a problem (or a warning) of the test config.
func problemAt(line int, key, msg string) config.Problem {
	return config.Problem{File: testConfig, Line: line, Key: key, Msg: msg}
}

func TestGraphProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		files  map[string]string
		images []config.Image
		want   config.Problems
	}{
		{
			name:   "two-image cycle",
			files:  map[string]string{"a/Dockerfile": "FROM ubuntu", "b/Dockerfile": "FROM a"},
			images: []config.Image{stackImage("a", 1, "b"), stackImage("b", 4)},
			want:   config.Problems{problemAt(1, "image[1].depends_on", "dependency cycle: a -> b -> a")},
		},
		{
			name: "three-image cycle through depends_on, FROM and ARG",
			files: map[string]string{
				"x/Dockerfile": "FROM a",
				"a/Dockerfile": "FROM ubuntu",
				"b/Dockerfile": "FROM registry.example.com/ci/c:nightly",
				"c/Dockerfile": "ARG BASE_IMAGE=a\nFROM ${BASE_IMAGE}",
			},
			images: []config.Image{stackImage("x", 1), stackImage("a", 3, "b"), stackImage("b", 6), stackImage("c", 9)},
			want:   config.Problems{problemAt(3, "image[2].depends_on", "dependency cycle: a -> b -> c -> a")},
		},
		{
			// Both cycles, as config.Load reports depends_on cycles: fixing
			// the first alone would leave the second.
			name: "overlapping cycles through FROM lines",
			files: map[string]string{
				"a/Dockerfile": "FROM b",
				"b/Dockerfile": "FROM c",
				"c/Dockerfile": "FROM a AS one\nFROM b",
				"d/Dockerfile": "FROM c",
			},
			images: []config.Image{stackImage("a", 1), stackImage("b", 4), stackImage("c", 7), stackImage("d", 10)},
			want: config.Problems{
				problemAt(1, "image[1].dockerfile", "dependency cycle: a -> b -> c -> a"),
				problemAt(4, "image[2].dockerfile", "dependency cycle: b -> c -> b"),
			},
		},
		{
			name:   "cycle through FROM lines alone",
			files:  map[string]string{"a/Dockerfile": "FROM b", "b/Dockerfile": "ARG BASE_IMAGE=a\nFROM ${BASE_IMAGE}"},
			images: []config.Image{stackImage("a", 1), stackImage("b", 4)},
			want:   config.Problems{problemAt(1, "image[1].dockerfile", "dependency cycle: a -> b -> a")},
		},
		{
			name:   "depends on itself",
			files:  map[string]string{"a/Dockerfile": "FROM ubuntu"},
			images: []config.Image{stackImage("a", 2, "a")},
			want:   config.Problems{problemAt(2, "image[1].depends_on", "dependency cycle: a -> a")},
		},
		{
			name:   "FROM itself",
			files:  map[string]string{"python/Dockerfile": "# comment\nFROM python:3.13"},
			images: []config.Image{stackImage("python", 7)},
			want: config.Problems{problemAt(7, "image[1].dockerfile",
				"python/Dockerfile:2: FROM python:3.13 is this image itself, which it cannot build on; "+
					"if an outside image of the same name is meant, write its full reference (e.g. docker.io/library/python:3.13)")},
		},
		{
			name:   "empty FROM without depends_on",
			files:  map[string]string{"a/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}"},
			images: []config.Image{stackImage("a", 1)},
			want: config.Problems{problemAt(1, "image[1].dockerfile",
				"a/Dockerfile:2: FROM ${BASE_IMAGE} is empty: give ARG BASE_IMAGE a default naming the parent image, or set depends_on")},
		},
		{
			name:   "empty FROM with depends_on but no ARG",
			files:  map[string]string{"a/Dockerfile": "FROM ubuntu", "b/Dockerfile": "FROM ${BASE_IMAGE}"},
			images: []config.Image{stackImage("a", 1), stackImage("b", 3, "a")},
			want: config.Problems{problemAt(3, "image[2].dockerfile",
				"b/Dockerfile:1: FROM ${BASE_IMAGE} is empty: declare ARG BASE_IMAGE before the first FROM so that nightshift can set it to the parent image")},
		},
		{
			name:   "parse error",
			files:  map[string]string{"a/Dockerfile": "ARG X\nFROM ${X"},
			images: []config.Image{stackImage("a", 1)},
			want:   config.Problems{problemAt(1, "image[1].dockerfile", "a/Dockerfile:2: FROM ${X: unterminated ${")},
		},
		{
			// Found by make chaos: it passed config check and failed the run.
			name:   "no FROM at all",
			files:  map[string]string{"a/Dockerfile": "# comment\nRUN true\n"},
			images: []config.Image{stackImage("a", 1)},
			want: config.Problems{problemAt(1, "image[1].dockerfile",
				"a/Dockerfile: no FROM line: a Dockerfile builds on an image (FROM scratch for none)")},
		},
		{
			name:   "unknown target",
			files:  map[string]string{"a/Dockerfile": "FROM ubuntu AS dev"},
			images: []config.Image{{Name: "a", Dockerfile: "a/Dockerfile", Target: "prod", Line: 1}},
			want:   config.Problems{problemAt(1, "image[1].target", `a/Dockerfile: the Dockerfile has no stage named "prod"`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := writeFiles(t, tt.files)
			g, problems := NewGraph(testConfig, root, testStaging, tt.images)
			if !reflect.DeepEqual(problems, tt.want) {
				t.Errorf("problems:\n%v\nwant:\n%v", problems, tt.want)
			}
			if got := g.Order(); len(got) != len(tt.images) {
				t.Errorf("Order = %q, want every image", got)
			}
		})
	}
}

func TestGraphUnreadableDockerfile(t *testing.T) {
	t.Parallel()
	images := []config.Image{{Name: "a", Dockerfile: "missing/Dockerfile", Line: 3}}
	_, problems := NewGraph(testConfig, t.TempDir(), testStaging, images)
	if len(problems) != 1 || problems[0].Key != "image[1].dockerfile" || problems[0].Line != 3 ||
		!strings.Contains(problems[0].Msg, "cannot read the Dockerfile") {
		t.Errorf("problems = %v", problems)
	}
}

func TestCriticalPath(t *testing.T) {
	t.Parallel()
	//	top ─┬─ left ──┬─ bottom
	//	     └─ right ─┘
	root := writeFiles(t, map[string]string{
		"top/Dockerfile":    "FROM ubuntu",
		"left/Dockerfile":   "FROM top",
		"right/Dockerfile":  "FROM top",
		"bottom/Dockerfile": "FROM left AS l\nFROM right",
	})
	var images []config.Image
	for i, name := range []string{"bottom", "right", "left", "top"} {
		images = append(images, config.Image{Name: name, Dockerfile: name + "/Dockerfile", Line: i + 1})
	}
	g, problems := NewGraph(testConfig, root, testStaging, images)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	costs := map[string]time.Duration{"top": time.Minute, "left": 5 * time.Minute, "right": 2 * time.Minute, "bottom": time.Minute}
	chain, total := g.CriticalPath(func(name string) time.Duration { return costs[name] })
	if want := []string{"top", "left", "bottom"}; !reflect.DeepEqual(chain, want) || total != 7*time.Minute {
		t.Errorf("CriticalPath = %q, %v; want %q, 7m", chain, total, want)
	}

	empty, _ := NewGraph(testConfig, root, testStaging, nil)
	if chain, total := empty.CriticalPath(func(string) time.Duration { return time.Hour }); chain != nil || total != 0 {
		t.Errorf("CriticalPath of no images = %q, %v", chain, total)
	}
}
