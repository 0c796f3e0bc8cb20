package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseSpecAccepts(t *testing.T) {
	t.Parallel()
	tokyo := mustLoad(t, "Asia/Tokyo")
	local := time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local)
	tests := []struct {
		spec string
		from time.Time
		want time.Time // Next(from)
	}{
		{"0 2 * * *", local, time.Date(2026, 1, 1, 2, 0, 0, 0, time.Local)},
		{"0 0 2 * * *", local, time.Date(2026, 1, 1, 2, 0, 0, 0, time.Local)},
		{"15 0 2 * * *", local, time.Date(2026, 1, 1, 2, 0, 15, 0, time.Local)},
		{"@daily", local, time.Date(2026, 1, 2, 0, 0, 0, 0, time.Local)},
		{"@every 1h", local, local.Add(time.Hour)},
		{"CRON_TZ=Asia/Tokyo 0 2 * * *", time.Date(2026, 1, 1, 0, 0, 0, 0, tokyo), time.Date(2026, 1, 1, 2, 0, 0, 0, tokyo)},
		{"TZ=UTC 0 2 * * mon", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)},
		{"  CRON_TZ=UTC   @daily ", time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSpec(tc.spec)
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if got := s.Next(tc.from); !got.Equal(tc.want) {
				t.Errorf("Next(%v) = %v, want %v", tc.from, got, tc.want)
			}
		})
	}
}

func TestParseSpecRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec string
		want []string // in the error, besides the quoted spec
	}{
		{"61 * * * *", []string{"minute field", `"61"`, "above maximum (59)"}},
		{"0 25 * * *", []string{"hour field", `"25"`}},
		{"0 2 32 * *", []string{"day-of-month field"}},
		{"61 0 2 * * *", []string{"second field"}},
		{"0 2 * * funday", []string{"day-of-week field"}},
		{"* * * *", []string{"4 fields", "five"}},
		{"0 0 2 * * * *", []string{"7 fields"}},
		{"", []string{"empty"}},
		{"CRON_TZ=Asia/Tokyo", []string{"no schedule"}},
		{"CRON_TZ= 0 2 * * *", []string{"names no time zone"}},
		{"CRON_TZ=Mars/Olympus 0 2 * * *", []string{"unknown time zone", "Mars/Olympus"}},
		{"@every -1h", []string{"at least 1s"}},
		{"@every 500ms", []string{"at least 1s"}},
		{"@every soon", []string{"@every"}},
		{"@sometimes", []string{"unrecognized descriptor"}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSpec(tc.spec)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range append(tc.want, "cron spec "+`"`+tc.spec+`"`) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestScheduleDST(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	at := func(mon time.Month, d, h, m int, off string) time.Time {
		// off pins which of two equal wall-clock readings is meant.
		z := map[string]*time.Location{"CET": time.FixedZone("CET", 3600), "CEST": time.FixedZone("CEST", 7200)}[off]
		return time.Date(2026, mon, d, h, m, 0, 0, z)
	}
	tests := []struct {
		name, spec string
		after      time.Time
		want       []time.Time
	}{
		{
			name:  "spring forward: 02:30 does not exist and fires at 03:00",
			spec:  "CRON_TZ=Europe/Berlin 30 2 * * *",
			after: at(time.March, 27, 12, 0, "CET"),
			want:  []time.Time{at(time.March, 28, 2, 30, "CET"), at(time.March, 29, 3, 0, "CEST"), at(time.March, 30, 2, 30, "CEST")},
		},
		{
			name:  "fall back: 02:30 happens twice and fires once",
			spec:  "CRON_TZ=Europe/Berlin 30 2 * * *",
			after: at(time.October, 24, 12, 0, "CEST"),
			want:  []time.Time{at(time.October, 25, 2, 30, "CEST"), at(time.October, 26, 2, 30, "CET")},
		},
		{
			name:  "fall back: a time outside the repeated hour is untouched",
			spec:  "CRON_TZ=Europe/Berlin 30 1,3 * * *",
			after: at(time.October, 24, 12, 0, "CEST"),
			want:  []time.Time{at(time.October, 25, 1, 30, "CEST"), at(time.October, 25, 3, 30, "CET"), at(time.October, 26, 1, 30, "CET")},
		},
		{
			name:  "spring forward: a gap time and the time after the gap fire once each",
			spec:  "CRON_TZ=Europe/Berlin 30 2,3 * * *",
			after: at(time.March, 29, 0, 0, "CET"),
			want:  []time.Time{at(time.March, 29, 3, 0, "CEST"), at(time.March, 29, 3, 30, "CEST"), at(time.March, 30, 2, 30, "CEST")},
		},
		{
			name:  "hourly specs keep elapsed time through the repeated hour",
			spec:  "CRON_TZ=Europe/Berlin 0 * * * *",
			after: at(time.October, 25, 1, 30, "CEST"),
			want:  []time.Time{at(time.October, 25, 2, 0, "CEST"), at(time.October, 25, 2, 0, "CET"), at(time.October, 25, 3, 0, "CET")},
		},
		{
			name:  "hourly specs keep elapsed time through the gap",
			spec:  "CRON_TZ=Europe/Berlin 0 * * * *",
			after: at(time.March, 29, 1, 30, "CET"),
			want:  []time.Time{at(time.March, 29, 3, 0, "CEST"), at(time.March, 29, 4, 0, "CEST")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs, err := ParseSpec(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			s := newSchedule(cs)
			got := tc.after
			for i, w := range tc.want {
				got = s.next(got)
				if !got.Equal(w) {
					t.Fatalf("fire %d = %v, want %v", i, got.In(berlin), w.In(berlin))
				}
			}
		})
	}
}

// stuckSchedule is a broken Schedule whose Next does not move forward.
type stuckSchedule struct{ back time.Duration }

var _ cron.Schedule = stuckSchedule{}

func (s stuckSchedule) Next(t time.Time) time.Time { return t.Add(-s.back) }

func TestNextNeverGoesBackward(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, back := range []time.Duration{0, time.Hour} {
		s := newSchedule(stuckSchedule{back})
		if got := s.next(from); !got.IsZero() {
			t.Errorf("next with a Next that goes back %v = %v, want zero (no fire) rather than a time <= %v", back, got, from)
		}
	}
}

func TestLatestMatchesAWalk(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	specs := []string{
		"CRON_TZ=UTC 0 2 * * *",
		"CRON_TZ=UTC */7 * * * *",
		"CRON_TZ=Europe/Berlin 30 2 * * *",
		"CRON_TZ=Europe/Berlin 0 * * * *",
		"CRON_TZ=UTC 0 0 29 2 *",
		"CRON_TZ=UTC 0 9 * * 1-5",
		"@every 90m",
	}
	spans := []time.Duration{0, time.Second, 90 * time.Minute, 26 * time.Hour, 9 * 24 * time.Hour, 240 * 24 * time.Hour}
	for _, spec := range specs {
		t.Run(spec, func(t *testing.T) {
			t.Parallel()
			cs, err := ParseSpec(spec)
			if err != nil {
				t.Fatal(err)
			}
			s := newSchedule(cs)
			for _, after := range []time.Time{base, base.Add(17*time.Minute + 3*time.Second)} {
				for _, span := range spans {
					now := after.Add(span)
					var want time.Time
					for x := s.next(after); !x.IsZero() && !x.After(now); x = s.next(x) {
						want = x
					}
					if got := s.latest(after, now); !got.Equal(want) {
						t.Errorf("latest(%v, %v) = %v, want %v", after, now, got, want)
					}
				}
			}
		})
	}
}

// The leap-day spec has no time within robfig's five-year horizon from some
// starts; that must read as "no fire", not hang.
func TestNextNone(t *testing.T) {
	t.Parallel()
	cs, err := ParseSpec("CRON_TZ=UTC 0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	if got := newSchedule(cs).next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); !got.IsZero() {
		t.Errorf("next of February 30th = %v, want zero", got)
	}
}
