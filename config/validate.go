package config

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"nightshift/validate/jenkins/result"
)

// EnvJenkinsToken names the environment variable that may hold the Jenkins
// API token when validate.jenkins.token_file is not set.
const EnvJenkinsToken = "NIGHTSHIFT_JENKINS_TOKEN"

// When `latest` moves: staging.latest.
const (
	LatestBuilt     = "built"     // as soon as the image is pushed and verified
	LatestValidated = "validated" // only once the image is validated
)

const (
	defaultTestTimeout      = 10 * time.Minute
	defaultTestParallel     = 4
	defaultJenkinsTimeout   = 2 * time.Hour
	defaultJenkinsPoll      = 10 * time.Second
	defaultJenkinsParameter = "{{.Name}}_param"
)

// Validate says how new images are validated once they are pushed.
type Validate struct {
	// Tests are container-structure-test files run in every image,
	// relative to the source repository root; [[image]] tests add more.
	Tests []string `toml:"tests"`
	// Ancestors makes an image also run the tests of the stack images it
	// builds on.
	Ancestors bool `toml:"ancestors"`
	// Timeout bounds one command test unless the test sets its own.
	Timeout Duration `toml:"timeout"`
	// Retries is how often a failed test is tried again; a pass on a retry
	// is recorded as flaky.
	Retries int `toml:"retries"`
	// Parallel is how many command tests of one image run at once, each in
	// its own container.
	Parallel int `toml:"parallel"`
	// Engine is where images are tested and their packages read, as
	// DOCKER_HOST names an engine; "" for the engine of the builder that
	// built each (or $DOCKER_HOST's, for a buildkitd's images).
	Engine  string  `toml:"engine"`
	Jenkins Jenkins `toml:"jenkins"`
}

// Jenkins is the project's own test job, triggered with the new image refs
// once every image of the run is pushed.
type Jenkins struct {
	Enabled bool   `toml:"-"` // the [validate.jenkins] table is present
	URL     string `toml:"url"`
	// Job is the job's path, folders included: "ci/nightly-images".
	Job  string `toml:"job"`
	User string `toml:"user"`
	// TokenFile names a file holding the user's API token; else
	// $NIGHTSHIFT_JENKINS_TOKEN.
	TokenFile string `toml:"token_file"`
	Token     Secret `toml:"-"`
	// Parameter is a template of the build parameter that receives each
	// image's immutable ref; it sees the run's fields and .Name.
	Parameter string `toml:"parameter"`
	// Parameters are further build parameters, as templates of the run's
	// fields (.Tag, .Commit, ...).
	Parameters map[string]string `toml:"parameters"`
	Timeout    Duration          `toml:"timeout"` // from trigger to result
	Poll       Duration          `toml:"poll"`    // how often the queue and build are read
	// Pass lists the build results that count as passed.
	Pass []string `toml:"pass"`
	// When says when the job runs: JenkinsAllBuilt, only when every image
	// passed build, push and its own tests; JenkinsAnyBuilt (the default),
	// when at least one did.
	When string `toml:"when"`
	// Missing says what an image that did not get that far passes to the
	// job: JenkinsOmit (the default) leaves its parameter out, so that the
	// job's default applies; JenkinsLastValidated passes its last
	// validated ref from the record.
	Missing string `toml:"missing"`
}

// The values of validate.jenkins.when and validate.jenkins.missing.
const (
	JenkinsAllBuilt      = "all-built"
	JenkinsAnyBuilt      = "any-built"
	JenkinsOmit          = "omit"
	JenkinsLastValidated = "last-validated"
)

// Validates reports whether runs validate anything: tests or a Jenkins job.
func (c *Config) Validates() bool {
	if c.Validate.Jenkins.Enabled || len(c.Validate.Tests) > 0 {
		return true
	}
	return slices.ContainsFunc(c.Images, func(img Image) bool { return len(img.Tests) > 0 })
}

// TestFiles returns the test files image name runs, in order, without
// repeats: validate.tests, then with validate.ancestors the tests of each
// image it builds on (parents listed by parents), then its own.
func (c *Config) TestFiles(name string, ancestors []string) []string {
	var files []string
	add := func(fs []string) {
		for _, f := range fs {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	add(c.Validate.Tests)
	if c.Validate.Ancestors {
		for _, a := range ancestors {
			if img := c.Image(a); img != nil {
				add(img.Tests)
			}
		}
	}
	if img := c.Image(name); img != nil {
		add(img.Tests)
	}
	return files
}

// Image returns the image called name, or nil.
func (c *Config) Image(name string) *Image {
	for i := range c.Images {
		if c.Images[i].Name == name {
			return &c.Images[i]
		}
	}
	return nil
}

// JenkinsParams renders the Jenkins build parameters of a run: one per
// image, named by the parameter template and set to its ref, and the
// extra parameters.
func (j *Jenkins) JenkinsParams(data TemplateData, refs map[string]string) (map[string]string, error) {
	params := make(map[string]string, len(refs)+len(j.Parameters))
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		d := data
		d.Name = name
		key, err := render("parameter", j.Parameter, d)
		if err != nil {
			return nil, fmt.Errorf("validate.jenkins.parameter: %w", err)
		}
		params[key] = refs[name]
	}
	for _, key := range slices.Sorted(maps.Keys(j.Parameters)) {
		v, err := render("parameter", j.Parameters[key], data)
		if err != nil {
			return nil, fmt.Errorf("validate.jenkins.parameters.%s: %w", key, err)
		}
		params[key] = v
	}
	return params, nil
}

// Passed reports whether a build that ended with result counts as passed.
func (j *Jenkins) Passed(result string) bool { return slices.Contains(j.Pass, result) }

func (l *loader) validateSection(c *Config) {
	v := &c.Validate
	if v.Engine != "" {
		if u, err := url.Parse(v.Engine); err != nil || !slices.Contains(nodeSchemes, u.Scheme) {
			l.problem("validate.engine", fmt.Sprintf("%q is not an engine address: use unix:///path, tcp://host:port or ssh://user@host", v.Engine))
		}
	}
	for i, f := range v.Tests {
		if !inRepo(f) {
			l.problem("validate.tests", fmt.Sprintf("test file %d, %q, is not inside the source repository: use a relative path without \"..\"", i+1, f))
		}
	}
	if !l.has("validate.timeout") {
		v.Timeout.Duration = defaultTestTimeout
	} else if v.Timeout.Duration <= 0 {
		l.problem("validate.timeout", `must be positive, e.g. "10m"`)
	}
	if v.Retries < 0 {
		l.problem("validate.retries", fmt.Sprintf("must not be negative (got %d): 0 tries each test once", v.Retries))
	}
	if !l.has("validate.parallel") {
		v.Parallel = defaultTestParallel
	} else if v.Parallel < 1 {
		l.problem("validate.parallel", fmt.Sprintf("must be at least 1, the command tests of an image run at once (got %d)", v.Parallel))
	}
	if v.Jenkins.Enabled = l.has("validate.jenkins"); v.Jenkins.Enabled {
		l.jenkins(&v.Jenkins)
	}

	switch c.Staging.Latest {
	case "":
		c.Staging.Latest = LatestBuilt
	case LatestBuilt:
	case LatestValidated:
		// latest would never move for an image that nothing validates.
		if v.Jenkins.Enabled || len(v.Tests) > 0 {
			break
		}
		var untested []string
		for _, img := range c.Images {
			if len(img.Tests) == 0 && img.Name != "" {
				untested = append(untested, img.Name)
			}
		}
		if len(untested) > 0 {
			l.problem("staging.latest", fmt.Sprintf(`"validated" moves latest only for validated images, and nothing validates %s: give them tests (validate.tests or [[image]] tests) or configure [validate.jenkins]`, strings.Join(untested, ", ")))
		}
	default:
		l.problem("staging.latest", fmt.Sprintf(`%q is not %q (latest moves once the image is pushed) or %q (only once it is validated)`, c.Staging.Latest, LatestBuilt, LatestValidated))
	}
}

func (l *loader) jenkins(j *Jenkins) {
	const key = "validate.jenkins"
	u, err := url.Parse(j.URL)
	switch {
	case j.URL == "":
		l.problem(key+".url", "required: the Jenkins server's URL, e.g. https://ci.example.org")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		l.problem(key+".url", fmt.Sprintf("%q is not an http(s) URL such as https://ci.example.org", j.URL))
	case u.User != nil:
		l.problem(key+".url", "must not hold credentials: set validate.jenkins.user and token_file")
	default:
		j.URL = strings.TrimRight(j.URL, "/")
	}
	j.Job = strings.Trim(j.Job, "/")
	switch {
	case j.Job == "":
		l.problem(key+".job", `required: the test job's path, folders included, e.g. "ci/test-images"`)
	case strings.Contains(j.Job, "/job/") || strings.HasPrefix(j.Job, "job/"):
		l.problem(key+".job", fmt.Sprintf(`%q: write the folder path ("a/b/job"), not the URL path ("job/a/job/b/job/job")`, j.Job))
	}
	var unreadable bool
	j.Token, unreadable = l.readSecret(key+".token_file", &j.TokenFile, EnvJenkinsToken, "the Jenkins API token")
	switch {
	case j.Token != "" && j.User == "":
		l.problem(key+".user", "an API token is given (by token_file or $"+EnvJenkinsToken+") but no user: set validate.jenkins.user")
	case j.Token == "" && j.User != "" && !unreadable:
		l.problem(key+".user", "a user is given but no API token: name a file holding it with token_file, or set $"+EnvJenkinsToken)
	}

	j.Parameter = cmp.Or(j.Parameter, defaultJenkinsParameter)
	data := NewTemplateData(sampleStart(), sampleCommit)
	data.Tag, data.Name = "sample-tag", "ci_base"
	if _, err := render("parameter", j.Parameter, data); err != nil {
		l.problem(key+".parameter", err.Error())
	}
	for _, name := range slices.Sorted(maps.Keys(j.Parameters)) {
		if _, err := render("parameter", j.Parameters[name], data); err != nil {
			l.problem(key+".parameters."+name, err.Error())
		}
	}
	j.When = cmp.Or(j.When, JenkinsAnyBuilt)
	if j.When != JenkinsAnyBuilt && j.When != JenkinsAllBuilt {
		l.problem(key+".when", fmt.Sprintf("%q is not %q (the job runs with what built) or %q (only when every image built)", j.When, JenkinsAnyBuilt, JenkinsAllBuilt))
	}
	j.Missing = cmp.Or(j.Missing, JenkinsOmit)
	if j.Missing != JenkinsOmit && j.Missing != JenkinsLastValidated {
		l.problem(key+".missing", fmt.Sprintf("%q is not %q (the job's default applies) or %q (the image's last validated ref)", j.Missing, JenkinsOmit, JenkinsLastValidated))
	}
	if !l.has(key + ".timeout") {
		j.Timeout.Duration = defaultJenkinsTimeout
	} else if j.Timeout.Duration <= 0 {
		l.problem(key+".timeout", `must be positive, e.g. "2h"`)
	}
	if !l.has(key + ".poll") {
		j.Poll.Duration = defaultJenkinsPoll
	} else if j.Poll.Duration <= 0 {
		l.problem(key+".poll", `must be positive, e.g. "10s"`)
	}
	if !l.has(key + ".pass") {
		j.Pass = []string{result.Success}
	}
	for _, r := range j.Pass {
		if !slices.Contains(result.All(), r) {
			l.problem(key+".pass", fmt.Sprintf("%q is not a Jenkins build result: use %s", r, strings.Join(result.All(), ", ")))
		}
	}
	if l.has(key+".pass") && len(j.Pass) == 0 {
		l.problem(key+".pass", `must name at least one result, e.g. ["SUCCESS"]`)
	}
}
