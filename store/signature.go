package store

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// Signature groups failures for people: the failing step and its error
// line with what varies from night to night (numbers, hashes, paths,
// times, addresses) replaced by placeholders. Text is that normalised
// line; ID the first 12 hex digits of its SHA-256.
type Signature struct {
	ID   string
	Text string
}

// normaliser's expressions run in order: the specific forms (digests,
// times, addresses, paths) before bare numbers would cut them up.
var normaliser = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b(sha256|sha512|sha1|md5):[0-9a-fA-F]{8,}\b`), "<hash>"},
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?`), "<time>"},
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d(-[0-9a-f]{4,})?\b`), "<time>"}, // run tags
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d(\.\d+)?\b`), "<time>"},
	{regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`), "<addr>"},
	{regexp.MustCompile(`\[[0-9a-fA-F:]*:[0-9a-fA-F:]*\](:\d+)?`), "<addr>"},
	{regexp.MustCompile(`\b[0-9a-fA-F]{7,}\b`), "<hash>"},
	{regexp.MustCompile(`(^|[\s"'=(:])(~|\.{1,2})?(/[\w.@+-]+)+/?`), "$1<path>"},
	{regexp.MustCompile(`\b(\d+(\.\d+)?(ns|µs|us|ms|s|m|h))+\b`), "<duration>"},
	{regexp.MustCompile(`\d+`), "<n>"},
	{regexp.MustCompile(`\s+`), " "},
}

// Normalise replaces numbers, hashes, paths, times and addresses in line
// by placeholders.
func Normalise(line string) string {
	line = ansi.ReplaceAllString(line, "")
	for _, n := range normaliser {
		line = n.re.ReplaceAllString(line, n.with)
	}
	return strings.TrimSpace(line)
}

// errorWords marks the line of a failing step's output that says what went
// wrong.
var errorWords = regexp.MustCompile(`(?i)error|fail|fatal|panic|denied|refused|not found|no such|cannot|can't|unable|timed? ?out|invalid|moved|missing|exit(ed)? (code|status)`)

// generic marks the engine's own lines: its word that a step failed, which
// says less than the step's output above it, and its progress.
var generic = regexp.MustCompile(`did not complete successfully|returned a non-zero code|^(Step \d+/\d+ :|--->|Removing intermediate container|Digest: |Status: )|: Pulling from `)

// ansi is a terminal's colour and cursor codes.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// SignatureOf is the signature of a failed image, and false for an image
// that did not fail (a skipped image's cause has its own).
func SignatureOf(im *ImageResult) (Signature, bool) {
	if im.Status != Failed {
		return Signature{}, false
	}
	stage := "image"
	for _, st := range im.Stages {
		if st.Status == Failed {
			stage = st.Name
			break
		}
	}
	msg := im.Error
	if msg == "" && im.Validation != nil {
		msg = im.Validation.Error
	}
	msg, _, _ = strings.Cut(msg, "\n")
	text := stage + ": " + Normalise(msg)
	if line := errorLine(im.Tail); line != "" {
		text += " | " + Normalise(line)
	}
	sum := sha256.Sum256([]byte(text))
	return Signature{ID: hex.EncodeToString(sum[:])[:12], Text: text}, true
}

// errorLine is the last line of tail that looks like an error, else its
// last other line; the engine's own word that the step failed is no error
// line.
func errorLine(tail []string) string {
	last := ""
	for i := len(tail) - 1; i >= 0; i-- {
		l := strings.TrimSpace(ansi.ReplaceAllString(tail[i], ""))
		if l == "" || generic.MatchString(l) {
			continue
		}
		if errorWords.MatchString(l) {
			return l
		}
		if last == "" {
			last = l
		}
	}
	return last
}
