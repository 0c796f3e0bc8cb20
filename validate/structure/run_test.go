package structure

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"nightshift/engine"
)

// fake is a Driver without an engine: RunContainer answers through run,
// the image's filesystem is files, and it records what was made and
// removed.
type fake struct {
	cfg    engine.ImageConfig
	cfgErr error
	files  map[string]fakeFile
	run    func(spec engine.ContainerSpec, call int) (engine.Run, error)

	mu              sync.Mutex
	specs           []engine.ContainerSpec
	created         []string
	removed         []string
	committed       []string
	removedImages   []string
	containerSpecs  []engine.ContainerSpec
	copiesFromOther int
}

type fakeFile struct {
	h       tar.Header
	content string
}

func (f *fake) ImageConfig(ctx context.Context, ref string) (engine.ImageConfig, error) {
	return f.cfg, f.cfgErr
}

func (f *fake) RunContainer(ctx context.Context, spec engine.ContainerSpec) (engine.Run, error) {
	if err := ctx.Err(); err != nil {
		return engine.Run{}, err
	}
	f.mu.Lock()
	f.specs = append(f.specs, spec)
	call := len(f.specs)
	f.mu.Unlock()
	run := engine.Run{}
	var err error
	if f.run != nil {
		run, err = f.run(spec, call)
	}
	if err == nil && spec.Commit && !run.TimedOut {
		f.mu.Lock()
		run.Image = fmt.Sprintf("sha256:committed%d", len(f.committed)+1)
		f.committed = append(f.committed, run.Image)
		f.mu.Unlock()
	}
	return run, err
}

func (f *fake) RemoveImage(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removedImages = append(f.removedImages, id)
	return nil
}

func (f *fake) CreateContainer(ctx context.Context, spec engine.ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("container%d", len(f.created)+1)
	f.created = append(f.created, id)
	f.containerSpecs = append(f.containerSpecs, spec)
	return id, nil
}

func (f *fake) RemoveContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil
}

// CopyFromContainer archives a path as the engine does: one entry named by
// the base name, a symlink not followed.
func (f *fake) CopyFromContainer(ctx context.Context, id, p string) (io.ReadCloser, error) {
	f.mu.Lock()
	if !slices.Contains(f.created, id) || slices.Contains(f.removed, id) {
		f.copiesFromOther++
	}
	f.mu.Unlock()
	file, ok := f.files[p]
	if !ok {
		return nil, fmt.Errorf("%s: %w: Could not find the file %s in container %s", p, engine.ErrNotFound, p, id)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	h := file.h
	h.Name, h.Size = path.Base(p), int64(len(file.content))
	if h.Typeflag != tar.TypeReg {
		h.Size = 0
	}
	if err := tw.WriteHeader(&h); err != nil {
		return nil, err
	}
	if h.Typeflag == tar.TypeReg {
		io.WriteString(tw, file.content)
	}
	tw.Close()
	return io.NopCloser(&buf), nil
}

// answer is a RunContainer that prints stdout for every command.
func answer(stdout string, exit int) func(engine.ContainerSpec, int) (engine.Run, error) {
	return func(engine.ContainerSpec, int) (engine.Run, error) {
		return engine.Run{Stdout: []byte(stdout), ExitCode: exit}, nil
	}
}

func TestRunCommandTest(t *testing.T) {
	t.Parallel()
	d := &fake{
		cfg: engine.ImageConfig{Env: []string{"PATH=/usr/bin:/bin", "HOME=/root"}, Entrypoint: []string{"/entrypoint.sh"}},
		run: answer("/opt/ci/bin:/usr/bin:/bin\n", 0),
	}
	f := &File{
		Path:          "ci.yaml",
		GlobalEnvVars: []KeyValue{{Key: "CI_HOME", Value: "/opt/ci"}, {Key: "PATH", Value: "/opt/ci/bin:$PATH"}},
		CommandTests: []CommandTest{{
			Name:           "path",
			EnvVars:        []KeyValue{{Key: "CACHE", Value: "$HOME/.cache"}},
			Command:        "echo",
			Args:           []string{"$PATH", "${CACHE}", "$CI_HOME"},
			ExpectedOutput: []string{"^/opt/ci/bin:"},
		}},
	}
	results, err := Run(context.Background(), d, "img:1", []*File{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{{File: "ci.yaml", Name: "path", Kind: KindCommand, Passed: true, Attempts: 1, Output: "/opt/ci/bin:/usr/bin:/bin\n"}}
	results[0].Duration = 0
	if !reflect.DeepEqual(results, want) {
		t.Errorf("results = %+v, want %+v", results, want)
	}
	spec := d.specs[0]
	if spec.Image != "img:1" || spec.Network || spec.Commit {
		t.Errorf("spec = %+v: want the image, no network, no commit", spec)
	}
	// As container-structure-test's docker driver: the arguments are
	// expanded against the image's env with the file's globalEnvVars, not
	// the test's envVars, which the command gets as written.
	if want := []string{"echo", "/opt/ci/bin:/usr/bin:/bin", "", "/opt/ci"}; !reflect.DeepEqual(spec.Cmd, want) {
		t.Errorf("command %q, want %q (arguments expanded against the image's env with the file's vars)", spec.Cmd, want)
	}
	if want := []string{"CI_HOME=/opt/ci", "PATH=/opt/ci/bin:/usr/bin:/bin", "CACHE=$HOME/.cache"}; !reflect.DeepEqual(spec.Env, want) {
		t.Errorf("env %q, want %q", spec.Env, want)
	}
	if spec.Timeout <= DefaultTimeout-time.Second || spec.Timeout > DefaultTimeout {
		t.Errorf("timeout %s, want about %s", spec.Timeout, DefaultTimeout)
	}
}

func TestRunCommandTestFails(t *testing.T) {
	t.Parallel()
	d := &fake{run: func(spec engine.ContainerSpec, _ int) (engine.Run, error) {
		return engine.Run{Stdout: []byte("Python 2.7\n"), Stderr: []byte("Traceback\n"), ExitCode: 1}, nil
	}}
	f := &File{Path: "f", CommandTests: []CommandTest{{Name: "py", Command: "python", ExpectedOutput: []string{"Python 3"}, Network: true}}}
	results, err := Run(context.Background(), d, "img", []*File{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	want := []string{"Expected string 'Python 3' not found in output", "Test 'py' exited with incorrect error code. Expected: 0, Actual: 1"}
	if r.Passed || !reflect.DeepEqual(r.Errors, want) {
		t.Errorf("result %+v, want failed with %q", r, want)
	}
	if r.Output != "Python 2.7\n--- stderr ---\nTraceback\n" {
		t.Errorf("output %q", r.Output)
	}
	if !d.specs[0].Network {
		t.Error("network: true did not give the container a network")
	}
}

// A key set by both globalEnvVars and a test's envVars: the command gets
// the test's value as written, once; its arguments see the global one.
func TestRunEnvOverride(t *testing.T) {
	t.Parallel()
	d := &fake{cfg: engine.ImageConfig{Env: []string{"HOME=/root"}}, run: answer("", 0)}
	f := &File{
		Path:          "f",
		GlobalEnvVars: []KeyValue{{Key: "A", Value: "global"}, {Key: "B", Value: "$HOME/b"}},
		CommandTests: []CommandTest{{
			Name: "override", Command: "echo", Args: []string{"$A", "$B"},
			EnvVars: []KeyValue{{Key: "A", Value: "$HOME/test"}},
		}},
	}
	if _, err := Run(context.Background(), d, "img", []*File{f}, Options{}); err != nil {
		t.Fatal(err)
	}
	spec := d.specs[0]
	if want := []string{"B=/root/b", "A=$HOME/test"}; !reflect.DeepEqual(spec.Env, want) {
		t.Errorf("env %q, want %q", spec.Env, want)
	}
	if want := []string{"echo", "global", "/root/b"}; !reflect.DeepEqual(spec.Cmd, want) {
		t.Errorf("command %q, want %q", spec.Cmd, want)
	}
}

func TestRunSetup(t *testing.T) {
	t.Parallel()
	d := &fake{run: func(spec engine.ContainerSpec, call int) (engine.Run, error) {
		if call == 1 {
			return engine.Run{ExitCode: 3}, nil // a failing setup command does not fail the test
		}
		return engine.Run{}, nil
	}}
	d.cfg = engine.ImageConfig{Env: []string{"HOME=/root"}}
	f := &File{Path: "f", CommandTests: []CommandTest{{
		Name:     "with setup",
		Setup:    [][]string{{"sh", "-c", "echo $HOME > /tmp/a"}, {"touch", "/tmp/b"}},
		Teardown: [][]string{{"rm", "/tmp/b"}},
		EnvVars:  []KeyValue{{Key: "DIR", Value: "$HOME/d"}},
		Command:  "cat",
		Args:     []string{"/tmp/a", "$DIR"},
	}}}
	results, err := Run(context.Background(), d, "img", []*File{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !results[0].Passed || results[0].Output != "setup [\"sh\" \"-c\" \"echo $HOME > /tmp/a\"] exited 3\n" {
		t.Errorf("result %+v", results[0])
	}
	var images [][2]string
	for _, s := range d.specs {
		images = append(images, [2]string{s.Image, strings.Join(s.Cmd, " ")})
	}
	want := [][2]string{
		{"img", "sh -c echo $HOME > /tmp/a"}, // setup commands are not expanded
		{"sha256:committed1", "touch /tmp/b"},
		{"sha256:committed2", "cat /tmp/a /root/d"}, // after a setup, the commit's envVars count
	}
	if !reflect.DeepEqual(images, want) {
		t.Errorf("ran %q, want %q (each setup committed as the next one's image; teardown not run)", images, want)
	}
	for i, want := range []string{"DIR=/root/d", "DIR=/root/d", "DIR=$HOME/d"} {
		if got := d.specs[i].Env; !reflect.DeepEqual(got, []string{want}) {
			t.Errorf("container %d env %q, want [%s] (setups expanded, the command as written)", i, got, want)
		}
	}
	if !d.specs[0].Commit || !d.specs[1].Commit || d.specs[2].Commit {
		t.Error("only setup containers are committed")
	}
	if want := []string{"sha256:committed2", "sha256:committed1"}; !reflect.DeepEqual(d.removedImages, want) {
		t.Errorf("removed images %q, want %q", d.removedImages, want)
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	timedOut := func(spec engine.ContainerSpec, _ int) (engine.Run, error) {
		return engine.Run{TimedOut: true, ExitCode: 137, Stdout: []byte("waiting\n")}, nil
	}
	d := &fake{run: timedOut}
	f := &File{Path: "f", CommandTests: []CommandTest{
		{Name: "own timeout", Command: "sleep", Args: []string{"600"}, Timeout: 5 * time.Second},
		{Name: "default timeout", Command: "sleep", Args: []string{"600"}},
		{Name: "setup hangs", Setup: [][]string{{"sleep", "600"}}, Command: "true"},
	}}
	results, err := Run(context.Background(), d, "img", []*File{f}, Options{Timeout: 2 * time.Second, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"timed out after 5s", "timed out after 2s", `setup ["sleep" "600"] timed out after 2s`} {
		if r := results[i]; r.Passed || !reflect.DeepEqual(r.Errors, []string{want}) || r.Output != "waiting\n" {
			t.Errorf("%s: %+v, want failed with %q", r.Name, r, want)
		}
	}
	for i, max := range []time.Duration{5 * time.Second, 2 * time.Second} {
		if got := d.specs[i].Timeout; got > max || got < max-time.Second {
			t.Errorf("test %d ran with timeout %s, want about %s", i+1, got, max)
		}
	}
	if len(d.specs) != 3 {
		t.Errorf("%d containers run; a timed-out setup must end its test", len(d.specs))
	}
	if len(d.removedImages) != 0 || len(d.committed) != 0 {
		t.Errorf("a timed-out setup is not committed: committed %q", d.committed)
	}
}

// An engine that fails during a retry leaves the test without a verdict:
// the retry might have passed.
func TestRunEngineFailsDuringRetry(t *testing.T) {
	t.Parallel()
	d := &fake{run: func(spec engine.ContainerSpec, call int) (engine.Run, error) {
		if call == 1 {
			return engine.Run{ExitCode: 1}, nil
		}
		return engine.Run{}, fmt.Errorf("create: %w", engine.ErrUnavailable)
	}}
	test := []CommandTest{{Name: "flaky", Command: "check"}}
	results, err := Run(context.Background(), d, "img", []*File{{Path: "f", CommandTests: test}}, Options{Retries: 2})
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Run = %v, want the engine's failure", err)
	}
	got := results[0]
	if got.Passed || len(got.Errors) == 0 || !strings.HasPrefix(got.Errors[len(got.Errors)-1], "no verdict: the run stopped") {
		t.Errorf("result %+v, want no verdict", got)
	}
}

func TestRunRetries(t *testing.T) {
	t.Parallel()
	flaky := func(spec engine.ContainerSpec, call int) (engine.Run, error) {
		if call == 1 {
			return engine.Run{ExitCode: 1, Stderr: []byte("connection reset\n")}, nil
		}
		return engine.Run{Stdout: []byte("ok\n")}, nil
	}
	test := []CommandTest{{Name: "flaky", Command: "check"}}
	for _, tc := range []struct {
		name     string
		run      func(engine.ContainerSpec, int) (engine.Run, error)
		retries  int
		want     Result
		attempts int
	}{
		{"flaky without retries fails", flaky, 0,
			Result{Attempts: 1, Output: "--- stderr ---\nconnection reset\n", Errors: []string{"Test 'flaky' exited with incorrect error code. Expected: 0, Actual: 1"}}, 1},
		{"flaky passes on a retry", flaky, 2,
			Result{Passed: true, Flaky: true, Attempts: 2, Output: "ok\n", Errors: []string{"attempt 1: Test 'flaky' exited with incorrect error code. Expected: 0, Actual: 1"}}, 2},
		{"steady failure uses every retry", answer("", 2), 2,
			Result{Attempts: 3, Errors: []string{"Test 'flaky' exited with incorrect error code. Expected: 0, Actual: 2"}}, 3},
		{"a pass is not retried", answer("", 0), 2,
			Result{Passed: true, Attempts: 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &fake{run: tc.run}
			results, err := Run(context.Background(), d, "img", []*File{{Path: "f", CommandTests: test}}, Options{Retries: tc.retries})
			if err != nil {
				t.Fatal(err)
			}
			got := results[0]
			got.Duration = 0
			tc.want.File, tc.want.Name, tc.want.Kind = "f", "flaky", KindCommand
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("result\n%+v\nwant\n%+v", got, tc.want)
			}
			if len(d.specs) != tc.attempts {
				t.Errorf("%d runs, want %d", len(d.specs), tc.attempts)
			}
		})
	}
}

func TestRunParallel(t *testing.T) {
	t.Parallel()
	for _, parallel := range []int{1, 3} {
		t.Run(fmt.Sprint(parallel), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			running, most := 0, 0
			full := make(chan struct{})
			d := &fake{run: func(engine.ContainerSpec, int) (engine.Run, error) {
				mu.Lock()
				running++
				most = max(most, running)
				if running == parallel {
					close(full)
				}
				mu.Unlock()
				// Hold until as many run as may, so the count is exact.
				select {
				case <-full:
				case <-time.After(5 * time.Second):
				}
				mu.Lock()
				running--
				mu.Unlock()
				return engine.Run{}, nil
			}}
			var tests []CommandTest
			for i := range parallel {
				tests = append(tests, CommandTest{Name: fmt.Sprint(i), Command: "true"})
			}
			results, err := Run(context.Background(), d, "img", []*File{{Path: "f", CommandTests: tests}}, Options{Parallel: parallel})
			if err != nil {
				t.Fatal(err)
			}
			if most != parallel {
				t.Errorf("at most %d ran at once, want %d", most, parallel)
			}
			for i, r := range results {
				if r.Name != fmt.Sprint(i) || !r.Passed {
					t.Errorf("result %d: %+v: results keep the file's order", i, r)
				}
			}
		})
	}
}

func TestRunInfrastructureFailure(t *testing.T) {
	t.Parallel()
	gone := fmt.Errorf("%w: Cannot connect to the Docker daemon", engine.ErrUnavailable)
	tests := []*File{{Path: "f", CommandTests: []CommandTest{{Name: "a", Command: "true"}, {Name: "b", Command: "true"}}}}

	d := &fake{run: func(engine.ContainerSpec, int) (engine.Run, error) { return engine.Run{}, gone }}
	if _, err := Run(context.Background(), d, "img", tests, Options{}); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("engine gone mid-run: err = %v, want ErrUnavailable", err)
	}

	d = &fake{cfgErr: fmt.Errorf("inspect image img: %w", engine.ErrNotFound)}
	if _, err := Run(context.Background(), d, "img", tests, Options{}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("missing image: err = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	d = &fake{run: func(engine.ContainerSpec, int) (engine.Run, error) { cancel(); return engine.Run{}, context.Canceled }}
	if _, err := Run(ctx, d, "img", tests, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}

	// An error that is the test's own (the command does not exist) fails
	// the test, not the run.
	d = &fake{run: func(engine.ContainerSpec, int) (engine.Run, error) {
		return engine.Run{}, errors.New(`start [nope]: exec: "nope": executable file not found in $PATH`)
	}}
	results, err := Run(context.Background(), d, "img", tests, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := results[0]; r.Passed || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "executable file not found") {
		t.Errorf("result %+v", r)
	}
}

func TestRunFileTests(t *testing.T) {
	t.Parallel()
	reg := func(mode int64, content string) fakeFile {
		return fakeFile{h: tar.Header{Typeflag: tar.TypeReg, Mode: mode}, content: content}
	}
	link := func(target string) fakeFile {
		return fakeFile{h: tar.Header{Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
	}
	d := &fake{
		cfg: engine.ImageConfig{Env: []string{"PATH=/bin"}},
		files: map[string]fakeFile{
			"/bin/busybox":           reg(0o755, ""),
			"/bin/sh":                link("busybox"),
			"/etc/os-release":        link("../usr/lib/os-release"),
			"/usr/lib/os-release":    reg(0o644, "ID=debian\nVERSION_ID=\"12\"\n"),
			"/etc/alternatives/ci":   link("/opt/ci/etc/ci.conf"),
			"/opt/ci/etc/ci.conf":    reg(0o640, "mode=nightly\n"),
			"/etc":                   {h: tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}},
			"/run/initctl":           {h: tar.Header{Typeflag: tar.TypeFifo, Mode: 0o600}},
			"/loop/a":                link("b"),
			"/loop/b":                link("a"),
			"/opt/ci/bin/nightshift": reg(0o4750, ""),
		},
	}
	first := &File{
		Path:          "first.yaml",
		GlobalEnvVars: []KeyValue{{Key: "CI_HOME", Value: "/opt/ci"}},
		FileExistenceTests: []FileExistenceTest{
			{Name: "busybox", Path: "/bin/busybox", ShouldExist: true, Permissions: "-rwxr-xr-x", UID: 0, GID: 0, IsExecutableBy: "other"},
			{Name: "sh is a link", Path: "/bin/sh", ShouldExist: true, Permissions: "Lrwxrwxrwx", UID: Unset, GID: Unset},
			{Name: "setuid under $CI_HOME", Path: "$CI_HOME/bin/nightshift", ShouldExist: true, Permissions: "urwxr-x---", UID: Unset, GID: Unset},
			{Name: "no python", Path: "/usr/bin/python", ShouldExist: false, UID: Unset, GID: Unset},
			{Name: "python wanted", Path: "/usr/bin/python", ShouldExist: true, UID: Unset, GID: Unset},
			{Name: "a fifo does not count", Path: "/run/initctl", ShouldExist: false, UID: Unset, GID: Unset},
		},
	}
	second := &File{
		Path: "second.yaml",
		FileContentTests: []FileContentTest{
			{Name: "relative link", Path: "/etc/os-release", ExpectedContents: []string{"ID=debian"}, ExcludedContents: []string{"ubuntu"}},
			{Name: "absolute link", Path: "/etc/alternatives/ci", ExpectedContents: []string{`^mode=nightly\n$`}},
			{Name: "directory", Path: "/etc", ExpectedContents: []string{"x"}},
			{Name: "missing", Path: "/etc/missing"},
			{Name: "link loop", Path: "/loop/a"},
		},
		MetadataTest: MetadataTest{EnvVars: []KeyValue{{Key: "PATH", Value: "/bin"}}},
	}
	results, err := Run(context.Background(), d, "img", []*File{first, second}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type verdict struct {
		kind, name string
		errors     []string
	}
	var got []verdict
	for _, r := range results {
		if r.Passed != (len(r.Errors) == 0) || r.Attempts != 1 {
			t.Errorf("%s: passed %v with errors %q, %d attempts", r.Name, r.Passed, r.Errors, r.Attempts)
		}
		got = append(got, verdict{r.Kind, r.Name, r.Errors})
	}
	want := []verdict{
		{KindFileExistence, "busybox", nil},
		{KindFileExistence, "sh is a link", nil},
		{KindFileExistence, "setuid under $CI_HOME", nil},
		{KindFileExistence, "no python", nil},
		{KindFileExistence, "python wanted", []string{"Error examining file in container: /usr/bin/python: not found: Could not find the file /usr/bin/python in container container1"}},
		{KindFileExistence, "a fifo does not count", nil},
		{KindFileContent, "relative link", nil},
		{KindFileContent, "absolute link", nil},
		{KindFileContent, "directory", []string{"Failed to open /etc. Error: cannot read /etc: it is a directory, not a file"}},
		{KindFileContent, "missing", []string{"Failed to open /etc/missing. Error: /etc/missing: not found: Could not find the file /etc/missing in container container1"}},
		{KindFileContent, "link loop", []string{"Failed to open /loop/a. Error: /loop/a: too many levels of symbolic links"}},
		{KindMetadata, "Metadata Test", nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("verdicts:\n%q\nwant\n%q", got, want)
	}
	if len(d.created) != 1 || !reflect.DeepEqual(d.removed, d.created) || d.copiesFromOther != 0 || len(d.specs) != 0 {
		t.Errorf("created %q, removed %q, %d copies from elsewhere, %d started: want one container, never started, read and removed",
			d.created, d.removed, d.copiesFromOther, len(d.specs))
	}
	if spec := d.containerSpecs[0]; spec.Network || spec.Image != "img" {
		t.Errorf("file test container %+v", spec)
	}
}

func TestRunOutputExcerpt(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 3000) + "THE END\n" // 2-byte characters, cut at a boundary
	d := &fake{run: func(engine.ContainerSpec, int) (engine.Run, error) {
		return engine.Run{Stdout: []byte(long), Stderr: []byte(long), Truncated: true}, nil
	}}
	results, err := Run(context.Background(), d, "img", []*File{{Path: "f", CommandTests: []CommandTest{{Name: "loud", Command: "yes"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := results[0].Output
	if len(out) > 2*ExcerptSize+100 || strings.Count(out, "THE END") != 2 || !strings.Contains(out, "--- stderr ---") ||
		!strings.Contains(out, "output past 16 MiB was dropped") || strings.ContainsRune(out, '\uFFFD') {
		t.Errorf("output (%d bytes) = %q", len(out), out)
	}
}

func TestRunNothing(t *testing.T) {
	t.Parallel()
	d := &fake{}
	results, err := Run(context.Background(), d, "img", []*File{{Path: "empty"}}, Options{})
	if err != nil || len(results) != 0 || len(d.created) != 0 || len(d.specs) != 0 {
		t.Errorf("a file with no tests: %v, %v; created %q", results, err, d.created)
	}
}

// TestRunKeepsFinishedResults checks that a run the engine stops midway
// still reports what it found: the tests that finished keep their
// verdicts, the others are failed and say why they have none. A container
// the engine could not remove stops the run as the engine going away does.
func TestRunKeepsFinishedResults(t *testing.T) {
	t.Parallel()
	for _, stop := range []error{
		fmt.Errorf("%w: Cannot connect to the Docker daemon", engine.ErrUnavailable),
		fmt.Errorf("%w: remove container 0123456789ab: driver is busy", engine.ErrLeftBehind),
	} {
		t.Run(stop.Error(), func(t *testing.T) {
			t.Parallel()
			f := &File{
				Path: "ci.yaml",
				CommandTests: []CommandTest{
					{Name: "one", Command: "true"}, {Name: "two", Command: "false"},
					{Name: "three", Command: "true"}, {Name: "four", Command: "true"},
				},
				FileExistenceTests: []FileExistenceTest{{Name: "etc", Path: "/etc", ShouldExist: true, UID: Unset, GID: Unset}},
				MetadataTest:       MetadataTest{Workdir: "/work"},
			}
			d := &fake{
				cfg:   engine.ImageConfig{WorkingDir: "/work"},
				files: map[string]fakeFile{"/etc": {h: tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}}},
				run: func(spec engine.ContainerSpec, call int) (engine.Run, error) {
					switch call {
					case 2:
						return engine.Run{ExitCode: 1}, nil
					case 3:
						return engine.Run{}, stop
					}
					return engine.Run{}, nil
				},
			}
			results, err := Run(context.Background(), d, "img", []*File{f}, Options{Parallel: 1})
			if !errors.Is(err, stop) {
				t.Fatalf("err = %v, want %v", err, stop)
			}
			want := map[string]struct {
				passed bool
				err    string
			}{
				"one":           {true, ""},
				"two":           {false, "exited with incorrect error code"},
				"three":         {false, "no verdict: the run stopped: " + stop.Error()},
				"four":          {false, "no verdict: the run stopped: " + stop.Error()},
				"Metadata Test": {true, ""},
			}
			if len(results) != 6 {
				t.Fatalf("%d results, want all 6: %+v", len(results), results)
			}
			for _, r := range results {
				w, ok := want[r.Name]
				if !ok {
					continue // the file test: it may or may not have finished
				}
				if r.Passed != w.passed || (w.err == "") != (len(r.Errors) == 0) || (w.err != "" && !strings.Contains(r.Errors[0], w.err)) {
					t.Errorf("%s: passed %v, errors %q; want passed %v, an error with %q", r.Name, r.Passed, r.Errors, w.passed, w.err)
				}
			}
		})
	}
}

// TestRunUnsupportedSections checks that licenseTests and containerRunOptions,
// which nightshift reads but does not carry out, fail the tests they
// concern and nothing else.
func TestRunUnsupportedSections(t *testing.T) {
	t.Parallel()
	d := &fake{
		run:   answer("", 0),
		files: map[string]fakeFile{"/etc": {h: tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}}},
	}
	withOptions := &File{
		Path:               "opts.yaml",
		RunOptions:         RunOptions{Privileged: true, BindMounts: []string{"/srv:/srv"}},
		CommandTests:       []CommandTest{{Name: "privileged command", Command: "true"}},
		FileExistenceTests: []FileExistenceTest{{Name: "etc", Path: "/etc", ShouldExist: true, UID: Unset, GID: Unset}},
		LicenseTests:       []LicenseTest{{Debian: true}},
	}
	plain := &File{Path: "plain.yaml", CommandTests: []CommandTest{{Name: "plain command", Command: "true"}}}
	results, err := Run(context.Background(), d, "img", []*File{withOptions, plain}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range results {
		got = append(got, fmt.Sprintf("%s %s %s passed=%v %q", r.File, r.Kind, r.Name, r.Passed, r.Errors))
	}
	want := []string{
		`opts.yaml command privileged command passed=false ["containerRunOptions (privileged, bindMounts) are not applied by nightshift, so this test would not run as container-structure-test runs it: remove them, or run this file with container-structure-test"]`,
		`opts.yaml fileExistence etc passed=true []`,
		`opts.yaml license License Test 1 passed=false ["licenseTests are not run by nightshift: check licenses with container-structure-test, or remove them"]`,
		`plain.yaml command plain command passed=true []`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(d.specs) != 1 || d.specs[0].Cmd[0] != "true" {
		t.Errorf("containers run: %+v; want only the plain file's command", d.specs)
	}
}

// TestRunSchema1 runs a file of schema 1.0.0 as container-structure-test
// does: no globalEnvVars committed first, so they reach a command test
// only through its setup (with its envVars, both expanded against the
// image's env), and no path of a file test is expanded.
func TestRunSchema1(t *testing.T) {
	t.Parallel()
	d := &fake{cfg: engine.ImageConfig{Env: []string{"HOME=/root"}}, run: answer("", 0)}
	f := &File{
		Path: "v1.yaml", SchemaVersion: "1.0.0",
		GlobalEnvVars: []KeyValue{{Key: "G", Value: "$HOME/g"}},
		CommandTests: []CommandTest{
			{Name: "no setup", EnvVars: []KeyValue{{Key: "T", Value: "$HOME/t"}}, Command: "echo", Args: []string{"$G", "$T", "$HOME"}},
			{Name: "setup", Setup: [][]string{{"true"}}, EnvVars: []KeyValue{{Key: "T", Value: "$G/t"}}, Command: "echo", Args: []string{"$G", "$T"}},
		},
		FileExistenceTests: []FileExistenceTest{{Name: "home", Path: "$HOME", ShouldExist: true, UID: Unset, GID: Unset}},
	}
	results, err := Run(context.Background(), d, "img", []*File{f}, Options{Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, s := range d.specs {
		ran = append(ran, fmt.Sprintf("%s %q env %q", s.Image, s.Cmd, s.Env))
	}
	want := []string{
		`img ["echo" "" "" "/root"] env ["T=$HOME/t"]`,
		`img ["true"] env ["G=/root/g" "T=/t"]`,
		`sha256:committed1 ["echo" "/root/g" "/t"] env ["T=$G/t"]`,
	}
	if !reflect.DeepEqual(ran, want) {
		t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(ran, "\n"), strings.Join(want, "\n"))
	}
	if r := results[2]; r.Passed || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "$HOME: not found") {
		t.Errorf("file existence test %+v: want its path read as written", r)
	}
}

// TestRunContentPathAsWritten reads a content test's path as written, as
// the tool does, where an existence test's is expanded.
func TestRunContentPathAsWritten(t *testing.T) {
	t.Parallel()
	d := &fake{files: map[string]fakeFile{
		"/etc/ci/release": {h: tar.Header{Typeflag: tar.TypeReg, Mode: 0o644}, content: "ID=ci\n"},
		"$CI_ETC/release": {h: tar.Header{Typeflag: tar.TypeReg, Mode: 0o644}, content: "ID=dollar\n"},
	}}
	f := &File{
		Path:               "f.yaml",
		GlobalEnvVars:      []KeyValue{{Key: "CI_ETC", Value: "/etc/ci"}},
		FileExistenceTests: []FileExistenceTest{{Name: "expanded", Path: "$CI_ETC/release", ShouldExist: true, Permissions: "-rw-r--r--", UID: Unset, GID: Unset}},
		FileContentTests:   []FileContentTest{{Name: "as written", Path: "$CI_ETC/release", ExpectedContents: []string{"ID=dollar"}}},
	}
	results, err := Run(context.Background(), d, "img", []*File{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s: %q", r.Name, r.Errors)
		}
	}
}

// TestRunOutputCut judges a command whose output went past the limit:
// what the kept part cannot tell fails the test, saying so.
func TestRunOutputCut(t *testing.T) {
	t.Parallel()
	d := &fake{run: func(spec engine.ContainerSpec, _ int) (engine.Run, error) {
		out := []byte("0123456789")
		return engine.Run{Stdout: out[:spec.OutputLimit], Stderr: []byte("warn\n"), Truncated: true}, nil
	}}
	f := &File{Path: "f", CommandTests: []CommandTest{{
		Name: "loud", Command: "seq",
		ExpectedOutput: []string{"^0123", "789"}, ExcludedOutput: []string{"1"},
		ExpectedError: []string{"^warn\n$"}, // stderr is shorter than the limit: whole
	}}}
	results, err := Run(context.Background(), d, "img", []*File{f}, Options{outputLimit: 8})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cannot tell whether '789' is in output: nightshift keeps its first 8 bytes, and there was more (container-structure-test would search all of it)",
		"Excluded string '1' found in output",
	}
	if r := results[0]; r.Passed || !reflect.DeepEqual(r.Errors, want) {
		t.Errorf("result %+v, want errors %q", r, want)
	}
	if d.specs[0].OutputLimit != 8 {
		t.Errorf("output limit %d, want the run's", d.specs[0].OutputLimit)
	}
}

// TestRunContentStreamed judges a file larger than what is read into
// memory as one that is not.
func TestRunContentStreamed(t *testing.T) {
	t.Parallel()
	content := strings.Repeat("line of text\n", 100) + "ID=debian\nEND\n"
	d := &fake{files: map[string]fakeFile{"/etc/os-release": {h: tar.Header{Typeflag: tar.TypeReg, Mode: 0o644}, content: content}}}
	test := FileContentTest{Name: "release", Path: "/etc/os-release",
		ExpectedContents: []string{"(?m)^ID=debian$", `END\n$`, "^line", "Ubuntu"},
		ExcludedContents: []string{"ubuntu", "text", "(unclosed"},
	}
	f := &File{Path: "f", FileContentTests: []FileContentTest{test}}
	var verdicts [][]string
	for _, inMemory := range []int64{int64(len(content)), int64(len(content)) - 1, 1} {
		results, err := Run(context.Background(), d, "img", []*File{f}, Options{inMemory: inMemory})
		if err != nil {
			t.Fatal(err)
		}
		verdicts = append(verdicts, results[0].Errors)
	}
	want := []string{
		"Expected string 'Ubuntu' not found in file content",
		"Excluded string 'text' found in file content",
		"invalid regular expression '(unclosed': error parsing regexp: missing closing ): `(unclosed`",
	}
	for i, got := range verdicts {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("run %d (in memory, then streamed): %q, want %q", i+1, got, want)
		}
	}
}

// TestMatchStream searches a stream with many patterns at once, some of
// which match at once (and must not hold up the others), and reports a
// failed read.
func TestMatchStream(t *testing.T) {
	t.Parallel()
	var res []*regexp.Regexp
	for _, p := range []string{"^a", "b", `z\n$`, "(?m)^z$", "nope", ""} {
		res = append(res, regexp.MustCompile(p))
	}
	text := "a" + strings.Repeat("b", 1<<17) + "\nz\n"
	found, err := matchStream(strings.NewReader(text), res)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"^a": true, "b": true, `z\n$`: true, "(?m)^z$": true, "nope": false, "": true}
	if !reflect.DeepEqual(found, want) {
		t.Errorf("found %v, want %v", found, want)
	}
	broken := errors.New("connection reset")
	_, err = matchStream(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(broken)), res)
	if !errors.Is(err, broken) {
		t.Errorf("a failed read: %v, want it", err)
	}
}
