package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"nightshift/rebuild"
	"nightshift/store"
)

// The live view draws one line per planned image and, on each change,
// moves the cursor back over what it drew and draws it again.
func TestLiveRedraws(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	now := start.Add(1500 * time.Millisecond)
	var out bytes.Buffer
	l := &Live{W: &out, Now: func() time.Time { return now }}

	run := &store.Run{Planned: []string{"base", "cpu", "docs"}}
	l.Observe(run, rebuild.Event{})
	first := out.String()
	if strings.Contains(first, "\x1b[3A") {
		t.Errorf("the first drawing moves the cursor up: %q", first)
	}
	if got := strings.Count(first, "\n"); got != 3 {
		t.Fatalf("first drawing has %d lines, want 3: %q", got, first)
	}

	out.Reset()
	finished := start.Add(time.Second)
	run.Images = []store.ImageResult{
		{Name: "base", Status: store.Succeeded, Started: &start, Finished: &finished},
		{Name: "cpu", Status: store.Running, Started: &start, Stages: []store.Stage{{Name: rebuild.StageBuild}, {Name: rebuild.StagePush}}},
		{Name: "docs", Status: store.Failed, Started: &start, Finished: &finished, Error: "build: mirror moved"},
	}
	l.Observe(run, rebuild.Event{})
	second := out.String()
	if !strings.HasPrefix(second, "\x1b[3A") {
		t.Errorf("the redraw does not start by moving up over the 3 lines: %q", second)
	}
	plain := regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]").ReplaceAllString(second, "")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`✓ base +succeeded +1s\n`),
		regexp.MustCompile(`… cpu +push +1.5s\n`), // a running image shows its stage
		regexp.MustCompile(`✗ docs +failed +1s  build: mirror moved\n`),
	} {
		if !want.MatchString(plain) {
			t.Errorf("redraw lacks %s:\n%s", want, plain)
		}
	}
	// The caller's record may change after Observe: the view keeps its own copy.
	run.Images[0].Status = store.Failed
	out.Reset()
	l.Tick()
	if !strings.Contains(out.String(), "succeeded") {
		t.Errorf("Tick drew a record changed after Observe:\n%s", out.String())
	}
}
