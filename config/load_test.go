package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTree creates the files named in a source repository under root.
// Names ending in "/" are directories.
func writeTree(t testing.TB, root string, names ...string) {
	t.Helper()
	for _, name := range names {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("FROM scratch\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sampleTree is the source repository that the configs of the tests use.
var sampleTree = []string{"Dockerfile", "docker/base/Dockerfile", "docker/cpu/Dockerfile", "adir/"}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// problemStrings returns the problems of err, one string each, failing the
// test when err is not a non-empty Problems.
func problemStrings(t *testing.T, err error) []string {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		t.Fatalf("error is %T %v, want non-empty Problems", err, err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// The images section most cases below share: a valid config is this plus
// the staging table.
const (
	okStaging = "[staging]\nregistry = \"localhost:5000\"\nnamespace = \"ci\"\n" // lines 1-3
	okImage   = "[[image]]\nname = \"ci_base\"\ndockerfile = \"Dockerfile\"\n"   // 3 lines
)

func TestParseProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		toml string
		want []string // "$ROOT" stands for the config directory
	}{
		{
			name: "syntax error",
			toml: "[staging\nregistry = 1\n",
			want: []string{
				"bad.toml:1: invalid TOML: expected ']' to close table name",
			},
		},
		{
			name: "key defined twice",
			toml: okStaging + "registry = \"other:5000\"\n" + okImage,
			want: []string{
				"bad.toml:4: invalid TOML: key registry is already defined",
			},
		},
		{
			name: "empty file",
			toml: "",
			want: []string{
				"bad.toml: staging.registry: required: the registry host[:port] that staging images are pushed to",
				`bad.toml: staging.namespace: required: the repository path under the registry that staging images are pushed to, e.g. "ci/nightly"`,
				"bad.toml: image: required: at least one [[image]] table naming an image to build",
			},
		},
		{
			name: "unknown keys and tables",
			toml: "store = { path = \"db\", cache = \"c\" }\n" + // 1
				"[source]\nrepo = \".\"\nbranch = \"main\"\n" + // 2-4
				okStaging + // 5-7
				"[[image]]\nname = \"ci_base\"\ndockerfile = \"Dockerfile\"\ndepends = []\n" + // 8-11
				"[[image]]\nname = \"ci_cpu\"\ndockerfile = \"Dockerfile\"\nbuild_args = { A = \"x\" }\nextra = { colour = \"blue\" }\n" + // 12-16
				"[logging]\nlevel = \"debug\"\n", // 17-18
			want: []string{
				"bad.toml:1: store.cache: unknown key (check the spelling; see config.example.toml)",
				"bad.toml:4: source.branch: unknown key (check the spelling; see config.example.toml)",
				"bad.toml:11: image[1].depends: unknown key (check the spelling; see config.example.toml)",
				"bad.toml:16: image[2].extra: unknown key (check the spelling; see config.example.toml)",
				"bad.toml:17: logging: unknown table (check the spelling; see config.example.toml)",
			},
		},
		{
			name: "ensure and changes",
			toml: okStaging + // 1-3
				"[ensure]\ntag_prefix = \"-pr\"\n" + // 4-5
				"[changes]\nbuild_all = [\"../ci/*.sh\"]\nignore = [\"\", \"docs/[\"]\n" + // 6-8
				"[[image]]\nname = \"ci_base\"\ndockerfile = \"Dockerfile\"\ninputs = [\"scripts/*.sh\", \"../x\"]\n", // 9-12
			want: []string{
				`bad.toml:5: ensure.tag_prefix: "-pr" makes content tags that are not a valid Docker tag: at most 128 letters, digits, "_", "." and "-", not starting with "." or "-"; keep it to 74 characters`,
				`bad.toml:7: changes.build_all: pattern 1, "../ci/*.sh", is not inside the source repository: write a path relative to its root, without ".."`,
				`bad.toml:8: changes.ignore: pattern 1 is empty`,
				`bad.toml:8: changes.ignore: pattern 2, "docs/[": syntax error in pattern`,
				`bad.toml:12: image[1].inputs: pattern 2, "../x", is not inside the source repository: write a path relative to its root, without ".."`,
			},
		},
		{
			name: "inline password",
			toml: okStaging + "password = \"hunter2\"\n" + okImage,
			want: []string{
				"bad.toml:4: staging.password: inline passwords are not accepted: put it in a file named by password_file, or in $NIGHTSHIFT_STAGING_PASSWORD",
			},
		},
		{
			name: "wrong types",
			toml: "source = { repo = 5 }\n" + // 1
				okStaging + // 2-4
				"[build]\njobs = \"two\"\ntimeout = 5\n" + // 5-7
				"[[image]]\nname = \"ci_base\"\ndockerfile = \"Dockerfile\"\ndepends_on = \"ci_cpu\"\n" + // 8-11
				"build_args = { BASE = 1 }\ntimeout = 1.5\n" + // 12-13
				"[[image]]\nname = \"ci_cpu\"\ndockerfile = \"Dockerfile\"\ndepends_on = [\n  \"ci_base\",\n  2,\n]\n", // 14-20
			want: []string{
				"bad.toml:1: source.repo: expected a string, got an integer",
				"bad.toml:6: build.jobs: expected an integer, got a string",
				`bad.toml:7: build.timeout: expected a duration string such as "90m" or "2h", got an integer`,
				"bad.toml:11: image[1].depends_on: expected an array of strings, got a string",
				"bad.toml:12: image[1].build_args.BASE: expected a string, got an integer",
				`bad.toml:13: image[1].timeout: expected a duration string such as "90m" or "2h", got a float`,
				"bad.toml:17: image[2].depends_on: expected an array of strings, got an integer in it",
			},
		},
		{
			name: "images as an inline array",
			toml: "image = [\n  { name = \"ci_base\", dockerfile = \"Dockerfile\" },\n  { name = \"ci_cpu\", dockerfile = \"Dockerfile\", colour = \"blue\" },\n]\n" + okStaging,
			want: []string{
				"bad.toml:3: image[2].colour: unknown key (check the spelling; see config.example.toml)",
			},
		},
		{
			name: "tables of the wrong type",
			toml: "[[source]]\nrepo = \".\"\n" + // 1-2
				"[staging]\nregistry = \"localhost:5000\"\n[staging.namespace]\nx = 1\n" + // 3-6
				okImage + "[[image.build_args]]\nA = \"x\"\n", // 7-11
			want: []string{
				"bad.toml:1: source: expected a table, got an array of tables",
				"bad.toml:5: staging.namespace: expected a string, got a table",
				"bad.toml:10: image[1].build_args: expected a table of strings, got an array of tables",
			},
		},
		{
			name: "array of tables written as a table",
			toml: okStaging + "[image]\nname = \"ci_base\"\n",
			want: []string{
				"bad.toml:4: image: expected an array of tables: write [[image]]",
			},
		},
		{
			name: "unparsable durations",
			toml: okStaging + "retry_budget = \"soon\"\n[build]\ntimeout = \"2 hours\"\n" + okImage + "timeout = \"1d\"\n",
			want: []string{
				`bad.toml:4: staging.retry_budget: "soon" is not a duration: write a number and a unit, e.g. "90m" or "2h"`,
				`bad.toml:6: build.timeout: "2 hours" is not a duration: write a number and a unit, e.g. "90m" or "2h"`,
				`bad.toml:10: image[1].timeout: "1d" is not a duration: write a number and a unit, e.g. "90m" or "2h"`,
			},
		},
		{
			name: "required image keys",
			toml: okStaging + "[[image]]\ntarget = \"x\"\n",
			want: []string{
				`bad.toml:4: image[1].name: required: the image's repository name under staging.namespace, e.g. "ci_base"`,
				"bad.toml:4: image[1].dockerfile: required: the path of the image's Dockerfile in the source repository",
			},
		},
		{
			name: "invalid names",
			toml: "[staging]\nregistry = \"localhost:5000\"\nnamespace = \"CI/nightly/\"\n" +
				"[[image]]\nname = \"CI-Base\"\ndockerfile = \"Dockerfile\"\n" +
				"[[image]]\nname = \"ci--cpu_\"\ndockerfile = \"Dockerfile\"\n",
			want: []string{
				`bad.toml:3: staging.namespace: "CI/nightly/" is not a valid repository path: use lowercase letters and digits, separated by ".", "_", "__" or "-", in components joined by "/"`,
				`bad.toml:5: image[1].name: "CI-Base" is not a valid image name: use lowercase letters and digits, separated by ".", "_", "__" or "-"`,
				`bad.toml:8: image[2].name: "ci--cpu_" is not a valid image name: use lowercase letters and digits, separated by ".", "_", "__" or "-"`,
			},
		},
		{
			name: "registry with a scheme",
			toml: "[staging]\nregistry = \"https://registry.example.com\"\nnamespace = \"ci\"\n" + okImage,
			want: []string{
				`bad.toml:2: staging.registry: "https://registry.example.com" has a scheme: remove "https://" and write only the host[:port] that staging images are pushed to`,
			},
		},
		{
			name: "registry with a path",
			toml: "[staging]\nregistry = \"registry.example.com/ci\"\nnamespace = \"nightly\"\n" + okImage,
			want: []string{
				`bad.toml:2: staging.registry: "registry.example.com/ci" has a path: write "registry.example.com" here and put "ci" in staging.namespace`,
			},
		},
		{
			name: "registry not a host",
			toml: "[staging]\nregistry = \"registry_example:port\"\nnamespace = \"ci\"\n" + okImage,
			want: []string{
				`bad.toml:2: staging.registry: "registry_example:port" is not a host[:port]: write only the host[:port] that staging images are pushed to`,
			},
		},
		{
			name: "duplicate image names",
			toml: okStaging + okImage + okImage + okImage,
			want: []string{
				`bad.toml:8: image[2].name: "ci_base" is already the name of image[1] (line 4): give each image its own name`,
				`bad.toml:11: image[3].name: "ci_base" is already the name of image[1] (line 4): give each image its own name`,
			},
		},
		{
			name: "depends_on unknown and self",
			toml: okStaging + okImage + "depends_on = [\"ci_base\", \"ci_bse\"]\n" +
				"[[image]]\nname = \"ci_cpu\"\ndockerfile = \"Dockerfile\"\n",
			want: []string{
				`bad.toml:7: image[1].depends_on: "ci_base" cannot depend on itself: remove it from depends_on`,
				`bad.toml:7: image[1].depends_on: "ci_bse" names no image of this config (images: ci_base, ci_cpu)`,
			},
		},
		{
			name: "dependency cycles",
			toml: okStaging +
				"[[image]]\nname = \"a\"\ndockerfile = \"Dockerfile\"\ndepends_on = [\"b\"]\n" + // 4-7
				"[[image]]\nname = \"b\"\ndockerfile = \"Dockerfile\"\ndepends_on = [\"c\"]\n" + // 8-11
				"[[image]]\nname = \"c\"\ndockerfile = \"Dockerfile\"\ndepends_on = [\"a\", \"b\"]\n" + // 12-15
				"[[image]]\nname = \"d\"\ndockerfile = \"Dockerfile\"\ndepends_on = [\"c\"]\n", // 16-19
			want: []string{
				"bad.toml:7: image[1].depends_on: depends_on makes a cycle: a -> b -> c -> a (remove one of these dependencies)",
				"bad.toml:11: image[2].depends_on: depends_on makes a cycle: b -> c -> b (remove one of these dependencies)",
			},
		},
		{
			name: "out of range numbers",
			toml: okStaging + "retry_budget = \"-1s\"\n[build]\njobs = 0\ntimeout = \"0s\"\nretries = -1\nretry_on = [\"ok\", \"(unclosed\"]\n" + okImage + "timeout = \"-5m\"\n",
			want: []string{
				`bad.toml:4: staging.retry_budget: must not be negative: use "0s" to not retry, or e.g. "5m"`,
				"bad.toml:6: build.jobs: must be at least 1, the number of images built at once (got 0)",
				`bad.toml:7: build.timeout: must be positive, e.g. "2h"`,
				"bad.toml:8: build.retries: must not be negative (got -1): 0 tries each build once",
				"bad.toml:9: build.retry_on: pattern 2, \"(unclosed\", is not a regular expression: error parsing regexp: missing closing ): `(unclosed`",
				"bad.toml:13: image[1].timeout: must not be negative: leave it out to use build.timeout",
			},
		},
		{
			name: "tag format not a template",
			toml: okStaging + "tag_format = \"{{ .Short \"\n" + okImage,
			want: []string{
				"bad.toml:4: staging.tag_format: not a valid template: tag_format:1: unclosed action",
			},
		},
		{
			name: "tag format with an unknown field",
			toml: okStaging + "tag_format = \"{{ .Branch }}\"\n" + okImage,
			want: []string{
				`bad.toml:4: staging.tag_format: cannot render: tag_format:1:3: executing "tag_format" at <.Branch>: can't evaluate field Branch in type config.TemplateData (fields: .Timestamp .Date .Commit .Short .Tag .Name; function: utc)`,
			},
		},
		{
			name: "tag format renders an invalid tag",
			toml: okStaging + "tag_format = \"{{ .Date }} {{ .Short }}\"\n" + okImage,
			want: []string{
				`bad.toml:4: staging.tag_format: renders "2026-11-23 1a2b3c4d", which is not a valid Docker tag: use at most 128 letters, digits, "_", "." and "-", not starting with "." or "-"`,
			},
		},
		{
			name: "tag format the same for every run",
			toml: okStaging + "tag_format = \"nightly-{{ .Short }}\"\n" + okImage,
			want: []string{
				`bad.toml:4: staging.tag_format: renders "nightly-1a2b3c4d" for runs a second apart: every run needs a tag of its own; include the run's start to the second, e.g. {{ .Timestamp }} or {{ utc "20060102-150405" }}`,
			},
		},
		{
			name: "tag format without the minutes",
			toml: okStaging + "tag_format = '{{ .Date }}-{{ utc \"05\" }}'\n" + okImage,
			want: []string{
				`bad.toml:4: staging.tag_format: renders "2026-11-23-00" for runs a minute apart: every run needs a tag of its own; include the run's start to the second, e.g. {{ .Timestamp }} or {{ utc "20060102-150405" }}`,
			},
		},
		{
			name: "tag format without the month",
			toml: okStaging + "tag_format = '{{ utc \"2006-02-150405\" }}'\n" + okImage,
			want: []string{
				`bad.toml:4: staging.tag_format: renders "2026-23-020000" for runs a month apart: every run needs a tag of its own; include the run's start to the second, e.g. {{ .Timestamp }} or {{ utc "20060102-150405" }}`,
			},
		},
		{
			name: "tag format the same every day",
			toml: okStaging + "tag_format = '{{ utc \"150405\" }}-{{ .Short }}'\n" + okImage,
			want: []string{
				`bad.toml:4: staging.tag_format: renders "020000-1a2b3c4d" for runs a day apart: every run needs a tag of its own; include the run's start to the second, e.g. {{ .Timestamp }} or {{ utc "20060102-150405" }}`,
			},
		},
		{
			name: "build args not templates",
			toml: okStaging + okImage + "build_args = { A = \"{{ .Tag }\", B = \"{{ .Tag }}\", C = \"{{ utc }}\" }\n" +
				"[[image]]\nname = \"ci_cpu\"\ndockerfile = \"Dockerfile\"\n[image.build_args]\nD = \"{{ .Nope }}\"\n",
			want: []string{
				`bad.toml:7: image[1].build_args.A: not a valid template: build_arg:1: unexpected "}" in operand`,
				`bad.toml:7: image[1].build_args.C: cannot render: build_arg:1:3: executing "build_arg" at <utc>: wrong number of args for utc: want 1 got 0 (fields: .Timestamp .Date .Commit .Short .Tag .Name; function: utc)`,
				`bad.toml:12: image[2].build_args.D: cannot render: build_arg:1:3: executing "build_arg" at <.Nope>: can't evaluate field Nope in type config.TemplateData (fields: .Timestamp .Date .Commit .Short .Tag .Name; function: utc)`,
			},
		},
		{
			name: "ref with a local source",
			toml: "[source]\nref = \"main\"\n" + okStaging + okImage,
			want: []string{
				"bad.toml:2: source.ref: ref applies only to a git URL source; a local checkout is used as it is",
			},
		},
		{
			name: "URL source with a token",
			toml: "[source]\nrepo = \"https://ci-bot:ghp_s3cret@git.example.org/ci/images.git\"\n" + okStaging + okImage,
			want: []string{
				"bad.toml:2: source.repo: must not hold credentials (a user, password or token): give git its credentials through a credential helper, ~/.netrc or an SSH key",
			},
		},
		{
			name: "URL source with a token as its user",
			toml: "[source]\nrepo = \"https://ghp_abc123@git.example.org/ci/images.git\"\n" + okStaging + okImage,
			want: []string{
				"bad.toml:2: source.repo: must not hold credentials (a user, password or token): give git its credentials through a credential helper, ~/.netrc or an SSH key",
			},
		},
		{
			name: "local source not a directory",
			toml: "[source]\nrepo = \"missing\"\n" + okStaging + okImage,
			want: []string{
				"bad.toml:2: source.repo: $ROOT/missing is not a directory: name a local checkout, or a git URL",
			},
		},
		{
			name: "image paths outside the repository",
			toml: okStaging + "[[image]]\nname = \"ci_base\"\ndockerfile = \"../Dockerfile\"\ncontext = \"/abs\"\n",
			want: []string{
				`bad.toml:6: image[1].dockerfile: "../Dockerfile" is not inside the source repository: use a relative path without ".."`,
				`bad.toml:7: image[1].context: "/abs" is not inside the source repository: use a relative path without ".."`,
			},
		},
		{
			name: "image paths missing from the tree",
			toml: okStaging +
				"[[image]]\nname = \"ci_base\"\ndockerfile = \"docker/nope/Dockerfile\"\n" +
				"[[image]]\nname = \"ci_cpu\"\ndockerfile = \"adir\"\ncontext = \"Dockerfile\"\n",
			want: []string{
				`bad.toml:6: image[1].dockerfile: "docker/nope/Dockerfile" does not exist in the source repository $ROOT`,
				`bad.toml:9: image[2].dockerfile: "adir" is not a regular file in the source repository $ROOT`,
				`bad.toml:10: image[2].context: "Dockerfile" is not a directory in the source repository $ROOT`,
			},
		},
		{
			name: "several problems together",
			toml: readTestdata(t, "several.toml"),
			want: []string{
				"bad.toml:4: source.ref: ref applies only to a git URL source; a local checkout is used as it is",
				`bad.toml:7: staging.registry: "https://registry.example.com" has a scheme: remove "https://" and write only the host[:port] that staging images are pushed to`,
				`bad.toml:8: staging.namespace: "CI/Nightly" is not a valid repository path: use lowercase letters and digits, separated by ".", "_", "__" or "-", in components joined by "/"`,
				"bad.toml:9: staging.password: inline passwords are not accepted: put it in a file named by password_file, or in $NIGHTSHIFT_STAGING_PASSWORD",
				"bad.toml:12: build.jobs: expected an integer, got a string",
				`bad.toml:13: build.timeout: "2 hours" is not a duration: write a number and a unit, e.g. "90m" or "2h"`,
				"bad.toml:18: image[1].depends_on: depends_on makes a cycle: ci_base -> ci_cpu -> ci_base (remove one of these dependencies)",
				`bad.toml:23: image[2].depends_on: "ci_bse" names no image of this config (images: ci_base, ci_cpu)`,
				"bad.toml:24: image[2].colour: unknown key (check the spelling; see config.example.toml)",
				"bad.toml:26: image[3].dockerfile: required: the path of the image's Dockerfile in the source repository",
				`bad.toml:27: image[3].name: "ci_base" is already the name of image[1] (line 15): give each image its own name`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, sampleTree...)
			cfg, err := Parse([]byte(tt.toml), "bad.toml", dir)
			if cfg != nil {
				t.Errorf("Parse returned a config along with %v", err)
			}
			got := problemStrings(t, err)
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "$ROOT", dir)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "repo"), sampleTree...)
	path := filepath.Join(dir, "nightshift.toml")
	if err := os.WriteFile(path, []byte(readTestdata(t, "good.toml")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"File", cfg.File, path},
		{"Dir", cfg.Dir, dir},
		{"Source.Repo", cfg.Source.Repo, filepath.Join(dir, "repo")},
		{"Source.Ref", cfg.Source.Ref, ""},
		{"Source.Workdir", cfg.Source.Workdir, filepath.Join(dir, "state", "work")},
		{"Staging.Registry", cfg.Staging.Registry, "registry.example.com:5000"},
		{"Staging.Namespace", cfg.Staging.Namespace, "ci/nightly"},
		{"Staging.TagFormat", cfg.Staging.TagFormat, `{{ utc "20060102-150405" }}-{{ .Short }}`},
		{"Staging.RetryBudget", cfg.Staging.RetryBudget.Duration, 90 * time.Second},
		{"Build.Jobs", cfg.Build.Jobs, 4},
		{"Build.Timeout", cfg.Build.Timeout.Duration, 90 * time.Minute},
		{"Build.Retries", cfg.Build.Retries, 1},
		{"len(Build.RetryPatterns)", len(cfg.Build.RetryPatterns), len(DefaultRetryOn())},
		{"Store.Path", cfg.Store.Path, filepath.Join(dir, "state", "nightshift.db")},
		{"Store.Logs", cfg.Store.Logs, "/var/log/nightshift"},
		{"len(Images)", len(cfg.Images), 2},
		{"Images[0].Line", cfg.Images[0].Line, 21},
		{"Images[0].Context", cfg.Images[0].Context, "docker/base"},
		{"Images[0].Timeout", cfg.Images[0].Timeout.Duration, time.Duration(0)},
		{"Images[1].Line", cfg.Images[1].Line, 25},
		{"Images[1].Context", cfg.Images[1].Context, "docker"},
		{"Images[1].DependsOn", fmt.Sprint(cfg.Images[1].DependsOn), "[ci_base]"},
		{"Images[1].Target", cfg.Images[1].Target, "runtime"},
		{"Images[1].Timeout", cfg.Images[1].Timeout.Duration, 3 * time.Hour},
		{"Images[1].BuildArgs", fmt.Sprint(cfg.Images[1].BuildArgs),
			"map[BASE:registry.example.com:5000/ci/nightly/ci_base:{{ .Tag }} IMAGE:{{ .Name }}]"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	cfg, err := Parse([]byte(readTestdata(t, "minimal.toml")), "minimal.toml", dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Source.Repo", cfg.Source.Repo, dir},
		{"Source.Ref", cfg.Source.Ref, ""},
		{"Source.Workdir", cfg.Source.Workdir, filepath.Join(dir, "work")},
		{"Staging.TagFormat", cfg.Staging.TagFormat, DefaultTagFormat},
		{"Staging.RetryBudget", cfg.Staging.RetryBudget.Duration, 5 * time.Minute},
		{"Build.Jobs", cfg.Build.Jobs, 2},
		{"Build.Timeout", cfg.Build.Timeout.Duration, 2 * time.Hour},
		{"Store.Path", cfg.Store.Path, filepath.Join(dir, "nightshift.db")},
		{"Store.Logs", cfg.Store.Logs, filepath.Join(dir, "logs")},
		{"Images[0].Context", cfg.Images[0].Context, "docker/base"},
		{"Images[0].Line", cfg.Images[0].Line, 5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseURLSource(t *testing.T) {
	t.Parallel()
	// No tree: a URL source is not checked until it is cloned.
	dir := t.TempDir()
	cfg, err := Parse([]byte(readTestdata(t, "url.toml")), "url.toml", dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := "git@github.com:example/ci-images.git"; cfg.Source.Repo != want {
		t.Errorf("Source.Repo = %q, want %q as written", cfg.Source.Repo, want)
	}
	if cfg.Source.Ref != "main" {
		t.Errorf("Source.Ref = %q, want the default main", cfg.Source.Ref)
	}
	ps := cfg.CheckTree(dir)
	want := "url.toml:10: image[1].dockerfile: \"Dockerfile\" does not exist in the source repository " + dir
	if len(ps) != 1 || ps[0].String() != want {
		t.Errorf("CheckTree on an empty clone = %q, want %q", ps, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.toml")
	cfg, err := Load(path)
	got := problemStrings(t, err)
	if cfg != nil || len(got) != 1 || !strings.HasPrefix(got[0], path+": cannot read the config file: ") {
		t.Errorf("Load(missing) = %v, %q", cfg, got)
	}
}

func TestIsURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		repo string
		want bool
	}{
		{"https://github.com/example/ci.git", true},
		{"ssh://git@github.com/example/ci.git", true},
		{"file:///srv/git/ci.git", true},
		{"git@github.com:example/ci.git", true},
		{".", false},
		{"", false},
		{"../ci", false},
		{"/srv/checkouts/ci", false},
		{"./a@b:c", false},
		{"host:path", false},
		{"user@host:", false},
	}
	for _, tt := range tests {
		if got := (Source{Repo: tt.repo}).IsURL(); got != tt.want {
			t.Errorf("Source{Repo: %q}.IsURL() = %v, want %v", tt.repo, got, tt.want)
		}
	}
}

// Secrets come from the environment, so these tests are not parallel.
func TestSecrets(t *testing.T) {
	const secret = "s3cr3t-hunter2"
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const user = "username = \"robot\"\n"
	tests := []struct {
		name     string
		env      string
		staging  string // lines 4 on, after registry and namespace
		want     Secret // when there are no problems
		problems []string
	}{
		{name: "from file", staging: user + "password_file = \"password\"\n", want: secret},
		{name: "file wins over env", env: "from-env", staging: user + "password_file = \"password\"\n", want: secret},
		{name: "from env", env: secret, staging: user, want: secret},
		{name: "none", want: ""},
		{
			name: "unreadable file", staging: user + "password_file = \"nope\"\n",
			problems: []string{"bad.toml:5: staging.password_file: cannot read the staging registry password: open $ROOT/nope: no such file or directory"},
		},
		{
			name: "empty file", staging: user + "password_file = \"empty\"\n",
			problems: []string{"bad.toml:5: staging.password_file: $ROOT/empty is empty: put the staging registry password in it"},
		},
		{
			name: "file without user", staging: "password_file = \"password\"\n",
			problems: []string{"bad.toml:1: staging.username: a password is given (by password_file or $NIGHTSHIFT_STAGING_PASSWORD) but no user name: set staging.username"},
		},
		{
			name: "env without user", env: secret,
			problems: []string{"bad.toml:1: staging.username: a password is given (by password_file or $NIGHTSHIFT_STAGING_PASSWORD) but no user name: set staging.username"},
		},
		{
			name: "user without password", staging: user,
			problems: []string{"bad.toml:4: staging.username: a user name is given but no password: name a file holding it with staging.password_file, or set $NIGHTSHIFT_STAGING_PASSWORD"},
		},
		{
			name: "inline password", staging: user + "password = \"" + secret + "\"\n",
			problems: []string{"bad.toml:5: staging.password: inline passwords are not accepted: put it in a file named by password_file, or in $NIGHTSHIFT_STAGING_PASSWORD"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvStagingPassword, tt.env)
			toml := okStaging + tt.staging + okImage
			cfg, err := Parse([]byte(toml), "bad.toml", dir)
			if tt.problems == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if cfg.Staging.Password != tt.want {
					t.Errorf("Password = %q, want %q", cfg.Staging.Password.Reveal(), tt.want.Reveal())
				}
				if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, secret) {
					t.Errorf("the password shows when the config is printed: %s", s)
				}
				return
			}
			got := problemStrings(t, err)
			want := strings.ReplaceAll(strings.Join(tt.problems, "\n"), "$ROOT", dir)
			if strings.Join(got, "\n") != want {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the password shows in the problems: %v", err)
			}
		})
	}
}

func TestCheckTreeWithoutLines(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeTree(t, root, sampleTree...)
	// A Config built in code has no key lines: problems fall back to the
	// image's line.
	c := &Config{File: "x.toml", Images: []Image{
		{Name: "a", Dockerfile: "Dockerfile", Context: ".", Line: 7},
		{Name: "b", Dockerfile: "docker/cpu/Dockerfile", Context: "adir/sub", Line: 11},
		{Name: "c", Dockerfile: "nope/Dockerfile", Context: "nope", Line: 15},
	}}
	got := make([]string, 0, 2)
	for _, p := range c.CheckTree(root) {
		got = append(got, p.String())
	}
	want := []string{
		`x.toml:11: image[2].context: "adir/sub" does not exist in the source repository ` + root,
		`x.toml:15: image[3].dockerfile: "nope/Dockerfile" does not exist in the source repository ` + root,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("CheckTree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseBOMAndCRLF(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	data := "\ufeff" + strings.ReplaceAll(readTestdata(t, "minimal.toml"), "\n", "\r\n")
	cfg, err := Parse([]byte(data), "minimal.toml", dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Images[0].Line != 5 {
		t.Errorf("Images[0].Line = %d, want 5", cfg.Images[0].Line)
	}
}

// The default retry_on list takes the passing failures of apt, pip, conda,
// curl and wget, and leaves the lasting ones alone.
func TestDefaultRetryOn(t *testing.T) {
	t.Parallel()
	var patterns []*regexp.Regexp
	for _, expr := range DefaultRetryOn() {
		patterns = append(patterns, regexp.MustCompile(expr))
	}
	matches := func(line string) bool {
		return slices.ContainsFunc(patterns, func(re *regexp.Regexp) bool { return re.MatchString(line) })
	}
	for _, line := range []string{
		"Err:1 http://deb.debian.org/debian bookworm InRelease\n  Temporary failure resolving 'deb.debian.org'",
		"curl: (6) Could not resolve host: downloads.example.org",
		"wget: unable to resolve host address 'mirror.example.org'",
		"read: Connection reset by peer",
		"curl: (7) Failed to connect to mirror.example.org port 443: Connection refused",
		"E: Failed to fetch http://deb.debian.org/debian/pool/main/g/gcc.deb  Hash Sum mismatch",
		"2026-12-04 02:00:01 ERROR 503: Service Unavailable.",
		"curl: (22) The requested URL returned error: 502",
		"CondaHTTPError: HTTP 000 CONNECTION FAILED for url <https://conda.anaconda.org/conda-forge/noarch/repodata.json>",
		"pip._vendor.urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='pypi.org', port=443): Read timed out.",
		"Step 1/3 : FROM registry.example.org/ci/base:1\nreceived unexpected HTTP status: 500 Internal Server Error",
		"toomanyrequests: You have reached your pull rate limit.",
		// BuildKit's words (Docker 20.10's BuildKit, measured; containerd's resolver).
		"#3 ERROR: pulling from host 127.0.0.1:43635 failed with status code [manifests 1]: 503 Service Unavailable",
		"#3 ERROR: pulling from host 127.0.0.1:40921 failed with status code [manifests 1]: 429 Too Many Requests",
		"failed to resolve source metadata for r.example.org/ci/base:1: unexpected status from HEAD request to https://r.example.org/v2/ci/base/manifests/1: 502 Bad Gateway",
	} {
		if !matches(line) {
			t.Errorf("%q is not retried, want it retried", line)
		}
	}
	for _, line := range []string{
		"E: Unable to locate package libfoo-dev",
		"ERROR: No matching distribution found for numpy==99.0",
		"curl: (22) The requested URL returned error: 404",
		"2026-12-04 02:00:01 ERROR 404: Not Found.",
		"make: *** [all] Error 2",
		"The command '/bin/sh -c exit 1' returned a non-zero code: 1",
		"#3 ERROR: pulling from host r.example.org failed with status code [manifests 1]: 404 Not Found",
		"unexpected status from HEAD request to https://r.example.org/v2/ci/base/manifests/1: 401 Unauthorized",
	} {
		if matches(line) {
			t.Errorf("%q is retried, want it final", line)
		}
	}
}
