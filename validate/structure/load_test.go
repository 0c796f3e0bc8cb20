package structure

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"nightshift/problem"
)

// fullFile is testdata/full.yaml (and full.json) as Load must read it.
func fullFile(path string) *File {
	list := func(s ...string) *[]string { return &s }
	none := []string{}
	return &File{
		Path:          path,
		SchemaVersion: "2.0.0",
		GlobalEnvVars: []KeyValue{{Key: "CI_HOME", Value: "/opt/ci"}, {Key: "PATH", Value: "$CI_HOME/bin:$PATH"}},
		CommandTests: []CommandTest{
			{
				Name:           "python version",
				Setup:          [][]string{{"sh", "-c", "echo setup > /tmp/setup"}, {"touch", "/tmp/second"}},
				Teardown:       [][]string{{"rm", "/tmp/setup"}},
				EnvVars:        []KeyValue{{Key: "LANG", Value: "C.UTF-8"}},
				Command:        "python3",
				Args:           []string{"--version"},
				ExpectedOutput: []string{`^Python 3\.1[0-9]`},
				ExcludedOutput: []string{"Python 2"},
				ExcludedError:  []string{"Traceback"},
				Timeout:        90 * time.Second,
				Network:        true,
			},
			{Name: "defaults", Command: "true"},
		},
		FileExistenceTests: []FileExistenceTest{
			{Name: "busybox", Path: "/bin/busybox", ShouldExist: true, Permissions: "-rwxr-xr-x", UID: 0, GID: 0, IsExecutableBy: "any"},
			{Name: "no shadow backup", Path: "/etc/shadow-", ShouldExist: false, UID: Unset, GID: Unset},
			{Name: "defaults", Path: "/etc", ShouldExist: true, UID: Unset, GID: Unset},
		},
		FileContentTests: []FileContentTest{
			{Name: "os release", Path: "/etc/os-release", ExpectedContents: []string{"ID=debian"}, ExcludedContents: []string{"ubuntu"}},
		},
		MetadataTest: MetadataTest{
			EnvVars:          []KeyValue{{Key: "LANG", Value: "C.UTF-8"}, {Key: "PATH", Value: "/usr/.*", IsRegex: true}},
			UnboundEnvVars:   []KeyValue{{Key: "DEBUG"}},
			Labels:           []KeyValue{{Key: "org.opencontainers.image.source", Value: "https://example.org/.*", IsRegex: true}},
			Entrypoint:       &none,
			Cmd:              list("/bin/sh"),
			Workdir:          "/work",
			User:             "ci",
			ExposedPorts:     []string{"8080", "53/udp"},
			UnexposedPorts:   []string{"22"},
			Volumes:          []string{"/cache"},
			UnmountedVolumes: []string{"/tmp"},
		},
	}
}

func TestLoadEveryField(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"testdata/full.yaml", "testdata/full.json"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := fullFile(path); !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%s) =\n%+v\nwant\n%+v", path, got, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml") {
		t.Errorf("Load of a missing file: %v; want an error naming it", err)
	}
}

func TestParseDefaultsAndLeniency(t *testing.T) {
	t.Parallel()
	f, err := parse("t.yaml", []byte(`
schemaVersion: 2.0.0
globalEnvVars:
  - key: EMPTY
commandTests:
  - name: n
    command: env
    envVars: [{key: N, value: 17}]
fileExistenceTests:
  - {name: yes-form, path: /a, shouldExist: no}
  - {name: on-form, path: /b, shouldExist: on}
  - {name: default, path: /c}
metadataTest:
  exposedPorts: [8080]
`))
	if err != nil {
		t.Fatal(err)
	}
	ct := f.CommandTests[0]
	if ct.ExitCode != 0 || ct.Timeout != 0 || ct.Network || ct.EnvVars[0].Value != "17" {
		t.Errorf("command test defaults: %+v", ct)
	}
	fe := f.FileExistenceTests
	if fe[0].ShouldExist || !fe[1].ShouldExist || !fe[2].ShouldExist || fe[2].UID != Unset || fe[2].GID != Unset {
		t.Errorf("file existence tests: %+v", fe)
	}
	if f.GlobalEnvVars[0] != (KeyValue{Key: "EMPTY"}) {
		t.Errorf("global env var with no value: %+v", f.GlobalEnvVars[0])
	}
	if f.MetadataTest.ExposedPorts[0] != "8080" || f.MetadataTest.Cmd != nil || f.MetadataTest.Entrypoint != nil {
		t.Errorf("metadata test: %+v", f.MetadataTest)
	}
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	const head = "schemaVersion: \"2.0.0\"\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", head + "commandTests:\n  - name: a\n    command: ls\n    expectedOuptut: [x]\n",
			[]string{"tests/ci_base.yaml:5: commandTests[1].expectedOuptut: unknown key (known here: args, command, envVars, excludedError, excludedOutput, exitCode, expectedError, expectedOutput, name, network, setup, teardown, timeout)"}},
		{"unknown top-level key", head + "commandTest: []\n",
			[]string{"tests/ci_base.yaml:2: commandTest: unknown key (known here: commandTests, containerRunOptions, fileContentTests, fileExistenceTests, globalEnvVars, licenseTests, metadataTest, schemaVersion)"}},
		{"missing command", head + "commandTests:\n  - name: a\n    command: ls\n  - name: b\n    args: [x]\n",
			[]string{"tests/ci_base.yaml:5: commandTests[2].command: required"}},
		{"empty name", head + "commandTests:\n  - name: \"\"\n    command: ls\n",
			[]string{"tests/ci_base.yaml:3: commandTests[1].name: required"}},
		{"bad regex", head + "commandTests:\n  - name: a\n    command: ls\n    expectedOutput:\n      - ok\n      - \"(unclosed\"\n",
			[]string{"tests/ci_base.yaml:7: commandTests[1].expectedOutput[2]: invalid regular expression: error parsing regexp: missing closing ): `(unclosed`"}},
		{"bad regex in file content", head + "fileContentTests:\n  - {name: a, path: /a, excludedContents: [\"[z-a]\"]}\n",
			[]string{"tests/ci_base.yaml:3: fileContentTests[1].excludedContents[1]: invalid regular expression: error parsing regexp: invalid character class range: `z-a`"}},
		{"bad regex in metadata", head + "metadataTest:\n  labels:\n    - {key: a, value: \"*\", isRegex: true}\n",
			[]string{"tests/ci_base.yaml:4: metadataTest.labels[1].value: invalid regular expression: error parsing regexp: missing argument to repetition operator: `*`"}},
		{"missing paths", head + "fileExistenceTests:\n  - name: a\nfileContentTests:\n  - path: /x\n",
			[]string{"tests/ci_base.yaml:3: fileExistenceTests[1].path: required", "tests/ci_base.yaml:5: fileContentTests[1].name: required"}},
		{"empty setup command", head + "commandTests:\n  - name: a\n    command: ls\n    setup: [[]]\n",
			[]string{"tests/ci_base.yaml:5: commandTests[1].setup[1]: empty command: give it as a list, e.g. [\"sh\", \"-c\", \"...\"]"}},
		{"env var without value", head + "commandTests:\n  - name: a\n    command: ls\n    envVars:\n      - key: A\n",
			[]string{"tests/ci_base.yaml:6: commandTests[1].envVars[1].value: required"}},
		{"bad executable", head + "fileExistenceTests:\n  - {name: a, path: /a, isExecutableBy: root}\n",
			[]string{`tests/ci_base.yaml:3: fileExistenceTests[1].isExecutableBy: "root": expected any, owner, group or other`}},
		{"bad uid", head + "fileExistenceTests:\n  - {name: a, path: /a, uid: root}\n",
			[]string{`tests/ci_base.yaml:3: fileExistenceTests[1].uid: expected a whole number, got "root"`}},
		{"a fraction, which the tool would cut", head + "commandTests:\n  - {name: a, command: ls, exitCode: 1.5}\n",
			[]string{`tests/ci_base.yaml:3: commandTests[1].exitCode: expected a whole number, got 1.5`}},
		{"a quoted number", head + "commandTests:\n  - {name: a, command: ls, exitCode: \"1\"}\n",
			[]string{`tests/ci_base.yaml:3: commandTests[1].exitCode: expected a whole number, got the string "1"`}},
		{"a quoted boolean", head + "fileExistenceTests:\n  - {name: a, path: /a, shouldExist: \"false\"}\n",
			[]string{`tests/ci_base.yaml:3: fileExistenceTests[1].shouldExist: expected true or false, got the string "false": write it without quotes`}},
		{"a boolean tagged a string", head + "commandTests:\n  - {name: a, command: ls, network: !!str true}\n",
			[]string{`tests/ci_base.yaml:3: commandTests[1].network: expected true or false, got "true"`}},
		{"bad timeout", head + "commandTests:\n  - name: a\n    command: ls\n    timeout: 10\n",
			[]string{`tests/ci_base.yaml:5: commandTests[1].timeout: expected a positive duration such as "90s" or "5m", got "10"`}},
		{"bad bool", head + "commandTests:\n  - name: a\n    command: ls\n    network: maybe\n",
			[]string{`tests/ci_base.yaml:5: commandTests[1].network: expected true or false, got "maybe"`}},
		{"list expected", head + "commandTests:\n  - name: a\n    command: ls\n    args: -l\n",
			[]string{`tests/ci_base.yaml:5: commandTests[1].args: expected a list, got "-l"`}},
		{"string expected", head + "commandTests:\n  - name: [a]\n    command: ls\n",
			[]string{`tests/ci_base.yaml:3: commandTests[1].name: expected a string, got a list`}},
		{"duplicate key", head + "commandTests:\n  - name: a\n    command: ls\n    command: pwd\n",
			[]string{`tests/ci_base.yaml:5: commandTests[1].command: given twice (also on line 4)`}},
		{"missing schemaVersion", "commandTests: []\n",
			[]string{"tests/ci_base.yaml:1: schemaVersion: required"}},
		{"unknown schemaVersion", "schemaVersion: 3.0.0\n",
			[]string{`tests/ci_base.yaml:1: schemaVersion: "3.0.0" is not a schema container-structure-test knows: "2.0.0", or the older "1.0.0"`}},
		{"a key of schema 2.0.0 in 1.0.0", "schemaVersion: 1.0.0\nmetadataTest:\n  workdir: /\n",
			[]string{`tests/ci_base.yaml:2: metadataTest: unknown key in schema "1.0.0" (known here: commandTests, fileContentTests, fileExistenceTests, globalEnvVars, licenseTests, schemaVersion)`}},
		{"args in schema 1.0.0", "schemaVersion: 1.0.0\ncommandTests:\n  - {name: a, command: [echo], args: [x]}\n",
			[]string{`tests/ci_base.yaml:3: commandTests[1].args: schema 1.0.0 has no args: its command is one list, e.g. command: ["echo", "x"]`}},
		{"ownership in schema 1.0.0", "schemaVersion: 1.0.0\nfileExistenceTests:\n  - {name: a, path: /a, uid: 0}\n",
			[]string{`tests/ci_base.yaml:3: fileExistenceTests[1].uid: unknown key (known here: name, path, permissions, shouldExist)`}},
		{"a string command in schema 1.0.0", "schemaVersion: 1.0.0\ncommandTests:\n  - {name: a, command: echo}\n",
			[]string{`tests/ci_base.yaml:3: commandTests[1].command: expected a list, got "echo"`}},
		{"a merge key's unknown key", head + "fileExistenceTests:\n  - &a {name: a, path: /a}\ncommandTests:\n  - <<: *a\n    command: ls\n",
			[]string{"tests/ci_base.yaml:3: commandTests[1].path: unknown key (known here: args, command, envVars, excludedError, excludedOutput, exitCode, expectedError, expectedOutput, name, network, setup, teardown, timeout)"}},
		{"a key given twice beside a merge key", head + "fileExistenceTests:\n  - &a {name: a, path: /a}\n  - <<: *a\n    name: b\n    name: c\n",
			[]string{"tests/ci_base.yaml:6: fileExistenceTests[2].name: given twice (also on line 5)"}},
		{"a merge key of a list", head + "fileExistenceTests:\n  - <<: [x]\n    name: a\n    path: /a\n",
			[]string{`tests/ci_base.yaml:3: fileExistenceTests[1].<<: a merge key takes a mapping (*name of an anchored one) or a list of them, got "x"`}},
		{"a top-level key for anchors", head + "x-defaults: &d {shouldExist: true}\n",
			[]string{"tests/ci_base.yaml:2: x-defaults: unknown key (known here: commandTests, containerRunOptions, fileContentTests, fileExistenceTests, globalEnvVars, licenseTests, metadataTest, schemaVersion)"}},
		{"metadata env under both names", head + "metadataTest:\n  env: [{key: A}]\n  envVars: [{key: B}]\n",
			[]string{"tests/ci_base.yaml:4: metadataTest.envVars: the same list as env (line 3): give one of them"}},
		{"unknown run option", head + "containerRunOptions:\n  priviledged: true\n",
			[]string{"tests/ci_base.yaml:3: containerRunOptions.priviledged: unknown key (known here: allocateTty, bindMounts, capabilities, envFile, envVars, privileged, user)"}},
		{"unknown license test key", head + "licenseTests:\n  - debian: true\n    file: [/x]\n",
			[]string{"tests/ci_base.yaml:4: licenseTests[1].file: unknown key (known here: debian, files)"}},
		{"syntax error", head + "commandTests:\n  - name: a\n    command: ls: -l\n",
			[]string{"tests/ci_base.yaml:4: mapping values are not allowed in this context"}},
		{"empty file", "",
			[]string{`tests/ci_base.yaml: empty test file: it needs at least schemaVersion: "2.0.0"`}},
		{"every problem at once", "commandTests:\n  - command: ls\n  - name: b\nfileExistenceTests:\n  - name: c\n",
			[]string{
				"tests/ci_base.yaml:2: commandTests[1].name: required",
				"tests/ci_base.yaml:3: commandTests[2].command: required",
				"tests/ci_base.yaml:5: fileExistenceTests[1].path: required",
				"tests/ci_base.yaml:1: schemaVersion: required",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantProblems(t, "tests/ci_base.yaml", tc.yaml, tc.want)
		})
	}
}

// wantProblems parses text as the file name and wants exactly the
// problems want, in order.
func wantProblems(t *testing.T, name, text string, want []string) {
	t.Helper()
	f, err := parse(name, []byte(text))
	var ps problem.List
	if !errors.As(err, &ps) {
		t.Fatalf("parse = %+v, %v; want problems", f, err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestJSONEscapes(t *testing.T) {
	t.Parallel()
	f, err := parse("ci.json", []byte(`{
	"schemaVersion": "2.0.0",
	"commandTests": [{"name": "slash \/ and \\ and \"", "command": "ls", "args": ["\/usr\/bin", "\\/x"]}]
}`))
	if err != nil {
		t.Fatal(err)
	}
	ct := f.CommandTests[0]
	if ct.Name != `slash / and \ and "` || !reflect.DeepEqual(ct.Args, []string{"/usr/bin", `\/x`}) {
		t.Errorf("name %q, args %q", ct.Name, ct.Args)
	}
}

// TestParseWhatContainerStructureTestAccepts loads what
// container-structure-test reads without complaint and nightshift once
// rejected: the tool's own metadataTest keys, licenseTests and
// containerRunOptions (read, and reported when run), permissions in ls's
// notation (a failed test, not a bad file), and unknown keys in JSON.
func TestParseWhatContainerStructureTestAccepts(t *testing.T) {
	t.Parallel()
	f, err := parse("ci.yaml", []byte(`
schemaVersion: "2.0.0"
fileExistenceTests:
  - {name: setuid, path: /bin/su, permissions: -rwsr-xr-x}
metadataTest:
  env: [{key: LANG, value: C.UTF-8}]
  unboundEnv: [{key: DEBUG}]
licenseTests:
  - debian: true
    files: [/usr/share/doc/x/copyright]
containerRunOptions:
  user: ci
  privileged: true
  allocateTty: true
  envVars: [TOKEN]
  envFile: ci.env
  capabilities: [NET_ADMIN]
  bindMounts: ["/srv:/srv"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.FileExistenceTests[0].Permissions; got != "-rwsr-xr-x" {
		t.Errorf("permissions %q", got)
	}
	mt := f.MetadataTest
	if !reflect.DeepEqual(mt.EnvVars, []KeyValue{{Key: "LANG", Value: "C.UTF-8"}}) || !reflect.DeepEqual(mt.UnboundEnvVars, []KeyValue{{Key: "DEBUG"}}) {
		t.Errorf("metadata test %+v", mt)
	}
	if !reflect.DeepEqual(f.LicenseTests, []LicenseTest{{Debian: true, Files: []string{"/usr/share/doc/x/copyright"}}}) {
		t.Errorf("license tests %+v", f.LicenseTests)
	}
	want := RunOptions{User: "ci", Privileged: true, AllocateTTY: true, EnvVars: []string{"TOKEN"}, EnvFile: "ci.env", Capabilities: []string{"NET_ADMIN"}, BindMounts: []string{"/srv:/srv"}}
	if !reflect.DeepEqual(f.RunOptions, want) {
		t.Errorf("run options %+v", f.RunOptions)
	}
	if got := f.RunOptions.set(); !reflect.DeepEqual(got, []string{"user", "privileged", "allocateTty", "envVars", "envFile", "capabilities", "bindMounts"}) {
		t.Errorf("set options %q", got)
	}

	// JSON: unknown keys are ignored, as encoding/json does for the tool.
	j, err := parse("ci.json", []byte(`{"schemaVersion": "2.0.0", "comment": "smoke tests",
	"commandTests": [{"name": "a", "command": "true", "description": "no-op"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(j.CommandTests) != 1 || j.CommandTests[0].Name != "a" {
		t.Errorf("JSON command tests %+v", j.CommandTests)
	}
	// and keys match in any case, as encoding/json matches them.
	j, err = parse("ci.json", []byte(`{"SchemaVersion": "2.0.0",
	"CommandTests": [{"Name": "a", "Command": "echo", "ExpectedOutput": ["x"]}],
	"fileexistencetests": [{"name": "f", "PATH": "/etc", "ShouldExist": true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(j.CommandTests) != 1 || j.CommandTests[0].Command != "echo" || len(j.CommandTests[0].ExpectedOutput) != 1 ||
		len(j.FileExistenceTests) != 1 || j.FileExistenceTests[0].Path != "/etc" {
		t.Errorf("JSON keys in another case were not read: %+v %+v", j.CommandTests, j.FileExistenceTests)
	}
	// A key given twice (in any case) takes its later value.
	j, err = parse("ci.json", []byte(`{"schemaVersion": "2.0.0",
	"commandTests": [{"name": "first", "command": "true"}],
	"CommandTests": [{"name": "second", "command": "true"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(j.CommandTests) != 1 || j.CommandTests[0].Name != "second" {
		t.Errorf("a JSON key given twice: %+v, want the later value", j.CommandTests)
	}
}

// TestParseAsTheToolReads loads files as container-structure-test v1.22
// reads them (gopkg.in/yaml.v2, strictly, for YAML; encoding/json for
// JSON), each of which the tool was run on to see what it makes of it.
func TestParseAsTheToolReads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, text string
		check            func(f *File) string // what is wrong with f
	}{
		{"merge keys: a key after one overrides it, one before is overridden, a list's first wins", "m.yaml", `
schemaVersion: "2.0.0"
fileExistenceTests:
  - &base {name: base, path: /bin/busybox, permissions: "-rwxr-xr-x"}
  - <<: *base
    name: after
  - name: before
    path: /nope
    <<: *base
  - &other {name: other, path: /bin/sh, uid: 7}
  - <<: [*other, *base]
    name: list
commandTests:
  - &cmd {name: cmd, command: sh, args: [-c, "exit 3"], exitCode: 3}
  - <<: *cmd
    name: merged
`, func(f *File) string {
			want := []FileExistenceTest{
				{Name: "base", Path: "/bin/busybox", ShouldExist: true, Permissions: "-rwxr-xr-x", UID: Unset, GID: Unset},
				{Name: "after", Path: "/bin/busybox", ShouldExist: true, Permissions: "-rwxr-xr-x", UID: Unset, GID: Unset},
				{Name: "base", Path: "/bin/busybox", ShouldExist: true, Permissions: "-rwxr-xr-x", UID: Unset, GID: Unset},
				{Name: "other", Path: "/bin/sh", ShouldExist: true, UID: 7, GID: Unset},
				{Name: "list", Path: "/bin/sh", ShouldExist: true, Permissions: "-rwxr-xr-x", UID: 7, GID: Unset},
			}
			if !reflect.DeepEqual(f.FileExistenceTests, want) {
				return fmt.Sprintf("file existence tests %+v", f.FileExistenceTests)
			}
			if c := f.CommandTests[1]; c.Name != "merged" || c.ExitCode != 3 || !reflect.DeepEqual(c.Args, []string{"-c", "exit 3"}) {
				return fmt.Sprintf("merged command test %+v", c)
			}
			return ""
		}},
		{"empty values are the zero values", "e.yml", `
schemaVersion: "2.0.0"
fileExistenceTests:
  - name: empty
    path: /bin/busybox
    shouldExist:
    uid:
    gid: ~
commandTests:
  - {name: c, command: ls, exitCode: }
`, func(f *File) string {
			if fe := f.FileExistenceTests[0]; fe.ShouldExist || fe.UID != 0 || fe.GID != 0 {
				return fmt.Sprintf("%+v: want shouldExist false and ownership 0, as the tool reads them", fe)
			}
			return ""
		}},
		{"empty ports, volumes and keys load (and fail the metadata test)", "p.yaml", `
schemaVersion: "2.0.0"
metadataTest:
  exposedPorts: ["8080", ""]
  unexposedPorts: [""]
  volumes: [""]
  unmountedVolumes: [""]
  envVars: [{value: x}]
  labels: [{value: y}]
  unboundEnvVars: [{value: z}]
`, func(f *File) string {
			if mt := f.MetadataTest; len(mt.ExposedPorts) != 2 || mt.UnexposedPorts[0] != "" || len(mt.Labels) != 1 {
				return fmt.Sprintf("%+v", mt)
			}
			return ""
		}},
		{"numbers as yaml.v2 reads them", "n.yaml", `
schemaVersion: "2.0.0"
commandTests:
  - {name: "1.0", command: x, exitCode: 1.0}
  - {name: "0x1", command: x, exitCode: 0x1}
  - {name: "010", command: x, exitCode: 010}
  - {name: "0o10", command: x, exitCode: 0o10}
  - {name: "1_0", command: x, exitCode: 1_0}
  - {name: "+1", command: x, exitCode: +1}
  - {name: "0b1", command: x, exitCode: 0b1}
  - {name: "1e1", command: x, exitCode: 1e1}
  - {name: "!!int", command: x, exitCode: !!int "1"}
fileExistenceTests:
  - {name: never matches, path: /a, uid: -5}
`, func(f *File) string {
			var got []int
			for _, c := range f.CommandTests {
				got = append(got, c.ExitCode)
			}
			if want := []int{1, 1, 8, 8, 10, 1, 1, 10, 1}; !reflect.DeepEqual(got, want) || f.FileExistenceTests[0].UID != -5 {
				return fmt.Sprintf("exit codes %v, want %v; uid %d", got, want, f.FileExistenceTests[0].UID)
			}
			return ""
		}},
		{"booleans as yaml.v2 reads them", "b.yaml", `
schemaVersion: "2.0.0"
fileExistenceTests:
  - {name: "1", path: /a, shouldExist: !!bool "false"}
  - {name: "2", path: /a, shouldExist: yes}
  - {name: "3", path: /a, shouldExist: off}
  - {name: "4", path: /a, shouldExist: Y}
  - {name: "5", path: /a, shouldExist: n}
  - {name: "6", path: /a, shouldExist: TRUE}
`, func(f *File) string {
			var got []bool
			for _, fe := range f.FileExistenceTests {
				got = append(got, fe.ShouldExist)
			}
			if want := []bool{false, true, false, true, false, true}; !reflect.DeepEqual(got, want) {
				return fmt.Sprintf("shouldExist %v, want %v", got, want)
			}
			return ""
		}},
		{"schema 1.0.0", "v1.yaml", `
schemaVersion: "1.0.0"
globalEnvVars: [{key: G, value: g}]
commandTests:
  - name: c
    setup: [["true"]]
    envVars: [{key: T, value: t}]
    command: ["sh", "-c", "echo $G"]
    expectedOutput: ["g"]
fileExistenceTests:
  - {name: e, path: /bin/busybox, permissions: "-rwxr-xr-x"}
fileContentTests:
  - {name: f, path: /etc/hostname, expectedContents: ["."]}
licenseTests:
  - {debian: true}
`, func(f *File) string {
			want := &File{
				Path: "v1.yaml", SchemaVersion: "1.0.0",
				GlobalEnvVars: []KeyValue{{Key: "G", Value: "g"}},
				CommandTests: []CommandTest{{Name: "c", Setup: [][]string{{"true"}}, EnvVars: []KeyValue{{Key: "T", Value: "t"}},
					Command: "sh", Args: []string{"-c", "echo $G"}, ExpectedOutput: []string{"g"}}},
				FileExistenceTests: []FileExistenceTest{{Name: "e", Path: "/bin/busybox", ShouldExist: true, Permissions: "-rwxr-xr-x", UID: Unset, GID: Unset}},
				FileContentTests:   []FileContentTest{{Name: "f", Path: "/etc/hostname", ExpectedContents: []string{"."}}},
				LicenseTests:       []LicenseTest{{Debian: true}},
			}
			if !reflect.DeepEqual(f, want) {
				return fmt.Sprintf("%+v", f)
			}
			return ""
		}},
		{"JSON: escapes as encoding/json reads them", "esc.json",
			"{\"schemaVersion\": \"2.0.0\", \"commandTests\": [{\"name\": \"\\ud83d\\ude00 \\u00e9 \\ud83d \xff \\/\", \"command\": \"echo\"}]}",
			func(f *File) string {
				if got, want := f.CommandTests[0].Name, "😀 é \uFFFD \uFFFD /"; got != want {
					return fmt.Sprintf("name %q, want %q", got, want)
				}
				return ""
			}},
		{"JSON: no ownership unless given, keys of the Go fields", "own.json", `{"schemaVersion": "2.0.0",
	"fileExistenceTests": [
		{"name": "absent", "path": "/a", "shouldExist": true},
		{"name": "null", "path": "/a", "shouldExist": false, "uid": null, "gid": null},
		{"name": "given", "path": "/a", "shouldExist": true, "Uid": 0, "GID": 50}],
	"containerRunOptions": {"allocateTty": true, "capabilities": null}}`,
			func(f *File) string {
				fe := f.FileExistenceTests
				if fe[0].UID != Unset || fe[0].GID != Unset || fe[1].UID != Unset || fe[1].GID != Unset || fe[2].UID != 0 || fe[2].GID != 50 {
					return fmt.Sprintf("%+v", fe)
				}
				if len(f.RunOptions.set()) != 0 {
					return fmt.Sprintf("run options %+v: allocateTty is no key of the tool's JSON (TTY is)", f.RunOptions)
				}
				return ""
			}},
		{"JSON: TTY", "tty.json", `{"schemaVersion": "2.0.0", "containerRunOptions": {"TTY": true}}`,
			func(f *File) string {
				if !f.RunOptions.AllocateTTY {
					return fmt.Sprintf("run options %+v", f.RunOptions)
				}
				return ""
			}},
		{"JSON: schema 1.0.0 ignores args, as any unknown key", "v1.json",
			`{"schemaVersion": "1.0.0", "commandTests": [{"name": "a", "command": ["echo", "a"], "args": ["b"]}]}`,
			func(f *File) string {
				if c := f.CommandTests[0]; c.Command != "echo" || !reflect.DeepEqual(c.Args, []string{"a"}) {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := parse(tc.file, []byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(f); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestParseJSONProblems refuses what encoding/json refuses where
// container-structure-test decodes with it, and a JSON test that does not
// say whether its file should exist.
func TestParseJSONProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"quoted boolean", `{"schemaVersion": "2.0.0", "fileExistenceTests": [{"name": "a", "path": "/a", "shouldExist": "true"}]}`,
			[]string{`ci.json:1: fileExistenceTests[1].shouldExist: expected true or false, got the string "true": write it without quotes`}},
		{"fraction", `{"schemaVersion": "2.0.0", "commandTests": [{"name": "a", "command": "ls",
			"exitCode": 1.0}]}`,
			[]string{`ci.json:2: commandTests[1].exitCode: expected a whole number, got 1.0`}},
		{"number for a string", `{"schemaVersion": "2.0.0", "commandTests": [{"name": "a", "command": "env", "envVars": [{"key": "N", "value": 17}]}]}`,
			[]string{`ci.json:1: commandTests[1].envVars[1].value: expected a string, got 17`}},
		{"string for a list", `{"schemaVersion": "2.0.0", "commandTests": [{"name": "a", "command": "ls", "args": "-l"}]}`,
			[]string{`ci.json:1: commandTests[1].args: expected a list, got the string "-l"`}},
		{"no shouldExist, or null", `{"schemaVersion": "2.0.0", "fileExistenceTests": [
			{"name": "a", "path": "/a"},
			{"name": "b", "path": "/b", "shouldExist": null}]}`,
			[]string{
				"ci.json:2: fileExistenceTests[1].shouldExist: required in a JSON file, true or false: container-structure-test reads a JSON test without it as false, and a YAML one as true",
				"ci.json:3: fileExistenceTests[2].shouldExist: required in a JSON file, true or false: container-structure-test reads a JSON test without it as false, and a YAML one as true",
			}},
		{"YAML is not JSON", "schemaVersion: \"2.0.0\"\n", []string{"ci.json:1: invalid JSON: invalid character 's' looking for beginning of value"}},
		{"syntax error on its line", "{\"schemaVersion\": \"2.0.0\",\n \"commandTests\": [\n  {\"name\": \"a\",}]}", []string{"ci.json:3: invalid JSON: invalid character '}' looking for beginning of object key string"}},
		{"cut short", "{\"schemaVersion\": \"2.0.0\",\n \"commandTests\": [", []string{"ci.json:2: invalid JSON: unexpected EOF"}},
		{"more after the value", "{\"schemaVersion\": \"2.0.0\"}\n{}", []string{"ci.json:2: invalid JSON: more after the top-level value"}},
		{"empty", " \n", []string{`ci.json: empty test file: it needs at least schemaVersion: "2.0.0"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantProblems(t, "ci.json", tc.json, tc.want)
		})
	}
}

// TestParseFileNames reads a file by its name's ending, as the tool does,
// and refuses any other name.
func TestParseFileNames(t *testing.T) {
	t.Parallel()
	const text = "schemaVersion: \"2.0.0\"\n"
	for name, loads := range map[string]bool{
		"ci.yaml": true, "ci.yml": true, "ci.json": false, // YAML in a .json file
		"ci.YAML": false, "ci.txt": false, "ci": false,
	} {
		_, err := parse(name, []byte(text))
		if (err == nil) != loads {
			t.Errorf("parse(%s) = %v; want loaded %v", name, err, loads)
		}
	}
	_, err := parse("tests/ci.txt", []byte(text))
	if want := `tests/ci.txt: not a test file: container-structure-test reads only names ending in ".yaml", ".yml" (YAML) or ".json" (JSON)`; err == nil || err.Error() != want {
		t.Errorf("parse(tests/ci.txt) = %v, want %s", err, want)
	}
}
