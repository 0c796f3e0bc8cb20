package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// IsURL reports whether the source repo is a git URL (contains "://", or is
// scp-like user@host:path) rather than a local path.
func (s Source) IsURL() bool {
	if strings.Contains(s.Repo, "://") {
		return true
	}
	// Like git, a colon only makes an scp-like URL when no slash comes
	// before it, so that "./a@b:c" stays a path.
	head, path, ok := strings.Cut(s.Repo, ":")
	return ok && path != "" && strings.Contains(head, "@") && !strings.ContainsAny(head, `/\`)
}

// CheckTree checks, for each image, that Dockerfile exists as a regular file
// and Context as a directory under the source repository root. It is
// separate from Load so that a URL source can be checked once it is cloned.
func (c *Config) CheckTree(root string) Problems {
	var ps Problems
	at := func(i int, field, msg string) {
		key := fmt.Sprintf("image[%d].%s", i+1, field)
		line := c.lines.line(key)
		if line == 0 {
			line = c.Images[i].Line
		}
		ps = append(ps, Problem{File: c.File, Line: line, Key: key, Msg: msg})
	}
	for i, img := range c.Images {
		dockerfileOK := true
		if img.Dockerfile != "" { // a missing one is reported by Load
			if msg := checkPath(root, img.Dockerfile, false); msg != "" {
				at(i, "dockerfile", msg)
				dockerfileOK = false
			}
		}
		// A context left to its default is the Dockerfile's directory, so
		// a missing Dockerfile already says what is wrong with it.
		_, written := c.lines[fmt.Sprintf("image[%d].context", i+1)]
		if img.Context != "" && (written || dockerfileOK) {
			if msg := checkPath(root, img.Context, true); msg != "" {
				at(i, "context", msg)
			}
		}
		for _, f := range img.Tests {
			if msg := checkPath(root, f, false); msg != "" {
				at(i, "tests", msg)
			}
		}
	}
	for _, f := range c.Validate.Tests {
		if msg := checkPath(root, f, false); msg != "" {
			ps = append(ps, Problem{File: c.File, Line: c.lines.line("validate.tests"), Key: "validate.tests", Msg: msg})
		}
	}
	return ps
}

// checkPath returns what is wrong with rel, a slash-separated path under
// root that should be a directory (dir) or a regular file, or "".
func checkPath(root, rel string, dir bool) string {
	want := "a regular file"
	if dir {
		want = "a directory"
	}
	native := filepath.FromSlash(rel)
	if !filepath.IsLocal(native) {
		return fmt.Sprintf("%q is not inside the source repository: use a relative path without \"..\"", rel)
	}
	fi, err := os.Stat(filepath.Join(root, native))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%q does not exist in the source repository %s", rel, root)
	case err != nil:
		return err.Error()
	case fi.IsDir() != dir || !dir && !fi.Mode().IsRegular():
		return fmt.Sprintf("%q is not %s in the source repository %s", rel, want, root)
	}
	return ""
}
