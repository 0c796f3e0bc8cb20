package pipeline

import (
	"context"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/store"
)

// A run with a Jenkins job: the job runs once every image is pushed and
// tested, with their refs; the images it passes are tagged validated.
func TestRunJenkins(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		testsFail   string // an image whose own tests fail
		when        string // validate.jenkins.when
		missing     string // validate.jenkins.missing
		validated   bool   // a run before this one validated lint
		result      string // the job's result, "" when it must not run
		wantStatus  store.Status
		wantImage   store.Status // the validation of every image that built
		wantTrigger bool
		wantPartial []store.PartialImage
	}{
		{name: "job passes", result: "SUCCESS", wantStatus: store.Succeeded, wantImage: store.Succeeded, wantTrigger: true},
		{name: "job fails", result: "FAILURE", wantStatus: store.Failed, wantImage: store.Failed, wantTrigger: true},
		{name: "an image's tests fail, the job waits for all", testsFail: "lint", when: config.JenkinsAllBuilt,
			wantStatus: store.Failed, wantImage: store.Skipped},
		{name: "an image's tests fail, the job runs with the others", testsFail: "lint", result: "SUCCESS",
			wantStatus: store.Failed, wantImage: store.Succeeded, wantTrigger: true,
			wantPartial: []store.PartialImage{{Name: "lint"}}},
		{name: "an image's tests fail, the job gets its last validated ref", testsFail: "lint", result: "SUCCESS",
			missing: config.JenkinsLastValidated, validated: true,
			wantStatus: store.Failed, wantImage: store.Succeeded, wantTrigger: true,
			wantPartial: []store.PartialImage{{Name: "lint", Ref: "reg.test/ns/lint:older"}}},
		{name: "last validated, but never validated", testsFail: "lint", result: "SUCCESS",
			missing:    config.JenkinsLastValidated,
			wantStatus: store.Failed, wantImage: store.Succeeded, wantTrigger: true,
			wantPartial: []store.PartialImage{{Name: "lint"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := newStubRegistry()
			p, db := newTestPipeline(t, &stubEngine{reg: reg}, reg)
			p.cfg.Staging.Latest = config.LatestValidated
			p.cfg.Validate.Jenkins.When, p.cfg.Validate.Jenkins.Missing = tc.when, tc.missing
			p.tester = func(*Prepared) tester { return testsFailing(tc.testsFail) }
			if tc.validated {
				older := &store.Run{Tag: "older", Status: store.Succeeded, Images: []store.ImageResult{{Name: "lint", Status: store.Succeeded,
					Ref: "reg.test/ns/lint:older", Validation: &store.Validation{Status: store.Succeeded}}}}
				if err := db.CreateRun(older); err != nil {
					t.Fatal(err)
				}
			}
			prep := &Prepared{Source: source.Checkout{Commit: "abc123"}, Plan: testPlan()}
			var (
				triggered map[string]string
				waiting   []store.Status // base's validation while the job ran
			)
			p.jenkins = func(*rebuild.Plan) jenkinsJob {
				return jenkinsFunc(func(_ context.Context, refs map[string]string, update func(store.JenkinsBuild)) store.JenkinsBuild {
					triggered = refs
					b := store.JenkinsBuild{Job: "ci/test", Status: store.Running, Number: 7, URL: "http://jenkins/job/ci/job/test/7/"}
					update(b)
					runs, _ := db.Runs(1) // this one, the newest
					waiting = append(waiting, runs[0].Image("base").Validation.Status)
					b.Result, b.Status = tc.result, store.Failed
					if tc.result == "SUCCESS" {
						b.Status = store.Succeeded
					}
					return b
				})
			}
			got, err := runPrepared(t.Context(), p, prep, Request{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.wantStatus {
				t.Errorf("run %s, want %s", got.Status, tc.wantStatus)
			}
			if (triggered != nil) != tc.wantTrigger {
				t.Fatalf("job triggered with %v, want triggered: %v", triggered, tc.wantTrigger)
			}
			if tc.wantTrigger {
				want := map[string]string{}
				for _, s := range prep.Plan.Steps {
					want[s.Name] = s.Ref.String()
				}
				delete(want, tc.testsFail)
				for _, p := range tc.wantPartial {
					if p.Ref != "" {
						want[p.Name] = p.Ref
					}
				}
				if !maps.Equal(triggered, want) {
					t.Errorf("job got refs %v, want %v", triggered, want)
				}
				if !reflect.DeepEqual(got.Jenkins.Partial, tc.wantPartial) {
					t.Errorf("recorded the job's partial %+v, want %+v", got.Jenkins.Partial, tc.wantPartial)
				}
				if !slices.Equal(waiting, []store.Status{store.Running}) {
					t.Errorf("while the job ran, base's validation was %v, want running", waiting)
				}
				if got.Jenkins == nil || got.Jenkins.Number != 7 || got.Jenkins.Result != tc.result {
					t.Errorf("recorded job %+v", got.Jenkins)
				}
			} else if got.Jenkins == nil || got.Jenkins.Status != store.Skipped || !strings.Contains(got.Jenkins.Error, "lint") {
				t.Errorf("recorded job %+v, want skipped because lint failed", got.Jenkins)
			}
			for _, s := range prep.Plan.Steps {
				im := got.Image(s.Name)
				if s.Name == tc.testsFail {
					if im.Status != store.Failed || im.Validation.Status != store.Failed {
						t.Errorf("%s: %s, validation %+v, want failed by its tests", s.Name, im.Status, im.Validation)
					}
					if d := reg.get(s.Validated().String()); d != "" {
						t.Errorf("%s, failed, was tagged validated", s.Name)
					}
					continue
				}
				if im.Validation == nil || im.Validation.Status != tc.wantImage || len(im.Validation.Tests) != 1 {
					t.Errorf("%s's validation = %+v, want %s with its own test kept", s.Name, im.Validation, tc.wantImage)
				}
				validated := reg.get(s.Validated().String())
				latest := reg.get(s.Latest.String())
				if tc.wantImage == store.Succeeded {
					if validated != im.Digest || latest != im.Digest || !slices.Equal(im.Tags, []string{"t", "t-validated", "latest"}) || im.Status != store.Succeeded {
						t.Errorf("%s: validated tag at %q, latest at %q, tags %q, status %s; want both at %s", s.Name, validated, latest, im.Tags, im.Status, im.Digest)
					}
					continue
				}
				if validated != "" || latest != "" {
					t.Errorf("%s, not validated, has -validated at %q and latest at %q", s.Name, validated, latest)
				}
				if tc.result == "FAILURE" && (im.Status != store.Failed || !strings.Contains(im.Error, "ci/test #7 FAILURE")) {
					t.Errorf("%s: %s %q, want failed by the job", s.Name, im.Status, im.Error)
				}
			}
		})
	}
}

// jenkinsFunc is a Jenkins job in a function.
type jenkinsFunc func(ctx context.Context, refs map[string]string, update func(store.JenkinsBuild)) store.JenkinsBuild

func (f jenkinsFunc) Run(ctx context.Context, refs map[string]string, update func(store.JenkinsBuild)) store.JenkinsBuild {
	return f(ctx, refs, update)
}

// testsFailing fails the tests of image name ("" for none) with one failed
// test, and passes the others' with one test each.
func testsFailing(name string) tester {
	return testerFunc(func(s *rebuild.Step) *store.Validation {
		if s.Name == name {
			return &store.Validation{Status: store.Failed, Error: "1 of 1 tests failed: lint runs", Tests: []store.TestResult{{Name: "lint runs"}}}
		}
		return &store.Validation{Status: store.Succeeded, Tests: []store.TestResult{{Name: "shell", Passed: true}}}
	})
}

type testerFunc func(s *rebuild.Step) *store.Validation

func (f testerFunc) Test(_ context.Context, s *rebuild.Step, _ string, _ io.Writer) *store.Validation {
	return f(s)
}
