package config

import (
	"fmt"
	"strings"

	"github.com/moby/patternmatcher"
)

// Ensure configures `nightshift ensure`, the image for a commit named by
// its content.
type Ensure struct {
	// TagPrefix goes before every content tag: "<prefix>-<hash>" (PyTorch's
	// custom-tag-prefix). Default: none.
	TagPrefix string `toml:"tag_prefix"`
}

// Changes configures change-detected runs (run --changed-since).
type Changes struct {
	// BuildAll are globs of files whose change rebuilds every image
	// (shared install scripts).
	BuildAll []string `toml:"build_all"`
	// Ignore are globs of files whose change never rebuilds anything
	// (READMEs); they win over BuildAll and over any image's inputs.
	Ignore []string `toml:"ignore"`
}

// contentHashLen is the length of the hash in a content tag: a git hash's;
// attemptSuffix is the room ensure needs after it for the tag of one push
// attempt ("-try-" and 8 hex digits).
const (
	contentHashLen = 40
	attemptSuffix  = len("-try-01234567")
)

// globs checks patterns, slash-separated paths relative to the source
// root in .dockerignore syntax (*, ?, [...], ** for any number of
// directories; a pattern matching a directory matches what is under it;
// ! excepts), and reports the first bad one under key.
func (l *loader) globs(key string, patterns []string) {
	for i, p := range patterns {
		plain := strings.TrimPrefix(p, "!")
		switch {
		case strings.TrimSpace(plain) == "":
			l.problem(key, fmt.Sprintf("pattern %d is empty", i+1))
		case !inRepo(plain):
			l.problem(key, fmt.Sprintf("pattern %d, %q, is not inside the source repository: write a path relative to its root, without \"..\"", i+1, p))
		default:
			if _, err := patternmatcher.New([]string{p}); err != nil {
				l.problem(key, fmt.Sprintf("pattern %d, %q: %v", i+1, p, err))
			}
		}
	}
}

// ensureSection checks [ensure] and [changes].
func (l *loader) ensureSection(c *Config) {
	if p := c.Ensure.TagPrefix; p != "" {
		if err := CheckTag(p + "-" + strings.Repeat("0", contentHashLen+attemptSuffix)); err != nil {
			l.problem("ensure.tag_prefix", fmt.Sprintf("%q makes content tags that are %v; keep it to %d characters", p, err, 128-contentHashLen-attemptSuffix-1))
		}
	}
	l.globs("changes.build_all", c.Changes.BuildAll)
	l.globs("changes.ignore", c.Changes.Ignore)
	for i, img := range c.Images {
		l.globs(fmt.Sprintf("image[%d].inputs", i+1), img.Inputs)
	}
}
