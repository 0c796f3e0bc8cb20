package config

import (
	"cmp"
	"fmt"
	"net"
	"time"

	"nightshift/scheduler"
)

// EnvHTTPToken may hold the API's bearer token when http.token_file is not set.
const EnvHTTPToken = "NIGHTSHIFT_HTTP_TOKEN"

const (
	defaultListen        = "127.0.0.1:8080"
	defaultShutdownGrace = 10 * time.Minute
)

// Schedule is when the daemon runs.
type Schedule struct {
	Enabled bool `toml:"-"` // a cron spec is set
	// Cron is five fields, six with seconds, or a descriptor (@daily); a
	// CRON_TZ=Area/City prefix sets its time zone.
	Cron   string   `toml:"cron"`
	Jitter Duration `toml:"jitter"`
	// Missed says what a daemon that was down at fire time does at start:
	// "run-once" (within Grace of the missed time) or "skip".
	Missed string   `toml:"missed"`
	Grace  Duration `toml:"grace"`
	// Overlap says what a trigger during a run does: "coalesce" into one
	// pending run, or "reject".
	Overlap string `toml:"overlap"`
	// ShutdownGrace is how long SIGTERM lets the current run finish before
	// cancelling it.
	ShutdownGrace Duration `toml:"shutdown_grace"`
}

func (l *loader) schedule(s *Schedule) {
	s.Enabled = s.Cron != ""
	if s.Enabled {
		if _, err := scheduler.ParseSpec(s.Cron); err != nil {
			l.problem("schedule.cron", err.Error())
		}
	}
	s.Missed = cmp.Or(s.Missed, scheduler.MissedRunOnce)
	if s.Missed != scheduler.MissedRunOnce && s.Missed != scheduler.MissedSkip {
		l.problem("schedule.missed", fmt.Sprintf(`%q is not %q or %q`, s.Missed, scheduler.MissedRunOnce, scheduler.MissedSkip))
	}
	s.Overlap = cmp.Or(s.Overlap, scheduler.OverlapCoalesce)
	if s.Overlap != scheduler.OverlapCoalesce && s.Overlap != scheduler.OverlapReject {
		l.problem("schedule.overlap", fmt.Sprintf(`%q is not %q or %q`, s.Overlap, scheduler.OverlapCoalesce, scheduler.OverlapReject))
	}
	if s.Jitter.Duration < 0 {
		l.problem("schedule.jitter", `must not be negative, e.g. "10m"`)
	}
	if !l.has("schedule.grace") {
		s.Grace.Duration = scheduler.DefaultGrace
	} else if s.Grace.Duration <= 0 {
		l.problem("schedule.grace", `must be positive, e.g. "6h"`)
	}
	if !l.has("schedule.shutdown_grace") {
		s.ShutdownGrace.Duration = defaultShutdownGrace
	} else if s.ShutdownGrace.Duration < 0 {
		l.problem("schedule.shutdown_grace", `must not be negative: "0s" cancels the run at once`)
	}
}

// daemonHTTP checks the [http] keys the daemon uses.
func (l *loader) daemonHTTP(h *HTTP) {
	h.Listen = cmp.Or(h.Listen, defaultListen)
	if _, port, err := net.SplitHostPort(h.Listen); err != nil || port == "" {
		l.problem("http.listen", fmt.Sprintf("%q is not host:port, e.g. %q", h.Listen, defaultListen))
	}
	h.Token, _ = l.readSecret("http.token_file", &h.TokenFile, EnvHTTPToken, "the API token")
	l.tokens(h)
}
