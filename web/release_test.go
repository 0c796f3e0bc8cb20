package web

import (
	"strings"
	"testing"
	"time"

	"nightshift/store"
)

// A run's page shows its promotions: when, by whom, to which tags, each
// image's targets and digest, and what was not promoted; the image's page
// says where each of its release tags points.
func TestPromotionsShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.runs[2].Image("ci_base")
	when := fillStart.Add(10 * 24 * time.Hour)
	p := store.Promotion{When: when, By: "alice@ci", Tags: []string{"stable", "2025.4-stable"}, Forced: true,
		Images: []store.PromotedImage{{Name: "ci_base", Digest: base.Digest, Ref: "registry.example.org/release/ci-base:stable",
			Repository: "registry.example.org/release/ci-base", Validated: false}},
		Refused: []store.RefusedImage{{Name: "ci_cpu", Reason: "nothing was pushed in night 3 (failed) <b>"}}}
	if _, err := f.db.Promote(3, p); err != nil {
		t.Fatal(err)
	}
	rec := f.do("GET", "/runs/3", "", "")
	html(`<h2 id="promotions">Promotions</h2>`, "by alice@ci to <code>stable</code>, <code>2025.4-stable</code>", "(forced:",
		`<a href="/runs/3/images/ci_base">ci_base</a></th><td><code class="ref">registry.example.org/release/ci-base:stable</code><br><code class="ref">registry.example.org/release/ci-base:2025.4-stable</code>`,
		store.ShortDigest(base.Digest), "not promoted: nothing was pushed in night 3 (failed) &lt;b&gt;")(t, f, rec)

	rec = f.do("GET", "/images/ci_base", "", "")
	html(`<h2 id="releases">Release tags</h2>`, `<code class="ref">registry.example.org/release/ci-base:2025.4-stable</code>`,
		`<a href="/runs/3/images/ci_base">run 3</a> <code>`+f.runs[2].Tag+`</code> <span class="why">(not validated: forced)</span>`, "by alice@ci")(t, f, rec)
	if rec := f.do("GET", "/images/ci_cpu", "", ""); strings.Contains(rec.Body.String(), "Release tags") {
		t.Error("ci_cpu's page shows release tags it has none of")
	}
	if rec := f.do("GET", "/runs/2", "", ""); strings.Contains(rec.Body.String(), "Promotions") {
		t.Error("run 2's page shows promotions it has none of")
	}
}

// A pruned run keeps its pages, without links to the logs it no longer
// has.
func TestPrunedRunHasNoLogLinks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	when := fillStart.Add(40 * 24 * time.Hour)
	if err := f.db.MarkPruned([]uint64{2}, when); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/runs/2", "/runs/2/images/ci_base"} {
		rec := f.do("GET", path, "", "")
		if rec.Code != 200 {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		if body := rec.Body.String(); strings.Contains(body, "/logs") || strings.Contains(body, "/log\"") {
			t.Errorf("%s links a log of a pruned run", path)
		}
	}
	html("Pruned", "its logs were deleted and its tags removed from staging")(t, f, f.do("GET", "/runs/2", "", ""))
	html("deleted when the run was pruned")(t, f, f.do("GET", "/runs/2/images/ci_base", "", ""))
	html(`href="/runs/3/images/ci_base/logs"`)(t, f, f.do("GET", "/runs/3/images/ci_base", "", ""))
	html(`href="/runs/2/images/ci_base"`)(t, f, f.do("GET", "/images/ci_base", "", ""))
}
