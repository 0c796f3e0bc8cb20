package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuilders(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	if err := os.WriteFile(filepath.Join(dir, "netrc"), []byte("machine x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NIGHTSHIFT_TEST_TOKEN", "s3cret")
	const head = "[staging]\nregistry = \"127.0.0.1:5000\"\nnamespace = \"ci\"\n"

	cfg, err := Parse([]byte(head+`
[[image]]
name = "base"
dockerfile = "docker/base/Dockerfile"
secrets = { pip_token = "env:NIGHTSHIFT_TEST_TOKEN", netrc = "file:netrc" }

[[image]]
name = "cpu"
dockerfile = "docker/cpu/Dockerfile"
builder = "legacy"
`), "b.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Build.Builder != BuilderBuildKit || cfg.Images[0].Builder != BuilderBuildKit || cfg.Images[1].Builder != BuilderLegacy {
		t.Errorf("builders %q, %q, %q", cfg.Build.Builder, cfg.Images[0].Builder, cfg.Images[1].Builder)
	}
	want := map[string]BuildSecret{"pip_token": {Env: "NIGHTSHIFT_TEST_TOKEN"}, "netrc": {File: filepath.Join(dir, "netrc")}}
	if got := cfg.Images[0].BuildSecrets; len(got) != 2 || got["pip_token"] != want["pip_token"] || got["netrc"] != want["netrc"] {
		t.Errorf("secrets %+v, want %+v", got, want)
	}

	cfg, err = Parse([]byte(head+"[build]\nbuilder = \"legacy\"\n[[image]]\nname = \"base\"\ndockerfile = \"docker/base/Dockerfile\"\n"), "b.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Images[0].Builder != BuilderLegacy {
		t.Errorf("image builder %q under [build] builder = legacy", cfg.Images[0].Builder)
	}

	_, err = Parse([]byte(head+`[build]
builder = "kaniko"

[[image]]
name = "base"
dockerfile = "docker/base/Dockerfile"
builder = "legacy"
secrets = { a = "env:NIGHTSHIFT_TEST_UNSET_VAR", b = "file:missing", c = "s3cret", d = "file:adir" }

[[image]]
name = "cpu"
dockerfile = "docker/cpu/Dockerfile"
builder = "buildx"
`), "b.toml", dir)
	got := problemStrings(t, err)
	for _, want := range []string{
		`b.toml:5: build.builder: "kaniko" is not a builder`,
		`b.toml:11: image[1].secrets: the legacy builder has no build secrets`,
		`image[1].secrets.a: the environment variable NIGHTSHIFT_TEST_UNSET_VAR is not set`,
		`image[1].secrets.b: cannot read the secret's file`,
		`image[1].secrets.c: is not a secret's source`,
		`image[1].secrets.d: ` + filepath.Join(dir, "adir") + ` is a directory`,
		`b.toml:16: image[2].builder: "buildx" is not a builder`,
	} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("no problem %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if all := strings.Join(got, "\n"); strings.Contains(all, "s3cret") {
		t.Errorf("a problem repeats a value that may be a secret:\n%s", all)
	}
}
