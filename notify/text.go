package notify

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"nightshift/store"
)

// Images lists the run's images in build order, with a blank result for a
// planned image the run never got to, so a list adds up to the headline.
func (s Summary) Images() []store.ImageResult {
	r := s.Run
	var out []store.ImageResult
	seen := map[string]bool{}
	for _, name := range r.Planned {
		if seen[name] {
			continue
		}
		seen[name] = true
		if im := r.Image(name); im != nil {
			out = append(out, *im)
		} else {
			out = append(out, store.ImageResult{Name: name})
		}
	}
	for _, im := range r.Images {
		if !seen[im.Name] {
			out = append(out, im)
		}
	}
	return out
}

// ConsoleURL is the console of the CI build that carried the run out
// (Jenkins' <BUILD_URL>console); "" when the run records none, or none that
// is an http(s) URL a reader could follow.
func (s Summary) ConsoleURL() string { return s.Run.ConsoleURL() }

// Unchanged says which images a change-detected run left alone, "" for
// none: "base, lint (unchanged since 1a2b3c4d: not rebuilt)".
func Unchanged(r store.Run) string {
	if len(r.Unchanged) == 0 {
		return ""
	}
	names := make([]string, len(r.Unchanged))
	for i, u := range r.Unchanged {
		names[i] = u.Name
	}
	return fmt.Sprintf("%s (unchanged since %s: not rebuilt)", strings.Join(names, ", "), ShortCommit(r.ChangedSince))
}

// Duration is d to the second: sub-second precision is noise in a nightly
// build.
func Duration(d time.Duration) string { return d.Round(time.Second).String() }

// Shorten cuts s to at most n runes, marking the cut.
func Shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// ansi matches terminal escape sequences: build logs colour their output.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// CleanLine makes a log line printable: no colour codes, no carriage
// returns or other control characters that would garble a reader's view.
func CleanLine(line string) string {
	line = ansi.ReplaceAllString(line, "")
	return strings.Map(func(r rune) rune {
		if r == '\t' || r >= ' ' && r != 0x7f && (r < 0x80 || r > 0x9f) {
			return r
		}
		return -1
	}, line)
}

// StripANSI removes terminal escape sequences from s.
func StripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// ShortCommit is a commit as messages show it: a hash as store.ShortCommit
// cuts it, anything else (a ref, a made-up id) to at most 40 runes.
func ShortCommit(c string) string {
	c = OneLine(c)
	if len(c) >= store.ShortLen && strings.Trim(c, "0123456789abcdef") == "" {
		return store.ShortCommit(c)
	}
	return Shorten(c, 40)
}

// FlakyBuild says "flaky build (2 attempts)" of an image that built only
// on a retry after a passing failure, "" of any other: a flaky night is
// shown, never hidden.
func FlakyBuild(im store.ImageResult) string {
	if !im.Flaky {
		return ""
	}
	if st := im.Stage("build"); st != nil && st.Attempts > 1 {
		return fmt.Sprintf("flaky build (%d attempts)", st.Attempts)
	}
	return "flaky build"
}

// Recurs says "seen on 3 of the last 7 nights" of an image whose
// failure recurs, "" of any other.
func (s Summary) Recurs(name string) string {
	r, ok := s.Recurring[name]
	if !ok || r.Seen < 2 {
		return ""
	}
	return fmt.Sprintf("seen on %d of the last %d nights", r.Seen, r.Of)
}

// PackageChanges says how an image's packages changed since the run it is
// compared with, with at most n of the changes: "packages since run 41: 2
// changed (pip numpy 1.26.0 -> 1.26.1, dpkg +curl 7.88.1)"; "" when
// nothing changed or nothing was compared. A failed image's changes since
// its last good night are the first clue.
func PackageChanges(im store.ImageResult, n int) string {
	d := im.Packages
	if d == nil || d.Empty() {
		return ""
	}
	var shown []string
	for _, c := range d.First[:min(n, len(d.First))] {
		shown = append(shown, c.String())
	}
	if more := d.Added + d.Removed + d.Changed - len(shown); more > 0 && len(shown) > 0 {
		shown = append(shown, fmt.Sprintf("and %d more", more))
	}
	line := fmt.Sprintf("packages since run %d: %s", d.SinceRun, d.Counts())
	if len(shown) > 0 {
		line += " (" + strings.Join(shown, ", ") + ")"
	}
	return line
}

// ValidationStatus says in a few words how an image's validation went:
// "validated", "validation failed (2 of 5 tests)", "not validated", ...;
// "" when the run validated nothing.
func ValidationStatus(v *store.Validation) string {
	if v == nil {
		return ""
	}
	failed, flaky := v.Failures()
	switch v.Status {
	case store.Succeeded:
		switch {
		case flaky == 1:
			return "validated (1 flaky test)"
		case flaky > 1:
			return fmt.Sprintf("validated (%d flaky tests)", flaky)
		}
		return "validated"
	case store.Failed:
		if failed > 0 {
			return fmt.Sprintf("validation failed (%d of %d tests)", failed, len(v.Tests))
		}
		return "validation failed"
	case store.Skipped:
		return "not validated"
	}
	return "validation " + string(v.Status)
}

// excerptRunes is how much of why a test failed a message quotes.
const excerptRunes = 200

// FailedTest is a test that did not pass, and why in one short line.
type FailedTest struct {
	Name, Why string
}

// FailedTests lists the tests in v that did not pass, in the order run,
// each with an excerpt of why: its first error, else the last line it
// printed.
func FailedTests(v *store.Validation) []FailedTest {
	if v == nil {
		return nil
	}
	var out []FailedTest
	for _, t := range v.Tests {
		if t.Passed {
			continue
		}
		why := ""
		for _, e := range t.Errors {
			if why = OneLine(e); why != "" {
				break
			}
		}
		if why == "" {
			lines := strings.Split(strings.TrimSpace(t.Output), "\n")
			why = OneLine(lines[len(lines)-1])
		}
		if why == "" {
			why = "no error or output recorded"
		}
		out = append(out, FailedTest{Name: OneLine(t.Name), Why: Shorten(why, excerptRunes)})
	}
	return out
}

// OneLine folds s onto one line, without terminal codes or control
// characters: a line break becomes a space, as any other run of white
// space does.
func OneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, StripANSI(s))
	return strings.Join(strings.Fields(s), " ")
}
