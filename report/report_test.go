package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"nightshift/rebuild"
	"nightshift/store"
)

// The JUnit XML as Jenkins reads it, only the parts under test.
type xmlSuites struct {
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Errors   int        `xml:"errors,attr"`
	Skipped  int        `xml:"skipped,attr"`
	Suites   []xmlSuite `xml:"testsuite"`
}

type xmlSuite struct {
	Name       string        `xml:"name,attr"`
	Tests      int           `xml:"tests,attr"`
	Failures   int           `xml:"failures,attr"`
	Errors     int           `xml:"errors,attr"`
	Skipped    int           `xml:"skipped,attr"`
	Timestamp  string        `xml:"timestamp,attr"`
	Properties []xmlProperty `xml:"properties>property"`
	Cases      []xmlCase     `xml:"testcase"`
}

type xmlProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type xmlCase struct {
	Name      string     `xml:"name,attr"`
	Classname string     `xml:"classname,attr"`
	Time      string     `xml:"time,attr"`
	Failure   *xmlResult `xml:"failure"`
	Error     *xmlResult `xml:"error"`
	Skipped   *xmlResult `xml:"skipped"`
	SystemOut *string    `xml:"system-out"`
}

type xmlResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Data    string `xml:",chardata"`
}

var t0 = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time {
	t := t0.Add(d)
	return &t
}

// stagesDone is the first n stages of an image, each a minute long, all
// succeeded but the last, which has status last and error err.
func stagesDone(n int, last store.Status, err string) []store.Stage {
	var out []store.Stage
	for i, name := range baseStages[:n] {
		s := store.Stage{Name: name, Status: store.Succeeded, Started: *at(time.Duration(i) * time.Minute), Finished: at(time.Duration(i+1) * time.Minute)}
		if i == n-1 {
			s.Status, s.Error = last, err
		}
		out = append(out, s)
	}
	return out
}

func writeJUnit(t *testing.T, run *store.Run) (xmlSuites, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := JUnit(&buf, run); err != nil {
		t.Fatalf("JUnit: %v", err)
	}
	var got xmlSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("JUnit wrote XML that does not parse: %v\n%s", err, buf.String())
	}
	if len(got.Suites) != 1 {
		t.Fatalf("%d test suites, want 1:\n%s", len(got.Suites), buf.String())
	}
	return got, buf.String()
}

func findCase(t *testing.T, s xmlSuite, classname, name string) xmlCase {
	t.Helper()
	for _, c := range s.Cases {
		if c.Classname == classname && c.Name == name {
			return c
		}
	}
	t.Fatalf("no test case %s.%s in %+v", classname, name, s.Cases)
	return xmlCase{}
}

func TestJUnit(t *testing.T) {
	t.Parallel()
	run := &store.Run{
		ID: 7, Tag: "20261123-0200", Commit: "abc123", Status: store.Failed,
		Started: t0, Finished: at(10 * time.Minute),
		Images: []store.ImageResult{
			{
				Name: "base", Status: store.Succeeded, Started: at(0), Finished: at(4 * time.Minute),
				Stages: stagesDone(4, store.Succeeded, ""),
			},
			{
				Name: "cpu", Status: store.Failed, Started: at(0), Finished: at(2 * time.Minute),
				Error:  "push: denied: requested access to the resource is denied",
				Log:    "/var/lib/nightshift/logs/7/cpu.log",
				Tail:   []string{"pushing layer 3/4", "denied: requested access to the resource is denied"},
				Stages: stagesDone(2, store.Failed, "push: denied: requested access to the resource is denied"),
			},
			{
				Name: "lint", Status: store.Skipped, Finished: at(2 * time.Minute),
				Error: "parent cpu failed",
			},
		},
	}
	got, raw := writeJUnit(t, run)
	suite := got.Suites[0]

	const (
		wantTests    = 3 * 4 // images * stages
		wantFailures = 1     // cpu's push
		wantSkipped  = 2 + 4 // cpu's verify and tag, all of lint
	)
	for _, c := range []struct {
		what                             string
		tests, failures, errors, skipped int
	}{
		{"testsuites", got.Tests, got.Failures, got.Errors, got.Skipped},
		{"testsuite", suite.Tests, suite.Failures, suite.Errors, suite.Skipped},
	} {
		if c.tests != wantTests || c.failures != wantFailures || c.errors != 0 || c.skipped != wantSkipped {
			t.Errorf("%s: tests=%d failures=%d errors=%d skipped=%d, want %d %d 0 %d",
				c.what, c.tests, c.failures, c.errors, c.skipped, wantTests, wantFailures, wantSkipped)
		}
	}
	if len(suite.Cases) != wantTests {
		t.Fatalf("%d test cases, want %d", len(suite.Cases), wantTests)
	}
	// One case per image and stage, images in record order, stages in the
	// order they run.
	for i, c := range suite.Cases {
		im, st := run.Images[i/4].Name, baseStages[i%4]
		if c.Classname != im || c.Name != st {
			t.Errorf("case %d is %s.%s, want %s.%s", i, c.Classname, c.Name, im, st)
		}
	}

	if want := "nightshift run 7 (20261123-0200)"; suite.Name != want {
		t.Errorf("suite name %q, want %q", suite.Name, want)
	}
	if want := "2026-11-23T02:00:00Z"; suite.Timestamp != want {
		t.Errorf("suite timestamp %q, want %q", suite.Timestamp, want)
	}
	props := map[string]string{}
	for _, p := range suite.Properties {
		props[p.Name] = p.Value
	}
	if props["commit"] != "abc123" || props["tag"] != "20261123-0200" {
		t.Errorf("properties %v, want commit abc123 and tag 20261123-0200", props)
	}

	ok := findCase(t, suite, "base", "verify")
	if ok.Failure != nil || ok.Error != nil || ok.Skipped != nil || ok.Time != "60.000" {
		t.Errorf("base.verify = %+v, want a passing case of 60.000s", ok)
	}

	fail := findCase(t, suite, "cpu", "push")
	switch {
	case fail.Failure == nil:
		t.Errorf("cpu.push has no failure:\n%s", raw)
	default:
		if want := "push: denied: requested access to the resource is denied"; fail.Failure.Message != want {
			t.Errorf("cpu.push failure message %q, want %q", fail.Failure.Message, want)
		}
		if want := "pushing layer 3/4\ndenied: requested access to the resource is denied"; !strings.Contains(fail.Failure.Data, want) {
			t.Errorf("cpu.push failure text %q lacks the tail %q", fail.Failure.Data, want)
		}
	}
	if fail.SystemOut == nil || !strings.Contains(*fail.SystemOut, "/var/lib/nightshift/logs/7/cpu.log") {
		t.Errorf("cpu.push system-out %v, want the log's path", fail.SystemOut)
	}
	if c := findCase(t, suite, "cpu", "build"); c.Failure != nil || c.Skipped != nil {
		t.Errorf("cpu.build = %+v, want passed", c)
	}

	for _, tc := range []struct{ image, stage, message string }{
		{"cpu", "verify", "not reached: push: denied: requested access to the resource is denied"},
		{"cpu", "tag", "not reached: push: denied: requested access to the resource is denied"},
		{"lint", "build", "skipped: parent cpu failed"},
		{"lint", "tag", "skipped: parent cpu failed"},
	} {
		c := findCase(t, suite, tc.image, tc.stage)
		if c.Skipped == nil || c.Skipped.Message != tc.message {
			t.Errorf("%s.%s skipped = %+v, want message %q", tc.image, tc.stage, c.Skipped, tc.message)
		}
	}
}

// An image cut short by a cancel shows as an error, not as a failure of
// the image.
func TestJUnitInterrupted(t *testing.T) {
	t.Parallel()
	run := &store.Run{
		ID: 8, Tag: "t", Status: store.Interrupted, Started: t0, Finished: at(3 * time.Minute),
		Images: []store.ImageResult{{
			Name: "base", Status: store.Interrupted, Started: at(0), Finished: at(3 * time.Minute),
			Error:  "run cancelled: signal",
			Stages: stagesDone(2, store.Interrupted, "push: context canceled"),
		}},
	}
	got, _ := writeJUnit(t, run)
	if got.Tests != 4 || got.Errors != 1 || got.Failures != 0 || got.Skipped != 2 {
		t.Errorf("tests=%d errors=%d failures=%d skipped=%d, want 4 1 0 2", got.Tests, got.Errors, got.Failures, got.Skipped)
	}
	c := findCase(t, got.Suites[0], "base", "push")
	if c.Error == nil || c.Error.Message != "interrupted: push: context canceled" || c.Error.Type != "interrupted" {
		t.Errorf("base.push error = %+v, want an interrupted error", c.Error)
	}
}

func TestLinesObserve(t *testing.T) {
	t.Parallel()
	// Events come in local time; the lines are in UTC.
	cet := time.FixedZone("CET", 3600)
	run := &store.Run{Images: []store.ImageResult{{
		Name: "cpu", Status: store.Failed, Started: at(0), Finished: at(150 * time.Second),
		Stages: []store.Stage{
			{Name: "build", Status: store.Succeeded, Started: *at(0), Finished: at(time.Minute)},
			{Name: "push", Status: store.Failed, Started: *at(time.Minute), Finished: at(150 * time.Second)},
		},
	}}}
	tail := []string{"pushing layer 3/4", "denied: requested access to the resource is denied"}
	pushErr := errors.New("push: denied: requested access to the resource is denied")

	for _, tc := range []struct {
		name string
		e    rebuild.Event
		want string
	}{
		{
			name: "failed image with its tail",
			e:    rebuild.Event{Image: "cpu", Status: store.Failed, Time: t0.Add(150 * time.Second).In(cet), Err: pushErr, Tail: tail},
			want: "2026-11-23T02:02:30Z cpu                          failed in 2m30s: push: denied: requested access to the resource is denied\n" +
				"    | pushing layer 3/4\n" +
				"    | denied: requested access to the resource is denied\n",
		},
		{
			name: "failed stage, no tail",
			e:    rebuild.Event{Image: "cpu", Stage: "push", Status: store.Failed, Time: t0.Add(150 * time.Second), Err: pushErr},
			want: "2026-11-23T02:02:30Z cpu push                     failed in 1m30s: push: denied: requested access to the resource is denied\n",
		},
		{
			name: "running, no duration",
			e:    rebuild.Event{Image: "cpu", Stage: "build", Status: store.Running, Time: t0},
			want: "2026-11-23T02:00:00Z cpu build                    running\n",
		},
		{
			name: "image not in the record",
			e:    rebuild.Event{Image: "lint", Status: store.Skipped, Time: t0, Err: errors.New("parent cpu failed")},
			want: "2026-11-23T02:00:00Z lint                         skipped: parent cpu failed\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			(&Lines{W: &buf}).Observe(run, tc.e)
			if got := buf.String(); got != tc.want {
				t.Errorf("Observe wrote\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// Build output carries terminal escapes, which XML 1.0 cannot hold; the
// report must still parse, with the text around them kept.
func TestJUnitControlCharacters(t *testing.T) {
	t.Parallel()
	const esc = "\x1b[31merror\x1b[0m: exit code 1\x00"
	run := &store.Run{
		ID: 9, Tag: "t", Status: store.Failed, Started: t0, Finished: at(2 * time.Minute),
		Images: []store.ImageResult{
			{
				Name: "base", Status: store.Failed, Started: at(0), Finished: at(time.Minute),
				Error: "build: " + esc, Tail: []string{"step 3/4", esc},
				Stages: stagesDone(1, store.Failed, "build: "+esc),
			},
			{Name: "cpu", Status: store.Skipped, Error: "parent base failed: " + esc},
		},
	}
	got, raw := writeJUnit(t, run) // fails if the XML does not parse
	if got.Failures != 1 {
		t.Fatalf("failures=%d, want 1:\n%s", got.Failures, raw)
	}
	c := findCase(t, got.Suites[0], "base", "build")
	if c.Failure == nil || !strings.Contains(c.Failure.Message, "[31merror") || !strings.Contains(c.Failure.Data, "step 3/4\n[31merror[0m: exit code 1") {
		t.Errorf("base.build failure = %+v, want the message and tail without the escapes", c.Failure)
	}
	if c := findCase(t, got.Suites[0], "cpu", "build"); c.Skipped == nil || !strings.Contains(c.Skipped.Message, "exit code 1") {
		t.Errorf("cpu.build skipped = %+v, want the reason", c.Skipped)
	}
}

// A build that passed on a retry passes, and says it was flaky.
func TestJUnitFlakyBuild(t *testing.T) {
	t.Parallel()
	stages := stagesDone(4, store.Succeeded, "")
	stages[0].Attempts = 2
	run := &store.Run{
		ID: 9, Tag: "t", Status: store.Succeeded, Started: t0, Finished: at(3 * time.Minute),
		Images: []store.ImageResult{{Name: "base", Status: store.Succeeded, Flaky: true, Log: "/logs/9/base.log",
			Started: at(0), Finished: at(3 * time.Minute), Stages: stages}},
	}
	got, _ := writeJUnit(t, run)
	if got.Failures != 0 || got.Errors != 0 {
		t.Errorf("failures=%d errors=%d, want a pass", got.Failures, got.Errors)
	}
	c := findCase(t, got.Suites[0], "base", "build")
	if c.SystemOut == nil || !strings.Contains(*c.SystemOut, "flaky: failed for a passing reason (build.retry_on), then passed on attempt 2") {
		t.Errorf("base.build says %+v, want it flaky", c.SystemOut)
	}
}
