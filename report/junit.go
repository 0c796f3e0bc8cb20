// Package report renders run records for machines and people: JUnit XML
// for Jenkins, the JSON summary, and live progress on a terminal or in a log.
package report

import (
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"nightshift/rebuild"
	"nightshift/store"
)

// stageOrder is the order stages run in; a run's report has a test case
// per image for each stage that some image of the run went through.
var stageOrder = []string{
	rebuild.StageBuild, rebuild.StagePull, rebuild.StagePush, rebuild.StageVerify,
	rebuild.StageTag, rebuild.StageTest, rebuild.StageValidated,
}

// baseStages are reported for a rebuild even when no image reached them.
var baseStages = []string{rebuild.StageBuild, rebuild.StagePush, rebuild.StageVerify, rebuild.StageTag}

// JUnit writes run as a JUnit report: one test suite per run, one test case
// per image and stage (classname = image), so Jenkins' junit step shows
// which stage of which image broke; then one per test run inside an image
// ("test: <name>"), and one for the run's Jenkins job.
func JUnit(w io.Writer, run *store.Run) error {
	suite := junit.Testsuite{
		Name: fmt.Sprintf("nightshift run %d (%s)", run.ID, run.Tag),
		Time: seconds(run.Duration(time.Now())),
	}
	suite.SetTimestamp(run.Started)
	suite.AddProperty("commit", run.Commit)
	suite.AddProperty("tag", run.Tag)
	for _, im := range run.Images {
		if im.Builder != "" {
			suite.AddProperty("builder."+im.Name, im.Builder) // which build host built it
		}
	}
	stages := runStages(run)
	for _, im := range run.Images {
		for _, name := range stages {
			suite.AddTestcase(testcase(im, name))
		}
		if im.Validation != nil {
			for _, t := range im.Validation.Tests {
				suite.AddTestcase(testResult(im.Name, t))
			}
		}
	}
	for _, u := range run.Unchanged {
		// One case, skipped: the image is not rebuilt, not failed.
		suite.AddTestcase(junit.Testcase{Name: "unchanged", Classname: u.Name,
			Skipped: &junit.Result{Message: xmlText(u.Reason + ": not rebuilt")}})
	}
	if run.Jenkins != nil {
		suite.AddTestcase(jenkinsCase(*run.Jenkins))
	}
	var suites junit.Testsuites
	suites.AddSuite(suite)
	return suites.WriteXML(w)
}

// runStages is the stages some image of run went through, in stageOrder;
// a rebuild always has the four of every image.
func runStages(run *store.Run) []string {
	seen := map[string]bool{}
	if run.Kind != store.KindValidate {
		for _, st := range baseStages {
			seen[st] = true
		}
	}
	for _, im := range run.Images {
		for _, st := range im.Stages {
			seen[st.Name] = true
		}
	}
	var out []string
	for _, st := range stageOrder {
		if seen[st] {
			out = append(out, st)
		}
	}
	return out
}

// testResult is one test run inside an image. A flaky pass passes, and
// says so in its output.
func testResult(image string, t store.TestResult) junit.Testcase {
	name := "test: " + t.Name
	if t.File != "" {
		// Two files may name a test alike ("Metadata Test" always is):
		// Jenkins would merge their cases.
		name = "test: " + path.Base(t.File) + ": " + t.Name
	}
	tc := junit.Testcase{Name: name, Classname: image, Time: fmt.Sprintf("%.3f", t.Seconds)}
	var out []string
	if t.File != "" {
		out = append(out, "from "+t.File)
	}
	if t.Flaky {
		out = append(out, fmt.Sprintf("flaky: failed, then passed on attempt %d", t.Attempts))
	}
	if !t.Passed {
		msg := strings.Join(t.Errors, "; ")
		if msg == "" {
			msg = "failed"
		}
		tc.Failure = &junit.Result{Message: xmlText(msg), Type: "failed", Data: xmlText(t.Output)}
	} else if t.Output != "" {
		out = append(out, t.Output)
	}
	if len(out) > 0 {
		tc.SystemOut = &junit.Output{Data: xmlText(strings.Join(out, "\n"))}
	}
	return tc
}

// jenkinsCase is the run's Jenkins job.
func jenkinsCase(b store.JenkinsBuild) junit.Testcase {
	tc := junit.Testcase{Name: "jenkins: " + b.Job, Classname: "validation"}
	if b.Finished != nil {
		tc.Time = seconds(b.Finished.Sub(b.Started))
	}
	console := xmlText(strings.Join(b.Console, "\n"))
	switch b.Status {
	case store.Succeeded:
		if b.URL != "" {
			tc.SystemOut = &junit.Output{Data: "build: " + b.URL}
		}
	case store.Skipped:
		tc.Skipped = &junit.Result{Message: xmlText(b.Error)}
	case store.Failed:
		tc.Failure = &junit.Result{Message: xmlText(b.Summary()), Type: "failed", Data: console}
	default:
		tc.Error = &junit.Result{Message: xmlText("interrupted: " + b.Summary()), Type: "interrupted", Data: console}
	}
	return tc
}

func testcase(im store.ImageResult, stage string) junit.Testcase {
	tc := junit.Testcase{Name: stage, Classname: im.Name}
	st := im.Stage(stage)
	if st == nil {
		reason := "not reached"
		switch {
		case im.Status == store.Skipped:
			reason = "skipped: " + im.Error
		case im.Error != "":
			reason = "not reached: " + im.Error
		}
		tc.Skipped = &junit.Result{Message: xmlText(reason)}
		return tc
	}
	tc.Time = seconds(st.Duration(time.Now()))
	switch st.Status {
	case store.Failed:
		tc.Failure = &junit.Result{Message: xmlText(st.Error), Type: "failed", Data: xmlText(strings.Join(im.Tail, "\n"))}
		if im.Log != "" {
			tc.SystemOut = &junit.Output{Data: "full log: " + im.Log}
		}
	case store.Interrupted, store.Running:
		tc.Error = &junit.Result{Message: xmlText("interrupted: " + st.Error), Type: "interrupted"}
	case store.Succeeded:
		if st.Attempts > 1 {
			// Flaky, never hidden: passed, and says so, as a flaky test does.
			tc.SystemOut = &junit.Output{Data: fmt.Sprintf("flaky: failed for a passing reason (build.retry_on), then passed on attempt %d; full log: %s", st.Attempts, im.Log)}
		}
	}
	return tc
}

// xmlText drops the characters XML 1.0 cannot hold (build output carries
// terminal escapes), which would make the whole report unreadable.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return -1
		}
		return r
	}, s)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
