package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestValidateProblems(t *testing.T) {
	tests := []struct {
		name string
		toml string // after okStaging + okImage (lines 1-6)
		want []string
	}{
		{
			name: "tests and limits",
			toml: "tests = [\"../outside.yaml\"]\n[validate]\ntests = [\"tests/missing.yaml\"]\ntimeout = \"0s\"\nretries = -1\nparallel = 0\n", // 7-12
			want: []string{
				`bad.toml:7: image[1].tests: test file 1, "../outside.yaml", is not inside the source repository: use a relative path without ".."`,
				`bad.toml:9: validate.tests: "tests/missing.yaml" does not exist in the source repository $ROOT`,
				`bad.toml:10: validate.timeout: must be positive, e.g. "10m"`,
				"bad.toml:11: validate.retries: must not be negative (got -1): 0 tries each test once",
				"bad.toml:12: validate.parallel: must be at least 1, the command tests of an image run at once (got 0)",
			},
		},
		{
			name: "jenkins",
			toml: "[validate.jenkins]\nurl = \"ci.example.org\"\njob = \"job/ci/job/test\"\nuser = \"bot\"\nparameter = \"{{.Nme}}\"\npass = [\"GREEN\"]\nwhen = \"always\"\nmissing = \"latest\"\n", // 7-14
			want: []string{
				`bad.toml:8: validate.jenkins.url: "ci.example.org" is not an http(s) URL such as https://ci.example.org`,
				`bad.toml:9: validate.jenkins.job: "job/ci/job/test": write the folder path ("a/b/job"), not the URL path ("job/a/job/b/job/job")`,
				"bad.toml:10: validate.jenkins.user: a user is given but no API token: name a file holding it with token_file, or set $NIGHTSHIFT_JENKINS_TOKEN",
				"bad.toml:11: validate.jenkins.parameter: cannot render: ",
				`bad.toml:12: validate.jenkins.pass: "GREEN" is not a Jenkins build result: use SUCCESS, UNSTABLE, FAILURE, ABORTED, NOT_BUILT`,
				`bad.toml:13: validate.jenkins.when: "always" is not "any-built" (the job runs with what built) or "all-built" (only when every image built)`,
				`bad.toml:14: validate.jenkins.missing: "latest" is not "omit" (the job's default applies) or "last-validated" (the image's last validated ref)`,
			},
		},
		{
			name: "latest validated with nothing to validate",
			toml: "[staging]\nlatest = \"validated\"\n",
			want: []string{
				`bad.toml:2: staging.latest: "validated" moves latest only for validated images, and nothing validates ci_base: give them tests (validate.tests or [[image]] tests) or configure [validate.jenkins]`,
			},
		},
		{
			name: "latest neither",
			toml: "[staging]\nlatest = \"always\"\n",
			want: []string{
				`bad.toml:2: staging.latest: "always" is not "built" (latest moves once the image is pushed) or "validated" (only once it is validated)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, sampleTree...)
			t.Setenv(EnvJenkinsToken, "")
			data := okStaging + okImage + tt.toml
			if strings.HasPrefix(tt.toml, "[staging]") { // the staging table is written once
				data = strings.Replace(okStaging, "[staging]\n", "[staging]\n"+strings.TrimPrefix(tt.toml, "[staging]\n"), 1) + okImage
			}
			got := problemStrings(t, func() error { _, err := Parse([]byte(data), "bad.toml", dir); return err }())
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i, want := range tt.want {
				want = strings.ReplaceAll(want, "$ROOT", dir)
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("problem %d:\n%s\nwant:\n%s", i+1, got[i], want)
				}
			}
		})
	}
}

func TestValidateGood(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, append(sampleTree, "tests/all.yaml", "tests/base.yaml", "tests/cpu.yaml")...)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("jenkins-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(strings.Replace(okStaging, "[staging]\n", "[staging]\nlatest = \"validated\"\n", 1)+`
[[image]]
name = "ci_base"
dockerfile = "docker/base/Dockerfile"
tests = ["tests/base.yaml"]
[[image]]
name = "ci_cpu"
dockerfile = "docker/cpu/Dockerfile"
tests = ["tests/cpu.yaml", "tests/all.yaml"]
[validate]
tests = ["tests/all.yaml"]
ancestors = true
[validate.jenkins]
url = "https://ci.example.org/"
job = "/ci/nightly/"
user = "bot"
token_file = "token"
parameters = { TAG = "{{.Tag}}" }
`), "good.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	v, j := c.Validate, c.Validate.Jenkins
	if v.Timeout.Minutes() != 10 || v.Parallel != 4 || v.Retries != 0 || !c.Validates() || c.Staging.Latest != LatestValidated {
		t.Errorf("validate defaults = %+v, latest %q", v, c.Staging.Latest)
	}
	if !j.Enabled || j.URL != "https://ci.example.org" || j.Job != "ci/nightly" || j.Token.Reveal() != "jenkins-secret" ||
		j.Timeout.Hours() != 2 || j.Poll.Seconds() != 10 || !slices.Equal(j.Pass, []string{"SUCCESS"}) || !j.Passed("SUCCESS") || j.Passed("UNSTABLE") ||
		j.When != JenkinsAnyBuilt || j.Missing != JenkinsOmit {
		t.Errorf("jenkins = %+v", j)
	}
	if got := c.TestFiles("ci_cpu", []string{"ci_base"}); !slices.Equal(got, []string{"tests/all.yaml", "tests/base.yaml", "tests/cpu.yaml"}) {
		t.Errorf("ci_cpu's test files = %q, want validate.tests, its parent's, its own, each once", got)
	}
	data := NewTemplateData(sampleStart(), sampleCommit)
	data.Tag = "2026-11-23-02-00-00-1a2b3c4d"
	params, err := j.JenkinsParams(data, map[string]string{"ci_base": "reg/ci/ci_base:" + data.Tag, "ci_cpu": "reg/ci/ci_cpu:" + data.Tag})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ci_base_param": "reg/ci/ci_base:" + data.Tag, "ci_cpu_param": "reg/ci/ci_cpu:" + data.Tag, "TAG": data.Tag}
	if !maps.Equal(params, want) {
		t.Errorf("params = %v, want %v", params, want)
	}

	plain, err := Parse([]byte(okStaging+okImage), "plain.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Validates() || plain.Staging.Latest != LatestBuilt || plain.Validate.Jenkins.Enabled {
		t.Errorf("a config without validation validates: %+v", plain.Validate)
	}
}
