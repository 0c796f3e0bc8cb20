package packages

import (
	"fmt"
	"io"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"nightshift/store"
)

// WriteManifest writes c, the contents of an image of run, as a Markdown
// manifest: the ref and digest, a table of its layers, then a section per
// info command with its packages.
func WriteManifest(w io.Writer, run uint64, c *store.Contents) error {
	p := &printer{w: w}
	p.printf("# %s\n\n", c.Image)
	p.printf("- Ref: `%s`\n", c.Ref)
	p.printf("- Digest: `%s`\n", c.Digest)
	p.printf("- Run: %d, read %s\n", run, c.Read.UTC().Format(time.DateTime+" MST"))

	var total int64
	for _, l := range c.Layers {
		total += l.Size
	}
	p.printf("\n## Layers\n\n")
	switch {
	case c.Error != "":
		p.printf("Not read: %s\n", c.Error)
	case len(c.Layers) == 0:
		p.printf("None.\n")
	default:
		p.printf("%d layers, %s compressed.\n\n", layered(c.Layers), units.HumanSize(float64(total)))
		p.printf("| # | Size | Instruction |\n|---:|---:|---|\n")
		n := 0
		for _, l := range c.Layers {
			num, size := "", "-"
			if l.Digest != "" {
				n++
				num, size = fmt.Sprint(n), units.HumanSize(float64(l.Size))
			}
			p.printf("| %s | %s | %s |\n", num, size, code(Instruction(l.CreatedBy)))
		}
	}

	for _, l := range c.Lists {
		p.printf("\n## %s\n\n", l.Source)
		p.printf("`%s`", l.Command)
		switch {
		case l.Absent:
			p.printf(": not in this image.\n")
			continue
		case l.Error != "":
			p.printf(": failed: %s\n", l.Error)
			if len(l.Packages) == 0 {
				continue
			}
			p.printf("\nRead before it failed:\n")
		default:
			p.printf(": %d packages.\n", len(l.Packages))
		}
		if len(l.Packages) == 0 {
			continue
		}
		p.printf("\n| Package | Version |\n|---|---|\n")
		for _, pkg := range l.Packages {
			p.printf("| %s | %s |\n", cell(pkg.Name), cell(pkg.Version))
		}
	}
	return p.err
}

// Instruction is how a history entry reads as a Dockerfile instruction:
// the classic builder records a RUN as "/bin/sh -c cmd" and the others as
// "/bin/sh -c #(nop)  INSTRUCTION"; BuildKit records "RUN /bin/sh -c cmd #
// buildkit" and "COPY src dst # buildkit".
func Instruction(createdBy string) string {
	s := strings.TrimSpace(createdBy)
	if rest, ok := strings.CutSuffix(s, "# buildkit"); ok {
		s = strings.TrimSpace(rest)
		if cmd, ok := strings.CutPrefix(s, "RUN /bin/sh -c "); ok {
			return "RUN " + strings.TrimSpace(cmd)
		}
		return s
	}
	if rest, ok := strings.CutPrefix(s, "/bin/sh -c #(nop)"); ok {
		return strings.TrimSpace(rest)
	}
	if rest, ok := strings.CutPrefix(s, "/bin/sh -c "); ok {
		return "RUN " + strings.TrimSpace(rest)
	}
	return s
}

func layered(ls []store.Layer) int {
	n := 0
	for _, l := range ls {
		if l.Digest != "" {
			n++
		}
	}
	return n
}

// cell makes s safe in a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// code writes s as inline code in a table cell.
func code(s string) string {
	if s == "" {
		return ""
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	return fence + " " + cell(s) + " " + fence
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
