package web

import (
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nightshift/store"
)

// BenchmarkDashboard measures GET /, GET /api/v1/runs (the newest 50) and
// GET /api/v1/runs?limit=365 (all of them, 9 MB of JSON) over a year of
// nights (365 runs of 30 images) in process, and reports the latency
// percentiles in milliseconds. "warm": nothing changed since the last
// request (the usual case). "changing": the night going on records a stage
// before every request, so each request rescans the store and decodes that
// run again. "cold": a new server's first request, which decodes every run
// (not for every run's JSON: see below).
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
	newHandler := func() *server {
		s, err := newServer(Config{DB: db, Control: &fakeControl{db: db, next: time.Now().Add(time.Hour)}, Registry: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	s := newHandler()
	h := s.handler()
	get := func(b *testing.B, path string) time.Duration {
		req := httptest.NewRequest("GET", path, nil)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		d := time.Since(start)
		if rec.Code != 200 {
			b.Fatalf("GET %s = %d", path, rec.Code)
		}
		return d
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
	for _, page := range []struct{ name, path string }{
		{"home", "/"},
		{"api-runs", "/api/v1/runs"},               // the newest 50
		{"api-runs-365", "/api/v1/runs?limit=365"}, // every run
	} {
		name, path := page.name, page.path
		b.Run(name+"/warm", func(b *testing.B) {
			get(b, path) // fill the cache
			var ds []time.Duration
			for b.Loop() {
				ds = append(ds, get(b, path))
			}
			report(b, ds)
		})
		b.Run(name+"/changing", func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				b.StopTimer()
				touch(b)
				b.StartTimer()
				ds = append(ds, get(b, path))
			}
			report(b, ds)
		})
		if name == "api-runs-365" {
			// A new server's first request for every run decodes each twice
			// (summary, JSON): about 0.5 s here, and 400 of them would take
			// most of go test's 10 minutes.
			continue
		}
		b.Run(name+"/cold", func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				b.StopTimer()
				s.cache = newRunCache(db)
				b.StartTimer()
				ds = append(ds, get(b, path))
			}
			report(b, ds)
		})
	}
}

func report(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := min(len(ds)-1, int(q*float64(len(ds))))
		return float64(ds[i].Microseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
