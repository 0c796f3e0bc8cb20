package structure

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"nightshift/engine"
	"nightshift/internal/testenv"
	"nightshift/problem"
)

// The engine-backed tests share one private dockerd, started by the first
// of them and stopped by TestMain.
var private struct {
	once  sync.Once
	proc  *testenv.Process
	dir   string
	eng   *engine.Engine
	image string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if private.eng != nil {
		private.eng.Close()
	}
	private.proc.Stop()
	if private.dir != "" {
		os.RemoveAll(private.dir)
	}
	os.Exit(code)
}

// testImage is a busybox image with files, links and metadata for the
// tests to look at. Its entrypoint fails: command tests must not use it.
const testImage = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc/ci /work /cache \
 && echo ID=nightshift > /etc/ci/release && ln -s ci/release /etc/os-release \
 && touch /bin/suid && chmod 4755 /bin/suid \
 && touch /etc/ci/owned && chown 1000:50 /etc/ci/owned && chmod 640 /etc/ci/owned \
 && head -c 100000 /dev/zero | tr '\0' x > /big && echo END >> /big
ENV CI_HOME=/opt/ci LANG=C.UTF-8
LABEL org.nightshift.test=yes
WORKDIR /work
EXPOSE 8080 53/udp
VOLUME /cache
ENTRYPOINT ["/bin/false"]
CMD ["sh"]
`

// privateEngine returns the engine and the test image's ref.
func privateEngine(t *testing.T) (*engine.Engine, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("engine test; -short given")
	}
	testenv.Require(t)
	private.once.Do(func() { private.err = startEngine() })
	if private.err != nil {
		t.Fatalf("starting a private engine: %v", private.err)
	}
	return private.eng, private.image
}

func startEngine() error {
	dir, err := os.MkdirTemp("", "ns-st-")
	if err != nil {
		return err
	}
	private.dir = dir
	if private.proc, err = testenv.StartDockerd(filepath.Join(dir, "d")); err != nil {
		return err
	}
	// Set once, before any engine test connects; engine.Connect reads it.
	os.Setenv("DOCKER_HOST", private.proc.Addr)
	ctx := context.Background()
	if private.eng, err = engine.Connect(ctx, 10*time.Second); err != nil {
		return err
	}
	build := filepath.Join(dir, "build")
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(build, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(build, "busybox"), bb, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(build, "Dockerfile"), []byte(testImage), 0o644); err != nil {
		return err
	}
	private.image = "nightshift-structure-test:1"
	var log bytes.Buffer
	if _, err := private.eng.Build(ctx, engine.BuildSpec{Context: build, Dockerfile: filepath.Join(build, "Dockerfile"), Tags: []string{private.image}}, &log); err != nil {
		return errors.Join(err, errors.New(log.String()))
	}
	return nil
}

// leftovers lists the containers (all of them), with the volumes, and the
// images the engine holds.
func leftovers(t *testing.T) (containers, images []string) {
	t.Helper()
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range cs.Items {
		containers = append(containers, x.ID[:12]+" "+x.Image+" "+x.Command)
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Items {
		containers = append(containers, "volume "+v.Name)
	}
	is, err := c.ImageList(ctx, client.ImageListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range is.Items {
		images = append(images, x.ID)
	}
	slices.Sort(images)
	return containers, images
}

const engineTests = `schemaVersion: "2.0.0"
globalEnvVars:
  - key: GREETING
    value: hello from $CI_HOME
  - key: CI_ETC
    value: /etc/ci
commandTests:
  - name: echo
    command: echo
    args: ["$GREETING"]
    expectedOutput: ["^hello from /opt/ci\n$"]
  - name: stdout and stderr apart
    command: sh
    args: ["-c", "echo out; echo err >&2; exit 3"]
    exitCode: 3
    expectedOutput: ["^out\n$"]
    expectedError: ["^err\n$"]
    excludedOutput: ["err"]
  - name: workdir
    command: pwd
    expectedOutput: ["^/work\n$"]
  - name: environment
    envVars:
      - key: MODE
        value: $LANG-nightly
    command: env
    expectedOutput: ["(?m)^MODE=\\$LANG-nightly$", "(?m)^GREETING=hello from /opt/ci$", "(?m)^CI_HOME=/opt/ci$"]
  - name: arguments see the image's environment, not the envVars
    envVars: [{key: MODE, value: nightly}]
    command: echo
    args: ["[$MODE]", "$LANG"]
    expectedOutput: ["^\\[\\] C.UTF-8\n$"]
  - name: after a setup, arguments see the envVars it committed, expanded
    envVars: [{key: MODE, value: $LANG-nightly}]
    setup: [["true"]]
    command: echo
    args: ["$MODE"]
    expectedOutput: ["^C.UTF-8-nightly\n$"]
  - name: no network
    command: ls
    args: ["/sys/class/net"]
    expectedOutput: ["^lo\n$"]
  - name: setup visible
    setup:
      - ["sh", "-c", "echo prepared > /work/state"]
      - ["sh", "-c", "echo again >> /work/state; exit 4"]
    command: cat
    args: ["/work/state"]
    expectedOutput: ["^prepared\nagain\n$"]
  - name: fails
    command: sh
    args: ["-c", "echo nope"]
    expectedOutput: ["^yes"]
  - name: hangs
    command: sleep
    args: ["600"]
    timeout: 2s
  - name: no such command
    command: /no/such/binary
fileExistenceTests:
  - {name: busybox, path: /bin/busybox, permissions: "-rwxr-xr-x", uid: 0, gid: 0, isExecutableBy: any}
  - {name: sh is a symlink, path: /bin/sh, permissions: Lrwxrwxrwx}
  - {name: setuid, path: /bin/suid, permissions: urwxr-xr-x}
  - {name: owned, path: /etc/ci/owned, uid: 1000, gid: 50, permissions: "-rw-r-----", isExecutableBy: any}
  - {name: directory, path: /etc/ci, permissions: drwxr-xr-x}
  - {name: absent, path: /usr/bin/python3, shouldExist: false}
  - {name: expanded path, path: "${CI_ETC}/release", permissions: "-rw-r--r--"}
fileContentTests:
  - {name: through a relative link, path: /etc/os-release, expectedContents: ["^ID=nightshift\n$"]}
  - {name: a directory, path: /etc/ci, expectedContents: ["x"]}
metadataTest:
  envVars:
    - {key: LANG, value: C.UTF-8}
    - {key: CI_HOME, value: "^/opt/", isRegex: true}
  unboundEnvVars: [{key: GREETING}]
  labels: [{key: org.nightshift.test, value: "yes"}]
  entrypoint: ["/bin/false"]
  cmd: ["sh"]
  workdir: /work
  exposedPorts: ["8080", "8080/tcp"]
  unexposedPorts: ["22"]
  volumes: ["/cache"]
  unmountedVolumes: ["/work"]
`

func TestEngineRun(t *testing.T) {
	eng, image := privateEngine(t)
	path := filepath.Join(t.TempDir(), "ci.yaml")
	if err := os.WriteFile(path, []byte(engineTests), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, imagesBefore := leftovers(t)

	start := time.Now()
	results, err := Run(context.Background(), eng, image, []*File{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	failing := map[string][]string{
		"fails":       {"Expected string '^yes' not found in output"},
		"hangs":       {"timed out after 2s"},
		"owned":       {"/etc/ci/owned has incorrect executable bit. Expected to be executable by any, Actual: -rw-r-----"},
		"a directory": {"Failed to open /etc/ci. Error: cannot read /etc/ci: it is a directory, not a file"},
	}
	for _, r := range results {
		t.Logf("%-13s %-26s passed=%-5v %s %q", r.Kind, r.Name, r.Passed, r.Duration.Round(time.Millisecond), r.Errors)
		want, fails := failing[r.Name]
		switch {
		case r.Name == "no such command":
			if r.Passed || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "/no/such/binary") {
				t.Errorf("%s: %+v, want one error from the engine", r.Name, r)
			}
		case fails:
			if r.Passed || !reflect.DeepEqual(r.Errors, want) {
				t.Errorf("%s: passed %v, errors %q; want %q", r.Name, r.Passed, r.Errors, want)
			}
		case !r.Passed:
			t.Errorf("%s (%s) failed: %q\noutput: %s", r.Name, r.Kind, r.Errors, r.Output)
		}
		if r.Name == "hangs" && (r.Duration < 2*time.Second || r.Duration > 20*time.Second) {
			t.Errorf("the hanging command took %s, want it killed at 2s", r.Duration)
		}
		if r.Name == "setup visible" && r.Output != "setup [\"sh\" \"-c\" \"echo again >> /work/state; exit 4\"] exited 4\nprepared\nagain\n" {
			t.Errorf("setup visible: output %q", r.Output)
		}
	}
	if len(results) != 11+7+2+1 {
		t.Errorf("%d results, want 21", len(results))
	}
	t.Logf("%d tests in %s", len(results), elapsed)

	containers, imagesAfter := leftovers(t)
	if len(containers) != 0 {
		t.Errorf("containers left behind: %q", containers)
	}
	if !reflect.DeepEqual(imagesAfter, imagesBefore) {
		t.Errorf("images after the run %q, before %q: committed setup images left behind", imagesAfter, imagesBefore)
	}
}

// TestEngineCancel cancels a run in the middle of a test whose setup has
// been committed: the run ends at once, and leaves nothing behind.
func TestEngineCancel(t *testing.T) {
	eng, image := privateEngine(t)
	_, imagesBefore := leftovers(t)
	f := &File{Path: "cancel", CommandTests: []CommandTest{{
		Name:    "setup then hang",
		Setup:   [][]string{{"touch", "/work/set"}},
		Command: "sleep",
		Args:    []string{"600"},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, eng, image, []*File{f}, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("a cancelled run took %s to return", took)
	}
	containers, imagesAfter := leftovers(t)
	if len(containers) != 0 {
		t.Errorf("containers left behind: %q", containers)
	}
	if !reflect.DeepEqual(imagesAfter, imagesBefore) {
		t.Errorf("images after the run %q, before %q", imagesAfter, imagesBefore)
	}
}

// TestEngineNetwork inspects the containers of command tests while they
// run: network mode "none" unless the test says network: true. (The test
// engine has no bridge, so what a command sees cannot tell them apart.)
func TestEngineNetwork(t *testing.T) {
	eng, image := privateEngine(t)
	f := &File{Path: "network", CommandTests: []CommandTest{
		{Name: "isolated", Command: "sleep", Args: []string{"2.1"}},
		{Name: "networked", Command: "sleep", Args: []string{"2.2"}, Network: true},
	}}
	type outcome struct {
		results []Result
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		results, err := Run(context.Background(), eng, image, []*File{f}, Options{})
		done <- outcome{results, err}
	}()

	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	modes := map[string]string{} // command -> network mode
	for len(modes) < 2 {
		select {
		case o := <-done:
			t.Fatalf("the tests ended before both containers were seen (seen: %v): %+v, %v", modes, o.results, o.err)
		case <-time.After(50 * time.Millisecond):
		}
		list, err := c.ContainerList(ctx, client.ContainerListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range list.Items {
			if _, seen := modes[x.Command]; seen || !strings.HasPrefix(x.Command, "sleep 2.") {
				continue
			}
			res, err := c.ContainerInspect(ctx, x.ID, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			modes[x.Command] = string(res.Container.HostConfig.NetworkMode)
		}
	}
	if modes["sleep 2.1"] != "none" || modes["sleep 2.2"] == "none" {
		t.Errorf("network modes %v: want none for the test without network: true only", modes)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	for _, r := range o.results {
		t.Logf("%s: passed %v %q", r.Name, r.Passed, r.Errors)
	}
}

// TestEngineAgreesWithContainerStructureTest loads and runs each file of
// testdata/cst, and holds the outcome to what container-structure-test
// v1.22 made of the same file on the same image (testdata/cst/verdicts.txt):
// the same files loaded, the same tests passed, but for the differences
// the README lists, each pinned here.
func TestEngineAgreesWithContainerStructureTest(t *testing.T) {
	eng, image := privateEngine(t)
	theTool := map[string][]string{} // file -> "PASS name", "FAIL name" or "refused"
	text, err := os.ReadFile("testdata/cst/verdicts.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		file, verdict, _ := strings.Cut(line, "\t")
		theTool[file] = append(theTool[file], strings.TrimSuffix(strings.Replace(verdict, "\t", " ", 1), " "))
	}
	// What nightshift makes of a file where it differs on purpose, and the
	// README's reason.
	differences := map[string][]string{
		// Stricter: refused where the tool fails one test, or reads a value
		// otherwise than written.
		"empty-teardown.yaml":      {"refused"},
		"exit-code-fraction.yaml":  {"refused"},
		"json-no-shouldexist.json": {"refused"},
		// The old names of metadataTest's env lists are read.
		"metadata-env.yaml": {"PASS Metadata Test"},
		"metadata-env.json": {"FAIL Metadata Test"},
		// A port's protocol counts.
		"exposed-port-protocol.yaml":   {"PASS Metadata Test"},
		"unexposed-port-protocol.yaml": {"FAIL Metadata Test"},
		// A JSON test without uid or gid checks no owner.
		"json-no-owner.json": {"PASS File Existence Test: no uid or gid, not root's", "PASS File Existence Test: no uid or gid, root's"},
		// A relative link is resolved from its directory.
		"relative-link.yaml": {"PASS File Content Test: through a relative symlink"},
		// What the kept output cannot tell fails.
		"large-output.yaml": {
			"FAIL Command Test: expected at the end of a large output",
			"FAIL Command Test: excluded at the end of a large output",
			"PASS Command Test: expected at the start of a large output",
			"FAIL Command Test: excluded, found at the start of a large output",
		},
	}
	names, err := filepath.Glob("testdata/cst/*")
	if err != nil {
		t.Fatal(err)
	}
	prefix := map[string]string{KindCommand: "Command Test: ", KindFileExistence: "File Existence Test: ", KindFileContent: "File Content Test: "}
	for _, name := range names {
		file := filepath.Base(name)
		if file == "verdicts.txt" {
			continue
		}
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			want, ok := differences[file]
			if !ok {
				want, ok = theTool[file]
			}
			if !ok {
				t.Fatalf("no verdicts of container-structure-test for %s in verdicts.txt", file)
			}
			var got []string
			f, err := Load(name)
			var ps problem.List
			switch {
			case errors.As(err, &ps):
				got = []string{"refused"}
				t.Logf("refused: %v", err)
			case err != nil:
				t.Fatal(err)
			default:
				// Bounds small enough for its large output and file to pass them.
				results, err := Run(context.Background(), eng, image, []*File{f}, Options{outputLimit: 256 << 10, inMemory: 64 << 10})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range results {
					verdict := "FAIL"
					if r.Passed {
						verdict = "PASS"
					}
					got = append(got, verdict+" "+prefix[r.Kind]+r.Name)
					if !r.Passed {
						t.Logf("%s: %q", r.Name, r.Errors)
					}
				}
			}
			slices.Sort(got)
			want = slices.Sorted(slices.Values(want))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("nightshift:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
