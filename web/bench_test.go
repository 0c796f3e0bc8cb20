package web

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nightshift/store"
)

// BenchmarkDashboard measures, over a year of nights (365 runs of 30
// images), in process, the latency percentiles in milliseconds of GET /
// (30 nights), GET /api/v1/runs (the newest 50), GET /api/v1/runs?limit=365
// (all of them, 9 MB of JSON) and an image's history page (every night).
// Every request is answered from the store: there is no cache to warm.
//
//   - baseline: what the answer would cost read from the records instead
//     of the summaries: decoding the records it shows (and, for the API,
//     encoding them again). Sampled 50 times, for go test's time.
//   - full: the store unchanged, the answer made in full (a client
//     without the page).
//   - changing: the night going on records a stage before every request.
//   - 304: the client holds the page and asks with its ETag.
//
// Run it with: go test -run '^$' -bench Dashboard -benchtime 400x ./web/
func BenchmarkDashboard(b *testing.B) {
	db := openStore(b)
	fillStore(b, db, 364, 30)
	tonight := fakeRun(365, imageNames(30))
	tonight.Status, tonight.Finished = store.Running, nil
	last := &tonight.Images[len(tonight.Images)-1]
	last.Status, last.Finished = store.Running, nil
	if err := db.CreateRun(&tonight); err != nil {
		b.Fatal(err)
	}
	s, err := newServer(Config{DB: db, Control: &fakeControl{db: db, next: time.Now().Add(time.Hour)}, Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	h := s.handler()
	get := func(b *testing.B, path, etag string, want int) (time.Duration, string) {
		req := httptest.NewRequest("GET", path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		d := time.Since(start)
		if rec.Code != want {
			b.Fatalf("GET %s = %d, want %d", path, rec.Code, want)
		}
		return d, rec.Header().Get("ETag")
	}
	stage := 0
	touch := func(b *testing.B) {
		stage++
		err := db.UpdateRun(tonight.ID, func(r *store.Run) error {
			im := r.Image(last.Name)
			im.Stages = append(im.Stages[:0], store.Stage{Name: "build", Status: store.Running, Started: time.Now()})
			im.Error = time.Duration(stage).String() // a record that differs each time
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// p50/p99 of each page's cases, printed with the goal at the end.
	type pct struct{ p50, p99 float64 }
	results := map[string]map[string]pct{}
	measure := func(b *testing.B, page, what string, ds []time.Duration) {
		p50, p99 := report(b, ds)
		if results[page] == nil {
			results[page] = map[string]pct{}
		}
		results[page][what] = pct{p50, p99}
	}
	pages := []struct {
		name, path string
		baseline   func() error // what the page would read without summaries
	}{
		{"home", "/", func() error { _, err := db.Runs(defaultHomeRuns); return err }},
		{"api-runs", "/api/v1/runs", func() error { return encodeRuns(db, defaultAPIRuns) }},
		{"api-runs-365", "/api/v1/runs?limit=365", func() error { return encodeRuns(db, 365) }},
		{"image", "/images/ci_lint", func() error { _, err := db.Runs(0); return err }},
	}
	for _, page := range pages {
		b.Run(page.name+"/baseline", func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				if len(ds) == 50 {
					continue
				}
				start := time.Now()
				if err := page.baseline(); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			measure(b, page.name, "baseline", ds)
		})
		b.Run(page.name+"/full", func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				d, _ := get(b, page.path, "", 200)
				ds = append(ds, d)
			}
			measure(b, page.name, "full", ds)
		})
		b.Run(page.name+"/changing", func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				b.StopTimer()
				touch(b)
				b.StartTimer()
				d, _ := get(b, page.path, "", 200)
				ds = append(ds, d)
			}
			measure(b, page.name, "changing", ds)
		})
		b.Run(page.name+"/304", func(b *testing.B) {
			_, etag := get(b, page.path, "", 200)
			var ds []time.Duration
			for b.Loop() {
				d, _ := get(b, page.path, etag, 304)
				ds = append(ds, d)
			}
			measure(b, page.name, "304", ds)
		})
	}
	fmt.Printf("\nthe dashboard over 365 runs x 30 images, milliseconds p50 / p99 (goal: p99 < 50 ms); baseline: the same records decoded instead of their summaries\n")
	for _, page := range pages {
		r := results[page.name]
		fmt.Printf("  %-28s full %6.2f / %6.2f   changing %6.2f / %6.2f   304 %5.3f / %5.3f   baseline %7.1f / %7.1f\n", "GET "+page.path,
			r["full"].p50, r["full"].p99, r["changing"].p50, r["changing"].p99, r["304"].p50, r["304"].p99, r["baseline"].p50, r["baseline"].p99)
	}
}

// encodeRuns is GET /api/v1/runs?limit=n made from decoded records.
func encodeRuns(db *store.DB, n int) error {
	runs, err := db.Runs(n)
	if err != nil {
		return err
	}
	_, err = json.Marshal(runs)
	return err
}

func report(b *testing.B, ds []time.Duration) (p50, p99 float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := min(len(ds)-1, int(q*float64(len(ds))))
		return float64(ds[i].Microseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	return at(0.50), at(0.99)
}
