package store

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Status is the state of a run, an image or a stage.
type Status string

// The statuses a run, image or stage can have.
const (
	Queued      Status = "queued" // a triggered run waiting its turn
	Running     Status = "running"
	Succeeded   Status = "succeeded"
	Failed      Status = "failed"
	Skipped     Status = "skipped"
	Interrupted Status = "interrupted"
)

// Done reports whether s is final.
func (s Status) Done() bool { return s != Queued && s != Running && s != "" }

// The kinds of run. Comparisons between runs (the fixed policy, an
// image's history) compare runs of one kind, and a validation run with the
// night it validated.
const (
	KindNightly  = "nightly"  // rebuilt images (nightshift run, the schedule, the API)
	KindValidate = "validate" // validated images already pushed (nightshift validate)
	KindEnsure   = "ensure"   // made sure an image exists for a commit (nightshift ensure)
)

// Run is the record of one run.
type Run struct {
	ID      uint64 `json:"id"`
	Tag     string `json:"tag"`
	Commit  string `json:"commit"`
	Subject string `json:"subject,omitempty"` // first line of the commit message
	Dirty   bool   `json:"dirty,omitempty"`   // a local tree had uncommitted changes
	Status  Status `json:"status"`
	Trigger string `json:"trigger,omitempty"` // "cli", "cron", "api", ...
	// TriggeredBy names who asked for the run: the name of the API token
	// that triggered it, "" when unknown. Never the token itself.
	TriggeredBy string     `json:"triggered_by,omitempty"`
	Started     time.Time  `json:"started"`
	Finished    *time.Time `json:"finished"`
	Error       string     `json:"error,omitempty"` // why the run as a whole failed, if it did
	// Kind is what the run did: KindNightly, KindValidate or KindEnsure.
	// The store records a run given no kind as KindNightly.
	Kind string `json:"kind,omitempty"`
	// Night is, for a validation run, the id of the nightly run whose
	// images it validated; 0 when unknown. The store fills it in when a
	// validation run is created without it and a nightly run with the same
	// Tag was recorded before it.
	Night uint64 `json:"night,omitempty"`
	// Planned lists the images the run set out to build, in build order.
	Planned []string      `json:"planned,omitempty"`
	Images  []ImageResult `json:"images"`
	// Jenkins is the project's test job, triggered once the images are
	// pushed, when [validate.jenkins] is configured.
	Jenkins *JenkinsBuild `json:"jenkins,omitempty"`
	// BuildURL is the CI build that ran nightshift for this run, as Jenkins
	// gives it in $BUILD_URL (its console is BuildURL + "console"); "" when
	// nightshift ran elsewhere (a terminal, the daemon).
	BuildURL string `json:"build_url,omitempty"`
	// Promotions are the promotions of a nightly run's images to release
	// tags (nightshift promote), oldest first.
	Promotions []Promotion `json:"promotions,omitempty"`
	// Pruned is when retention pruned the run (nightshift prune): its
	// logs were deleted and its tags removed from staging; nil if not.
	Pruned *time.Time `json:"pruned,omitempty"`
	// ChangedSince is, for a change-detected run (run --changed-since),
	// the commit its changes were counted from.
	ChangedSince string `json:"changed_since,omitempty"`
	// Unchanged lists the images a change-detected run did not rebuild
	// because nothing they are built from changed: they were not built,
	// pushed or tagged. They are not among Images, so that no comparison
	// (the fixed policy) takes them for skipped by a failure.
	Unchanged []UnchangedImage `json:"unchanged,omitempty"`
}

// UnchangedImage is an image a change-detected run skipped because it had
// not changed.
type UnchangedImage struct {
	Name   string `json:"name"`
	Status Status `json:"status"` // always Skipped
	Reason string `json:"reason"` // "unchanged since 1a2b3c4d"
}

// ImageResult is the record of one image in a run.
type ImageResult struct {
	Name   string   `json:"name"`
	Status Status   `json:"status"`
	Ref    string   `json:"ref"`              // immutable ref of this run
	Digest string   `json:"digest"`           // manifest digest in the registry; "" if none landed
	Tags   []string `json:"tags,omitempty"`   // every tag that points at Digest
	Parent string   `json:"parent,omitempty"` // stack image it builds on
	// Builder is the [[builder]] that built (or pulled) the image;
	// "default" for the engine at $DOCKER_HOST.
	Builder  string     `json:"builder,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	Log      string     `json:"log,omitempty"`   // path of the full build log
	Error    string     `json:"error,omitempty"` // why it failed or was skipped
	Tail     []string   `json:"tail,omitempty"`  // last lines of the failing step's log
	Stages   []Stage    `json:"stages,omitempty"`
	// Validation is how the image's validation went; nil when the run
	// validates nothing.
	Validation *Validation `json:"validation,omitempty"`
	// Flaky says the image built only on a retry, after a passing failure
	// (build.retry_on): it succeeded, but the night was not clean.
	Flaky bool `json:"flaky,omitempty"`
	// Reason says, in a change-detected run, why the image was rebuilt
	// ("docker/Dockerfile.ci_cpu changed", "parent ci_base rebuilt").
	Reason string `json:"reason,omitempty"`
	// BaseRef is, in a change-detected run, what the image built on when
	// its parent was not rebuilt: the parent's latest, pinned by digest.
	BaseRef string `json:"base_ref,omitempty"`
	// Packages is how the image's packages changed since the last run in
	// which it succeeded; nil when its packages were not read, or no
	// earlier run has them.
	Packages *PackageDiff `json:"packages,omitempty"`
}

// Validation is the outcome of validating one image: its own tests, and
// the Jenkins job of the run when there is one. Status is Succeeded when
// the image was validated (and tagged <tag>-validated), Failed when a test
// or the job failed, Skipped when the image was never tested.
type Validation struct {
	Status Status       `json:"status"`
	Error  string       `json:"error,omitempty"`
	Tests  []TestResult `json:"tests,omitempty"`
}

// TestResult is one test run inside an image.
type TestResult struct {
	Name     string   `json:"name"`
	File     string   `json:"file,omitempty"` // the test file, relative to the source root
	Kind     string   `json:"kind"`           // command, fileExistence, fileContent, metadata
	Passed   bool     `json:"passed"`
	Flaky    bool     `json:"flaky,omitempty"`    // failed first, passed on a retry
	Attempts int      `json:"attempts,omitempty"` // tries it took; 1 without retries
	Seconds  float64  `json:"seconds"`
	Output   string   `json:"output,omitempty"` // an excerpt of what it printed
	Errors   []string `json:"errors,omitempty"` // why it failed
}

// Failures counts the tests that did not pass, and those that passed only
// on a retry.
func (v *Validation) Failures() (failed, flaky int) {
	for _, t := range v.Tests {
		switch {
		case !t.Passed:
			failed++
		case t.Flaky:
			flaky++
		}
	}
	return failed, flaky
}

// ValidationTests returns the results of im's own tests, if any ran.
func (im *ImageResult) ValidationTests() []TestResult {
	if im == nil || im.Validation == nil {
		return nil
	}
	return im.Validation.Tests
}

// JenkinsBuild is one build of the project's Jenkins test job.
type JenkinsBuild struct {
	Job    string            `json:"job"`
	Status Status            `json:"status"`           // succeeded, failed, skipped, interrupted, running
	Result string            `json:"result,omitempty"` // Jenkins' word: SUCCESS, UNSTABLE, FAILURE, ABORTED, ...
	Queue  string            `json:"queue,omitempty"`  // queue item URL
	URL    string            `json:"url,omitempty"`    // build URL
	Number int               `json:"number,omitempty"`
	Params map[string]string `json:"params,omitempty"` // what the build was given
	// Partial lists the images of the run that did not pass build, push
	// and their own tests, so the job ran without their new refs: omitted
	// (the job's default applied) or given their last validated ref.
	Partial  []PartialImage `json:"partial,omitempty"`
	Started  time.Time      `json:"started"`
	Finished *time.Time     `json:"finished,omitempty"`
	Error    string         `json:"error,omitempty"`
	Console  []string       `json:"console,omitempty"` // the last lines of its console
}

// PartialImage is an image a partial validation ran without.
type PartialImage struct {
	Name string `json:"name"`
	// Ref is the last validated ref the job got instead; "" when the
	// image's parameter was left out.
	Ref string `json:"ref,omitempty"`
}

// Stage is one step of an image: build, push, tag, verify.
type Stage struct {
	Name     string     `json:"name"`
	Status   Status     `json:"status"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
	// Attempts is how many times the stage was tried, when more than once
	// (a build retried after a passing failure).
	Attempts int `json:"attempts,omitempty"`
}

// Duration is how long the stage took, or has taken so far at now.
func (s Stage) Duration(now time.Time) time.Duration {
	if s.Finished != nil {
		return s.Finished.Sub(s.Started)
	}
	return now.Sub(s.Started)
}

// Image returns the result for name, or nil.
func (r *Run) Image(name string) *ImageResult {
	for i := range r.Images {
		if r.Images[i].Name == name {
			return &r.Images[i]
		}
	}
	return nil
}

// Duration is how long the run took, or has taken so far at now.
func (r Run) Duration(now time.Time) time.Duration {
	if r.Finished != nil {
		return r.Finished.Sub(r.Started)
	}
	return now.Sub(r.Started)
}

// Duration is how long the image took, or has taken so far at now.
func (im ImageResult) Duration(now time.Time) time.Duration {
	switch {
	case im.Started == nil:
		return 0
	case im.Finished != nil:
		return im.Finished.Sub(*im.Started)
	}
	return now.Sub(*im.Started)
}

// Stage returns the stage called name, or nil.
func (im *ImageResult) Stage(name string) *Stage {
	for i := range im.Stages {
		if im.Stages[i].Name == name {
			return &im.Stages[i]
		}
	}
	return nil
}

// Summary says in one line how the build went: "ci/test #12 FAILURE
// (https://ci.example.org/job/ci/job/test/12/)", or why it did not run.
func (b JenkinsBuild) Summary() string {
	var s strings.Builder
	s.WriteString(b.Job)
	if b.Number > 0 {
		fmt.Fprintf(&s, " #%d", b.Number)
	}
	if b.Result != "" {
		s.WriteString(" " + b.Result)
	} else if b.Status != "" {
		s.WriteString(" " + string(b.Status))
	}
	if b.URL != "" {
		s.WriteString(" (" + b.URL + ")")
	}
	if p := b.PartialText(); p != "" {
		s.WriteString(", " + p)
	}
	if b.Error != "" {
		s.WriteString(": " + b.Error)
	}
	return strings.TrimSpace(s.String())
}

// ConsoleURL is the console of the Jenkins build that carried the run out
// (BuildURL + "console"), "" when there was none or its URL is not an
// http(s) one that can be linked.
func (r *Run) ConsoleURL() string {
	u, err := url.Parse(r.BuildURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return ""
	}
	return u.JoinPath("console").String()
}

// PartialText says what a partial validation ran without, "" when the job
// had every image's new ref.
func (b JenkinsBuild) PartialText() string {
	if len(b.Partial) == 0 {
		return ""
	}
	var omitted, older []string
	for _, p := range b.Partial {
		if p.Ref == "" {
			omitted = append(omitted, p.Name)
		} else {
			older = append(older, p.Name)
		}
	}
	var parts []string
	if len(omitted) > 0 {
		parts = append(parts, "without "+strings.Join(omitted, ", ")+" (the job's defaults)")
	}
	if len(older) > 0 {
		parts = append(parts, "with the last validated "+strings.Join(older, ", "))
	}
	return "partial validation: " + strings.Join(parts, "; ")
}

// ShortLen is how many characters of a commit hash nightshift shows: as
// many as the default run tag carries, so that the two read alike.
const ShortLen = 8

// ShortCommit is a commit hash as nightshift shows it, cut to ShortLen.
func ShortCommit(hash string) string { return hash[:min(len(hash), ShortLen)] }

// ShortDigest keeps enough of a digest to tell it apart: sha256:1a2b3c4d5e6f.
func ShortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}
