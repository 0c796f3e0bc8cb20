package web

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nightshift/store"
)

// The metrics, read from the store at scrape time: the store is the truth,
// and a restarted daemon then reports the same numbers as before.
var (
	// A gauge, not a counter: pruning old runs lowers it.
	descRuns = prometheus.NewDesc("nightshift_runs",
		"Nights recorded in the store now, by outcome (queued, running, succeeded, failed, interrupted): a nightly run and the runs that validated its images count once; pruning old runs lowers it.",
		[]string{"status"}, nil)
	descLastSuccess = prometheus.NewDesc("nightshift_image_last_success_timestamp_seconds",
		"When the image last finished successfully (Unix time): built, and validated when validation is configured or its night validated it.",
		[]string{"image"}, nil)
	descLastDuration = prometheus.NewDesc("nightshift_image_last_build_duration_seconds",
		"How long the image took to build (build, push, verify, tag; without tests) the last time it finished, succeeded or failed.",
		[]string{"image"}, nil)
	descPending = prometheus.NewDesc("nightshift_outbox_pending",
		"Notifications waiting to be delivered.",
		nil, nil)
	descNextFire = prometheus.NewDesc("nightshift_schedule_next_fire_timestamp_seconds",
		"When the schedule fires next (Unix time); absent when nothing is scheduled.",
		nil, nil)
)

// runStatuses are the statuses a run can have, reported even at zero so
// that alerts on them and absent() work from the first scrape.
var runStatuses = []store.Status{store.Queued, store.Running, store.Succeeded, store.Failed, store.Interrupted}

// collector is nightshift's prometheus.Collector.
type collector struct{ s *server }

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRuns, descLastSuccess, descLastDuration, descPending, descNextFire} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	h, err := c.s.db.History(0)
	if err != nil {
		c.s.log.Error("metrics: read runs", "err", err)
		ch <- prometheus.NewInvalidMetric(descRuns, err)
	} else {
		c.collectNights(ch, h.Nights)
	}
	if n, err := c.s.db.PendingCount(); err != nil {
		c.s.log.Error("metrics: read the outbox", "err", err)
		ch <- prometheus.NewInvalidMetric(descPending, err)
	} else {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(n))
	}
	if c.s.control != nil {
		if next := c.s.control.Next(); !next.IsZero() {
			ch <- prometheus.MustNewConstMetric(descNextFire, prometheus.GaugeValue, float64(next.UnixMilli())/1e3)
		}
	}
}

func (c *collector) collectNights(ch chan<- prometheus.Metric, nights []store.Night) {
	count := map[store.Status]int{}
	for _, st := range runStatuses {
		count[st] = 0
	}
	names := map[string]bool{}
	lastDuration := map[string]float64{}
	now := c.s.now()
	for i := range nights { // newest first: the first value met per image is the last
		night := &nights[i]
		count[night.Status()]++
		for _, name := range night.Names() {
			names[name] = true
			im, _ := night.Image(name)
			if _, ok := lastDuration[name]; !ok && im.Build != nil && (im.Build.Status == store.Succeeded || im.Build.Status == store.Failed) && !im.Build.Started.IsZero() {
				lastDuration[name] = im.Build.BuildTime(now).Seconds()
			}
		}
	}
	for st, n := range count {
		ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, float64(n), string(st))
	}
	for name := range names {
		h := c.s.historyOf(nights, name)
		if e := h.LastGood; e != nil {
			im, _ := e.night.Image(name)
			if rec, _ := im.Decisive(e.night); !rec.Finished.IsZero() {
				ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, float64(rec.Finished.UnixMilli())/1e3, name)
			}
		}
	}
	for name, v := range lastDuration {
		ch <- prometheus.MustNewConstMetric(descLastDuration, prometheus.GaugeValue, v, name)
	}
}

// metrics serves the registry the daemon gave (or our own).
func (s *server) metrics() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{s},
		ErrorHandling: promhttp.ContinueOnError, // one broken collector must not hide the rest
		Registry:      s.reg,
	})
}

// slogPrinter gives promhttp's error log to our logger.
type slogPrinter struct{ s *server }

func (p slogPrinter) Println(v ...any) { p.s.log.Error("metrics", "err", v) }
