package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
)

// The dashboard's hot loops, written here rather than in templates: a
// year's matrix has 900 cells or more, an image's history 365 rows and as
// many bars, and html/template's escapers, called through reflection for
// each value, made most of those pages' time (15 ms of the home page's 18).
// The markup is the templates' own; every value is escaped for the
// double-quoted attribute or the text it lands in.

// esc escapes s for HTML text and double-quoted attributes.
func esc(s string) string { return template.HTMLEscapeString(s) }

// matrixCell writes one cell of the dashboard's matrix: a link to the
// image in the night (or, with no href, a mark that it was not in it),
// coloured and titled.
func matrixCell(b *strings.Builder, href, title string, bd badge) {
	st, sym, title := esc(bd.Status), esc(bd.Symbol), esc(title)
	if href == "" {
		fmt.Fprintf(b, `
      <td><span class="cell st-%s" title="%s" data-status="%s"><span aria-hidden="true">%s</span><span class="vh">%s</span></span></td>`,
			st, title, st, sym, title)
		return
	}
	fmt.Fprintf(b, `
      <td><a class="cell st-%s" href="%s" title="%s" data-status="%s"><span aria-hidden="true">%s</span><span class="vh">%s</span></a></td>`,
		st, esc(href), title, st, sym, title)
}

// badgeHTML is the layout's "badge" template.
func badgeHTML(b *strings.Builder, bd badge) {
	fmt.Fprintf(b, `<span class="badge st-%s"><span aria-hidden="true">%s</span> %s</span>`, esc(bd.Status), esc(bd.Symbol), esc(bd.Status))
}

// historyRows is the body of an image's history table, one row per entry.
func historyRows(entries []entryView) template.HTML {
	var b strings.Builder
	for i := range entries {
		e := &entries[i]
		fmt.Fprintf(&b, `
    <tr>
      <th scope="row"><a href="%s">%d</a></th>
      <td><time datetime="%s">%s</time></td>
      <td>`, esc(e.Href), e.RunID, e.When.UTC().Format(time.RFC3339), esc(fmtTime(e.When)))
		badgeHTML(&b, e.Badge)
		b.WriteString("</td>\n      <td>")
		switch {
		case e.Validation != nil:
			fmt.Fprintf(&b, `<a href="%s">%s</a>: %s`, esc(e.Validation.Href), esc(e.Validation.Text), esc(e.ValidationText))
		case e.ValidationText != "":
			b.WriteString(esc(e.ValidationText))
		default:
			b.WriteString("–")
		}
		fmt.Fprintf(&b, `</td>
      <td class="num">%s</td>
      <td><code title="%s">%s</code></td>
      <td>`, esc(fmtDuration(e.Duration)), esc(e.Subject), esc(e.Commit))
		if e.Digest != "" {
			fmt.Fprintf(&b, `<code title="%s">%s</code>`, esc(e.Digest), esc(e.Short))
		} else {
			b.WriteString("–")
		}
		fmt.Fprintf(&b, "</td>\n      <td>%s</td>\n    </tr>", esc(e.Error))
	}
	return template.HTML(b.String())
}

// chartBars are the bars of a chart, as SVG rectangles.
func chartBars(bars []bar) template.HTML {
	var b strings.Builder
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	for _, r := range bars {
		fmt.Fprintf(&b, `
    <rect class="bar st-%s" x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>`,
			esc(r.Status), num(r.X), num(r.Y), num(r.W), num(r.H), esc(r.Title))
	}
	return template.HTML(b.String())
}
