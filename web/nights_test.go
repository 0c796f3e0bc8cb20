package web

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nightshift/notify"
	"nightshift/store"
)

// rebuildNight and validateNight record night i of the Jenkinsfile's two
// stages, as the pipeline records them: `nightshift run --no-validate` (a
// nightly run that builds ci_base and ci_lint, and validates nothing),
// then `nightshift validate --run N` (a validation run of that night's
// images: Night = N, the same tag and commit), whose validation of ci_lint
// passes when lintPasses. Each run ends with the outbox of routes, as the
// pipeline ends it.
func rebuildNight(t *testing.T, db *store.DB, i int, routes []notify.Route) *store.Run {
	t.Helper()
	start := fillStart.AddDate(0, 0, i)
	commit := fmt.Sprintf("%08x%032d", 0x87bf32fe+i, i)
	tag := start.Format("2006-01-02-15-04-05") + "-" + commit[:8]
	at := func(min int) *time.Time { t := start.Add(time.Duration(min) * time.Minute); return &t }
	rebuild := &store.Run{Kind: store.KindNightly, Tag: tag, Commit: commit, Status: store.Running, Trigger: "cli",
		Started: start, Planned: []string{"ci_base", "ci_lint"}}
	if err := db.CreateRun(rebuild); err != nil {
		t.Fatal(err)
	}
	rebuild, err := db.FinishRun(rebuild.ID, func(r *store.Run) error {
		for k, name := range r.Planned {
			began := at(k * 20)
			im := store.ImageResult{Name: name, Status: store.Succeeded, Ref: "registry.example.org/ci-staging/" + name + ":" + tag,
				Digest: fmt.Sprintf("sha256:%063d%d", i, k), Tags: []string{tag, "latest"}, Started: began, Finished: at(k*20 + 10)}
			for j, st := range []string{"build", "push", "verify", "tag"} {
				im.Stages = append(im.Stages, store.Stage{Name: st, Status: store.Succeeded, Started: *at(k*20 + j), Finished: at(k*20 + j + 1)})
			}
			im.Stages[3].Finished = im.Finished
			r.Images = append(r.Images, im)
		}
		r.Status, r.Finished = store.Succeeded, at(40)
		return nil
	}, notify.Messages(routes, "registry.example.org/ci-staging", ""))
	if err != nil {
		t.Fatal(err)
	}
	return rebuild
}

func validateNight(t *testing.T, db *store.DB, rebuild *store.Run, lintPasses bool, routes []notify.Route) *store.Run {
	t.Helper()
	tag := rebuild.Tag
	at := func(min int) *time.Time { t := rebuild.Started.Add(time.Duration(min) * time.Minute); return &t }
	validation := &store.Run{Kind: store.KindValidate, Night: rebuild.ID, Tag: tag, Commit: rebuild.Commit, Status: store.Running,
		Trigger: "cli", Started: *at(60), Planned: rebuild.Planned}
	if err := db.CreateRun(validation); err != nil {
		t.Fatal(err)
	}
	validation, err := db.FinishRun(validation.ID, func(r *store.Run) error {
		r.Status = store.Succeeded
		for k, name := range r.Planned {
			// Pulling and testing take longer than building: a chart that
			// mixed them would show it.
			im := store.ImageResult{Name: name, Status: store.Succeeded, Ref: rebuild.Images[k].Ref, Digest: rebuild.Images[k].Digest,
				Tags: []string{tag, tag + "-validated"}, Started: at(60 + k*100), Finished: at(60 + k*100 + 90),
				Stages: []store.Stage{
					{Name: "pull", Status: store.Succeeded, Started: *at(60 + k*100), Finished: at(61 + k*100)},
					{Name: "test", Status: store.Succeeded, Started: *at(61 + k*100), Finished: at(60 + k*100 + 89)},
					{Name: "validated", Status: store.Succeeded, Started: *at(60 + k*100 + 89), Finished: at(60 + k*100 + 90)},
				},
				Validation: &store.Validation{Status: store.Succeeded, Tests: []store.TestResult{{Name: "lint", Kind: "command", Passed: true}}}}
			if name == "ci_lint" && !lintPasses {
				im.Status, im.Error, im.Tags = store.Failed, "test: 1 of 1 tests failed", []string{tag}
				im.Stages = im.Stages[:2]
				im.Stages[1].Status, im.Stages[1].Error = store.Failed, "1 of 1 tests failed"
				im.Validation = &store.Validation{Status: store.Failed, Error: "1 of 1 tests failed",
					Tests: []store.TestResult{{Name: "flake8", Kind: "command", Errors: []string{"exit code 1"}}}}
				r.Status = store.Failed
			}
			r.Images = append(r.Images, im)
		}
		r.Finished = at(300)
		return nil
	}, notify.Messages(routes, "registry.example.org/ci-staging", ""))
	if err != nil {
		t.Fatal(err)
	}
	return validation
}

func twoStage(t *testing.T, db *store.DB, i int, lintPasses bool, routes []notify.Route) [2]*store.Run {
	t.Helper()
	r := rebuildNight(t, db, i, routes)
	return [2]*store.Run{r, validateNight(t, db, r, lintPasses, routes)}
}

// events is what each run's summary was news of, by run id, and the runs
// a notifier was told about.
func events(t *testing.T, db *store.DB, runs []uint64, notifier string) (map[uint64]string, []uint64) {
	t.Helper()
	ev := map[uint64]string{}
	var told []uint64
	for _, id := range runs {
		msgs, err := db.Messages(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var s notify.Summary
			if err := json.Unmarshal(m.Payload, &s); err != nil {
				t.Fatal(err)
			}
			if m.Notifier == "email" {
				ev[id] = s.Event
			}
			if m.Notifier == notifier {
				told = append(told, id)
			}
		}
	}
	return ev, told
}

// A night is one night, whatever stages it took: over three nights of the
// two-stage setup whose validation of ci_lint fails, fails, then passes,
// the alerts compare nights with nights, the dashboard has a column per
// night, and ci_lint's page names no good night until one was validated.
func TestTwoStageNights(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	routes := []notify.Route{{Notifier: "discord", On: []string{notify.EventFailure, notify.EventFixed}}, {Notifier: "email", On: []string{"always"}}}
	s, err := newServer(Config{DB: db, Registry: prometheus.NewRegistry(), Validates: true})
	if err != nil {
		t.Fatal(err)
	}
	h := s.handler()
	get := func(path string, v any) string {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d", path, rec.Code)
		}
		if v != nil {
			if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Body.String()
	}

	var nights [][2]*store.Run
	var ids []uint64
	for i := range 2 {
		n := twoStage(t, db, i, false, routes)
		nights, ids = append(nights, n), append(ids, n[0].ID, n[1].ID)
	}

	// After two nights whose validation of ci_lint failed: it was never
	// good, it first failed in night 1, and there is no range to blame.
	var hist imageHistory
	get("/api/v1/images/ci_lint", &hist)
	if len(hist.History) != 2 || hist.LastGood != nil || hist.FirstBad == nil || hist.FirstBad.RunID != nights[0][0].ID {
		t.Errorf("ci_lint after two failed validations: %d entries, last good %+v, first bad %+v; want 2, none, night 1", len(hist.History), hist.LastGood, hist.FirstBad)
	}
	page := get("/images/ci_lint", nil)
	if !strings.Contains(page, "has not succeeded in any recorded run; it first failed in") || strings.Contains(page, `class="range"`) {
		t.Errorf("ci_lint's page after two failed validations blames a range or a good night")
	}

	n := twoStage(t, db, 2, true, routes)
	nights, ids = append(nights, n), append(ids, n[0].ID, n[1].ID)

	// The alerts: each rebuild is compared with the rebuild before it (no
	// "fixed" for night 2's), each validation with the night before.
	ev, told := events(t, db, ids, "discord")
	want := map[uint64]string{
		nights[0][0].ID: notify.EventSuccess, nights[0][1].ID: notify.EventFailure,
		nights[1][0].ID: notify.EventSuccess, nights[1][1].ID: notify.EventFailure,
		nights[2][0].ID: notify.EventSuccess, nights[2][1].ID: notify.EventFixed,
	}
	for id, w := range want {
		if ev[id] != w {
			t.Errorf("run %d was news of %q, want %q", id, ev[id], w)
		}
	}
	if fmt.Sprint(told) != fmt.Sprint([]uint64{nights[0][1].ID, nights[1][1].ID, nights[2][1].ID}) {
		t.Errorf("discord (failure, fixed) was told of runs %v, want the three validations", told)
	}

	// The dashboard: three columns, one per night, each linking its
	// rebuild; ci_lint's cells fail, fail, then are validated.
	home := get("/", nil)
	if n := strings.Count(home, `class="run-head`); n != 3 {
		t.Errorf("the dashboard has %d columns, want 3", n)
	}
	for _, n := range nights {
		if !strings.Contains(home, fmt.Sprintf(`<a class="run-head st-%s" href="/runs/%d"`, n[1].Status, n[0].ID)) {
			t.Errorf("no column for night %d with its outcome %s", n[0].ID, n[1].Status)
		}
	}
	if !strings.Contains(home, "(3 of 3 runs)") {
		t.Errorf("the dashboard does not count 3 nights")
	}
	for i, st := range []string{"failed", "failed", "validated"} {
		cell := fmt.Sprintf(`<a class="cell st-%s" href="/runs/%d/images/ci_lint" title="ci_lint, run %d`, st, nights[i][1].ID, nights[i][0].ID)
		if !strings.Contains(home, cell) {
			t.Errorf("night %d: no cell %s", i+1, cell)
		}
	}
	if !strings.Contains(home, "ci_lint, run 1 (2025-11-23): built; validation run 2: failed") {
		t.Errorf("ci_lint's first cell does not say how its build and validation went")
	}

	// Each run's page names the other runs of its night.
	for _, n := range nights {
		rebuildPage, valPage := get(fmt.Sprintf("/runs/%d", n[0].ID), nil), get(fmt.Sprintf("/runs/%d", n[1].ID), nil)
		if !strings.Contains(rebuildPage, `<dt>Night</dt><dd>this run built <span class="badge st-succeeded">`) ||
			!strings.Contains(rebuildPage, fmt.Sprintf(`<a href="/runs/%d">run %d</a> validated <span class="badge st-%s">`, n[1].ID, n[1].ID, n[1].Status)) ||
			!strings.Contains(valPage, fmt.Sprintf(`<dt>Night</dt><dd><a href="/runs/%d">run %d</a> built`, n[0].ID, n[0].ID)) ||
			!strings.Contains(valPage, "this run validated") {
			t.Errorf("the pages of runs %d and %d do not name each other as one night", n[0].ID, n[1].ID)
		}
	}

	// The history: one entry per night, build times without tests, the
	// night's verdict.
	hist = imageHistory{}
	get("/api/v1/images/ci_lint", &hist)
	if len(hist.History) != 3 {
		t.Fatalf("ci_lint's history has %d entries, want 3", len(hist.History))
	}
	for i, e := range hist.History {
		n := nights[len(nights)-1-i]
		build := n[0].Image("ci_lint")
		if e.RunID != n[0].ID || e.Commit != n[0].Commit || e.DurationSeconds != build.Duration(time.Time{}).Seconds() ||
			e.Validation == nil || e.Validation.RunID != n[1].ID || e.Status != n[1].Image("ci_lint").Status {
			t.Errorf("entry %d = %+v, want night %d built in %v and validated in run %d", i, e, n[0].ID, build.Duration(time.Time{}), n[1].ID)
		}
	}
	if hist.LastGood == nil || hist.LastGood.RunID != nights[2][0].ID || hist.FirstBad != nil {
		t.Errorf("after night 3 passed: last good %+v, first bad %+v; want night 3, none", hist.LastGood, hist.FirstBad)
	}

	// Night 4 is rebuilt: not good before it is validated (validation is
	// configured), so night 3 stays the last good one. Without validation
	// configured, a night that validated nothing counts as built.
	r4 := rebuildNight(t, db, 3, routes)
	hist = imageHistory{}
	get("/api/v1/images/ci_lint", &hist)
	if hist.LastGood == nil || hist.LastGood.RunID != nights[2][0].ID || hist.FirstBad != nil || hist.History[0].RunID != r4.ID {
		t.Errorf("night 4 rebuilt, not validated: last good %+v, first bad %+v; want night 3, none", hist.LastGood, hist.FirstBad)
	}
	unconfigured, err := newServer(Config{DB: db, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if got := unconfigured.historyOf(mustHistory(t, db).Nights, "ci_lint"); got.LastGood == nil || got.LastGood.RunID != r4.ID {
		t.Errorf("without validation configured, last good = %+v, want night 4's rebuild", got.LastGood)
	}

	// Its validation fails: the range to blame is night 3..night 4, two
	// commits, and the news is a failure.
	v4 := validateNight(t, db, r4, false, routes)
	hist = imageHistory{}
	get("/api/v1/images/ci_lint", &hist)
	if hist.LastGood == nil || hist.LastGood.RunID != nights[2][0].ID || hist.FirstBad == nil || hist.FirstBad.RunID != r4.ID {
		t.Errorf("night 4 failed: last good %+v, first bad %+v; want night 3, night 4", hist.LastGood, hist.FirstBad)
	}
	blame := store.ShortCommit(nights[2][0].Commit) + ".." + store.ShortCommit(r4.Commit)
	if page := get("/images/ci_lint", nil); !strings.Contains(page, `<code class="range">`+blame+`</code>`) || nights[2][0].Commit == r4.Commit {
		t.Errorf("ci_lint's page does not blame %s", blame)
	}
	if ev, _ := events(t, db, []uint64{r4.ID, v4.ID}, "discord"); ev[r4.ID] != notify.EventSuccess || ev[v4.ID] != notify.EventFailure {
		t.Errorf("night 4's news: %v", ev)
	}

	// The metrics count nights: two failed, one succeeded, one failed.
	m := metricValues(t, get("/metrics", nil))
	if m[`nightshift_runs{status="failed"}`] != 3 || m[`nightshift_runs{status="succeeded"}`] != 1 {
		t.Errorf("nights by outcome: %v", m)
	}
	lint := nights[2][1].Image("ci_lint")
	if got := m[`nightshift_image_last_success_timestamp_seconds{image="ci_lint"}`]; got != float64(lint.Finished.Unix()) {
		t.Errorf("ci_lint last succeeded at %v, want when night 3 validated it (%v)", got, lint.Finished.Unix())
	}
	if got := m[`nightshift_image_last_build_duration_seconds{image="ci_lint"}`]; got != r4.Image("ci_lint").Duration(time.Time{}).Seconds() {
		t.Errorf("ci_lint's last build took %vs, want night 4's build alone", got)
	}
}

func mustHistory(t *testing.T, db *store.DB) store.History {
	t.Helper()
	h, err := db.History(0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
