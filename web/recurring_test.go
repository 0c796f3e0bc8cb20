package web

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"nightshift/store"
)

// The image page lists each failure signature with every night it
// occurred, linked to that night's log; a pruned night is shown unlinked.
func TestRecurringFailuresShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []uint64
	for i := 1; i <= 3; i++ {
		start := fillStart.Add(time.Duration(20+i) * 24 * time.Hour)
		end := start.Add(time.Minute)
		r := store.Run{Tag: fmt.Sprintf("odd-%d", i), Status: store.Running, Started: start, Images: []store.ImageResult{{
			Name: "ci_odd", Status: store.Failed, Started: &start, Finished: &end, Error: "build: exit code 3",
			Stages: []store.Stage{{Name: "build", Status: store.Failed, Started: start}},
			Tail:   []string{fmt.Sprintf("error: mirror answered 503 after %dms at /tmp/mirror-%d", 100*i, i)},
		}}}
		if err := f.db.CreateRun(&r); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.FinishRun(r.ID, func(r *store.Run) error { r.Status, r.Finished = store.Failed, &end; return nil }, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := f.db.MarkPruned(ids[:1], fillStart.Add(40*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rec := f.do("GET", "/images/ci_odd", "", "")
	html(`<h2 id="failures">Recurring failures</h2>`,
		"build: build: exit code &lt;n&gt; | error: mirror answered &lt;n&gt; after &lt;duration&gt; at &lt;path&gt;</code>: 3 nights",
		fmt.Sprintf(`<a href="/runs/%d/images/ci_odd/logs">night %d</a>`, ids[2], ids[2]),
		fmt.Sprintf(`<a href="/runs/%d/images/ci_odd/logs">night %d</a>`, ids[1], ids[1]),
		fmt.Sprintf("night %d (pruned: no log)", ids[0]))(t, f, rec)
	if strings.Contains(rec.Body.String(), fmt.Sprintf("/runs/%d/images/ci_odd/logs", ids[0])) {
		t.Errorf("the pruned night %d is linked to its log", ids[0])
	}
	if n := strings.Count(rec.Body.String(), `<code title="signature `); n != 1 {
		t.Errorf("%d signatures listed, want 1", n)
	}
}
