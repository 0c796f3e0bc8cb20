// Package problem is what is wrong with an input file a person wrote (the
// configuration, a container test file), located so that they can go
// straight to it, and reported all at once. It has no dependencies, so
// that every package that reads such a file reports in one form.
package problem

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// A Problem is one thing wrong with a file.
type Problem struct {
	File string // the path as the user knows it
	Line int    // 1-based; 0 when the problem has no single place
	Key  string // e.g. "image[2].depends_on"; lists count from 1; may be empty
	Msg  string // what is wrong and what to do
}

// String formats p as "file:line: key: msg", the form editors and CI logs
// link to the place.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// List is every problem found in one input. It is an error so that callers
// report all of them at once.
type List []Problem

// Error lists every problem, one a line.
func (ps List) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, or nil when there are no problems.
func (ps List) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Sort orders ps by line, keeping the order of problems on one line.
func (ps List) Sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
}
