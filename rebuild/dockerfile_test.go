package rebuild

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "dockerfiles", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// images returns the substituted image of each stage, which is what most
// cases are about.
func images(stages []Stage) []string {
	var out []string
	for _, st := range stages {
		out = append(out, st.Image)
	}
	return out
}

func TestReadStagesSubstitution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		args       map[string]string
		want       []string
	}{
		{"plain", "ARG A=ubuntu\nFROM $A", nil, []string{"ubuntu"}},
		{"braces", "ARG A=ubuntu\nFROM ${A}:24.04", nil, []string{"ubuntu:24.04"}},
		{"name ends at a non-name byte", "ARG A=ubuntu\nFROM $A-slim", nil, []string{"ubuntu-slim"}},
		{"default when unset", "ARG A\nFROM ${A:-debian}", nil, []string{"debian"}},
		{"default when empty", "ARG A=\"\"\nFROM ${A:-debian}", nil, []string{"debian"}},
		{"no default when set", "ARG A=ubuntu\nFROM ${A:-debian}", nil, []string{"ubuntu"}},
		{"dash without colon keeps empty", "ARG A=\nFROM x${A-d}", nil, []string{"x"}},
		{"dash without colon on unset", "ARG A\nFROM x${A-d}", nil, []string{"xd"}},
		{"alternative when set", "ARG A=1\nFROM x${A:+-alt}", nil, []string{"x-alt"}},
		{"no alternative when empty", "ARG A=\nFROM x${A:+-alt}", nil, []string{"x"}},
		{"no alternative when unset", "ARG A\nFROM x${A:+-alt}", nil, []string{"x"}},
		{"nested default", "ARG B=alpine\nFROM ${A:-${B}}:3", nil, []string{"alpine:3"}},
		{"undeclared is empty", "FROM ubuntu${NOPE}", nil, []string{"ubuntu"}},
		{"user value overrides default", "ARG A=ubuntu\nFROM $A", map[string]string{"A": "fedora"}, []string{"fedora"}},
		{"user value for undeclared arg ignored", "FROM x${A}", map[string]string{"A": "fedora"}, []string{"x"}},
		{"user value taken literally", "ARG T\nFROM x:${T}", map[string]string{"T": "{{ .Tag }}"}, []string{"x:{{ .Tag }}"}},
		{"default refers to an earlier arg", "ARG A=ubuntu\nARG B=${A}:24.04\nFROM $B", nil, []string{"ubuntu:24.04"}},
		{"several args on one line", "ARG A=reg B=img C\nFROM $A/$B$C", nil, []string{"reg/img"}},
		{"quoted default", "ARG A=\"my image\"\nFROM \"$A\"", nil, []string{"my image"}},
		{"single quotes stop substitution", "ARG A='$B'\nARG B=x\nFROM $A", nil, []string{"$B"}},
		{"escaped dollar", "ARG A=x\nFROM \\$A", nil, []string{"$A"}},
		{"lone dollar", "FROM a$", nil, []string{"a$"}},
		{"arg after FROM not in scope", "ARG A=1\nFROM x:$A\nARG A=2\nARG B=3\nFROM y:$A$B", nil, []string{"x:1", "y:1"}},
		{"arg after FROM ignores user value", "FROM x\nARG B\nFROM y$B", map[string]string{"B": "z"}, []string{"x", "y"}},
		{"case-insensitive instructions", "arg A=ubuntu\nfrom $A as One\nFrOm one", nil, []string{"ubuntu", "one"}},
		{"platform flag", "FROM --platform=$BUILDPLATFORM golang:1.26 AS build", nil, []string{"golang:1.26"}},
		{"crlf line ends", "ARG A=ubuntu\r\nFROM $A\r\n", nil, []string{"ubuntu"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stages, err := ReadStages(strings.NewReader(tt.dockerfile), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := images(stages); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("images = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadStagesTestdata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		args map[string]string
		want []Stage
	}{
		{"multistage.Dockerfile", nil, []Stage{
			{Line: 5, Raw: "golang:${GO_VERSION}", Image: "golang:1.26", Name: "build"},
			{Line: 9, Raw: "build", Image: "build", Name: "test"},
			{Line: 12, Raw: "${BASE_IMAGE}", Image: "ci_base:latest"},
		}},
		{"multistage.Dockerfile", map[string]string{"GO_VERSION": "1.27", "BASE_IMAGE": "reg/ns/ci_base:t"}, []Stage{
			{Line: 5, Raw: "golang:${GO_VERSION}", Image: "golang:1.27", Name: "build"},
			{Line: 9, Raw: "build", Image: "build", Name: "test"},
			{Line: 12, Raw: "${BASE_IMAGE}", Image: "reg/ns/ci_base:t"},
		}},
		{"heredoc.Dockerfile", nil, []Stage{
			{Line: 1, Raw: "ubuntu:24.04", Image: "ubuntu:24.04", Name: "base"},
			{Line: 19, Raw: "base", Image: "base", Name: "final"},
		}},
		{"escape.Dockerfile", nil, []Stage{
			{Line: 5, Raw: "${WIN_BASE}", Image: "mcr.microsoft.com/windows/servercore:ltsc2022", Name: "win"},
			{Line: 9, Raw: "win", Image: "win"},
		}},
		{"continuation.Dockerfile", nil, []Stage{
			{Line: 4, Raw: "${REGISTRY}/${NAMESPACE}/ci_base:nightly", Image: "registry.example.com/ci/ci_base:nightly", Name: "base"},
		}},
		{"args.Dockerfile", nil, []Stage{
			{Line: 5, Raw: "${FROM_OTHER}", Image: "ubuntu:24.04"},
			{Line: 6, Raw: "${UNSET:-fallback}:1", Image: "fallback:1"},
			{Line: 7, Raw: "${PLAIN:+alt}:2", Image: "alt:2"},
			{Line: 8, Raw: `"${QUOTED}"`, Image: "debian:bookworm slim"},
			{Line: 9, Raw: "${SINGLE}", Image: "alpine:$NOT_EXPANDED"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got, err := ReadStages(strings.NewReader(readTestdata(t, tt.file)), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("stages =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestReadStagesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		line       int
		msg        string // part of the message
	}{
		{"FROM without image", "ARG A=1\n\nFROM\n", 3, "FROM has no image"},
		{"FROM with only a flag", "FROM --platform=linux/amd64", 1, "FROM has no image"},
		{"FROM with stray words", "FROM a b", 1, "want an image and an optional AS name"},
		{"unterminated braces", "# comment\nFROM ${A", 2, "unterminated ${"},
		{"unterminated default", "ARG A\nFROM ${A:-x", 2, "unterminated ${"},
		{"unterminated braces in ARG default", "ARG A=${B\nFROM x", 1, "unterminated ${"},
		{"braces without name", "FROM x${}", 1, "needs an ARG name"},
		{"unsupported modifier", "ARG A=x\nFROM ${A/x/y}", 2, "unsupported substitution"},
		{"required arg unset", "ARG A\nFROM ${A:?required}", 2, "ARG A: required"},
		{"unterminated quote", "FROM \"x", 1, "unterminated double quote"},
		{"bad escape directive", "# escape=x\nFROM x", 1, "escape directive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stages, err := ReadStages(strings.NewReader(tt.dockerfile), nil)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ReadStages = %+v, %v; want a *ParseError", stages, err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error = %v; want line %d and %q", err, tt.line, tt.msg)
			}
		})
	}
}

func TestReadStagesEmptyImage(t *testing.T) {
	t.Parallel()
	_, err := ReadStages(strings.NewReader("FROM ubuntu\nARG X=1\nFROM ${X}${BASE_IMAGE}"), nil)
	var e *EmptyImageError
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *EmptyImageError", err)
	}
	want := &EmptyImageError{Line: 3, Raw: "${X}${BASE_IMAGE}", Args: []string{"X", "BASE_IMAGE"}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("err = %+v, want %+v", e, want)
	}
}

func TestBase(t *testing.T) {
	t.Parallel()
	stages, err := ReadStages(strings.NewReader(readTestdata(t, "multistage.Dockerfile")), nil)
	if err != nil {
		t.Fatal(err)
	}
	chain := []Stage{
		{Line: 1, Image: "scratch", Name: "a"},
		{Line: 2, Image: "A", Name: "b"},
		{Line: 3, Image: "b"},
	}
	tests := []struct {
		name    string
		stages  []Stage
		target  string
		want    string
		wantErr string
	}{
		{"final stage", stages, "", "ci_base:latest", ""},
		{"target", stages, "test", "golang:1.26", ""},
		{"target is case-insensitive", stages, "Test", "golang:1.26", ""},
		{"chain of stages to scratch", chain, "", "scratch", ""},
		{"unknown target", stages, "nope", "", `no stage named "nope"`},
		{"no stages", nil, "", "", "no FROM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Base(tt.stages, tt.target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Base = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Base = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestExternalImages(t *testing.T) {
	t.Parallel()
	stages := []Stage{
		{Image: "golang:1.26", Name: "build"},
		{Image: "build", Name: "test"},
		{Image: "ubuntu"},
		{Image: "golang:1.26"},
		{Image: "Test"},
	}
	want := []string{"golang:1.26", "ubuntu"}
	if got := ExternalImages(stages); !reflect.DeepEqual(got, want) {
		t.Errorf("ExternalImages = %q, want %q", got, want)
	}
}

func FuzzReadStages(f *testing.F) {
	for _, dir := range []string{"testdata/dockerfiles/*", "testdata/stack/*/Dockerfile"} {
		files, err := filepath.Glob(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(data))
		}
	}
	args := map[string]string{"BASE_IMAGE": "ci_base", "GO_VERSION": ""}
	f.Fuzz(func(t *testing.T, dockerfile string) {
		stages, err := ReadStages(strings.NewReader(dockerfile), args)
		if err != nil {
			return
		}
		for _, st := range stages {
			if st.Line < 1 || st.Image == "" {
				t.Errorf("bad stage %+v", st)
			}
		}
		if len(stages) > 0 {
			if _, err := Base(stages, ""); err != nil {
				t.Errorf("Base: %v", err)
			}
		}
		ExternalImages(stages)
	})
}
