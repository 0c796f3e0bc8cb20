package config

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// The builders an image may be built with.
const (
	// BuilderBuildKit builds with the engine's BuildKit and its Dockerfile
	// frontend: RUN --mount, secrets, stages built at once.
	BuilderBuildKit = "buildkit"
	// BuilderLegacy builds with the engine's classic builder, for engines
	// too old for BuildKit.
	BuilderLegacy = "legacy"
)

// BuildSecret is where one of an image's build secrets comes from: a file
// or an environment variable of nightshift's process. Only the reference is
// configured; the value is read when the build asks for it.
type BuildSecret struct {
	File string // absolute path
	Env  string
}

// builders checks [build] builder and each image's builder and secrets,
// after images: an image's builder defaults to build.builder.
func (l *loader) builders(c *Config) {
	switch c.Build.Builder {
	case "":
		c.Build.Builder = BuilderBuildKit
	case BuilderBuildKit, BuilderLegacy:
	default:
		l.problem("build.builder", fmt.Sprintf("%q is not a builder: use %q or %q", c.Build.Builder, BuilderBuildKit, BuilderLegacy))
	}
	for i := range c.Images {
		img := &c.Images[i]
		key := fmt.Sprintf("image[%d]", i+1)
		switch img.Builder {
		case "":
			img.Builder = c.Build.Builder
		case BuilderBuildKit, BuilderLegacy:
		default:
			l.problem(key+".builder", fmt.Sprintf("%q is not a builder: use %q or %q", img.Builder, BuilderBuildKit, BuilderLegacy))
		}
		img.BuildSecrets = nil
		if len(img.Secrets) == 0 {
			continue
		}
		if img.Builder == BuilderLegacy {
			l.problem(key+".secrets", `the legacy builder has no build secrets: use builder = "buildkit" for this image`)
		}
		img.BuildSecrets = make(map[string]BuildSecret, len(img.Secrets))
		for _, id := range slices.Sorted(maps.Keys(img.Secrets)) {
			if s, ok := l.buildSecret(key+".secrets."+id, img.Secrets[id]); ok {
				img.BuildSecrets[id] = s
			}
		}
	}
}

// buildSecret reads the source of one build secret: "file:<path>" (relative
// to the config file's directory) or "env:<NAME>". Its value is not read,
// only checked to be there.
func (l *loader) buildSecret(key, source string) (BuildSecret, bool) {
	kind, ref, _ := strings.Cut(source, ":")
	switch {
	case kind == "file" && ref != "":
		path := l.path(ref)
		if fi, err := os.Stat(path); err != nil {
			l.problem(key, fmt.Sprintf("cannot read the secret's file: %v", err))
			return BuildSecret{}, false
		} else if fi.IsDir() {
			l.problem(key, fmt.Sprintf("%s is a directory: name the file that holds the secret", path))
			return BuildSecret{}, false
		}
		return BuildSecret{File: path}, true
	case kind == "env" && ref != "":
		if _, ok := os.LookupEnv(ref); !ok {
			l.problem(key, fmt.Sprintf("the environment variable %s is not set", ref))
			return BuildSecret{}, false
		}
		return BuildSecret{Env: ref}, true
	}
	// Not quoted: a value written here by mistake may be the secret itself.
	l.problem(key, `is not a secret's source: use "file:<path>" or "env:<NAME>"`)
	return BuildSecret{}, false
}
