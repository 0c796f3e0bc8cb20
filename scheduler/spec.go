package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// specFields are the parser options nightshift accepts: crontab's five
// fields, an optional leading seconds field, and descriptors.
const specFields = cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor

// ParseSpec parses a cron spec the way nightshift does everywhere: five
// fields (minute hour day-of-month month day-of-week), six with a leading
// seconds field, or a descriptor (@yearly, @monthly, @weekly, @daily,
// @hourly, @every <duration>), optionally prefixed by CRON_TZ=Area/City (or
// TZ=Area/City). Without a prefix the spec is in the host's local time zone.
// The error names the spec and, where it can, the field that is wrong.
func ParseSpec(spec string) (cron.Schedule, error) {
	s, err := parseSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %w", spec, err)
	}
	return s, nil
}

func parseSpec(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("empty; want five fields like \"0 2 * * *\", six with seconds, or a descriptor like @daily")
	}
	body, zone := spec, ""
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		// robfig slices up to the first space and panics when there is none,
		// so the prefix is taken apart here and handed over normalised.
		prefix, rest, _ := strings.Cut(strings.Replace(spec, "\t", " ", 1), " ")
		_, zone, _ = strings.Cut(prefix, "=")
		body = strings.TrimSpace(rest)
		if zone == "" {
			return nil, fmt.Errorf("%s names no time zone, e.g. CRON_TZ=Europe/Berlin", prefix)
		}
		if _, err := time.LoadLocation(zone); err != nil {
			return nil, fmt.Errorf("unknown time zone %q: %w", zone, err)
		}
		if body == "" {
			return nil, fmt.Errorf("%s is followed by no schedule", prefix)
		}
	}
	if d, ok := strings.CutPrefix(body, "@every"); ok {
		// robfig rounds anything under a second, negative included, up to one
		// second: a typo must not become a rebuild every second.
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("@every: %w", err)
		}
		if dur < time.Second {
			return nil, fmt.Errorf("@every %s: the interval must be at least 1s", dur)
		}
	}
	full := body
	if zone != "" {
		full = "CRON_TZ=" + zone + " " + body
	}
	s, err := cron.NewParser(specFields).Parse(full)
	if err != nil {
		if ferr := fieldError(body); ferr != nil {
			return nil, ferr
		}
		return nil, err
	}
	return s, nil
}

// fieldError finds which field of a five- or six-field spec robfig rejected,
// since robfig's own message ("end of range (61) above maximum (59): 61")
// does not say which one it was.
func fieldError(body string) error {
	if strings.HasPrefix(body, "@") {
		return nil
	}
	names := []string{"minute", "hour", "day-of-month", "month", "day-of-week"}
	opts := []cron.ParseOption{cron.Minute, cron.Hour, cron.Dom, cron.Month, cron.Dow}
	fields := strings.Fields(body)
	switch len(fields) {
	case 5:
	case 6:
		names = append([]string{"second"}, names...)
		opts = append([]cron.ParseOption{cron.Second}, opts...)
	default:
		return fmt.Errorf("%d fields; want five (minute hour day-of-month month day-of-week), or six with a leading seconds field", len(fields))
	}
	for i, f := range fields {
		if _, err := cron.NewParser(opts[i]).Parse(f); err != nil {
			return fmt.Errorf("%s field %q: %w", names[i], f, err)
		}
	}
	return nil
}

// schedule wraps a parsed spec with the rules robfig's Next lacks: wall-clock
// times that DST skips or repeats, progress guaranteed, and the latest fire
// in an interval.
type schedule struct {
	cron.Schedule
	// spec and loc are set when wall-clock DST rules apply: a SpecSchedule
	// whose hour field is not "*". Specs that run every hour keep elapsed
	// time instead, as Vixie cron does for wildcard jobs.
	spec *cron.SpecSchedule
	loc  *time.Location
}

func newSchedule(s cron.Schedule) schedule {
	sc := schedule{Schedule: s}
	const starBit = 1 << 63 // robfig's mark for "*" in a field
	if spec, ok := s.(*cron.SpecSchedule); ok && spec.Hour&starBit == 0 {
		sc.spec, sc.loc = spec, spec.Location
	}
	return sc
}

// maxSkips bounds next's search; a spec that needs more than this many raw
// times to find a real fire is treated as having none rather than spinning.
const maxSkips = 64

// next is the first fire time strictly after after, or zero if there is none.
//
// For wall-clock specs (an explicit hour, e.g. "30 2 * * *"):
//   - a time that falls into a spring-forward gap, which robfig silently
//     skips for the whole day, fires at the first instant after the gap
//     (03:00 CEST for 02:30 in Berlin), so the nightly run still happens;
//   - a time that occurs a second time when clocks go back is not fired
//     again (02:30 CET after 02:30 CEST), so the nightly run happens once.
func (s schedule) next(after time.Time) time.Time {
	t := after
	for range maxSkips {
		var n time.Time
		if s.loc != nil {
			n = s.Schedule.Next(t.In(s.loc))
		} else {
			n = s.Schedule.Next(t)
		}
		if n.IsZero() {
			return time.Time{}
		}
		if !n.After(t) {
			// Not robfig's behaviour, but a Next that does not move forward
			// would make the loop fire the same time forever.
			t = t.Add(time.Second)
			continue
		}
		if s.spec == nil {
			return n
		}
		if g := s.gapFire(t, n); !g.IsZero() {
			return g
		}
		if end, repeat := s.repeated(n); repeat {
			// Resume at the first instant whose wall clock is new; Next
			// starts at the whole second after its argument.
			t = end.Add(-time.Nanosecond)
			continue
		}
		return n
	}
	return time.Time{}
}

// gapFire returns the end of the first spring-forward gap in (after, n) if
// the spec wanted a wall-clock time inside it, else zero.
func (s schedule) gapFire(after, n time.Time) time.Time {
	t := after.In(s.loc)
	for range maxSkips {
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.Before(n) {
			return time.Time{}
		}
		_, before := end.Add(-time.Nanosecond).In(s.loc).Zone()
		_, afterOff := end.In(s.loc).Zone()
		if gap := time.Duration(afterOff-before) * time.Second; gap > 0 {
			// In a fixed zone with the old offset, the missing wall times
			// are exactly the instants [end, end+gap).
			probe := *s.spec
			probe.Location = time.FixedZone("", before)
			if m := probe.Next(end.Add(-time.Nanosecond)); !m.IsZero() && m.Before(end.Add(gap)) {
				return end.In(s.loc)
			}
		}
		t = end.In(s.loc)
	}
	return time.Time{}
}

// repeated reports whether t's wall-clock reading already happened earlier
// because clocks went back, and if so when the repeated stretch ends.
func (s schedule) repeated(t time.Time) (time.Time, bool) {
	t = t.In(s.loc)
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return time.Time{}, false
	}
	_, off := t.Zone()
	_, prev := start.Add(-time.Nanosecond).In(s.loc).Zone()
	back := time.Duration(prev-off) * time.Second
	if back <= 0 {
		return time.Time{}, false
	}
	end := start.Add(back)
	return end, t.Before(end)
}

// latest is the last fire time in (after, now], or zero if there is none.
// It does not walk every fire since after: a host down for a year with a
// per-minute spec would otherwise take half a million steps.
func (s schedule) latest(after, now time.Time) time.Time {
	first := s.next(after)
	if first.IsZero() || first.After(now) {
		return time.Time{}
	}
	if d, ok := s.Schedule.(cron.ConstantDelaySchedule); ok {
		// @every counts from the previous fire, not from the clock, so only
		// arithmetic on the chain that starts at first is right.
		return first.Add(now.Sub(first) / d.Delay * d.Delay)
	}
	// Find a fire close to now by probing ever further back, then walk
	// forward; fires of a SpecSchedule are the same whatever the start.
	x := first
	for back := time.Second; back > 0 && back < now.Sub(after); back *= 2 {
		if y := s.next(now.Add(-back)); !y.IsZero() && !y.After(now) {
			x = y
			break
		}
	}
	for {
		y := s.next(x)
		if y.IsZero() || y.After(now) {
			return x
		}
		x = y
	}
}
