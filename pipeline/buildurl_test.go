package pipeline

import (
	"encoding/json"
	"strings"
	"testing"

	"nightshift/source"
)

// The CI build a request names is in the run's record from its start, under
// the JSON name build_url; a request naming none records none.
func TestRecordsTheBuildURL(t *testing.T) {
	t.Parallel()
	const buildURL = "https://jenkins.example.org/job/ci-images/77/"
	for _, want := range []string{buildURL, ""} {
		reg := newStubRegistry()
		p, db := newTestPipeline(t, &stubEngine{reg: reg}, reg)
		prep := &Prepared{Source: source.Checkout{Commit: "abc123"}, Plan: testPlan()}
		r, err := p.start(t.Context(), Request{BuildURL: want}, prep, nil)
		if err != nil {
			t.Fatal(err)
		}
		started, err := db.Run(r.ID())
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if started.BuildURL != want || got.BuildURL != want {
			t.Errorf("build URL recorded %q at the start and %q at the end, want %q", started.BuildURL, got.BuildURL, want)
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(string(b), `"build_url":"`+buildURL+`"`); has != (want != "") || want == "" && strings.Contains(string(b), "build_url") {
			t.Errorf("the record as JSON: %s; want build_url only when a build URL was given", b)
		}
	}
}
