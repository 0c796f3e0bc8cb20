package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestPublished(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		published string // the value of staging.published, on line 4
		want      []string
	}{
		{name: "registry and path", published: `["quay.io/jupyter"]`},
		{name: "several, Docker Hub and a port", published: `["docker.io/library", "jupyter", "docker.io", "registry.example.org:5000/ci/stable", "quay.io"]`},
		{name: "empty list", published: `[]`},
		{
			name:      "tag",
			published: `["quay.io/jupyter:2026-01-05"]`,
			want:      []string{`bad.toml:4: staging.published: entry 1, "quay.io/jupyter:2026-01-05", names a tag (2026-01-05): write the repository path alone, which stands for every tag and digest`},
		},
		{
			name:      "digest",
			published: `["quay.io/jupyter/base@sha256:` + strings.Repeat("0", 64) + `"]`,
			want: []string{`bad.toml:4: staging.published: entry 1, "quay.io/jupyter/base@sha256:` + strings.Repeat("0", 64) +
				`", names a digest: write the repository path alone, which stands for every tag and digest`},
		},
		{
			name:      "scheme, empty, case and a doubled slash",
			published: `["https://quay.io/jupyter", "", "quay.io/Jupyter", "quay.io/jupyter/"]`,
			want: []string{
				`bad.toml:4: staging.published: entry 1, "https://quay.io/jupyter", has a scheme: remove it and write the registry host and the repository path the stack's images are published under, e.g. "quay.io/jupyter"`,
				`bad.toml:4: staging.published: entry 2, "", is empty: write the registry host and the repository path the stack's images are published under, e.g. "quay.io/jupyter"`,
				`bad.toml:4: staging.published: entry 3, "quay.io/Jupyter", is not a registry host and repository path: write the registry host and the repository path the stack's images are published under, e.g. "quay.io/jupyter"`,
				`bad.toml:4: staging.published: entry 4, "quay.io/jupyter/", is not a registry host and repository path: write the registry host and the repository path the stack's images are published under, e.g. "quay.io/jupyter"`,
			},
		},
		{
			name:      "not a list of strings",
			published: `"quay.io/jupyter"`,
			want:      []string{`bad.toml:4: staging.published: expected an array of strings, got a string`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, sampleTree...)
			toml := okStaging + "published = " + tt.published + "\n" + okImage
			cfg, err := Parse([]byte(toml), "bad.toml", dir)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got := fmt.Sprintf("%q", cfg.Staging.Published); strings.ReplaceAll(got, `" "`, `", "`) != tt.published {
					t.Errorf("Published = %s, want %s", got, tt.published)
				}
				return
			}
			if got := problemStrings(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// ImageRepository and an image reference agree on what Docker would pull,
// defaults (Docker Hub, library/) included.
func TestImageRepository(t *testing.T) {
	t.Parallel()
	digest := "@sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		prefix, image, ref string
		same               bool
	}{
		{"quay.io/jupyter", "minimal-notebook", "quay.io/jupyter/minimal-notebook", true},
		{"quay.io/jupyter", "minimal-notebook", "quay.io/jupyter/minimal-notebook:2026-01-05", true},
		{"quay.io/jupyter", "minimal-notebook", "quay.io/jupyter/minimal-notebook:latest" + digest, true},
		{"docker.io/library", "python", "python:3.13", true},
		{"docker.io", "python", "docker.io/library/python", true},
		{"docker.io", "python", "index.docker.io/library/python", true},
		{"jupyter", "base-notebook", "docker.io/jupyter/base-notebook", true},
		{"index.docker.io/jupyter", "base-notebook", "jupyter/base-notebook" + digest, true},
		{"localhost:5000/ci", "ci_base", "localhost:5000/ci/ci_base:nightly", true},
		{"quay.io/jupyter", "minimal-notebook", "docker.io/jupyter/minimal-notebook", false},
		{"quay.io/jupyter", "minimal-notebook", "quay.io/jupyter/stable/minimal-notebook", false},
		{"quay.io", "minimal-notebook", "quay.io/jupyter/minimal-notebook", false},
		{"docker.io/library", "python", "quay.io/library/python", false},
	}
	for _, tt := range tests {
		repo, err := ImageRepository(tt.prefix, tt.image)
		if err != nil {
			t.Errorf("ImageRepository(%q, %q): %v", tt.prefix, tt.image, err)
			continue
		}
		ref, err := name.ParseReference(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		if same := repo.Name() == ref.Context().Name(); same != tt.same {
			t.Errorf("ImageRepository(%q, %q) = %s; same repository as %s: %v, want %v", tt.prefix, tt.image, repo, tt.ref, same, tt.same)
		}
	}
}
