package config

import (
	"strings"
	"testing"
)

// [[builder]] and runs_on are checked with every other table: each problem
// with its line and key, and an image no builder can take is one.
func TestNodeProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, toml string
		want       []string
	}{
		{
			name: "builders",
			toml: okStaging + okImage + // 1-6
				"[[builder]]\nname = \"x86\"\nhost = \"unix:///run/docker.sock\"\nlabels = [\"amd64\"]\n" + // 7-10
				"[[builder]]\nname = \"x86\"\nhost = \"http://arm:2375\"\njobs = 0\nlabels = [\"ARM\"]\n" + // 11-15
				"[[builder]]\nname = \"gpu\"\nhost = \"ssh://ci@gpu\"\ntls_ca = \"ca.pem\"\n" + // 16-19
				"[[builder]]\nname = \"tls\"\nhost = \"tcp://tls:2376\"\ntls_ca = \"ca.pem\"\n" + // 20-23
				"[[builder]]\nname = \"bk\"\nhost = \"tcp://a:1\"\nbuildkit = \"ssh://b\"\n" + // 24-27
				"[[builder]]\nname = \"bk2\"\nbuildkit = \"ssh://b\"\nbuilder = \"legacy\"\n", // 28-31
			want: []string{
				`bad.toml:12: builder[2].name: "x86" is already the name of builder[1]: give each builder its own name`,
				`bad.toml:13: builder[2].host: "http://arm:2375" is not an engine address: use unix:///path, tcp://host:port or ssh://user@host`,
				`bad.toml:14: builder[2].jobs: must be at least 1, the number of images it builds at once (got 0)`,
				`bad.toml:15: builder[2].labels: "ARM" is not a label: use lowercase letters, digits, "_", "." and "-"`,
				`bad.toml:19: builder[3].tls_ca: TLS files apply to a tcp:// address only: an ssh:// or unix:// one needs none`,
				`bad.toml:23: builder[4].tls_ca: give all of tls_ca, tls_cert and tls_key, or none`,
				`bad.toml:27: builder[5].buildkit: give host (a Docker Engine) or buildkit (a standalone buildkitd), not both`,
				`bad.toml:30: builder[6].buildkit: "ssh://b" is not a buildkitd address: use unix:///path or tcp://host:port`,
				`bad.toml:31: builder[6].builder: a buildkitd has no classic builder: leave builder out`,
			},
		},
		{
			name: "an image no builder can take",
			toml: okStaging + okImage + "runs_on = [\"arm64\", \"gpu\"]\n" + // 1-7
				"[[builder]]\nname = \"arm\"\nhost = \"ssh://ci@arm\"\nlabels = [\"arm64\"]\n", // 8-11
			want: []string{`bad.toml:7: image[1].runs_on: no [[builder]] has all of the labels arm64, gpu: builders: arm [arm64]; add the labels to a builder, or change runs_on`},
		},
		{
			name: "a test engine that is none",
			toml: okStaging + okImage + "[validate]\nengine = \"docker.sock\"\n",
			want: []string{`bad.toml:8: validate.engine: "docker.sock" is not an engine address: use unix:///path, tcp://host:port or ssh://user@host`},
		},
		{
			name: "runs_on without builders",
			toml: okStaging + okImage + "runs_on = [\"arm64\"]\n",
			want: []string{`bad.toml:7: image[1].runs_on: needs [[builder]] tables: without them every image builds on the engine at $DOCKER_HOST, which has no labels`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, sampleTree...)
			_, err := Parse([]byte(tt.toml), "bad.toml", dir)
			got := problemStrings(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestNodesDefaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	c, err := Parse([]byte(okStaging+"[build]\njobs = 3\n"+okImage+"runs_on = [\"arm64\"]\n"+
		"[[builder]]\nname = \"x86\"\nhost = \"unix:///run/docker.sock\"\nlabels = [\"amd64\"]\n"+
		"[[builder]]\nname = \"arm\"\nhost = \"ssh://ci@arm\"\nlabels = [\"arm64\", \"neon\"]\njobs = 1\n"), "ok.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 2 || c.Nodes[0].Jobs != 3 || c.Nodes[1].Jobs != 1 {
		t.Errorf("nodes = %+v, want x86 with build.jobs (3) and arm with 1", c.Nodes)
	}
	if got := c.NodesFor([]string{"arm64"}); len(got) != 1 || got[0].Name != "arm" {
		t.Errorf("NodesFor(arm64) = %+v, want arm", got)
	}
	if got := c.NodesFor(nil); len(got) != 2 {
		t.Errorf("NodesFor(none) = %d builders, want both", len(got))
	}
}
