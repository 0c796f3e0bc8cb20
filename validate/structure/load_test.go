package structure

import (
	"errors"
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
			[]string{`tests/ci_base.yaml:3: fileExistenceTests[1].uid: expected an integer, got "root"`}},
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
		{"old schemaVersion", "schemaVersion: 1.0.0\n",
			[]string{`tests/ci_base.yaml:1: schemaVersion: "1.0.0" is not supported: nightshift reads schema "2.0.0"`}},
		{"metadata env under both names", head + "metadataTest:\n  env: [{key: A}]\n  envVars: [{key: B}]\n",
			[]string{"tests/ci_base.yaml:4: metadataTest.envVars: the same list as env (line 3): give one of them"}},
		{"unknown run option", head + "containerRunOptions:\n  priviledged: true\n",
			[]string{"tests/ci_base.yaml:3: containerRunOptions.priviledged: unknown key (known here: allocateTty, bindMounts, capabilities, envFile, envVars, privileged, user)"}},
		{"unknown license test key", head + "licenseTests:\n  - debian: true\n    file: [/x]\n",
			[]string{"tests/ci_base.yaml:4: licenseTests[1].file: unknown key (known here: debian, files)"}},
		{"empty port", head + "metadataTest:\n  exposedPorts: [\"\"]\n",
			[]string{`tests/ci_base.yaml:3: metadataTest.exposedPorts[1]: empty port`}},
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
			f, err := parse("tests/ci_base.yaml", []byte(tc.yaml))
			var ps problem.List
			if !errors.As(err, &ps) {
				t.Fatalf("parse = %+v, %v; want problems", f, err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if err.Error() != strings.Join(tc.want, "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
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
	"fileexistencetests": [{"name": "f", "PATH": "/etc"}]}`))
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
