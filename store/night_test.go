package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var night0 = time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)

// images makes image results from "name=status" pairs; a status ending in
// "+v" is validated (its validation passed), "!v" failed its validation.
func images(specs ...string) []ImageResult {
	var out []ImageResult
	for _, spec := range specs {
		name, st, _ := strings.Cut(spec, "=")
		im := ImageResult{Name: name, Digest: "sha256:" + name}
		switch {
		case strings.HasSuffix(st, "+v"):
			im.Validation = &Validation{Status: Succeeded}
		case strings.HasSuffix(st, "!v"):
			im.Validation = &Validation{Status: Failed}
		}
		im.Status = Status(strings.TrimRight(st, "+!v"))
		if im.Status == Failed && im.Validation == nil {
			im.Digest = "" // failed to build: nothing pushed
		}
		out = append(out, im)
	}
	return out
}

// record creates r and finishes it as it stands, returning what its
// outbox was given as Previous.
func record(t *testing.T, db *DB, r Run) (*Run, *Run) {
	t.Helper()
	status := r.Status
	r.Status = Running
	if err := db.CreateRun(&r); err != nil {
		t.Fatal(err)
	}
	if status == Running {
		return &r, nil
	}
	var prev *Run
	fin, err := db.FinishRun(r.ID, func(run *Run) error {
		end := night0.Add(time.Duration(run.ID) * time.Hour)
		run.Status, run.Finished = status, &end
		return nil
	}, func(f Finish) ([]Message, error) { prev = f.Previous; return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	return fin, prev
}

func nightIDs(h History) string {
	var parts []string
	for _, n := range h.Nights {
		var vals []string
		for _, v := range n.Validations {
			vals = append(vals, fmt.Sprint(v.ID))
		}
		parts = append(parts, fmt.Sprintf("%d[%s]", n.ID(), strings.Join(vals, " ")))
	}
	return strings.Join(parts, " ")
}

func TestHistoryGroupsNights(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	for _, r := range []Run{
		{Tag: "n1", Status: Succeeded},                                   // 1
		{Tag: "n1", Kind: KindValidate, Status: Failed},                  // 2: night 1, by its tag
		{Tag: "n3", Status: Succeeded},                                   // 3
		{Tag: "n3", Kind: KindValidate, Night: 3, Status: Failed},        // 4: night 3
		{Tag: "n1", Kind: KindValidate, Night: 1, Status: Succeeded},     // 5: night 1 again
		{Tag: "e", Kind: KindEnsure, Status: Succeeded},                  // 6: its own
		{Tag: "x", Kind: KindValidate, Status: Succeeded},                // 7: no night: its own
		{Tag: "y", Kind: KindValidate, Night: 99, Status: Succeeded},     // 8: a night not recorded: its own
		{Tag: "x", Kind: KindValidate, Night: 7, Status: Succeeded},      // 9: names a validation: its own
		{Tag: "n10", Status: Running},                                    // 10: going on
		{Tag: "n10", Kind: KindValidate, Night: 10, Status: Running},     // 11
		{Tag: "n3", Kind: KindValidate, Night: 3, Status: Succeeded},     // 12: night 3 again, later
		{Tag: "n1", Kind: KindEnsure, Night: 1, Status: Succeeded},       // 13: an ensure is no validation
		{Tag: "n14", Kind: KindNightly, Night: 3, Status: Succeeded},     // 14: nor is a nightly
		{Tag: "n14", Kind: KindValidate, Night: 14, Status: Interrupted}, // 15
	} {
		record(t, db, r)
	}
	all, err := db.History(0)
	if err != nil {
		t.Fatal(err)
	}
	want := "14[15] 13[] 10[11] 9[] 8[] 7[] 6[] 3[4 12] 1[2 5]"
	if got := nightIDs(all); got != want || all.Total != 9 {
		t.Errorf("History(0) = %s (total %d), want %s (total 9)", got, all.Total, want)
	}
	if v, _ := db.Version(); all.Version != v {
		t.Errorf("History at version %d, the store at %d", all.Version, v)
	}
	three, err := db.History(3)
	if err != nil {
		t.Fatal(err)
	}
	if got := nightIDs(three); got != "14[15] 13[] 10[11]" || three.Total != 9 {
		t.Errorf("History(3) = %s (total %d)", got, three.Total)
	}
	for id, want := range map[uint64]string{1: "1[2 5]", 5: "1[2 5]", 3: "3[4 12]", 12: "3[4 12]", 9: "9[]", 13: "13[]", 15: "14[15]"} {
		n, err := db.Night(id)
		if got := nightIDs(History{Nights: []Night{n}}); err != nil || got != want {
			t.Errorf("Night(%d) = %s, %v; want %s", id, got, err, want)
		}
	}
	if _, err := db.Night(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("Night(99) = %v, want ErrNotFound", err)
	}
	for _, n := range all.Nights {
		var want Status
		switch n.ID() {
		case 14:
			want = Interrupted // its validation's word
		case 10:
			want = Running
		case 3, 1:
			want = Succeeded // their later validations passed
		default:
			want = n.Run.Status
		}
		if got := n.Status(); got != want {
			t.Errorf("night %d: %s, want %s", n.ID(), got, want)
		}
	}
}

// An image's outcome in a night: built, then the verdict of the newest
// validation run that has it.
func TestNightImage(t *testing.T) {
	t.Parallel()
	sum := func(id uint64, st Status, ims ...string) Summary {
		r := Run{ID: id, Status: st, Images: images(ims...)}
		for i := range r.Images {
			if r.Images[i].Validation != nil && r.Images[i].Validation.Status == Succeeded {
				r.Images[i].Tags = []string{"t-validated"}
			}
		}
		return summarize(&r)
	}
	tests := []struct {
		name        string
		night       Night
		image       string
		status      Status
		validation  Status
		validated   bool
		decisive    uint64
		nightStatus Status
	}{
		{"built, never validated", Night{Run: sum(1, Succeeded, "a=succeeded")}, "a", Succeeded, "", false, 1, Succeeded},
		{"validated in its run", Night{Run: sum(1, Succeeded, "a=succeeded+v")}, "a", Succeeded, Succeeded, true, 1, Succeeded},
		{"failed its tests in its run", Night{Run: sum(1, Failed, "a=failed!v")}, "a", Failed, Failed, false, 1, Failed},
		{"failed to build", Night{Run: sum(1, Failed, "a=failed", "b=skipped")}, "b", Skipped, "", false, 1, Failed},
		{"validated later", Night{Run: sum(1, Succeeded, "a=succeeded"), Validations: []Summary{sum(2, Succeeded, "a=succeeded+v")}},
			"a", Succeeded, Succeeded, true, 2, Succeeded},
		{"failed validation later", Night{Run: sum(1, Succeeded, "a=succeeded", "b=succeeded"), Validations: []Summary{sum(2, Failed, "a=succeeded+v", "b=failed!v")}},
			"b", Failed, Failed, false, 2, Failed},
		{"the newest validation has the last word", Night{Run: sum(1, Succeeded, "a=succeeded", "b=succeeded"), Validations: []Summary{
			sum(2, Failed, "a=succeeded+v", "b=failed!v"), sum(3, Succeeded, "b=succeeded+v")}},
			"b", Succeeded, Succeeded, true, 3, Succeeded},
		{"a revalidation after its run's tests failed", Night{Run: sum(1, Failed, "a=failed!v"), Validations: []Summary{sum(2, Succeeded, "a=succeeded+v")}},
			"a", Succeeded, Succeeded, true, 2, Succeeded},
		{"a validation cannot fix a failed build", Night{Run: sum(1, Failed, "a=failed"), Validations: []Summary{sum(2, Failed, "a=failed")}},
			"a", Failed, "", false, 1, Failed},
		{"nothing to test", Night{Run: sum(1, Succeeded, "a=succeeded"), Validations: []Summary{sum(2, Succeeded, "a=succeeded")}},
			"a", Succeeded, Skipped, false, 2, Succeeded},
		{"validation going on", Night{Run: sum(1, Succeeded, "a=succeeded"), Validations: []Summary{sum(2, Running, "a=running")}},
			"a", Running, Running, false, 2, Running},
		{"another image failed", Night{Run: sum(1, Failed, "a=succeeded", "b=failed"), Validations: []Summary{sum(2, Succeeded, "a=succeeded+v")}},
			"a", Succeeded, Succeeded, true, 2, Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, ok := tt.night.Image(tt.image)
			if !ok {
				t.Fatalf("no image %s", tt.image)
			}
			_, run := im.Decisive(&tt.night)
			if im.Status() != tt.status || im.Validation() != tt.validation || im.Validated() != tt.validated || run.ID != tt.decisive {
				t.Errorf("status %s, validation %q, validated %v, decided by run %d; want %s, %q, %v, %d",
					im.Status(), im.Validation(), im.Validated(), run.ID, tt.status, tt.validation, tt.validated, tt.decisive)
			}
			if st := tt.night.Status(); st != tt.nightStatus {
				t.Errorf("night status %s, want %s", st, tt.nightStatus)
			}
		})
	}
}

// Finish.Previous compares nights with nights: a validation run with the
// nights before its own, a rebuild with the rebuilds before it, image by
// image, so that a run of some images meets the last run that built them.
func TestPreviousComparesLikeWithLike(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	type step struct {
		run      Run
		previous string // "<id> <status> <images>", "" for none
	}
	both := []string{"base", "lint"}
	steps := []step{
		{Run{Tag: "n1", Planned: both, Status: Succeeded, Images: images("base=succeeded", "lint=succeeded")}, ""},                                                     // 1
		{Run{Tag: "n1", Kind: KindValidate, Night: 1, Planned: both, Status: Failed, Images: images("base=succeeded+v", "lint=failed!v")}, ""},                         // 2
		{Run{Tag: "n3", Planned: both, Status: Succeeded, Images: images("base=succeeded", "lint=succeeded")}, "1 succeeded base lint"},                                // 3: the rebuild before, not 2
		{Run{Tag: "n3", Kind: KindValidate, Night: 3, Planned: both, Status: Failed, Images: images("base=succeeded+v", "lint=failed!v")}, "1 failed base lint"},       // 4: night 1, as validated
		{Run{Tag: "n3", Kind: KindValidate, Night: 3, Planned: []string{"lint"}, Status: Failed, Images: images("lint=failed!v")}, "1 failed lint"},                    // 5: night 1 still, lint alone
		{Run{Tag: "n6", Planned: []string{"lint"}, Status: Succeeded, Images: images("lint=succeeded")}, "3 succeeded lint"},                                           // 6: --only lint
		{Run{Tag: "n7", Planned: []string{"base"}, Status: Failed, Images: images("base=failed")}, "3 succeeded base"},                                                 // 7: --only base: met in 3
		{Run{Tag: "n8", Planned: both, Status: Succeeded, Images: images("base=succeeded", "lint=succeeded")}, "7 failed base lint"},                                   // 8: base from 7, lint from 6
		{Run{Tag: "n6", Kind: KindValidate, Night: 6, Planned: []string{"lint"}, Status: Succeeded, Images: images("lint=succeeded+v")}, "3 failed lint"},              // 9: night 3's lint failed validation
		{Run{Tag: "n8", Kind: KindValidate, Night: 8, Planned: both, Status: Succeeded, Images: images("base=succeeded+v", "lint=succeeded+v")}, "7 failed base lint"}, // 10
		{Run{Tag: "e", Kind: KindEnsure, Planned: []string{"base"}, Status: Succeeded, Images: images("base=succeeded")}, ""},                                          // 11: no ensure before
		{Run{Tag: "n12", Planned: []string{"docs"}, Status: Succeeded, Images: images("docs=succeeded")}, ""},                                                          // 12: docs never built before
		{Run{Tag: "n13", Status: Failed, Error: "checkout failed"}, "12 succeeded"},                                                                                    // 13: no images: the run before
		{Run{Tag: "n14", Status: Succeeded}, "13 failed"},                                                                                                              // 14
	}
	for i, st := range steps {
		fin, prev := record(t, db, st.run)
		if fin.ID != uint64(i+1) {
			t.Fatalf("step %d recorded as run %d", i+1, fin.ID)
		}
		got := ""
		if prev != nil {
			var names []string
			for _, im := range prev.Images {
				names = append(names, im.Name)
			}
			slices.Sort(names)
			got = strings.TrimSpace(fmt.Sprintf("%d %s %s", prev.ID, prev.Status, strings.Join(names, " ")))
		}
		if got != st.previous {
			t.Errorf("run %d (%s %s) compared with %q, want %q", fin.ID, fin.Kind, fin.Tag, got, st.previous)
		}
	}
}
