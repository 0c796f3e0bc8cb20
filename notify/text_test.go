package notify

import (
	"strings"
	"testing"

	"nightshift/store"
)

func TestOneLine(t *testing.T) {
	t.Parallel()
	if got := OneLine("build failed:\n\x1b[31mexit\x1b[0m code 1\r\n\tafter\x00 3 tries "); got != "build failed: exit code 1 after 3 tries" {
		t.Errorf("OneLine = %q", got)
	}
}

func TestShortCommit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b": "1a2b3c4d",
		" 1a2b3c4d\n":           "1a2b3c4d",
		"abc":                   "abc",
		"release/2026.4":        "release/2026.4",
		strings.Repeat("z", 50): strings.Repeat("z", 39) + "…",
	} {
		if got := ShortCommit(in); got != want {
			t.Errorf("ShortCommit(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidationInWords(t *testing.T) {
	t.Parallel()
	v := &store.Validation{Status: store.Failed, Tests: []store.TestResult{
		{Name: "ok", Passed: true},
		{Name: "errors", Errors: []string{"", "expected 0,\ngot 1"}, Output: "ignored"},
		{Name: "output", Output: "first\n\x1b[31mlast line\x1b[0m\n\n"},
		{Name: "long", Errors: []string{strings.Repeat("x", 500)}},
		{Name: "silent"},
	}}
	if got := ValidationStatus(v); got != "validation failed (4 of 5 tests)" {
		t.Errorf("ValidationStatus = %q", got)
	}
	got := FailedTests(v)
	want := []FailedTest{{"errors", "expected 0, got 1"}, {"output", "last line"}, {"long", strings.Repeat("x", excerptRunes-1) + "…"}, {"silent", "no error or output recorded"}}
	if len(got) != len(want) {
		t.Fatalf("FailedTests = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("FailedTests[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	for v, want := range map[*store.Validation]string{
		nil:                                  "",
		{Status: store.Skipped}:              "not validated",
		{Status: store.Running}:              "validation running",
		{Status: store.Failed, Error: "job"}: "validation failed",
		{Status: store.Succeeded, Tests: []store.TestResult{{Passed: true, Flaky: true}, {Passed: true, Flaky: true}}}: "validated (2 flaky tests)",
	} {
		if got := ValidationStatus(v); got != want {
			t.Errorf("ValidationStatus(%+v) = %q, want %q", v, got, want)
		}
	}
}

func TestFlakyBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		im   store.ImageResult
		want string
	}{
		{store.ImageResult{Status: store.Succeeded}, ""},
		{store.ImageResult{Status: store.Succeeded, Flaky: true, Stages: []store.Stage{{Name: "build", Attempts: 3}}}, "flaky build (3 attempts)"},
		{store.ImageResult{Status: store.Succeeded, Flaky: true}, "flaky build"},
	} {
		if got := FlakyBuild(tc.im); got != tc.want {
			t.Errorf("FlakyBuild(%+v) = %q, want %q", tc.im, got, tc.want)
		}
	}
}

func TestConsoleURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://jenkins.example.com/job/ci-images/42/": "https://jenkins.example.com/job/ci-images/42/console",
		"https://jenkins.example.com/job/ci-images/42":  "https://jenkins.example.com/job/ci-images/42/console",
		"http://10.0.0.5:8080/ci/job/a%20b/job/main/7/": "http://10.0.0.5:8080/ci/job/a%20b/job/main/7/console",
		"":                    "", // not under Jenkins
		"/job/ci-images/42/":  "", // no host to reach
		"javascript:alert(1)": "",
		"file:///var/lib/jenkins/jobs/ci-images/builds/42/": "",
		"https://jenkins example.com/job/x/1/":              "",
	} {
		s := Summary{Run: store.Run{BuildURL: in}}
		if got := s.ConsoleURL(); got != want {
			t.Errorf("ConsoleURL of BUILD_URL %q = %q, want %q", in, got, want)
		}
	}
}

func TestRecurs(t *testing.T) {
	t.Parallel()
	s := Summary{Recurring: map[string]store.Recurrence{"cpu": {Seen: 3, Of: 7}, "gpu": {Seen: 1, Of: 7}}}
	for name, want := range map[string]string{"cpu": "seen on 3 of the last 7 nights", "gpu": "", "lint": ""} {
		if got := s.Recurs(name); got != want {
			t.Errorf("Recurs(%q) = %q, want %q", name, got, want)
		}
	}
	f := store.Finish{Run: &store.Run{ID: 3, Status: store.Failed}, Recurring: s.Recurring, Undelivered: func(string) int { return 0 }}
	msgs, err := Messages([]Route{{Notifier: "d", On: []string{"always"}}}, "", "")(f)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Messages: %d, %v", len(msgs), err)
	}
	if !strings.Contains(string(msgs[0].Payload), `"recurring":{"cpu":{"seen":3,"of":7}`) {
		t.Errorf("payload %s lacks the recurrences", msgs[0].Payload)
	}
}

func TestPackageChanges(t *testing.T) {
	t.Parallel()
	d := &store.PackageDiff{SinceRun: 41, Added: 1, Changed: 3, First: []store.PackageChange{
		{Source: "pip", Name: "numpy", From: "1.25.2", To: "1.26.0"},
		{Source: "dpkg", Name: "curl", From: "7.88.1", To: "7.88.2"},
		{Source: "pip", Name: "torch", From: "2.1", To: "2.2"},
		{Source: "dpkg", Name: "wget", To: "1.21"},
	}}
	cases := []struct {
		im   store.ImageResult
		n    int
		want string
	}{
		{store.ImageResult{}, 3, ""},
		{store.ImageResult{Packages: &store.PackageDiff{SinceRun: 41}}, 3, ""},
		{store.ImageResult{Packages: d}, 2, "packages since run 41: 1 added, 3 changed (pip numpy 1.25.2 -> 1.26.0, dpkg curl 7.88.1 -> 7.88.2, and 2 more)"},
		{store.ImageResult{Packages: d}, 10, "packages since run 41: 1 added, 3 changed (pip numpy 1.25.2 -> 1.26.0, dpkg curl 7.88.1 -> 7.88.2, pip torch 2.1 -> 2.2, dpkg +wget 1.21)"},
	}
	for _, tc := range cases {
		if got := PackageChanges(tc.im, tc.n); got != tc.want {
			t.Errorf("PackageChanges(%+v, %d) =\n %q\nwant %q", tc.im.Packages, tc.n, got, tc.want)
		}
	}
}
