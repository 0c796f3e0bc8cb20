// Package structure runs container tests written for
// container-structure-test (its schema "2.0.0", and the older "1.0.0")
// against a local image, loading each file as that tool (v1.22) loads it
// and giving the verdicts its docker driver gives, but for the differences
// the README lists: among them, licenseTests and containerRunOptions are
// read, not run, and a port's protocol counts. Where that tool falls
// short, it does better: every command has a timeout, containers have no
// network unless a test asks for it, command tests run in parallel, and
// every container and intermediate image is removed, also on timeout and
// cancellation.
package structure

import "time"

// SchemaVersion is container-structure-test's schema. A file may also
// declare the older "1.0.0", which the tool still reads with its own rules
// (see the README).
const SchemaVersion = "2.0.0"

// schemaV1 is the older schema.
const schemaV1 = "1.0.0"

// Unset is the value of FileExistenceTest.UID and GID when the file does
// not say: ownership is then not checked.
const Unset = -1

// File is one test file.
type File struct {
	Path string // as given to Load
	// SchemaVersion is SchemaVersion, or "1.0.0": then, as in the tool, the
	// globalEnvVars reach a command test only through its setup, and no
	// path is expanded.
	SchemaVersion      string
	GlobalEnvVars      []KeyValue // set for every command test; expand paths of file tests
	CommandTests       []CommandTest
	FileExistenceTests []FileExistenceTest
	FileContentTests   []FileContentTest
	MetadataTest       MetadataTest
	// LicenseTests are read, so that a file written for
	// container-structure-test loads, but not run: each is a failed Result
	// that says so.
	LicenseTests []LicenseTest
	// RunOptions (containerRunOptions) are read but not applied: while any
	// is set, each command test of the file is a failed Result that says
	// so, for it would not run as container-structure-test runs it.
	RunOptions RunOptions
}

// LicenseTest is container-structure-test's check of an image's licenses.
type LicenseTest struct {
	Debian bool
	Files  []string
}

// RunOptions is container-structure-test's containerRunOptions.
type RunOptions struct {
	User         string
	Privileged   bool
	AllocateTTY  bool
	EnvVars      []string // names of variables passed from the tester's environment
	EnvFile      string
	Capabilities []string
	BindMounts   []string
}

// set names the options o sets, in the file's spelling.
func (o *RunOptions) set() []string {
	var out []string
	for _, opt := range []struct {
		name string
		set  bool
	}{
		{"user", o.User != ""}, {"privileged", o.Privileged}, {"allocateTty", o.AllocateTTY},
		{"envVars", len(o.EnvVars) > 0}, {"envFile", o.EnvFile != ""},
		{"capabilities", len(o.Capabilities) > 0}, {"bindMounts", len(o.BindMounts) > 0},
	} {
		if opt.set {
			out = append(out, opt.name)
		}
	}
	return out
}

// KeyValue is an environment variable or a label. IsRegex is read for
// metadata tests only: the value is then a regular expression the image's
// value must match.
type KeyValue struct {
	Key     string
	Value   string
	IsRegex bool
}

// CommandTest runs a command in a fresh container of the image and checks
// its exit code and output. Output patterns are Go regular expressions
// matched anywhere in the whole stdout or stderr.
type CommandTest struct {
	Name string
	// Setup commands run one after another, each in a container committed
	// as the image the next one (and the test command) runs in. Their exit
	// codes are not checked, as in container-structure-test.
	Setup [][]string
	// Teardown is read and ignored, as container-structure-test's docker
	// driver does: the test's container is thrown away anyway.
	Teardown       [][]string
	EnvVars        []KeyValue
	Command        string
	Args           []string
	ExitCode       int
	ExpectedOutput []string
	ExcludedOutput []string
	ExpectedError  []string
	ExcludedError  []string

	// Timeout (nightshift's "timeout", a Go duration) bounds the test,
	// setup included; zero means Options.Timeout.
	Timeout time.Duration
	// Network (nightshift's "network: true") gives the test's containers
	// the engine's default network; by default they have none.
	Network bool
}

// FileExistenceTest checks that a path exists (or not) in the image, and
// its mode and ownership.
type FileExistenceTest struct {
	Name        string
	Path        string
	ShouldExist bool // true unless the file says false (or, as the tool reads YAML, nothing)
	// Permissions is compared with the mode as Go prints it
	// (os.FileMode.String): "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx" for a
	// symlink, "urwxr-xr-x" for a setuid file. Any other string is read,
	// as container-structure-test reads it, and never matches.
	Permissions string
	UID, GID    int // Unset when not to be checked
	// IsExecutableBy is "any", "owner", "group" or "other".
	IsExecutableBy string
}

// FileContentTest checks a file's content against regular expressions. A
// symlink is followed.
type FileContentTest struct {
	Name             string
	Path             string
	ExpectedContents []string
	ExcludedContents []string
}

// MetadataTest checks the image's configuration. Every field is optional;
// an empty MetadataTest runs no test.
type MetadataTest struct {
	EnvVars        []KeyValue
	UnboundEnvVars []KeyValue // only the keys matter: they must not be set
	Labels         []KeyValue
	// Entrypoint and Cmd, when not nil, must equal the image's exactly
	// (an empty list: the image has none).
	Entrypoint *[]string
	Cmd        *[]string
	Workdir    string
	User       string
	// Ports are "80" (any protocol) or "80/tcp".
	ExposedPorts     []string
	UnexposedPorts   []string
	Volumes          []string
	UnmountedVolumes []string
}

// empty reports whether mt asks nothing.
func (mt *MetadataTest) empty() bool {
	return len(mt.EnvVars) == 0 && len(mt.UnboundEnvVars) == 0 && len(mt.Labels) == 0 &&
		mt.Entrypoint == nil && mt.Cmd == nil && mt.Workdir == "" && mt.User == "" &&
		len(mt.ExposedPorts) == 0 && len(mt.UnexposedPorts) == 0 &&
		len(mt.Volumes) == 0 && len(mt.UnmountedVolumes) == 0
}
