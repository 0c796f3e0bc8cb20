// Package validate checks the images of a run once they are pushed: the
// container-structure-test files of each image run inside it (package
// structure), and the project's own Jenkins test job runs with every new
// ref (package jenkins). The pipeline tags what passes validated.
package validate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/store"
	"nightshift/validate/jenkins"
	"nightshift/validate/structure"
)

// Suite is the tests of every image of a stack, loaded from the source
// tree of a run.
type Suite struct {
	files  map[string]*structure.File // by path relative to the source root
	byName map[string][]string        // image -> its test files, in order
}

// Load reads the test files each image of g runs (see config.TestFiles)
// from the source tree at root. Every file that cannot be read or does not
// follow the schema is a problem, reported all at once.
func Load(cfg *config.Config, g *rebuild.Graph, root string) (*Suite, config.Problems) {
	s := &Suite{files: map[string]*structure.File{}, byName: map[string][]string{}}
	var ps config.Problems
	for _, name := range g.Order() {
		paths := cfg.TestFiles(name, g.Ancestors(name))
		s.byName[name] = paths
		for _, p := range paths {
			if _, done := s.files[p]; done {
				continue
			}
			f, err := structure.Load(filepath.Join(root, filepath.FromSlash(p)))
			s.files[p] = f
			var fps config.Problems
			switch {
			case errors.As(err, &fps):
				// Named by their path in the repository, as people know them.
				for _, q := range fps {
					q.File = p
					ps = append(ps, q)
				}
			case err != nil:
				ps = append(ps, config.Problem{File: p, Msg: err.Error()})
			}
		}
	}
	return s, ps
}

// Has reports whether image name has tests to run.
func (s *Suite) Has(name string) bool { return len(s.byName[name]) > 0 }

// Tester runs the tests of images through a Docker Engine.
type Tester struct {
	Suite   *Suite
	Driver  structure.Driver
	Options structure.Options
}

// NewTester runs suite through driver as cfg says.
func NewTester(cfg *config.Config, suite *Suite, driver structure.Driver) *Tester {
	return &Tester{Suite: suite, Driver: driver, Options: structure.Options{
		Timeout:  cfg.Validate.Timeout.Duration,
		Retries:  cfg.Validate.Retries,
		Parallel: cfg.Validate.Parallel,
	}}
}

// Test runs the tests of s in image, writing what happens to log; it fits
// the pipeline's test stage. An image without tests is Skipped.
func (t *Tester) Test(ctx context.Context, s *rebuild.Step, image string, log io.Writer) *store.Validation {
	paths := t.Suite.byName[s.Name]
	if len(paths) == 0 {
		fmt.Fprintf(log, "no tests for %s\n", s.Name)
		return &store.Validation{Status: store.Skipped, Error: "no tests"}
	}
	files := make([]*structure.File, len(paths))
	rel := make(map[string]string, len(paths)) // File.Path -> path in the repository
	for i, p := range paths {
		files[i] = t.Suite.files[p]
		rel[files[i].Path] = p
	}
	fmt.Fprintf(log, "running %s in %s\n", strings.Join(paths, ", "), image)
	// One call for all files: their command tests share the parallelism.
	results, err := structure.Run(ctx, t.Driver, image, files, t.Options)
	v := &store.Validation{Status: store.Succeeded}
	var failed []string
	for _, r := range results {
		tr := store.TestResult{
			Name: r.Name, File: rel[r.File], Kind: r.Kind, Passed: r.Passed, Flaky: r.Flaky, Attempts: r.Attempts,
			Seconds: r.Duration.Seconds(), Output: r.Output, Errors: r.Errors,
		}
		v.Tests = append(v.Tests, tr)
		fmt.Fprintf(log, "  %s %s (%s, %s)\n", verdict(tr), r.Name, tr.File, r.Duration.Round(time.Millisecond))
		for _, e := range r.Errors {
			fmt.Fprintf(log, "    %s\n", e)
		}
		if !r.Passed {
			failed = append(failed, r.Name)
		}
	}
	if err != nil {
		v.Status = store.Failed
		if ctx.Err() != nil {
			v.Status = store.Interrupted
		}
		v.Error = err.Error()
		fmt.Fprintln(log, v.Error)
		return v
	}
	if len(failed) > 0 {
		v.Status = store.Failed
		v.Error = fmt.Sprintf("%d of %d tests failed: %s", len(failed), len(v.Tests), strings.Join(failed, ", "))
	}
	fmt.Fprintf(log, "%s: %d tests, %s\n", s.Name, len(v.Tests), v.Status)
	return v
}

func verdict(t store.TestResult) string {
	switch {
	case !t.Passed:
		return "FAIL"
	case t.Flaky:
		return "FLAKY"
	}
	return "PASS"
}

// Job is the project's Jenkins test job for one run.
type Job struct {
	Config config.Jenkins
	Client *jenkins.Client
	// Data is the run's template fields, for the parameters.
	Data config.TemplateData
	Now  func() time.Time
}

// NewJob is the job cfg configures, for the run that data describes.
func NewJob(cfg config.Jenkins, data config.TemplateData, log *slog.Logger) *Job {
	return &Job{
		Config: cfg,
		Client: &jenkins.Client{URL: cfg.URL, User: cfg.User, Token: cfg.Token.Reveal(), Poll: cfg.Poll.Duration, Log: log},
		Data:   data,
	}
}

// Run triggers the job with each image's ref (image name -> ref) and waits
// for its result: the run's Jenkins job, as the pipeline runs it.
func (j *Job) Run(ctx context.Context, refs map[string]string, update func(store.JenkinsBuild)) store.JenkinsBuild {
	b := store.JenkinsBuild{Job: j.Config.Job, Status: store.Running, Started: j.now()}
	params, err := j.Config.JenkinsParams(j.Data, refs)
	if err != nil {
		b.Status, b.Error = store.Failed, err.Error()
		return j.finish(b)
	}
	b.Params = params
	update(b)
	res, err := j.Client.Run(ctx, jenkins.Job{Path: j.Config.Job, Params: params}, j.Config.Timeout.Duration)
	b.Queue, b.URL, b.Number, b.Result, b.Console = res.Queue, res.URL, res.Number, res.Result, res.Console
	switch {
	case err != nil && ctx.Err() != nil:
		b.Status, b.Error = store.Interrupted, err.Error()
	case err != nil:
		b.Status, b.Error = store.Failed, err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			b.Error = fmt.Sprintf("no result within validate.jenkins.timeout (%s): %v", j.Config.Timeout.Duration, err)
		}
	case j.Config.Passed(res.Result):
		b.Status = store.Succeeded
	default:
		b.Status = store.Failed
	}
	return j.finish(b)
}

func (j *Job) finish(b store.JenkinsBuild) store.JenkinsBuild {
	now := j.now()
	b.Finished = &now
	return b
}

func (j *Job) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now().UTC()
}
