package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"nightshift/pipeline"
)

// The builders' figures, read from the daemon's pool at scrape time.
var (
	descBuilderSlots = prometheus.NewDesc("nightshift_builder_slots",
		"Images the builder builds at once ([[builder]] jobs).", []string{"builder"}, nil)
	descBuilderBusy = prometheus.NewDesc("nightshift_builder_busy_slots",
		"Builds (or pulls) running on the builder now.", []string{"builder"}, nil)
	descBuilderBuilds = prometheus.NewDesc("nightshift_builder_builds_total",
		"Builds (or pulls) started on the builder since the daemon started.", []string{"builder"}, nil)
	descBuilderUp = prometheus.NewDesc("nightshift_builder_up",
		"1 if the builder answered at the start of the last run (or none ran yet), 0 if not.", []string{"builder"}, nil)
)

// buildersCollector reports the pipeline's builders to Prometheus.
type buildersCollector struct{ p *pipeline.Pipeline }

// Describe implements prometheus.Collector.
func (c buildersCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuilderSlots, descBuilderBusy, descBuilderBuilds, descBuilderUp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c buildersCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.p.BuilderStats() {
		up := 0.0
		if b.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descBuilderSlots, prometheus.GaugeValue, float64(b.Jobs), b.Name)
		ch <- prometheus.MustNewConstMetric(descBuilderBusy, prometheus.GaugeValue, float64(b.Busy), b.Name)
		ch <- prometheus.MustNewConstMetric(descBuilderBuilds, prometheus.CounterValue, float64(b.Builds), b.Name)
		ch <- prometheus.MustNewConstMetric(descBuilderUp, prometheus.GaugeValue, up, b.Name)
	}
}
