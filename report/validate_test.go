package report

import (
	"strings"
	"testing"

	"nightshift/rebuild"
	"nightshift/store"
)

// A validated run reports each test inside each image, and the Jenkins job.
func TestJUnitValidation(t *testing.T) {
	t.Parallel()
	stage := func(name string, status store.Status, err string) store.Stage {
		return store.Stage{Name: name, Status: status, Started: t0, Finished: at(1e9), Error: err}
	}
	run := &store.Run{ID: 9, Tag: "t", Kind: "validate", Status: store.Failed, Started: t0, Finished: at(60e9),
		Images: []store.ImageResult{{
			Name: "ci_cpu", Status: store.Failed, Error: "test: 1 of 3 tests failed: python imports",
			Stages: []store.Stage{stage(rebuild.StagePull, store.Succeeded, ""), stage(rebuild.StageTest, store.Failed, "1 of 3 tests failed: python imports")},
			Validation: &store.Validation{Status: store.Failed, Tests: []store.TestResult{
				{Name: "shell", File: "tests/common.yaml", Kind: "command", Passed: true, Seconds: 0.2, Attempts: 1},
				{Name: "python imports", Kind: "command", Seconds: 1.5, Attempts: 1, Output: "ModuleNotFoundError: numpy",
					Errors: []string{"Expected string '^ok$' not found in output 'ModuleNotFoundError: numpy'"}},
				{Name: "mirror reachable", Kind: "command", Passed: true, Flaky: true, Attempts: 2, Seconds: 3},
			}},
		}},
		Jenkins: &store.JenkinsBuild{Job: "ci/test", Status: store.Failed, Result: "FAILURE", Number: 12,
			URL: "http://jenkins/job/ci/job/test/12/", Started: t0, Finished: at(30e9), Console: []string{"FAIL: test_cuda", "Finished: FAILURE"}},
	}
	got, _ := writeJUnit(t, run)
	cases := got.Suites[0].Cases
	var names []string
	for _, c := range cases {
		names = append(names, c.Classname+" "+c.Name)
	}
	want := []string{"ci_cpu pull", "ci_cpu test", "ci_cpu test: common.yaml: shell", "ci_cpu test: python imports", "ci_cpu test: mirror reachable", "validation jenkins: ci/test"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Fatalf("cases:\n%q\nwant:\n%q", names, want)
	}
	if got.Failures != 3 || got.Tests != 6 {
		t.Errorf("%d tests, %d failures; want 6 tests, 3 failures (the test stage, the test, the job)", got.Tests, got.Failures)
	}
	imports := cases[3]
	if imports.Failure == nil || !strings.Contains(imports.Failure.Message, "'^ok$' not found") || imports.Failure.Data != "ModuleNotFoundError: numpy" || imports.Time != "1.500" {
		t.Errorf("failed test = %+v", imports)
	}
	if flaky := cases[4]; flaky.Failure != nil || flaky.SystemOut == nil || !strings.Contains(*flaky.SystemOut, "flaky: failed, then passed on attempt 2") {
		t.Errorf("flaky test = %+v, want a pass that says it was flaky", flaky)
	}
	if shell := cases[2]; shell.Failure != nil || shell.SystemOut == nil || *shell.SystemOut != "from tests/common.yaml" {
		t.Errorf("passing test = %+v", shell)
	}
	job := cases[5]
	if job.Failure == nil || job.Failure.Message != "ci/test #12 FAILURE (http://jenkins/job/ci/job/test/12/)" || !strings.Contains(job.Failure.Data, "FAIL: test_cuda") || job.Time != "30.000" {
		t.Errorf("jenkins case = %+v", job)
	}
}
