package structure

import (
	"archive/tar"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"nightshift/engine"
)

// The checks below give container-structure-test's verdicts, and its
// messages (less the output it quotes: Result.Output holds an excerpt).

// output is a command's stdout or stderr as nightshift keeps it: all of
// it, or its first cutAt bytes when it was longer.
type output struct {
	text  string
	cutAt int // 0: not cut
}

// presence is whether a pattern matches: unknown when it matches nothing,
// or only up to the end, of output that was cut.
type presence int

const (
	absent presence = iota
	present
	unknown
)

// search reports whether re matches o. A match that ends before the cut
// is one in the whole output too, for what follows cannot undo it.
func (o output) search(re *regexp.Regexp) presence {
	if o.cutAt == 0 {
		return presenceOf(re.MatchString(o.text))
	}
	text := o.text
	for i := len(text) - 1; i >= 0 && i >= len(text)-utf8.UTFMax; i-- {
		if utf8.RuneStart(text[i]) {
			if !utf8.FullRuneInString(text[i:]) {
				text = text[:i] // a character cut in two is not one
			}
			break
		}
	}
	if loc := re.FindStringIndex(text); loc != nil && loc[1] < len(text) {
		return present
	}
	return unknown
}

func presenceOf(found bool) presence {
	if found {
		return present
	}
	return absent
}

// checkCommand judges a command test's run.
func checkCommand(t *CommandTest, stdout, stderr output, exitCode int) []string {
	var errs []string
	errs = append(errs, look(t.ExpectedError, "error", true, stderr.search, stderr.cutAt)...)
	errs = append(errs, look(t.ExcludedError, "error", false, stderr.search, stderr.cutAt)...)
	errs = append(errs, look(t.ExpectedOutput, "output", true, stdout.search, stdout.cutAt)...)
	errs = append(errs, look(t.ExcludedOutput, "output", false, stdout.search, stdout.cutAt)...)
	if t.ExitCode != exitCode {
		errs = append(errs, fmt.Sprintf("Test '%s' exited with incorrect error code. Expected: %d, Actual: %d", t.Name, t.ExitCode, exitCode))
	}
	return errs
}

// look checks that each of patterns is found by search (want) or is not;
// cutAt is the bound of what search looks at, when it may say unknown.
func look(patterns []string, where string, want bool, search func(*regexp.Regexp) presence, cutAt int) []string {
	var errs []string
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("invalid regular expression '%s': %v", p, err))
			continue
		}
		switch search(re) {
		case unknown:
			errs = append(errs, fmt.Sprintf("cannot tell whether '%s' is in %s: nightshift keeps its first %s, and there was more (container-structure-test would search all of it)", p, where, bytesize(cutAt)))
		case absent:
			if want {
				errs = append(errs, fmt.Sprintf("Expected string '%s' not found in %s", p, where))
			}
		case present:
			if !want {
				errs = append(errs, fmt.Sprintf("Excluded string '%s' found in %s", p, where))
			}
		}
	}
	return errs
}

// bytesize is n bytes in MiB or KiB, if a whole number of them.
func bytesize(n int) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// matches reports whether the regular expression p matches anywhere in s.
func matches(p, s string) (bool, error) {
	re, err := regexp.Compile(p)
	if err != nil {
		return false, fmt.Errorf("invalid regular expression '%s': %v", p, err)
	}
	return re.MatchString(s), nil
}

// checkExistence judges a file existence test. h is the path's archive
// entry, nil when the path does not exist (missing is then why).
func checkExistence(t *FileExistenceTest, h *tar.Header, missing error) []string {
	if h == nil {
		if t.ShouldExist {
			return []string{fmt.Sprintf("Error examining file in container: %v", missing)}
		}
		return nil
	}
	if !t.ShouldExist {
		return []string{fmt.Sprintf("File %s should not exist but does", t.Path)}
	}
	var errs []string
	mode := h.FileInfo().Mode()
	if t.Permissions != "" && mode.String() != t.Permissions {
		msg := fmt.Sprintf("%s has incorrect permissions. Expected: %s, Actual: %s", t.Path, t.Permissions, mode)
		if !goMode.MatchString(t.Permissions) {
			msg += fmt.Sprintf(` (%q is not a mode as Go prints it, and so never matches: e.g. "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx" for a symlink, "urwxr-xr-x" where ls shows "-rwsr-xr-x")`, t.Permissions)
		}
		errs = append(errs, msg)
	}
	if t.IsExecutableBy != "" {
		bits := map[string]os.FileMode{"any": 0o111, "owner": 0o100, "group": 0o010, "other": 0o001}[t.IsExecutableBy]
		switch {
		case bits == 0:
			errs = append(errs, fmt.Sprintf("%s not recognised as a valid option", t.IsExecutableBy))
		case mode&bits == 0:
			errs = append(errs, fmt.Sprintf("%s has incorrect executable bit. Expected to be executable by %s, Actual: %s", t.Path, t.IsExecutableBy, mode))
		}
	}
	if t.UID != Unset && h.Uid != t.UID {
		errs = append(errs, fmt.Sprintf("%s has incorrect user ownership. Expected: %d, Actual: %d", t.Path, t.UID, h.Uid))
	}
	if t.GID != Unset && h.Gid != t.GID {
		errs = append(errs, fmt.Sprintf("%s has incorrect group ownership. Expected: %d, Actual: %d", t.Path, t.GID, h.Gid))
	}
	return errs
}

// goMode is os.FileMode.String's form: type letters (or "-"), then rwx
// three times.
var goMode = regexp.MustCompile(`^([dalTLDpSugct?]+|-)[r-][w-][x-][r-][w-][x-][r-][w-][x-]$`)

// exists reports whether an archive entry counts as an existing file:
// container-structure-test sees only directories, regular files, links and
// symlinks.
func exists(h *tar.Header) bool {
	switch h.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeLink, tar.TypeSymlink:
		return true
	}
	return false
}

// checkContent judges a file content test: found says which of its
// patterns match the file. readErr is why the file could not be read.
func checkContent(t *FileContentTest, found map[string]bool, readErr error) []string {
	if readErr != nil {
		msg := fmt.Sprintf("Failed to open %s. Error: %v", t.Path, readErr)
		if strings.Contains(t.Path, "$") {
			msg += " (the path is read as written: container-structure-test expands no variables in a fileContentTests path, nor does nightshift)"
		}
		return []string{msg}
	}
	search := func(re *regexp.Regexp) presence { return presenceOf(found[re.String()]) }
	return append(look(t.ExpectedContents, "file content", true, search, 0), look(t.ExcludedContents, "file content", false, search, 0)...)
}

// checkMetadata judges a metadata test against the image's configuration.
func checkMetadata(t *MetadataTest, cfg engine.ImageConfig) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	// As the tool does, a test with an empty key, port or volume fails
	// with only that said, unrun.
	for _, kv := range t.EnvVars {
		if kv.Key == "" {
			fail("Environment variable key cannot be empty")
		}
	}
	for _, kv := range t.Labels {
		if kv.Key == "" {
			fail("Label key cannot be empty")
		}
	}
	for _, p := range t.ExposedPorts {
		if p == "" {
			fail("Port cannot be empty")
		}
	}
	for _, v := range t.Volumes {
		if v == "" {
			fail("Volume cannot be empty")
		}
	}
	if errs != nil {
		return errs
	}
	same := func(kv KeyValue, got string) bool {
		if !kv.IsRegex {
			return kv.Value == got
		}
		ok, err := matches(kv.Value, got)
		if err != nil {
			fail("%v", err)
		}
		return ok
	}
	env := envMap(cfg.Env)
	for _, kv := range t.EnvVars {
		if got, ok := env[kv.Key]; !ok {
			fail("variable %s not found in image env", kv.Key)
		} else if !same(kv, got) {
			fail("env var %s value %s does not match expected value: %s", kv.Key, got, kv.Value)
		}
	}
	for _, kv := range t.UnboundEnvVars {
		if _, ok := env[kv.Key]; ok {
			fail("env variable %s should not be present in image metadata", kv.Key)
		}
	}
	for _, kv := range t.Labels {
		if got, ok := cfg.Labels[kv.Key]; !ok {
			fail("label %s not found in image metadata", kv.Key)
		} else if !same(kv, got) {
			fail("label %s value %s does not match expected value: %s", kv.Key, got, kv.Value)
		}
	}
	if t.Cmd != nil && !slices.Equal(*t.Cmd, cfg.Cmd) {
		fail("Image Cmd %v does not match expected Cmd: %v", cfg.Cmd, *t.Cmd)
	}
	if t.Entrypoint != nil && !slices.Equal(*t.Entrypoint, cfg.Entrypoint) {
		fail("Image entrypoint %v does not match expected entrypoint: %v", cfg.Entrypoint, *t.Entrypoint)
	}
	if t.Workdir != "" && t.Workdir != cfg.WorkingDir {
		fail("Image workdir %s does not match config workdir: %s", cfg.WorkingDir, t.Workdir)
	}
	if t.User != "" && t.User != cfg.User {
		fail("Image user %s does not match config user: %s", cfg.User, t.User)
	}
	for _, p := range t.ExposedPorts {
		if !portIn(p, cfg.ExposedPorts) {
			fail("Port %s not found in config", p)
		}
	}
	for _, p := range t.UnexposedPorts {
		if portIn(p, cfg.ExposedPorts) {
			fail("Port %s should not be exposed", p)
		}
	}
	for _, v := range t.Volumes {
		if !slices.Contains(cfg.Volumes, v) {
			fail("Volume %s not found in config", v)
		}
	}
	for _, v := range t.UnmountedVolumes {
		if slices.Contains(cfg.Volumes, v) {
			fail("Volume %s should not be mounted", v)
		}
	}
	return errs
}

// portIn reports whether port ("80" for any protocol, or "80/udp") is in
// ports ("80/tcp").
func portIn(port string, ports []string) bool {
	num, proto, _ := strings.Cut(port, "/")
	for _, p := range ports {
		n, pr, _ := strings.Cut(p, "/")
		if n == num && (proto == "" || proto == pr) {
			return true
		}
	}
	return false
}

// envMap turns "KEY=value" entries into a map; a later entry wins.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// expand substitutes $VAR and ${VAR} in s from env, an unknown name
// becoming "", as container-structure-test does (os.Expand: "$1" and "$$"
// are names too).
func expand(s string, env map[string]string) string {
	return os.Expand(s, func(k string) string { return env[k] })
}

// withVars returns env with vars set, each value expanded against env
// (not against the others): the environment container-structure-test
// builds from an image's for globalEnvVars, then for a test's envVars.
func withVars(env map[string]string, vars []KeyValue) map[string]string {
	out := maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	for _, kv := range vars {
		out[kv.Key] = expand(kv.Value, env)
	}
	return out
}
