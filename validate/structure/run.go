package structure

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"nightshift/engine"
)

// Driver is what Run needs of a container engine; *engine.Engine is one.
// Errors marked engine.ErrUnavailable end the run; any other error fails
// only the test at hand.
type Driver interface {
	ImageConfig(ctx context.Context, ref string) (engine.ImageConfig, error)
	// RunContainer runs spec in a fresh container and removes it.
	RunContainer(ctx context.Context, spec engine.ContainerSpec) (engine.Run, error)
	RemoveImage(ctx context.Context, id string) error
	CreateContainer(ctx context.Context, spec engine.ContainerSpec) (string, error)
	// CopyFromContainer returns the engine's tar archive of path; a missing
	// path is engine.ErrNotFound.
	CopyFromContainer(ctx context.Context, id, path string) (io.ReadCloser, error)
	RemoveContainer(ctx context.Context, id string) error
}

var _ Driver = (*engine.Engine)(nil)

// Options tune Run; the zero value is fine.
type Options struct {
	// Timeout bounds each command test (its setup included) that does not
	// set its own; zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a failed command test is run again; a
	// test that passes on a retry is Flaky.
	Retries int
	// Parallel is how many command tests run at once, each in containers
	// of its own; zero means DefaultParallel.
	Parallel int

	// For tests, to reach the bounds with little data. outputLimit bounds
	// the stdout (and the stderr) of a command kept; zero means
	// engine.DefaultOutputLimit. inMemory bounds the file a content test
	// reads into memory; zero means defaultInMemory.
	outputLimit int
	inMemory    int64
}

// Defaults of Options.
const (
	DefaultTimeout  = time.Minute
	DefaultParallel = 4
)

// Kinds of Result.
const (
	KindCommand       = "command"
	KindFileExistence = "fileExistence"
	KindFileContent   = "fileContent"
	KindMetadata      = "metadata"
	KindLicense       = "license" // read, never run: always failed
)

// Result is the verdict on one test.
type Result struct {
	File     string // File.Path of the test's file
	Name     string // the test's name; "Metadata Test" for a metadata test
	Kind     string // KindCommand, KindFileExistence, KindFileContent, KindLicense or KindMetadata
	Passed   bool
	Flaky    bool // failed first, passed on a retry
	Attempts int
	Duration time.Duration
	// Output is the end of the command's stdout and stderr (at most
	// ExcerptSize of each), for a command test.
	Output string
	// Errors says why the test failed, one line each; for a flaky test,
	// why its failed attempts failed.
	Errors []string
}

// ExcerptSize bounds each of stdout and stderr in Result.Output.
const ExcerptSize = 1024

// defaultInMemory is the largest file a content test reads into memory.
// A larger one is searched as a stream, each pattern on its own, which is
// slower but takes no more memory.
const defaultInMemory = 64 << 20

// neverRuns is the command of the container file tests read from: it is
// never started, but the engine wants a command to create it.
var neverRuns = []string{"/nightshift-never-runs"}

// Run runs the tests of files against image, already in the engine, and
// returns one Result per test: for each file, its command tests, file
// existence tests, file content tests, license tests, then its metadata
// test. Failed tests are Results; the error is for a run that could not be
// carried out (engine unreachable or left with a container or image it
// could not remove, image missing, ctx cancelled). Once the image's
// configuration is read, the Results come with the error too: the tests
// that finished keep their verdicts, the others are failed with an error
// that says why they have none.
func Run(ctx context.Context, d Driver, image string, files []*File, opt Options) ([]Result, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Parallel <= 0 {
		opt.Parallel = DefaultParallel
	}
	cfg, err := d.ImageConfig(ctx, image)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runner{d: d, image: image, opt: opt, cancel: cancel}

	var results []Result
	var commands []commandJob
	var fileJobs []fileJob
	add := func(f *File, name, kind string) int {
		results = append(results, Result{File: f.Path, Name: name, Kind: kind})
		return len(results) - 1
	}
	imageEnv := envMap(cfg.Env)
	for _, f := range files {
		// The environment container-structure-test commits into the image
		// before each test: the image's, with globalEnvVars set. Schema
		// 1.0.0 commits none: its globalEnvVars reach a command test only
		// through its setup, with the test's envVars, and no file test.
		env := withVars(imageEnv, f.GlobalEnvVars)
		global, pathEnv := f.GlobalEnvVars, env
		if f.SchemaVersion == schemaV1 {
			env, global, pathEnv = imageEnv, nil, nil
		}
		unsupported := f.RunOptions.set()
		for i := range f.CommandTests {
			t := &f.CommandTests[i]
			slot := add(f, t.Name, KindCommand)
			if len(unsupported) > 0 {
				results[slot].Attempts = 1
				results[slot].Errors = []string{fmt.Sprintf("containerRunOptions (%s) are not applied by nightshift, so this test would not run as container-structure-test runs it: remove them, or run this file with container-structure-test", strings.Join(unsupported, ", "))}
				continue
			}
			j := commandJob{slot: slot, test: t, env: env, global: global, setupVars: t.EnvVars}
			if f.SchemaVersion == schemaV1 {
				j.setupVars = append(slices.Clone(f.GlobalEnvVars), t.EnvVars...)
			}
			commands = append(commands, j)
		}
		for i := range f.FileExistenceTests {
			t := &f.FileExistenceTests[i]
			fileJobs = append(fileJobs, fileJob{slot: add(f, t.Name, KindFileExistence), existence: t, env: pathEnv})
		}
		for i := range f.FileContentTests {
			// Its path is read as written: the tool expands none.
			t := &f.FileContentTests[i]
			fileJobs = append(fileJobs, fileJob{slot: add(f, t.Name, KindFileContent), content: t})
		}
		for i := range f.LicenseTests {
			slot := add(f, fmt.Sprintf("License Test %d", i+1), KindLicense)
			results[slot].Attempts = 1
			results[slot].Errors = []string{"licenseTests are not run by nightshift: check licenses with container-structure-test, or remove them"}
		}
		if !f.MetadataTest.empty() {
			// Against the image as it is: no globalEnvVars.
			i := add(f, "Metadata Test", KindMetadata)
			results[i].Errors = checkMetadata(&f.MetadataTest, cfg)
			results[i].Passed, results[i].Attempts = len(results[i].Errors) == 0, 1
		}
	}

	var wg sync.WaitGroup
	wg.Go(func() { r.fileTests(ctx, fileJobs, results) })
	jobs := make(chan commandJob)
	for range min(opt.Parallel, len(commands)) {
		wg.Go(func() {
			for j := range jobs {
				results[j.slot] = r.command(ctx, results[j.slot], j)
			}
		})
	}
feed:
	for _, j := range commands {
		select {
		case jobs <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if r.err == nil && ctx.Err() != nil {
		r.err = context.Cause(ctx) // cancelled between tests
	}
	if r.err != nil {
		for i := range results {
			if results[i].Attempts == 0 { // never finished
				results[i].Passed = false
				results[i].Errors = append(results[i].Errors, fmt.Sprintf("no verdict: the run stopped: %v", r.err))
			}
		}
		return results, r.err
	}
	return results, nil
}

type commandJob struct {
	slot int
	test *CommandTest
	env  map[string]string // of the image the test starts from
	// global is set in each of the test's containers, from env.
	global []KeyValue
	// setupVars are set in the setup containers, expanded against env,
	// and so committed: the test's envVars (and in schema 1.0.0 the
	// globalEnvVars before them).
	setupVars []KeyValue
}

type fileJob struct {
	slot      int
	existence *FileExistenceTest
	content   *FileContentTest
	env       map[string]string // expands the existence test's path; nil: not expanded
}

type runner struct {
	d      Driver
	image  string
	opt    Options
	cancel context.CancelFunc

	mu  sync.Mutex
	err error // the first infrastructure failure; it stops the run
}

// fatal reports whether err stops the run (the engine is gone, or the run
// was cancelled), and records the first such error.
func (r *runner) fatal(ctx context.Context, err error) bool {
	if !stops(ctx, err) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		if ctx.Err() != nil && !errors.Is(err, engine.ErrUnavailable) {
			err = context.Cause(ctx)
		}
		r.err = err
		r.cancel()
	}
	return true
}

// stops reports whether err is the engine gone or the run cancelled.
func stops(ctx context.Context, err error) bool {
	return err != nil && (errors.Is(err, engine.ErrUnavailable) || ctx.Err() != nil)
}

// cleanupFailed records a container or image left behind: the engine is
// in no state to go on.
func (r *runner) cleanupFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
		r.cancel()
	}
}

// leftBehind reports whether err is a container the engine could not
// remove, and if so stops the run, as for any other leftover.
func (r *runner) leftBehind(err error) bool {
	if !errors.Is(err, engine.ErrLeftBehind) {
		return false
	}
	r.cleanupFailed(err)
	return true
}

// command runs a command test, retried up to Options.Retries times.
func (r *runner) command(ctx context.Context, res Result, j commandJob) Result {
	timeout := r.opt.Timeout
	if j.test.Timeout > 0 {
		timeout = j.test.Timeout
	}
	start := time.Now()
	var failures []string
	for attempt := 1; attempt <= 1+max(r.opt.Retries, 0); attempt++ {
		output, errs, err := r.attempt(ctx, j, timeout)
		if r.fatal(ctx, err) {
			if attempt > 1 {
				// A retry might have passed: the failure seen is not the verdict.
				res.Attempts = 0
			}
			break
		}
		res.Attempts, res.Output, res.Errors = attempt, output, errs
		if len(errs) == 0 {
			res.Passed, res.Flaky = true, attempt > 1
			res.Errors = failures
			break
		}
		for _, e := range errs {
			failures = append(failures, fmt.Sprintf("attempt %d: %s", attempt, e))
		}
	}
	res.Duration = time.Since(start)
	return res
}

// attempt runs a command test once, as container-structure-test's docker
// driver does: each setup command in a container committed as the next
// one's image, then the command, with the image's entrypoint cleared, its
// arguments expanded against the environment. err is for the engine
// failing; the test's failures are errs.
func (r *runner) attempt(ctx context.Context, j commandJob, timeout time.Duration) (output string, errs []string, err error) {
	t := j.test
	deadline := time.Now().Add(timeout)
	// As the tool's docker driver does: setup containers get the test's
	// envVars expanded against the image's environment (globalEnvVars
	// committed into it), and each commit keeps them; the command gets them
	// as written, and its arguments are expanded against the environment
	// of the image it runs in, so they see the envVars only after a setup.
	expanded := withVars(j.env, j.setupVars)
	argEnv := j.env
	if len(t.Setup) > 0 {
		argEnv = expanded
	}
	spec := engine.ContainerSpec{Image: r.image, Env: containerEnv(expanded, j.global, j.setupVars), Network: t.Network, OutputLimit: r.outputLimit()}

	var notes []string
	var committed []string
	defer func() {
		for i := len(committed) - 1; i >= 0; i-- {
			if err := r.d.RemoveImage(ctx, committed[i]); err != nil {
				r.cleanupFailed(err)
			}
		}
	}()
	for _, cmd := range t.Setup {
		spec.Cmd, spec.Commit, spec.Timeout = cmd, true, time.Until(deadline)
		if spec.Timeout <= 0 {
			return strings.Join(notes, "\n"), []string{fmt.Sprintf("timed out after %s", timeout)}, nil
		}
		run, err := r.d.RunContainer(ctx, spec)
		if run.Image != "" {
			committed = append(committed, run.Image)
		}
		if r.leftBehind(err) {
			return "", nil, err
		}
		switch {
		case stops(ctx, err):
			return "", nil, err
		case err != nil:
			return strings.Join(notes, "\n"), []string{fmt.Sprintf("error in setup: %v", err)}, nil
		case run.TimedOut:
			return r.excerpt(run, notes), []string{fmt.Sprintf("setup %q timed out after %s", cmd, timeout)}, nil
		case run.ExitCode != 0:
			// Not a failure: container-structure-test does not look.
			notes = append(notes, fmt.Sprintf("setup %q exited %d", cmd, run.ExitCode))
		}
		spec.Image = run.Image
	}

	spec.Cmd, spec.Commit, spec.Timeout = nil, false, time.Until(deadline)
	spec.Env = append(containerEnv(j.env, without(j.global, t.EnvVars), nil), asWritten(t.EnvVars)...)
	for _, a := range append([]string{t.Command}, t.Args...) {
		spec.Cmd = append(spec.Cmd, expand(a, argEnv))
	}
	if spec.Timeout <= 0 {
		return strings.Join(notes, "\n"), []string{fmt.Sprintf("timed out after %s", timeout)}, nil
	}
	run, err := r.d.RunContainer(ctx, spec)
	if r.leftBehind(err) {
		return "", nil, err
	}
	switch {
	case stops(ctx, err):
		return "", nil, err
	case err != nil:
		return strings.Join(notes, "\n"), []string{err.Error()}, nil
	case run.TimedOut:
		return r.excerpt(run, notes), []string{fmt.Sprintf("timed out after %s", timeout)}, nil
	}
	return r.excerpt(run, notes), checkCommand(t, r.kept(run, run.Stdout), r.kept(run, run.Stderr), run.ExitCode), nil
}

// outputLimit is the stdout (and the stderr) of a command kept.
func (r *runner) outputLimit() int {
	if r.opt.outputLimit > 0 {
		return r.opt.outputLimit
	}
	return engine.DefaultOutputLimit
}

// kept is out, stdout or stderr of run, as an output: cut if the run's
// output was cut and out is as long as the limit (the engine says only
// that one of the two was).
func (r *runner) kept(run engine.Run, out []byte) output {
	o := output{text: string(out)}
	if run.Truncated && len(out) >= r.outputLimit() {
		o.cutAt = r.outputLimit()
	}
	return o
}

// containerEnv is what a test's containers get on top of the image's
// environment: the globalEnvVars and the test's envVars, expanded.
func containerEnv(env map[string]string, global, vars []KeyValue) []string {
	var out []string
	seen := map[string]bool{}
	for _, kv := range append(append([]KeyValue(nil), global...), vars...) {
		if !seen[kv.Key] {
			seen[kv.Key] = true
			out = append(out, kv.Key+"="+env[kv.Key])
		}
	}
	return out
}

// without is vars less the keys that override sets.
func without(vars, override []KeyValue) []KeyValue {
	var out []KeyValue
	for _, kv := range vars {
		if !slices.ContainsFunc(override, func(o KeyValue) bool { return o.Key == kv.Key }) {
			out = append(out, kv)
		}
	}
	return out
}

// asWritten is vars as KEY=value, the values not expanded; of a key set
// twice, the last value counts, as in containerEnv.
func asWritten(vars []KeyValue) []string {
	value := map[string]string{}
	for _, kv := range vars {
		value[kv.Key] = kv.Value
	}
	var out []string
	for _, kv := range vars {
		if v, ok := value[kv.Key]; ok {
			out = append(out, kv.Key+"="+v)
			delete(value, kv.Key)
		}
	}
	return out
}

// excerpt is the end of a run's stdout and stderr, after notes.
func (r *runner) excerpt(run engine.Run, notes []string) string {
	var b strings.Builder
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	if run.Truncated {
		fmt.Fprintf(&b, "output past %s was dropped\n", bytesize(r.outputLimit()))
	}
	b.WriteString(tail(run.Stdout))
	if len(run.Stderr) > 0 {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteString("\n")
		}
		b.WriteString("--- stderr ---\n")
		b.WriteString(tail(run.Stderr))
	}
	return b.String()
}

// tail is the last ExcerptSize bytes of out, cut at a character boundary.
func tail(out []byte) string {
	if len(out) <= ExcerptSize {
		return string(out)
	}
	i := len(out) - ExcerptSize
	for i < len(out) && !utf8.RuneStart(out[i]) {
		i++
	}
	return "…" + string(out[i:])
}

// fileTests runs the file existence and content tests, all reading from
// one container of the image that is never started.
func (r *runner) fileTests(ctx context.Context, jobs []fileJob, results []Result) {
	if len(jobs) == 0 {
		return
	}
	id, err := r.d.CreateContainer(ctx, engine.ContainerSpec{Image: r.image, Cmd: neverRuns})
	if r.fatal(ctx, err) {
		return
	}
	if err == nil {
		defer func() {
			if err := r.d.RemoveContainer(ctx, id); err != nil {
				r.cleanupFailed(err)
			}
		}()
	}
	for _, j := range jobs {
		start := time.Now()
		res := &results[j.slot]
		switch {
		case err != nil:
			res.Errors = []string{err.Error()}
		case j.existence != nil:
			p := j.existence.Path
			if j.env != nil {
				p = expand(p, j.env)
			}
			h, missing := r.stat(ctx, id, p)
			if r.fatal(ctx, missing) {
				return
			}
			res.Errors = checkExistence(j.existence, h, missing)
		default:
			found, readErr := r.matchFile(ctx, id, j.content)
			if r.fatal(ctx, readErr) {
				return
			}
			res.Errors = checkContent(j.content, found, readErr)
		}
		res.Passed, res.Attempts = len(res.Errors) == 0, 1
		res.Duration = time.Since(start)
	}
}

// stat returns the archive entry of p, or nil and why there is none.
func (r *runner) stat(ctx context.Context, id, p string) (*tar.Header, error) {
	h, rc, err := r.entry(ctx, id, p)
	if err != nil {
		return nil, err
	}
	rc.Close()
	if !exists(h) {
		return nil, fmt.Errorf("file %s not found in image", p)
	}
	return h, nil
}

// matchFile reads the file of a content test (following symlinks) and
// reports which of its valid patterns match it.
func (r *runner) matchFile(ctx context.Context, id string, t *FileContentTest) (map[string]bool, error) {
	var res []*regexp.Regexp
	for _, p := range append(slices.Clone(t.ExpectedContents), t.ExcludedContents...) {
		if re, err := regexp.Compile(p); err == nil { // an invalid one fails in look
			res = append(res, re)
		}
	}
	p := t.Path
	for range 40 {
		h, rc, err := r.entry(ctx, id, p)
		if err != nil {
			return nil, err
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			rc.Close()
			if path.IsAbs(h.Linkname) {
				p = h.Linkname
			} else {
				p = path.Join(path.Dir(p), h.Linkname)
			}
			continue
		case tar.TypeDir:
			rc.Close()
			return nil, fmt.Errorf("cannot read %s: it is a directory, not a file", p)
		case tar.TypeReg:
			defer rc.Close()
			inMemory := r.opt.inMemory
			if inMemory <= 0 {
				inMemory = defaultInMemory
			}
			if h.Size > inMemory {
				return matchStream(rc, res)
			}
			data, err := io.ReadAll(rc)
			found := map[string]bool{}
			for _, re := range res {
				found[re.String()] = re.Match(data)
			}
			return found, err
		default:
			rc.Close()
			return nil, fmt.Errorf("file %s not found in image", p)
		}
	}
	return nil, fmt.Errorf("%s: too many levels of symbolic links", p)
}

// matchStream reports which of res match what r yields, reading it once
// and holding none of it: each pattern reads a copy as a stream.
func matchStream(r io.Reader, res []*regexp.Regexp) (map[string]bool, error) {
	found := make([]bool, len(res))
	pipes := make([]*io.PipeWriter, len(res))
	writers := make([]io.Writer, len(res))
	var wg sync.WaitGroup
	for i, re := range res {
		pr, pw := io.Pipe()
		pipes[i], writers[i] = pw, pw
		wg.Go(func() {
			found[i] = re.MatchReader(bufio.NewReader(pr))
			io.Copy(io.Discard, pr) // a match ends the search, not the copy
		})
	}
	_, err := io.Copy(io.MultiWriter(writers...), r)
	for _, pw := range pipes {
		pw.CloseWithError(err)
	}
	wg.Wait()
	out := make(map[string]bool, len(res))
	for i, re := range res {
		out[re.String()] = found[i]
	}
	return out, err
}

// entry opens the engine's archive of p and reads its first entry, p
// itself; the returned reader then yields that entry's content.
func (r *runner) entry(ctx context.Context, id, p string) (*tar.Header, io.ReadCloser, error) {
	rc, err := r.d.CopyFromContainer(ctx, id, p)
	if err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("reading the archive of %s: %w", p, err)
	}
	return h, struct {
		io.Reader
		io.Closer
	}{tr, rc}, nil
}
