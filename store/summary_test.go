package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// Every write of a run writes its summary in the same transaction: after
// each, the summaries are those of the records.
func TestSummaryFollowsEveryWrite(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	check := func(what string) {
		t.Helper()
		runs, err := db.Runs(0)
		if err != nil {
			t.Fatal(err)
		}
		sums, version, err := db.Summaries(0)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := db.Version(); v != version {
			t.Errorf("%s: Summaries at version %d, the store at %d", what, version, v)
		}
		if len(sums) != len(runs) {
			t.Fatalf("%s: %d summaries of %d runs", what, len(sums), len(runs))
		}
		for i := range runs {
			if want := summarize(&runs[i]); !sameSummary(sums[i], want) {
				t.Errorf("%s: summary of run %d =\n%+v\nwant\n%+v", what, runs[i].ID, sums[i], want)
			}
		}
	}
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	r := &Run{Tag: "t1", Commit: "c1", Subject: "one <&>", Status: Running, Started: start, Planned: []string{"base", "lint"}}
	if err := db.CreateRun(r); err != nil {
		t.Fatal(err)
	}
	check("CreateRun")
	built := start.Add(time.Minute)
	if err := db.UpdateRun(r.ID, func(r *Run) error {
		r.Images = append(r.Images, ImageResult{Name: "base", Status: Running, Started: &start,
			Stages: []Stage{{Name: "build", Status: Succeeded, Started: start, Finished: &built}, {Name: "test", Status: Running, Started: built}}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("UpdateRun")
	end := start.Add(time.Hour)
	if _, err := db.FinishRun(r.ID, func(r *Run) error {
		im := r.Image("base")
		im.Status, im.Finished, im.Digest, im.Tags = Succeeded, &end, "sha256:aa", []string{"t1", "t1-validated"}
		im.Validation = &Validation{Status: Succeeded}
		r.Status, r.Finished = Succeeded, &end
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	check("FinishRun")
	if err := db.CreateRun(&Run{Tag: "t2", Status: Running, Started: end, Planned: []string{"base"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Interrupt(end.Add(time.Hour), "stopped", nil); err != nil {
		t.Fatal(err)
	}
	check("Interrupt")

	sums, _, err := db.Summaries(1)
	if err != nil || len(sums) != 1 || sums[0].Status != Interrupted || len(sums[0].Images) != 1 || sums[0].Images[0].Status != Interrupted {
		t.Errorf("Summaries(1) = %+v, %v; want the interrupted run", sums, err)
	}
	first, err := db.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum := summarize(first)
	base := sum.Image("base")
	if !base.Validated || base.Validation != Succeeded || !base.Tested.Equal(built) || base.BuildTime(time.Time{}) != time.Minute {
		t.Errorf("base = %+v, want validated, tested after its 1m build", base)
	}
}

// A database migrated from schema 1 has the summaries of its records.
func TestMigrationWritesSummaries(t *testing.T) {
	t.Parallel()
	db, err := Open(schema1(t), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	sums, _, err := db.Summaries(0)
	if err != nil || len(sums) != len(runs) {
		t.Fatalf("%d summaries of %d runs (%v)", len(sums), len(runs), err)
	}
	for i := range runs {
		if !sameSummary(sums[i], summarize(&runs[i])) {
			t.Errorf("summary of run %d = %+v", runs[i].ID, sums[i])
		}
	}
}

// A summary decodes to what was encoded, times to the instant and zone
// offset they had, so that they print as the record's do.
func TestSummaryEncoding(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 2, 0, 0, 123456789, time.FixedZone("", -5*3600-30*60))
	utc := time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)
	s := Summary{ID: 1 << 40, Kind: KindValidate, Night: 7, Tag: "t", Commit: "", Subject: "ünïcode ✓ \x00 <b>", Status: Failed,
		Started: at, Images: []ImageSummary{
			{Name: "a", Status: Succeeded, Started: utc, Finished: at, Tested: at, Digest: "sha256:x", Validation: Skipped, Validated: true},
			{Name: "b", Status: Skipped, Error: "parent a failed"},
		}}
	b := appendSummary(nil, &s)
	got, err := newDecoder().summary(b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSummary(got, s) {
		t.Errorf("decoded %+v\nwant %+v", got, s)
	}
	for _, pair := range [][2]time.Time{{got.Started, s.Started}, {got.Images[0].Started, utc}} {
		g, _ := json.Marshal(pair[0])
		w, _ := json.Marshal(pair[1])
		if string(g) != string(w) {
			t.Errorf("time decodes as %s, was %s", g, w)
		}
	}
	if kind, night, err := peekNight(b); kind != KindValidate || night != 7 || err != nil {
		t.Errorf("peekNight = %q, %d, %v", kind, night, err)
	}
	for i := range b { // every cut short is an error, never a panic
		if _, err := newDecoder().summary(b[:i]); err == nil {
			t.Fatalf("a summary cut to %d of %d bytes decoded", i, len(b))
		}
	}
}

// RunsJSON is Runs encoded, byte for byte.
func TestRunsJSON(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	for i := range 5 {
		fin := time.Date(2026, 11, 23, 2, i, 0, 0, time.UTC)
		if err := db.CreateRun(&Run{Tag: string(rune('a' + i)), Status: Succeeded, Finished: &fin, Subject: "<&>",
			Images: []ImageResult{{Name: "x", Status: Succeeded, Tail: []string{"\x1b[31mred"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, 1, 4, 5, 6} {
		runs, err := db.Runs(limit)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(runs)
		got, _, err := db.RunsJSON(limit)
		if err != nil || string(got) != string(want) {
			t.Errorf("RunsJSON(%d) = %s, %v\nwant %s", limit, got, err, want)
		}
	}
	empty, _ := openTemp(t)
	if got, _, err := empty.RunsJSON(0); string(got) != "[]" || err != nil {
		t.Errorf("RunsJSON of an empty store = %s, %v", got, err)
	}
}

// sameSummary compares summaries with times compared as instants.
func sameSummary(a, b Summary) bool {
	times := func(s *Summary) []time.Time {
		ts := []time.Time{s.Started, s.Finished}
		for _, im := range s.Images {
			ts = append(ts, im.Started, im.Finished, im.Tested)
		}
		return ts
	}
	ta, tb := times(&a), times(&b)
	if len(ta) != len(tb) {
		return false
	}
	for i := range ta {
		if !ta[i].Equal(tb[i]) {
			return false
		}
	}
	strip := func(s Summary) Summary {
		s.Started, s.Finished = time.Time{}, time.Time{}
		s.Images = append([]ImageSummary(nil), s.Images...)
		for i := range s.Images {
			s.Images[i].Started, s.Images[i].Finished, s.Images[i].Tested = time.Time{}, time.Time{}, time.Time{}
		}
		if len(s.Images) == 0 {
			s.Images = nil
		}
		return s
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
