// Package report renders run records for machines and people: JUnit XML
// for Jenkins, the JSON summary, and live progress on a terminal or in a log.
package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"nightshift/rebuild"
	"nightshift/store"
)

// stages are the test cases of every image, in the order they run.
var stages = []string{rebuild.StageBuild, rebuild.StagePush, rebuild.StageVerify, rebuild.StageTag}

// JUnit writes run as a JUnit report: one test suite per run, one test case
// per image and stage (classname = image), so Jenkins' junit step shows
// which stage of which image broke.
func JUnit(w io.Writer, run *store.Run) error {
	suite := junit.Testsuite{
		Name: fmt.Sprintf("nightshift run %d (%s)", run.ID, run.Tag),
		Time: seconds(run.Duration(time.Now())),
	}
	suite.SetTimestamp(run.Started)
	suite.AddProperty("commit", run.Commit)
	suite.AddProperty("tag", run.Tag)
	for _, im := range run.Images {
		for _, name := range stages {
			suite.AddTestcase(testcase(im, name))
		}
	}
	var suites junit.Testsuites
	suites.AddSuite(suite)
	return suites.WriteXML(w)
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
