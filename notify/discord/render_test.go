package discord

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"nightshift/notify"
	"nightshift/notify/notifytest"
	"nightshift/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var testMentions = []string{"<@123456789012345678>", "<@&876543210987654321>"}

// bigRun is a run that cannot fit one message: 60 images, 40 of them
// failed with 200-line tails.
func bigRun() notify.Summary {
	s := notifytest.Sample()
	start := s.Run.Started
	s.Run.Planned = nil
	s.Run.Images = nil
	for i := range 60 {
		name := fmt.Sprintf("image-%02d-with-a-rather-long-name", i)
		from, to := start.Add(time.Duration(i)*time.Minute), start.Add(time.Duration(i+1)*time.Minute)
		im := store.ImageResult{Name: name, Status: store.Succeeded, Started: &from, Finished: &to,
			Ref: "registry.example.com/ci/" + name + ":2026-11-23-02-00-00-1a2b3c4d"}
		if i%3 != 0 && i < 60 {
			im.Status, im.Ref = store.Failed, ""
			im.Error = "build: exit code 1: " + strings.Repeat("the step failed for reasons ", 10)
			for j := range 200 {
				im.Tail = append(im.Tail, fmt.Sprintf("#%d %s line %d of the build log of %s", j, strings.Repeat("x", 60), j, name))
			}
		}
		s.Run.Planned = append(s.Run.Planned, name)
		s.Run.Images = append(s.Run.Images, im)
	}
	return s
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "<@123>" stays readable in the golden file
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPayloadsGolden(t *testing.T) {
	t.Parallel()
	got := marshal(t, Payloads(notifytest.Sample(), "", testMentions))
	path := filepath.Join("testdata", "summary.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", path, got)
	}
}

// wire is what Discord reads of the payloads.
func wire(t *testing.T, ps []*discordgo.WebhookParams) []wireMessage {
	t.Helper()
	var out []wireMessage
	for _, p := range ps {
		b, err := discordgo.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var m wireMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestPayloadsMentionOnlyBadNews(t *testing.T) {
	t.Parallel()
	mentions := []string{"<@123>", "<@!124>", "<@&456>", "@here", "<@123>", "not a mention"}
	for _, tc := range []struct {
		event string
		ping  bool
	}{
		{notify.EventFailure, true},
		{notify.EventInterrupted, true},
		{notify.EventNotStarted, true},
		{notify.EventSuccess, false},
		{notify.EventFixed, false},
	} {
		t.Run(tc.event, func(t *testing.T) {
			t.Parallel()
			s := bigRun()
			s.Event = tc.event
			if tc.event == notify.EventNotStarted {
				s.Reason = "registry.example.com: connection refused"
			}
			ms := wire(t, Payloads(s, "", mentions))
			if len(ms) < 2 {
				t.Fatalf("%d messages, want a split", len(ms))
			}
			for i, m := range ms {
				a := m.AllowedMentions
				if a == nil || a.Parse == nil {
					t.Fatalf("message %d: allowed_mentions %+v, want parse to be a list, never absent", i, a)
				}
				if i > 0 || !tc.ping {
					if m.Content != "" || len(*a.Parse) != 0 || len(a.Users) != 0 || len(a.Roles) != 0 {
						t.Errorf("message %d: content %q, allowed_mentions %+v; want nobody mentioned", i, m.Content, *a)
					}
					continue
				}
				if want := "<@123> <@!124> <@&456> @here"; m.Content != want {
					t.Errorf("content = %q, want %q", m.Content, want)
				}
				if !slices.Equal(*a.Parse, []string{"everyone"}) || !slices.Equal(a.Users, []string{"123", "124"}) || !slices.Equal(a.Roles, []string{"456"}) {
					t.Errorf("allowed_mentions = %+v %+v, want parse [everyone], users [123 124], roles [456]", *a.Parse, a)
				}
			}
		})
	}
}

// nightshift notify test sends a failing sample: it must not ping anyone.
func TestPayloadsSampleMentionsNobody(t *testing.T) {
	t.Parallel()
	s := bigRun()
	s.Sample = true
	ms := wire(t, Payloads(s, "", []string{"<@123>", "<@&456>", "@everyone"}))
	for i, m := range ms {
		a := m.AllowedMentions
		if m.Content != "" || a == nil || a.Parse == nil || len(*a.Parse) != 0 || len(a.Users) != 0 || len(a.Roles) != 0 {
			t.Errorf("message %d: content %q, allowed_mentions %+v; want nobody mentioned", i, m.Content, a)
		}
	}
	if d := ms[0].Embeds[0].Description; !strings.Contains(d, "sample summary") || !strings.Contains(d, "mentions nobody") {
		t.Errorf("description %q does not say it is a sample that mentions nobody", d)
	}
}

func TestPayloadsColourAndTitle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		event  string
		status store.Status
		colour int
	}{
		{notify.EventSuccess, store.Succeeded, green},
		{notify.EventFixed, store.Succeeded, blue},
		{notify.EventFailure, store.Failed, red},
		{notify.EventInterrupted, store.Interrupted, orange},
		{notify.EventNotStarted, "", orange},
	} {
		s := notifytest.Sample()
		s.Event, s.Run.Status = tc.event, tc.status
		ps := Payloads(s, "ci bot", nil)
		e := ps[0].Embeds[0]
		if e.Color != tc.colour {
			t.Errorf("%s: colour %#x, want %#x", tc.event, e.Color, tc.colour)
		}
		if want := "nightshift " + notify.OneLine(s.Headline()); e.Title != want {
			t.Errorf("%s: title %q, want %q", tc.event, e.Title, want)
		}
		if e.URL != "https://ci.example.com/nightshift/runs/42" {
			t.Errorf("%s: url %q", tc.event, e.URL)
		}
		if ps[0].Username != "ci bot" {
			t.Errorf("username %q", ps[0].Username)
		}
	}
}

func TestPayloadsNotStarted(t *testing.T) {
	t.Parallel()
	reason := "engine: Cannot connect to the Docker daemon at unix:///var/run/docker.sock " + strings.Repeat("and then some ", 40)
	s := notify.Summary{Event: notify.EventNotStarted, Reason: reason, Undelivered: 1}
	ps := Payloads(s, "", nil)
	ms := wire(t, ps)
	if len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	if p := validate(ms[0]); len(p) > 0 {
		t.Fatalf("refused: %v", p)
	}
	d := ms[0].Embeds[0].Description
	if !strings.Contains(d, "Cannot connect to the Docker daemon") || !strings.Contains(d, "and then some and then some") {
		t.Errorf("description %q lacks the reason", d)
	}
	if !strings.Contains(d, "1 earlier message could not be delivered.") {
		t.Errorf("description %q lacks the undelivered count", d)
	}
	if ms[0].Embeds[0].URL != "" {
		t.Errorf("url %q without a public URL", ms[0].Embeds[0].URL)
	}
}

// A change-detected run says which images it left alone.
func TestPayloadsUnchanged(t *testing.T) {
	t.Parallel()
	s := notifytest.Sample()
	s.Run.ChangedSince = "0123456789abcdef0123456789abcdef01234567"
	s.Run.Unchanged = []store.UnchangedImage{{Name: "go", Status: store.Skipped, Reason: "unchanged since 01234567"}}
	ms := wire(t, Payloads(s, "", nil))
	if d := ms[0].Embeds[0].Description; !strings.Contains(d, "⏭️ go (unchanged since 01234567: not rebuilt)") {
		t.Errorf("description %q does not say go was left alone", d)
	}
}

// TestPayloadsWithinLimits renders runs built to break each limit and
// checks every message against them, and that nothing was dropped.
func TestPayloadsWithinLimits(t *testing.T) {
	t.Parallel()
	astral := strings.Repeat("🚀", 3000) // two UTF-16 units each
	huge := func(s notify.Summary) notify.Summary {
		for i := range s.Run.Images {
			s.Run.Images[i].Name += "-" + strings.Repeat("ñ", 300)
			s.Run.Images[i].Error = astral
			if s.Run.Images[i].Status == store.Failed {
				s.Run.Images[i].Tail = append(s.Run.Images[i].Tail, astral, strings.Repeat("`", 2000))
			}
		}
		s.Run.Planned = nil
		return s
	}
	many := notifytest.Sample()
	many.Run.Planned = nil
	many.Run.Images = nil
	for i := range 1000 {
		many.Run.Images = append(many.Run.Images, store.ImageResult{Name: fmt.Sprintf("img%d", i), Status: store.Failed, Error: "x"})
	}
	long := notifytest.Sample()
	long.Run.Subject = strings.Repeat("subject_", 1000)
	long.Run.Error = strings.Repeat("error*", 2000)
	long.Run.Tag = strings.Repeat("tag", 200)
	long.PublicURL = "https://ci.example.com/a path/(x)"
	noTail := bigRun()
	for i := range noTail.Run.Images {
		noTail.Run.Images[i].Tail = nil
		noTail.Run.Images[i].Error = strings.Repeat("e", 5000)
	}
	empty := notify.Summary{Event: notify.EventSuccess}
	tests := bigRun()
	for i := range tests.Run.Images {
		v := &store.Validation{Status: store.Failed}
		for j := range 200 {
			v.Tests = append(v.Tests, store.TestResult{Name: fmt.Sprintf("test %d %s", j, astral[:400]),
				Errors: []string{strings.Repeat("*expected* `x`, got y ", 50)}})
		}
		tests.Run.Images[i].Validation = v
	}

	for name, s := range map[string]notify.Summary{
		"sample": notifytest.Sample(), "big": bigRun(), "huge": huge(bigRun()), "many": many, "long": long,
		"no tail": noTail, "empty": empty, "failing tests": tests,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mentions := make([]string, 300)
			for i := range mentions {
				mentions[i] = fmt.Sprintf("<@%d>", 100000000000000000+i)
			}
			ps := Payloads(s, strings.Repeat("n", 100), mentions)
			ms := wire(t, ps)
			var all strings.Builder
			for i, m := range ms {
				if p := validate(m); len(p) > 0 {
					t.Errorf("message %d of %d would be refused: %v", i+1, len(ms), p)
				}
				for _, e := range m.Embeds {
					all.WriteString(e.Description + "\n")
					for _, f := range e.Fields {
						all.WriteString(f.Name + "\n")
					}
				}
			}
			for _, im := range s.Run.Images {
				n := escape(notify.Shorten(notify.OneLine(im.Name), 100))
				if !strings.Contains(all.String(), n) {
					t.Errorf("image %.40s… is missing", n)
				}
			}
		})
	}
}

func TestPayloadsSplitInOrder(t *testing.T) {
	t.Parallel()
	s := bigRun()
	ps := Payloads(s, "", testMentions)
	if len(ps) < 2 {
		t.Fatalf("%d messages, want several", len(ps))
	}
	var lines, fields []string
	for i, p := range ps {
		if want := fmt.Sprintf(" (%d/%d)", i+1, len(ps)); !strings.HasSuffix(p.Embeds[0].Title, want) {
			t.Errorf("message %d title %q, want suffix %q", i, p.Embeds[0].Title, want)
		}
		for _, e := range p.Embeds {
			if e.Description != "" {
				lines = append(lines, strings.Split(e.Description, "\n")...)
			}
			for _, f := range e.Fields {
				fields = append(fields, f.Name)
			}
		}
	}
	var wantFields []string
	last := -1
	for _, im := range s.Run.Images {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "["+escape(im.Name)+"]") })
		if i <= last {
			t.Errorf("%s at line %d, after line %d: out of order or missing", im.Name, i, last)
		}
		last = i
		if im.Status == store.Failed {
			wantFields = append(wantFields, escape(im.Name)+" failed")
		}
	}
	if !slices.Equal(fields, wantFields) {
		t.Errorf("fields %v, want %v", fields, wantFields)
	}
}

func TestTailBlockKeepsTheEnd(t *testing.T) {
	t.Parallel()
	var tail []string
	for i := range 200 {
		tail = append(tail, fmt.Sprintf("line %03d %s", i, strings.Repeat("y", 70)))
	}
	tail = append(tail, "```fenced``` \x1b[1mbold\x1b[0m", "ERROR: the end\r")
	b := tailBlock(tail, maxFieldValue)
	if size(b) > maxFieldValue {
		t.Fatalf("block is %d characters", size(b))
	}
	if !strings.HasPrefix(b, "```\n[") || !strings.HasSuffix(b, "\nERROR: the end\n```") {
		t.Errorf("block %q does not start with the omission and end with the last line", b)
	}
	if strings.Count(b, "```") != 2 {
		t.Errorf("a log line closes the code block early: %q", b)
	}
	if strings.Contains(b, "\x1b") {
		t.Errorf("colour codes left in %q", b)
	}

	one := tailBlock([]string{strings.Repeat("a", 5000) + "THE END"}, maxFieldValue)
	if size(one) > maxFieldValue || !strings.HasSuffix(one, "THE END\n```") {
		t.Errorf("a single long line is not cut from the front: %d characters, %q…", size(one), one[len(one)-20:])
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"a🚀b", 3, "a…"}, // the rocket takes two
		{"a🚀b", 4, "a🚀b"},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	if got := keepEnd("abcdef", 4); got != "…def" {
		t.Errorf("keepEnd = %q", got)
	}
}

func TestTestListCountsWhatDoesNotFit(t *testing.T) {
	t.Parallel()
	var tests []notify.FailedTest
	for i := range 30 {
		tests = append(tests, notify.FailedTest{Name: fmt.Sprintf("test_%d", i), Why: strings.Repeat("why ", 20)})
	}
	got := testList(tests, minTail)
	if size(got) > minTail {
		t.Fatalf("list is %d characters, over %d:\n%s", size(got), minTail, got)
	}
	lines := strings.Split(got, "\n")
	last := lines[len(lines)-1]
	if want := fmt.Sprintf("and %d more", 30-(len(lines)-1)); last != want || len(lines) < 3 {
		t.Errorf("list ends %q after %d tests, want %q:\n%s", last, len(lines)-1, want, got)
	}
	if !strings.HasPrefix(lines[0], "• **test\\_0**: why why") {
		t.Errorf("first line %q, want the first test escaped with why", lines[0])
	}
	if one := testList(tests[:1], minTail); strings.Contains(one, "more") {
		t.Errorf("a single test that fits: %q", one)
	}
	long := testList([]notify.FailedTest{{Name: "a", Why: strings.Repeat("w", 1000)}, {Name: "b", Why: strings.Repeat("v", 50)}}, minTail)
	if size(long) > minTail || !strings.HasSuffix(long, "\nand 1 more") {
		t.Errorf("a first test too long for the field: %d characters, %q", size(long), long)
	}
}

// A run carried out by a Jenkins build links to that build's console, and
// only to one a reader can follow.
func TestPayloadsLinkTheConsole(t *testing.T) {
	t.Parallel()
	for buildURL, want := range map[string]string{
		"https://jenkins.example.com/job/ci-images/7/": "Jenkins build: [console](https://jenkins.example.com/job/ci-images/7/console)",
		"https://jenkins.example.com/job/ci (x)/7/":    "Jenkins build: [console](https://jenkins.example.com/job/ci%20%28x%29/7/console)",
		"":                    "",
		"javascript:alert(1)": "",
	} {
		s := notifytest.Sample()
		s.Run.BuildURL = buildURL
		ms := wire(t, Payloads(s, "", nil))
		if p := validate(ms[0]); len(p) > 0 {
			t.Fatalf("BUILD_URL %q: refused: %v", buildURL, p)
		}
		d := ms[0].Embeds[0].Description
		switch {
		case want != "" && !strings.Contains(d, "\n"+want+"\n"):
			t.Errorf("BUILD_URL %q: description lacks the line %q:\n%s", buildURL, want, d)
		case want == "" && strings.Contains(d, "Jenkins build"):
			t.Errorf("BUILD_URL %q: description names a Jenkins build:\n%s", buildURL, d)
		}
	}
}

// A promotion pings nobody, lists where each image went and why the
// others did not, and leaves the run's failures out: they were news when
// it ended.
func TestPayloadsPromotion(t *testing.T) {
	t.Parallel()
	s := notifytest.Promotion()
	ps := Payloads(s, "", testMentions)
	ms := wire(t, ps)
	if len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	if p := validate(ms[0]); len(p) > 0 {
		t.Fatalf("refused: %v", p)
	}
	e := ms[0].Embeds[0]
	if ps[0].Content != "" || len(ps[0].AllowedMentions.Users)+len(ps[0].AllowedMentions.Roles) > 0 {
		t.Errorf("a promotion mentions %q", ps[0].Content)
	}
	if e.Color != orange {
		t.Errorf("colour %#x, want orange: two images were refused", e.Color)
	}
	if want := "nightshift promoted 3 of 5 images of 2026-11-23-02-00-00-1a2b3c4d to stable, 2026.4-stable (forced)"; e.Title != want {
		t.Errorf("title %q, want %q", e.Title, want)
	}
	for _, w := range []string{"Promoted by alice, with --force",
		"✅ [base](https://ci.example.com/nightshift/runs/42/images/base) → `registry.example.com/release/base:stable` (and 1 more tags) · `sha256:0a0a0a0a0a0a`",
		"`sha256:2c2c2c2c2c2c` · not validated", "⛔ node: not validated in night 42: validation failed"} {
		if !strings.Contains(e.Description, w) {
			t.Errorf("description lacks %q:\n%s", w, e.Description)
		}
	}
	if len(e.Fields) > 0 || strings.Contains(e.Description, "Took") {
		t.Errorf("a promotion quotes the run's failures or duration: %+v", e)
	}
	s.Promotion.Refused = nil
	if c := Payloads(s, "", nil)[0].Embeds[0].Color; c != green {
		t.Errorf("colour %#x, want green when every image asked for was promoted", c)
	}
}
