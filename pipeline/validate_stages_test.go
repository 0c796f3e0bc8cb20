package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/source"
	"nightshift/store"
)

// trace is an image's stages and status as "stage:status" and "status".
func trace(im *store.ImageResult) []string {
	var out []string
	for _, st := range im.Stages {
		out = append(out, st.Name+":"+string(st.Status))
	}
	return append(out, string(im.Status))
}

// After its push, an image is tagged latest (or not, when latest waits
// for validation), its packages are read, it is tested, and tagged validated when it passes; a failing
// test fails the image, not what builds on it.
func TestValidationStages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name            string
		latestValidated bool
		jenkins         bool
		want            []string // stages of a passing image
		wantTags        []string
		wantValidation  store.Status
	}{
		{
			name:           "latest moves at push, validated after the tests",
			want:           []string{"build:succeeded", "push:succeeded", "verify:succeeded", "tag:succeeded", "packages:succeeded", "test:succeeded", "validated:succeeded", "succeeded"},
			wantTags:       []string{"t", "latest", "t-validated"},
			wantValidation: store.Succeeded,
		},
		{
			name:            "latest waits for validation",
			latestValidated: true,
			want:            []string{"build:succeeded", "push:succeeded", "verify:succeeded", "packages:succeeded", "test:succeeded", "validated:succeeded", "succeeded"},
			wantTags:        []string{"t", "t-validated", "latest"},
			wantValidation:  store.Succeeded,
		},
		{
			name:            "validated tags wait for the run's Jenkins job",
			latestValidated: true,
			jenkins:         true,
			want:            []string{"build:succeeded", "push:succeeded", "verify:succeeded", "packages:succeeded", "test:succeeded", "succeeded"},
			wantTags:        []string{"t"},
			wantValidation:  store.Skipped, // the job is skipped: base failed its tests
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := newStubRegistry()
			p, _ := newTestPipeline(t, &stubEngine{reg: reg}, reg)
			if tc.latestValidated {
				p.cfg.Staging.Latest = config.LatestValidated
			}
			p.cfg.Validate.Jenkins.When = config.JenkinsAllBuilt
			p.tester = func(*Prepared) tester { return fixedTests{fail: []string{"base"}} }
			jobRan := false
			if tc.jenkins {
				p.jenkins = func(*rebuild.Plan) jenkinsJob {
					return jenkinsFunc(func(context.Context, map[string]string, func(store.JenkinsBuild)) store.JenkinsBuild {
						jobRan = true
						return store.JenkinsBuild{}
					})
				}
			}
			plan := testPlan()
			plan.Steps[2].Parents, plan.Steps[2].Base = nil, "" // lint stands alone
			prep := &Prepared{Source: source.Checkout{Commit: "abc123"}, Plan: plan, Tests: nil}
			got, err := runPrepared(t.Context(), p, prep, Request{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != store.Failed || jobRan {
				t.Errorf("run %s, job ran: %v; want failed, the job not run", got.Status, jobRan)
			}

			base := got.Image("base")
			if base.Status != store.Failed || base.Error != "test: 1 of 2 tests failed: python imports" ||
				base.Validation == nil || base.Validation.Status != store.Failed {
				t.Errorf("base ended %s (%q, validation %+v), want failed by its tests", base.Status, base.Error, base.Validation)
			}
			latest := reg.get("reg.test/ns/base:latest")
			if tc.latestValidated == (latest != "") || latest != "" && latest != base.Digest {
				t.Errorf("base's latest = %q: with latest = validated a broken image never becomes latest, else it moves at push", latest)
			}
			if d := reg.get("reg.test/ns/base:t-validated"); d != "" {
				t.Errorf("base, failing its tests, was tagged validated")
			}

			for _, name := range []string{"cpu", "lint"} {
				im := got.Image(name)
				if got := trace(im); !slices.Equal(got, tc.want) {
					t.Errorf("%s:\n got %q\nwant %q", name, got, tc.want)
				}
				if !slices.Equal(im.Tags, tc.wantTags) {
					t.Errorf("%s's tags = %q, want %q", name, im.Tags, tc.wantTags)
				}
				if im.Validation == nil || im.Validation.Status != tc.wantValidation {
					t.Errorf("%s's validation = %+v, want %s", name, im.Validation, tc.wantValidation)
				}
				for _, tag := range tc.wantTags {
					if d := reg.get("reg.test/ns/" + name + ":" + tag); d != im.Digest {
						t.Errorf("registry has %s:%s at %q, want the pushed %q", name, tag, d, im.Digest)
					}
				}
			}
		})
	}
}

// A validation run pulls what the registry has, by digest, and never
// builds or pushes; what it tags validated is the digest it tested.
func TestValidationRunPulls(t *testing.T) {
	t.Parallel()
	reg := newStubRegistry()
	eng := &stubEngine{reg: reg}
	p, _ := newTestPipeline(t, eng, reg)
	p.tester = func(*Prepared) tester { return fixedTests{} }
	plan := testPlan()
	for _, s := range plan.Steps {
		reg.put(s.Ref.String(), "sha256:old-"+s.Name)
	}
	got, err := runPrepared(t.Context(), p, &Prepared{Plan: plan, Pull: true}, Request{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.Succeeded || got.Kind != store.KindValidate {
		t.Fatalf("run %s of kind %q, want a succeeded validation", got.Status, got.Kind)
	}
	want := []string{"pull:succeeded", "test:succeeded", "validated:succeeded", "succeeded"}
	for _, s := range plan.Steps {
		im := got.Image(s.Name)
		if got := trace(im); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", s.Name, got, want)
		}
		if d := reg.get("reg.test/ns/" + s.Name + ":t-validated"); d != "sha256:old-"+s.Name || im.Digest != d {
			t.Errorf("%s validated at %q, recorded %q, want the digest pulled", s.Name, d, im.Digest)
		}
		if d := reg.get(s.Latest.String()); d != "" {
			t.Errorf("%s's latest moved to %s by a validation, with latest = built", s.Name, d)
		}
	}
	if len(eng.builds) != 0 || !slices.Contains(eng.pulls, "reg.test/ns/base@sha256:old-base") {
		t.Errorf("built %q, pulled %q; want no build and pulls by digest", eng.builds, eng.pulls)
	}
}

// A validation names the images by the run that pushed them or by their
// tag; the record says which commit their tests come from.
func TestValidationResolvesTheNight(t *testing.T) {
	t.Parallel()
	p, db := newTestPipeline(t, &stubEngine{}, newStubRegistry())
	for _, r := range []*store.Run{
		{Tag: "2026-11-22-02-00-00-aaaaaaaa", Commit: "aaaaaaaa11", Status: store.Succeeded},
		{Tag: "2026-11-23-02-00-00-bbbbbbbb", Commit: "bbbbbbbb22", Status: store.Succeeded},
		{Tag: "2026-11-23-02-00-00-bbbbbbbb", Commit: "bbbbbbbb22", Status: store.Failed, Kind: store.KindValidate},
	} {
		if err := db.CreateRun(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name        string
		req         Request
		id          uint64
		tag, commit string
		usage       bool
	}{
		{name: "by run", req: Request{Night: 1}, id: 1, tag: "2026-11-22-02-00-00-aaaaaaaa", commit: "aaaaaaaa11"},
		{name: "by tag", req: Request{Tag: "2026-11-23-02-00-00-bbbbbbbb"}, id: 2, tag: "2026-11-23-02-00-00-bbbbbbbb", commit: "bbbbbbbb22"},
		{name: "by a validation of the night", req: Request{Night: 3}, id: 2, tag: "2026-11-23-02-00-00-bbbbbbbb", commit: "bbbbbbbb22"},
		{name: "a tag no run pushed", req: Request{Tag: "elsewhere"}, tag: "elsewhere"},
		{name: "an unknown run", req: Request{Night: 9}, usage: true},
		{name: "neither", req: Request{}, usage: true},
		{name: "both", req: Request{Night: 1, Tag: "x"}, usage: true},
	} {
		night, err := p.night(tc.req)
		var usage *UsageError
		if tc.usage != errors.As(err, &usage) || night.ID != tc.id || night.Tag != tc.tag || night.Commit != tc.commit {
			t.Errorf("%s: run %d %q %q %v; want %d %q %q, usage error %v", tc.name, night.ID, night.Tag, night.Commit, err, tc.id, tc.tag, tc.commit, tc.usage)
		}
	}
}

// A panic in what the pipeline does with an image fails that image; one in
// the run's own work (here the Jenkins job) ends the run interrupted. The
// process goes on either way.
func TestPanicsEndRecorded(t *testing.T) {
	t.Parallel()
	t.Run("in an image's tests", func(t *testing.T) {
		t.Parallel()
		reg := newStubRegistry()
		p, _ := newTestPipeline(t, &stubEngine{reg: reg}, reg)
		p.tester = func(*Prepared) tester {
			return testerFunc(func(s *rebuild.Step) *store.Validation {
				if s.Name == "cpu" {
					panic("tester: boom")
				}
				return &store.Validation{Status: store.Succeeded}
			})
		}
		got, err := runPrepared(t.Context(), p, &Prepared{Plan: testPlan()}, Request{})
		if err != nil {
			t.Fatal(err)
		}
		cpu := got.Image("cpu")
		if got.Status != store.Failed || cpu.Status != store.Failed || !strings.Contains(cpu.Error, "panic: tester: boom") {
			t.Errorf("run %s, cpu %s %q; want both failed by the panic", got.Status, cpu.Status, cpu.Error)
		}
		if lint := got.Image("lint"); lint.Status != store.Succeeded {
			t.Errorf("lint, built on cpu's pushed image, ended %s", lint.Status)
		}
	})
	t.Run("in the run's Jenkins job", func(t *testing.T) {
		t.Parallel()
		reg := newStubRegistry()
		p, db := newTestPipeline(t, &stubEngine{reg: reg}, reg)
		p.tester = func(*Prepared) tester { return testsFailing("") }
		p.jenkins = func(*rebuild.Plan) jenkinsJob {
			return jenkinsFunc(func(context.Context, map[string]string, func(store.JenkinsBuild)) store.JenkinsBuild {
				panic("jenkins: boom")
			})
		}
		got, err := runPrepared(t.Context(), p, &Prepared{Plan: testPlan()}, Request{})
		if err == nil || !strings.Contains(err.Error(), "panic: jenkins: boom") {
			t.Errorf("Wait's error = %v, want the panic", err)
		}
		if got == nil || got.Status != store.Interrupted || !strings.Contains(got.Error, "nightshift failed: panic: jenkins: boom") {
			t.Fatalf("run recorded as %+v, want interrupted by the panic", got)
		}
		if n, _ := db.PendingCount(); n != 0 {
			// No notifier is configured here; the outbox ran without error.
			t.Errorf("%d messages queued with no notifier", n)
		}
	})
}
