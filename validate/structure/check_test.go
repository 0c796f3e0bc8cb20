package structure

import (
	"archive/tar"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"nightshift/engine"
)

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	const stdout, stderr = "Python 3.11.2\nsecond line\n", "warning: deprecated\n"
	for _, tc := range []struct {
		name string
		test CommandTest
		exit int
		want []string
	}{
		{"nothing asked", CommandTest{}, 0, nil},
		{"expected output anywhere", CommandTest{ExpectedOutput: []string{`3\.11`, "second"}}, 0, nil},
		{"regex, not a literal", CommandTest{ExpectedOutput: []string{`Python 3\.1[0-9]\.`}}, 0, nil},
		{"^ anchors at the start of the whole output", CommandTest{ExpectedOutput: []string{"^second"}}, 0,
			[]string{"Expected string '^second' not found in output"}},
		{"(?m) for lines", CommandTest{ExpectedOutput: []string{"(?m)^second line$"}}, 0, nil},
		{"expected output missing", CommandTest{ExpectedOutput: []string{"Python 2"}}, 0,
			[]string{"Expected string 'Python 2' not found in output"}},
		{"excluded output present", CommandTest{ExcludedOutput: []string{"Python"}}, 0,
			[]string{"Excluded string 'Python' found in output"}},
		{"stdout is not stderr", CommandTest{ExpectedError: []string{"Python"}, ExcludedOutput: []string{"warning"}}, 0,
			[]string{"Expected string 'Python' not found in error"}},
		{"expected error", CommandTest{ExpectedError: []string{"^warning"}}, 0, nil},
		{"excluded error present", CommandTest{ExcludedError: []string{"deprecated"}}, 0,
			[]string{"Excluded string 'deprecated' found in error"}},
		{"exit code", CommandTest{Name: "n"}, 2,
			[]string{"Test 'n' exited with incorrect error code. Expected: 0, Actual: 2"}},
		{"expected non-zero exit code", CommandTest{ExitCode: 2}, 2, nil},
		{"invalid pattern fails both ways", CommandTest{ExpectedOutput: []string{"("}, ExcludedError: []string{"("}}, 0,
			[]string{"invalid regular expression '(': error parsing regexp: missing closing ): `(`", "invalid regular expression '(': error parsing regexp: missing closing ): `(`"}},
		{"every failure reported", CommandTest{Name: "n", ExpectedOutput: []string{"x"}, ExcludedError: []string{"warn"}}, 1,
			[]string{"Excluded string 'warn' found in error", "Expected string 'x' not found in output", "Test 'n' exited with incorrect error code. Expected: 0, Actual: 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := checkCommand(&tc.test, output{text: stdout}, output{text: stderr}, tc.exit); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checkCommand = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCheckCutOutput judges output longer than nightshift keeps: a match
// that ends before the cut stands, anything else cannot be told.
func TestCheckCutOutput(t *testing.T) {
	t.Parallel()
	const limit = 32
	// 26 x, a line "END", and the first byte of a 2-byte "é": cut in two.
	kept := output{text: strings.Repeat("x", 26) + "\nEND\n\xc3", cutAt: limit}
	cannot := func(p string) string {
		return fmt.Sprintf("cannot tell whether '%s' is in output: nightshift keeps its first 32 bytes, and there was more (container-structure-test would search all of it)", p)
	}
	for _, tc := range []struct {
		name string
		test CommandTest
		want []string
	}{
		{"found before the cut", CommandTest{ExpectedOutput: []string{`^x+\n`}, ExcludedOutput: []string{`x\nE`}}, []string{`Excluded string 'x\nE' found in output`}},
		{"not in what was kept", CommandTest{ExpectedOutput: []string{"START"}, ExcludedOutput: []string{"Traceback"}}, []string{cannot("START"), cannot("Traceback")}},
		{"the end of what was kept is not the end", CommandTest{ExpectedOutput: []string{`END\n$`}}, []string{cannot(`END\n$`)}},
		{"a match reaching the cut may go on past it", CommandTest{ExpectedOutput: []string{`END\n.*`}}, []string{cannot(`END\n.*`)}},
		{"a character cut in two is not one", CommandTest{ExpectedOutput: []string{`END\n\x{FFFD}`}}, []string{cannot(`END\n\x{FFFD}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := checkCommand(&tc.test, kept, output{}, 0); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checkCommand =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	for n, want := range map[int]string{16 << 20: "16 MiB", 256 << 10: "256 KiB", 32: "32 bytes"} {
		if got := bytesize(n); got != want {
			t.Errorf("bytesize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCheckExistence(t *testing.T) {
	t.Parallel()
	reg := &tar.Header{Typeflag: tar.TypeReg, Name: "busybox", Mode: 0o755, Uid: 0, Gid: 0}
	conf := &tar.Header{Typeflag: tar.TypeReg, Name: "ci.conf", Mode: 0o640, Uid: 1000, Gid: 50}
	dir := &tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}
	link := &tar.Header{Typeflag: tar.TypeSymlink, Name: "sh", Linkname: "busybox", Mode: 0o777}
	setuid := &tar.Header{Typeflag: tar.TypeReg, Name: "su", Mode: 0o4755}
	sticky := &tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}
	ownerOnly := &tar.Header{Typeflag: tar.TypeReg, Name: "run", Mode: 0o700}
	missing := errors.New("file /nope not found in image")
	test := func(mod func(*FileExistenceTest)) FileExistenceTest {
		ft := FileExistenceTest{Name: "t", Path: "/p", ShouldExist: true, UID: Unset, GID: Unset}
		mod(&ft)
		return ft
	}
	for _, tc := range []struct {
		name string
		test FileExistenceTest
		h    *tar.Header
		want []string
	}{
		{"exists", test(func(*FileExistenceTest) {}), reg, nil},
		{"missing", test(func(*FileExistenceTest) {}), nil, []string{"Error examining file in container: file /nope not found in image"}},
		{"absent as it should be", test(func(t *FileExistenceTest) { t.ShouldExist = false; t.Permissions = "-rw-r--r--" }), nil, nil},
		{"present and should not be", test(func(t *FileExistenceTest) { t.ShouldExist = false; t.UID = 7 }), reg,
			[]string{"File /p should not exist but does"}},
		{"file permissions", test(func(t *FileExistenceTest) { t.Permissions = "-rw-r-----" }), conf, nil},
		{"wrong permissions", test(func(t *FileExistenceTest) { t.Permissions = "-rw-r--r--" }), conf,
			[]string{"/p has incorrect permissions. Expected: -rw-r--r--, Actual: -rw-r-----"}},
		{"directory", test(func(t *FileExistenceTest) { t.Permissions = "drwxr-xr-x" }), dir, nil},
		{"symlink, not followed", test(func(t *FileExistenceTest) { t.Permissions = "Lrwxrwxrwx" }), link, nil},
		{"setuid as Go prints it", test(func(t *FileExistenceTest) { t.Permissions = "urwxr-xr-x" }), setuid, nil},
		{"setuid in ls's notation never matches", test(func(t *FileExistenceTest) { t.Permissions = "-rwsr-xr-x" }), setuid,
			[]string{`/p has incorrect permissions. Expected: -rwsr-xr-x, Actual: urwxr-xr-x ("-rwsr-xr-x" is not a mode as Go prints it, and so never matches: e.g. "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx" for a symlink, "urwxr-xr-x" where ls shows "-rwsr-xr-x")`}},
		{"sticky directory", test(func(t *FileExistenceTest) { t.Permissions = "dtrwxrwxrwx" }), sticky, nil},
		{"owner and group", test(func(t *FileExistenceTest) { t.UID, t.GID = 1000, 50 }), conf, nil},
		{"uid 0 is checked, not unset", test(func(t *FileExistenceTest) { t.UID = 0 }), conf,
			[]string{"/p has incorrect user ownership. Expected: 0, Actual: 1000"}},
		{"wrong group", test(func(t *FileExistenceTest) { t.GID = 0 }), conf,
			[]string{"/p has incorrect group ownership. Expected: 0, Actual: 50"}},
		{"executable by any", test(func(t *FileExistenceTest) { t.IsExecutableBy = "any" }), ownerOnly, nil},
		{"executable by owner", test(func(t *FileExistenceTest) { t.IsExecutableBy = "owner" }), ownerOnly, nil},
		{"not executable by group", test(func(t *FileExistenceTest) { t.IsExecutableBy = "group" }), ownerOnly,
			[]string{"/p has incorrect executable bit. Expected to be executable by group, Actual: -rwx------"}},
		{"not executable by other", test(func(t *FileExistenceTest) { t.IsExecutableBy = "other" }), conf,
			[]string{"/p has incorrect executable bit. Expected to be executable by other, Actual: -rw-r-----"}},
		{"not executable at all", test(func(t *FileExistenceTest) { t.IsExecutableBy = "any" }), conf,
			[]string{"/p has incorrect executable bit. Expected to be executable by any, Actual: -rw-r-----"}},
		{"executable by other", test(func(t *FileExistenceTest) { t.IsExecutableBy = "other" }), reg, nil},
		{"unknown executable class", test(func(t *FileExistenceTest) { t.IsExecutableBy = "root" }), reg,
			[]string{"root not recognised as a valid option"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var why error
			if tc.h == nil {
				why = missing
			}
			if got := checkExistence(&tc.test, tc.h, why); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checkExistence = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExists(t *testing.T) {
	t.Parallel()
	for flag, want := range map[byte]bool{
		tar.TypeReg: true, tar.TypeDir: true, tar.TypeSymlink: true, tar.TypeLink: true,
		tar.TypeChar: false, tar.TypeBlock: false, tar.TypeFifo: false,
	} {
		if got := exists(&tar.Header{Typeflag: flag}); got != want {
			t.Errorf("exists(type %q) = %v, want %v", flag, got, want)
		}
	}
}

func TestCheckContent(t *testing.T) {
	t.Parallel()
	content := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
	for _, tc := range []struct {
		name    string
		test    FileContentTest
		readErr error
		want    []string
	}{
		{"expected", FileContentTest{ExpectedContents: []string{"ID=debian", `Linux 1[0-9]`}}, nil, nil},
		{"expected missing", FileContentTest{ExpectedContents: []string{"ID=ubuntu"}}, nil,
			[]string{"Expected string 'ID=ubuntu' not found in file content"}},
		{"excluded", FileContentTest{ExcludedContents: []string{"ubuntu"}}, nil, nil},
		{"excluded present", FileContentTest{ExcludedContents: []string{"bookworm"}}, nil,
			[]string{"Excluded string 'bookworm' found in file content"}},
		{"invalid pattern", FileContentTest{ExpectedContents: []string{"("}}, nil,
			[]string{"invalid regular expression '(': error parsing regexp: missing closing ): `(`"}},
		{"unreadable", FileContentTest{Path: "/etc", ExpectedContents: []string{"x"}}, errors.New("cannot read /etc: it is a directory, not a file"),
			[]string{"Failed to open /etc. Error: cannot read /etc: it is a directory, not a file"}},
		{"a variable in the path is not expanded", FileContentTest{Path: "$CI_HOME/ci.conf"}, errors.New("$CI_HOME/ci.conf: not found"),
			[]string{"Failed to open $CI_HOME/ci.conf. Error: $CI_HOME/ci.conf: not found (the path is read as written: container-structure-test expands no variables in a fileContentTests path, nor does nightshift)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			found := map[string]bool{}
			for _, p := range append(slices.Clone(tc.test.ExpectedContents), tc.test.ExcludedContents...) {
				if re, err := regexp.Compile(p); err == nil {
					found[p] = re.MatchString(content)
				}
			}
			if got := checkContent(&tc.test, found, tc.readErr); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checkContent = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckMetadata(t *testing.T) {
	t.Parallel()
	cfg := engine.ImageConfig{
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "OPTS=a=b", "EMPTY="},
		Entrypoint:   []string{"/entrypoint.sh"},
		Cmd:          []string{"bash", "-l"},
		WorkingDir:   "/work",
		User:         "ci",
		ExposedPorts: []string{"53/udp", "8080/tcp"},
		Volumes:      []string{"/cache"},
		Labels:       map[string]string{"org.opencontainers.image.version": "1.4.2"},
	}
	list := func(s ...string) *[]string {
		if s == nil {
			s = []string{}
		}
		return &s
	}
	for _, tc := range []struct {
		name string
		test MetadataTest
		want []string
	}{
		{"env exact", MetadataTest{EnvVars: []KeyValue{{Key: "LANG", Value: "C.UTF-8"}, {Key: "OPTS", Value: "a=b"}, {Key: "EMPTY"}}}, nil},
		{"env regex, anywhere", MetadataTest{EnvVars: []KeyValue{{Key: "PATH", Value: "/usr/bin", IsRegex: true}}}, nil},
		{"env regex mismatch", MetadataTest{EnvVars: []KeyValue{{Key: "PATH", Value: "^/opt", IsRegex: true}}},
			[]string{"env var PATH value /usr/local/bin:/usr/bin:/bin does not match expected value: ^/opt"}},
		{"env value is not a regex unless asked", MetadataTest{EnvVars: []KeyValue{{Key: "LANG", Value: "C.*"}}},
			[]string{"env var LANG value C.UTF-8 does not match expected value: C.*"}},
		{"env missing", MetadataTest{EnvVars: []KeyValue{{Key: "HOME", Value: "/root"}}},
			[]string{"variable HOME not found in image env"}},
		{"unbound", MetadataTest{UnboundEnvVars: []KeyValue{{Key: "DEBUG"}, {Key: "LANG"}}},
			[]string{"env variable LANG should not be present in image metadata"}},
		{"labels", MetadataTest{Labels: []KeyValue{{Key: "org.opencontainers.image.version", Value: `^1\.4\.`, IsRegex: true}}}, nil},
		{"label mismatch and missing", MetadataTest{Labels: []KeyValue{{Key: "org.opencontainers.image.version", Value: "1.4"}, {Key: "maintainer", Value: "x"}}},
			[]string{"label org.opencontainers.image.version value 1.4.2 does not match expected value: 1.4", "label maintainer not found in image metadata"}},
		{"cmd and entrypoint", MetadataTest{Cmd: list("bash", "-l"), Entrypoint: list("/entrypoint.sh")}, nil},
		{"cmd differs", MetadataTest{Cmd: list("bash")},
			[]string{"Image Cmd [bash -l] does not match expected Cmd: [bash]"}},
		{"empty entrypoint means none", MetadataTest{Entrypoint: list()},
			[]string{"Image entrypoint [/entrypoint.sh] does not match expected entrypoint: []"}},
		{"workdir and user", MetadataTest{Workdir: "/work", User: "ci"}, nil},
		{"workdir and user differ", MetadataTest{Workdir: "/", User: "root"},
			[]string{"Image workdir /work does not match config workdir: /", "Image user ci does not match config user: root"}},
		{"ports: bare matches any protocol", MetadataTest{ExposedPorts: []string{"8080", "53", "53/udp"}}, nil},
		{"ports: protocol must match", MetadataTest{ExposedPorts: []string{"8080/udp", "22"}},
			[]string{"Port 8080/udp not found in config", "Port 22 not found in config"}},
		{"unexposed ports", MetadataTest{UnexposedPorts: []string{"22", "53/tcp", "8080"}},
			[]string{"Port 8080 should not be exposed"}},
		{"volumes", MetadataTest{Volumes: []string{"/cache", "/data"}, UnmountedVolumes: []string{"/tmp", "/cache"}},
			[]string{"Volume /data not found in config", "Volume /cache should not be mounted"}},
		{"empty keys, ports and volumes fail it unrun, as in the tool",
			MetadataTest{EnvVars: []KeyValue{{Value: "x"}}, Labels: []KeyValue{{Value: "y"}}, ExposedPorts: []string{"8080", ""}, Volumes: []string{""}, Workdir: "/nowhere"},
			[]string{"Environment variable key cannot be empty", "Label key cannot be empty", "Port cannot be empty", "Volume cannot be empty"}},
		{"but not on the other side", MetadataTest{UnboundEnvVars: []KeyValue{{Value: "z"}}, UnexposedPorts: []string{""}, UnmountedVolumes: []string{""}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := checkMetadata(&tc.test, cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checkMetadata = %q, want %q", got, tc.want)
			}
		})
	}
	// A metadata test of an image without entrypoint or command.
	bare := engine.ImageConfig{}
	if got := checkMetadata(&MetadataTest{Entrypoint: list(), Cmd: list()}, bare); got != nil {
		t.Errorf("empty entrypoint and cmd against an image with none: %q", got)
	}
	if (&MetadataTest{}).empty() != true || (&MetadataTest{Cmd: list()}).empty() {
		t.Error("empty(): an absent field asks nothing, an empty cmd list asks something")
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	image := envMap([]string{"PATH=/usr/bin:/bin", "HOME=/root", "A=1", "A=2"})
	if image["A"] != "2" {
		t.Errorf("a later image env entry wins: A=%q", image["A"])
	}
	global := withVars(image, []KeyValue{
		{Key: "CI_HOME", Value: "/opt/ci"},
		{Key: "PATH", Value: "$CI_HOME/bin:$PATH"}, // expanded against the image's env, not CI_HOME above
		{Key: "CACHE", Value: "${HOME}/.cache"},
	})
	test := withVars(global, []KeyValue{{Key: "BIN", Value: "$CI_HOME/bin"}})
	for k, want := range map[string]string{
		"PATH":  "/bin:/usr/bin:/bin",
		"CACHE": "/root/.cache",
		"BIN":   "/opt/ci/bin",
		"HOME":  "/root",
	} {
		if test[k] != want {
			t.Errorf("%s = %q, want %q", k, test[k], want)
		}
	}
	if image["CI_HOME"] != "" {
		t.Error("withVars changed its input")
	}
	for in, want := range map[string]string{
		"$HOME":            "/root",
		"${HOME}/x":        "/root/x",
		"$UNSET-x":         "-x",
		"awk '{print $1}'": "awk '{print }'", // as container-structure-test: $1 is a name too
		"cost: 5$":         "cost: 5$",
		"no vars":          "no vars",
	} {
		if got := expand(in, image); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
	if got := containerEnv(test, []KeyValue{{Key: "CI_HOME"}, {Key: "PATH"}}, []KeyValue{{Key: "BIN"}, {Key: "PATH"}}); !reflect.DeepEqual(got,
		[]string{"CI_HOME=/opt/ci", "PATH=/bin:/usr/bin:/bin", "BIN=/opt/ci/bin"}) {
		t.Errorf("containerEnv = %q", got)
	}
}
