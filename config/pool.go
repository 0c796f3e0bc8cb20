package config

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
)

// Node is one build host of the pool ([[builder]]): a Docker Engine that
// builds the images whose runs_on labels it has all of.
type Node struct {
	Name string `toml:"name"`
	// Host is the engine as DOCKER_HOST names it: unix:///path,
	// tcp://host:port or ssh://user@host.
	Host string `toml:"host"`
	// BuildKit is a standalone buildkitd instead of an engine
	// (unix:///path or tcp://host:port): it builds and pushes, and runs
	// nothing, so its images are tested on the engine at $DOCKER_HOST.
	BuildKit string `toml:"buildkit"`
	// TLSCA, TLSCert and TLSKey are PEM files for a tcp:// engine that
	// wants TLS (relative to the config file): all three, or none.
	TLSCA   string   `toml:"tls_ca"`
	TLSCert string   `toml:"tls_cert"`
	TLSKey  string   `toml:"tls_key"`
	Labels  []string `toml:"labels"`
	// Jobs is how many images it builds at once. Default: build.jobs.
	Jobs int `toml:"jobs"`
	// Builder "legacy" makes the node build every image with the engine's
	// classic builder (an engine too old for BuildKit); default: each
	// image's own builder.
	Builder string `toml:"builder"`

	Line int `toml:"-"`
}

// DefaultNode is the builder of a configuration without [[builder]]: the
// engine at $DOCKER_HOST (or the default socket), with no labels.
const DefaultNode = "default"

var nodeSchemes = []string{"unix", "tcp", "ssh"}

// nodes checks [[builder]] and every image's runs_on, after images: an
// image no builder can take is a problem of its runs_on.
func (l *loader) nodes(c *Config) {
	seen := map[string]int{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		key := fmt.Sprintf("builder[%d]", i+1)
		n.Line = c.lines.line(key)
		switch j, dup := seen[n.Name]; {
		case n.Name == "":
			l.problem(key+".name", `required: the builder's name, e.g. "arm"`)
		case !sourceName.MatchString(n.Name):
			l.problem(key+".name", fmt.Sprintf(`%q is not a builder name: use lowercase letters, digits, "_", "." and "-"`, n.Name))
		case dup:
			l.problem(key+".name", fmt.Sprintf("%q is already the name of builder[%d]: give each builder its own name", n.Name, j+1))
		default:
			seen[n.Name] = i
		}
		addrKey, addr, schemes, what := key+".host", n.Host, nodeSchemes, "an engine address: use unix:///path, tcp://host:port or ssh://user@host"
		if n.BuildKit != "" {
			addrKey, addr, schemes, what = key+".buildkit", n.BuildKit, []string{"unix", "tcp"}, "a buildkitd address: use unix:///path or tcp://host:port"
		}
		u, err := url.Parse(addr)
		switch {
		case n.Host != "" && n.BuildKit != "":
			l.problem(key+".buildkit", "give host (a Docker Engine) or buildkit (a standalone buildkitd), not both")
		case addr == "":
			l.problem(key+".host", `required: the builder's Docker Engine as DOCKER_HOST names it, e.g. "unix:///var/run/docker.sock", "tcp://build-01:2376" or "ssh://ci@arm-build-01"; or buildkit, a buildkitd's address`)
		case err != nil || !slices.Contains(schemes, u.Scheme):
			l.problem(addrKey, fmt.Sprintf("%q is not %s", addr, what))
		}
		if n.BuildKit != "" && n.Builder == BuilderLegacy {
			l.problem(key+".builder", `a buildkitd has no classic builder: leave builder out`)
		}
		tls := []struct{ key, file string }{{"tls_ca", n.TLSCA}, {"tls_cert", n.TLSCert}, {"tls_key", n.TLSKey}}
		given := 0
		for _, f := range tls {
			if f.file != "" {
				given++
			}
		}
		switch {
		case given == 0:
		case err == nil && u.Scheme != "tcp":
			l.problem(key+".tls_ca", "TLS files apply to a tcp:// address only: an ssh:// or unix:// one needs none")
		case given != len(tls):
			l.problem(key+".tls_ca", "give all of tls_ca, tls_cert and tls_key, or none")
		default:
			n.TLSCA, n.TLSCert, n.TLSKey = l.path(n.TLSCA), l.path(n.TLSCert), l.path(n.TLSKey)
			for _, f := range []struct{ key, file string }{{"tls_ca", n.TLSCA}, {"tls_cert", n.TLSCert}, {"tls_key", n.TLSKey}} {
				if _, err := os.Stat(f.file); err != nil {
					l.problem(key+"."+f.key, fmt.Sprintf("cannot read %s: %v", f.file, err))
				}
			}
		}
		if !l.has(key + ".jobs") {
			n.Jobs = c.Build.Jobs
		} else if n.Jobs < 1 {
			l.problem(key+".jobs", fmt.Sprintf("must be at least 1, the number of images it builds at once (got %d)", n.Jobs))
		}
		switch n.Builder {
		case "", BuilderLegacy:
		default:
			l.problem(key+".builder", fmt.Sprintf(`%q is not a builder a node may force: use %q for an engine too old for BuildKit, or leave it out`, n.Builder, BuilderLegacy))
		}
		for _, label := range n.Labels {
			if !sourceName.MatchString(label) {
				l.problem(key+".labels", fmt.Sprintf(`%q is not a label: use lowercase letters, digits, "_", "." and "-"`, label))
			}
		}
	}

	for i, img := range c.Images {
		if len(img.RunsOn) == 0 {
			continue
		}
		key := fmt.Sprintf("image[%d].runs_on", i+1)
		if len(c.Nodes) == 0 {
			l.problem(key, "needs [[builder]] tables: without them every image builds on the engine at $DOCKER_HOST, which has no labels")
			continue
		}
		if len(c.NodesFor(img.RunsOn)) == 0 {
			var have []string
			for _, n := range c.Nodes {
				have = append(have, fmt.Sprintf("%s [%s]", n.Name, strings.Join(n.Labels, ", ")))
			}
			l.problem(key, fmt.Sprintf("no [[builder]] has all of the labels %s: builders: %s; add the labels to a builder, or change runs_on",
				strings.Join(img.RunsOn, ", "), strings.Join(have, "; ")))
		}
	}
}

// NodesFor returns the [[builder]]s that have every label of runsOn.
func (c *Config) NodesFor(runsOn []string) []Node {
	var can []Node
	for _, n := range c.Nodes {
		if hasAll(n.Labels, runsOn) {
			can = append(can, n)
		}
	}
	return can
}

func hasAll(labels, want []string) bool {
	for _, w := range want {
		if !slices.Contains(labels, w) {
			return false
		}
	}
	return true
}
