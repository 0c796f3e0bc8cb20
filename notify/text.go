package notify

import (
	"regexp"
	"strings"
	"time"

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
