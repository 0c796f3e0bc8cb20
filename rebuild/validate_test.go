package rebuild

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"

	"nightshift/store"
)

// testResults makes the test stage pass for every image but those in fail.
func testResults(fail ...string) func(context.Context, *Step, string, io.Writer) *store.Validation {
	return func(_ context.Context, s *Step, _ string, log io.Writer) *store.Validation {
		fmt.Fprintf(log, "testing %s\n", s.Name)
		if slices.Contains(fail, s.Name) {
			return &store.Validation{Status: store.Failed, Error: "1 of 2 tests failed: python imports",
				Tests: []store.TestResult{{Name: "shell", Passed: true}, {Name: "python imports"}}}
		}
		return &store.Validation{Status: store.Succeeded, Tests: []store.TestResult{{Name: "shell", Passed: true}}}
	}
}

func TestRunnerValidates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name            string
		latestValidated bool
		hold            bool
		want            []string // trace of a passing image
		wantTags        []string
	}{
		{
			name: "latest moves at push, validated after the tests",
			want: []string{"running", "build:running", "build:succeeded", "push:running", "push:succeeded",
				"verify:running", "verify:succeeded", "tag:running", "tag:succeeded",
				"test:running", "test:succeeded", "validated:running", "validated:succeeded", "succeeded"},
			wantTags: []string{"t", "latest", "t-validated"},
		},
		{
			name:            "latest waits for validation",
			latestValidated: true,
			want: []string{"running", "build:running", "build:succeeded", "push:running", "push:succeeded",
				"verify:running", "verify:succeeded", "test:running", "test:succeeded",
				"validated:running", "validated:succeeded", "succeeded"},
			wantTags: []string{"t", "t-validated", "latest"},
		},
		{
			name:            "validated tags held for the run's Jenkins job",
			latestValidated: true,
			hold:            true,
			want: []string{"running", "build:running", "build:succeeded", "push:running", "push:succeeded",
				"verify:running", "verify:succeeded", "test:running", "test:succeeded", "succeeded"},
			wantTags: []string{"t"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 2, step("base"), step("cpu", "base"), step("solo"))
			h.runner.Test = testResults("base")
			h.runner.LatestValidated, h.runner.HoldValidated = tc.latestValidated, tc.hold
			failed := h.run(t.Context())
			if !slices.Equal(failed, []string{"base"}) {
				t.Fatalf("failed = %q, want [base]: its tests fail", failed)
			}

			// A failing test fails the image, not what builds on it.
			final, _ := h.events.final("base")
			if final.Status != store.Failed || final.Err == nil || final.Err.Error() != "test: 1 of 2 tests failed: python imports" {
				t.Errorf("base ended %s (%v), want failed by its tests", final.Status, final.Err)
			}
			if i := h.events.index("base", StageTest, store.Failed); i < 0 || h.events.all()[i].Validation == nil {
				t.Errorf("base's test stage did not fail with its validation")
			}
			pushed := digestOf("r/ns/base:t")
			if got, ok := h.reg.get("r/ns/base:latest"); tc.latestValidated == ok || ok && got != pushed {
				t.Errorf("base's latest = %q (%v): with latest = validated a broken image never becomes latest, else it moves at push", got, ok)
			}
			if _, ok := h.reg.get("r/ns/base:t-validated"); ok {
				t.Errorf("base, failing its tests, was tagged validated")
			}

			for _, name := range []string{"cpu", "solo"} {
				if got := h.events.trace(name); !slices.Equal(got, tc.want) {
					t.Errorf("events of %s:\n got %q\nwant %q", name, got, tc.want)
				}
				final, _ := h.events.final(name)
				if !slices.Equal(final.Tags, tc.wantTags) {
					t.Errorf("%s's tags = %q, want %q", name, final.Tags, tc.wantTags)
				}
				pushed := digestOf("r/ns/" + name + ":t")
				for _, tag := range tc.wantTags {
					if got, _ := h.reg.get("r/ns/" + name + ":" + tag); got != pushed {
						t.Errorf("registry has r/ns/%s:%s at %q, want the pushed %q", name, tag, got, pushed)
					}
				}
			}
		})
	}
}

// A validation run pulls what the registry has and never builds or pushes.
func TestRunnerPullValidates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, step("base"), step("cpu", "base"))
	h.job.Pull = true
	h.runner.Test = testResults()
	for _, name := range []string{"base", "cpu"} {
		h.reg.put("r/ns/"+name+":t", "sha256:old-"+name)
	}
	if failed := h.run(t.Context()); len(failed) != 0 {
		t.Fatalf("failed = %q", failed)
	}
	want := []string{"running", "pull:running", "pull:succeeded", "test:running", "test:succeeded",
		"validated:running", "validated:succeeded", "succeeded"}
	for _, name := range []string{"base", "cpu"} {
		if got := h.events.trace(name); !slices.Equal(got, want) {
			t.Errorf("events of %s:\n got %q\nwant %q", name, got, want)
		}
		if got, _ := h.reg.get("r/ns/" + name + ":t-validated"); got != "sha256:old-"+name {
			t.Errorf("%s validated tag at %q, want the digest that was pulled", name, got)
		}
		if final, _ := h.events.final(name); final.Digest != "sha256:old-"+name {
			t.Errorf("%s's digest = %q", name, final.Digest)
		}
	}
	if n := len(h.eng.startOrder()); n != 0 {
		t.Errorf("a validation run built %d images", n)
	}
}
