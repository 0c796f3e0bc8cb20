package email

import (
	"fmt"
	"html/template"
	"strings"
	"text/tabwriter"

	"nightshift/notify"
	"nightshift/store"
)

// tailLines is how much of a failed step's log a message quotes: enough for
// the error, little enough to read on a phone. The dashboard has the rest.
const tailLines = 20

// detailWidth caps the reason in the table; the failures section below it
// has the whole text.
const detailWidth = 100

// maxTests is how many failing tests of one image a message names; the
// dashboard has them all.
const maxTests = 10

// Render writes the message for s: its subject and its plain text and HTML
// bodies. It is exported for golden tests; Notify is what sends it.
func Render(s notify.Summary) (subject, text, html string, err error) {
	v := newView(s)
	var b strings.Builder
	if err := htmlTemplate.Execute(&b, v); err != nil {
		return "", "", "", err
	}
	return "[nightshift] " + v.Headline, renderText(v), b.String(), nil
}

// view is what both bodies show, in the order they show it.
type view struct {
	Headline    string
	RunURL      string
	Reason      string // why the run could not start
	Facts       []fact
	Validates   bool // some image was validated: the table has a column for it
	Rows        []row
	Failures    []failure
	Undelivered string // "" when every earlier message got through
}

type fact struct{ Label, Value, URL string }

type row struct {
	Name, URL, Status, Duration, Detail string
	Validation                          string // "" when the image was not validated
	Color                               string // of the status, in HTML
}

type failure struct {
	Name, URL, Error string
	// Packages is how the image's packages changed since its last good
	// night: the first clue to a failure.
	Packages  string
	Tests     []notify.FailedTest
	MoreTests int // failing tests left out
	Tail      []string
	Omitted   int // lines of the tail left out
}

func newView(s notify.Summary) view {
	r := s.Run
	v := view{Headline: notify.OneLine(s.Headline()), RunURL: s.RunURL()}
	if s.Event == notify.EventNotStarted {
		v.Reason = s.Reason
	}

	if r.ID != 0 || r.Tag != "" {
		v.Facts = append(v.Facts, fact{"Run", strings.TrimSpace(fmt.Sprintf("#%d %s", r.ID, r.Tag)), v.RunURL})
	}
	if r.Commit != "" {
		c := strings.TrimSpace(notify.ShortCommit(r.Commit) + " " + notify.OneLine(r.Subject))
		if r.Dirty {
			c += " (with uncommitted changes)"
		}
		v.Facts = append(v.Facts, fact{Label: "Commit", Value: c})
	}
	if s.Repo != "" {
		v.Facts = append(v.Facts, fact{Label: "Repository", Value: s.Repo})
	}
	if !r.Started.IsZero() {
		started := r.Started.UTC().Format("2006-01-02 15:04:05 UTC")
		if r.Trigger != "" {
			started += " by " + r.Trigger
		}
		v.Facts = append(v.Facts, fact{Label: "Started", Value: started})
	}
	if p := s.Promotion; p != nil {
		return promotionView(s, p, v)
	}
	if r.Finished != nil && !r.Started.IsZero() {
		v.Facts = append(v.Facts, fact{Label: "Took", Value: notify.Duration(r.Finished.Sub(r.Started))})
	}
	if u := s.ConsoleURL(); u != "" {
		v.Facts = append(v.Facts, fact{Label: "Jenkins build", Value: u, URL: u})
	}
	if s.Previous != "" {
		label := "Previous run"
		if r.Kind == store.KindValidate {
			label = "Previous night" // a validation is compared with the night before its own
		}
		v.Facts = append(v.Facts, fact{Label: label, Value: string(s.Previous)})
	}
	if r.Error != "" && r.Error != s.Reason {
		v.Facts = append(v.Facts, fact{Label: "Error", Value: r.Error})
	}
	if u := notify.Unchanged(r); u != "" {
		v.Facts = append(v.Facts, fact{Label: "Unchanged", Value: u})
	}

	for _, im := range s.Images() {
		if im.Validation != nil {
			v.Validates = true
		}
	}
	for _, im := range s.Images() {
		rw := row{Name: im.Name, URL: s.ImageURL(im.Name), Status: string(im.Status), Duration: "-", Color: color(im.Status),
			Validation: notify.ValidationStatus(im.Validation)}
		if v.Validates && rw.Validation == "" {
			rw.Validation = "-"
		}
		if im.Status == "" {
			rw.Status = "not started"
		}
		if f := notify.FlakyBuild(im); f != "" {
			rw.Status += ", " + f
		}
		if r := s.Recurs(im.Name); r != "" {
			rw.Status += ", " + r
		}
		if im.Started != nil && im.Finished != nil {
			rw.Duration = notify.Duration(im.Finished.Sub(*im.Started))
		}
		if im.Status == store.Succeeded {
			rw.Detail = im.Ref
		} else {
			rw.Detail = notify.Shorten(notify.OneLine(im.Error), detailWidth)
		}
		v.Rows = append(v.Rows, rw)

		tests := notify.FailedTests(im.Validation)
		if im.Status == store.Failed || len(tests) > 0 {
			f := failure{Name: im.Name, URL: rw.URL, Error: im.Error, Packages: notify.PackageChanges(im, 10)}
			if f.Error == "" {
				f.Error = im.Validation.Error
			}
			if len(tests) > maxTests {
				f.MoreTests = len(tests) - maxTests
				tests = tests[:maxTests]
			}
			f.Tests = tests
			tail := im.Tail
			if len(tail) > tailLines {
				f.Omitted = len(tail) - tailLines
				tail = tail[len(tail)-tailLines:]
			}
			for _, l := range tail {
				f.Tail = append(f.Tail, notify.CleanLine(l))
			}
			v.Failures = append(v.Failures, f)
		}
	}

	switch {
	case s.Undelivered == 1:
		v.Undelivered = "1 earlier message could not be delivered."
	case s.Undelivered > 1:
		v.Undelivered = fmt.Sprintf("%d earlier messages could not be delivered.", s.Undelivered)
	}
	return v
}

// promotionView adds to v, which has the run's facts, who promoted its
// images and a row per image: where it went, or why it did not.
func promotionView(s notify.Summary, p *store.Promotion, v view) view {
	by := p.By
	if by == "" {
		by = "-"
	}
	v.Facts = append(v.Facts,
		fact{Label: "Promoted", Value: p.When.UTC().Format("2006-01-02 15:04:05 UTC") + " by " + by},
		fact{Label: "Tags", Value: strings.Join(p.Tags, ", ")})
	if p.Forced {
		v.Facts = append(v.Facts, fact{Label: "Forced", Value: "yes: images the night did not validate were promoted too"})
	}
	v.Validates = true
	for _, im := range p.Images {
		rw := row{Name: im.Name, URL: s.ImageURL(im.Name), Status: "promoted", Duration: "-", Color: color(store.Succeeded),
			Validation: "validated", Detail: im.Ref + "@" + store.ShortDigest(im.Digest)}
		if !im.Validated {
			rw.Validation = "not validated"
		}
		v.Rows = append(v.Rows, rw)
	}
	for _, im := range p.Refused {
		v.Rows = append(v.Rows, row{Name: im.Name, URL: s.ImageURL(im.Name), Status: "not promoted", Duration: "-",
			Color: color(store.Failed), Validation: "-", Detail: notify.Shorten(notify.OneLine(im.Reason), detailWidth)})
	}
	return v
}

func renderText(v view) string {
	var b strings.Builder
	b.WriteString(v.Headline + "\n\n")
	if v.Reason != "" {
		fmt.Fprintf(&b, "nightshift could not start a run: %s\n\n", v.Reason)
	}
	if len(v.Facts) > 0 {
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, f := range v.Facts {
			fmt.Fprintf(w, "%s:\t%s\n", f.Label, cell(f.Value))
			if f.URL != "" && f.URL != f.Value {
				fmt.Fprintf(w, "\t%s\n", f.URL)
			}
		}
		w.Flush()
		b.WriteString("\n")
	}
	if len(v.Rows) > 0 {
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		if v.Validates {
			fmt.Fprintln(w, "IMAGE\tSTATUS\tDURATION\tVALIDATION\tREF OR REASON")
		} else {
			fmt.Fprintln(w, "IMAGE\tSTATUS\tDURATION\tREF OR REASON")
		}
		for _, r := range v.Rows {
			if v.Validates {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", cell(r.Name), r.Status, r.Duration, r.Validation, cell(r.Detail))
			} else {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", cell(r.Name), r.Status, r.Duration, cell(r.Detail))
			}
		}
		w.Flush()
		b.WriteString("\n")
	}
	for _, f := range v.Failures {
		fmt.Fprintf(&b, "%s failed: %s\n", f.Name, f.Error)
		if f.URL != "" {
			b.WriteString(f.URL + "\n")
		}
		if f.Packages != "" {
			b.WriteString(f.Packages + "\n")
		}
		for _, t := range f.Tests {
			fmt.Fprintf(&b, "  FAIL %s: %s\n", t.Name, t.Why)
		}
		if f.MoreTests > 0 {
			fmt.Fprintf(&b, "  and %d more failing tests\n", f.MoreTests)
		}
		if f.Omitted > 0 {
			fmt.Fprintf(&b, "    [%d earlier lines]\n", f.Omitted)
		}
		for _, l := range f.Tail {
			b.WriteString("    " + l + "\n")
		}
		b.WriteString("\n")
	}
	if v.Undelivered != "" {
		b.WriteString(v.Undelivered + "\n\n")
	}
	b.WriteString("-- \nnightshift\n")
	return b.String()
}

// htmlTemplate lays the view out with inline styles only: mail clients
// drop <style> blocks. html/template escapes every value, and drops a URL
// that is not http(s).
var htmlTemplate = template.Must(template.New("summary").Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{{.Headline}}</title>
</head>
<body style="font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 14px; color: #1f2328; line-height: 1.4;">
<h2 style="font-size: 18px; margin: 0 0 12px 0;">{{if .RunURL}}<a href="{{.RunURL}}" style="color: #1f2328;">{{.Headline}}</a>{{else}}{{.Headline}}{{end}}</h2>
{{- if .Reason}}
<p>nightshift could not start a run: <strong>{{.Reason}}</strong></p>
{{- end}}
{{- if .Facts}}
<table style="border-collapse: collapse; margin-bottom: 16px;">
{{- range .Facts}}
<tr><th style="text-align: left; padding: 2px 12px 2px 0; vertical-align: top;">{{.Label}}</th><td style="padding: 2px 0;">{{if .URL}}<a href="{{.URL}}">{{.Value}}</a>{{else}}{{.Value}}{{end}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Rows}}
<table style="border-collapse: collapse; margin-bottom: 16px;">
<thead>
<tr style="border-bottom: 2px solid #d0d7de;"><th style="text-align: left; padding: 4px 12px 4px 0;">Image</th><th style="text-align: left; padding: 4px 12px 4px 0;">Status</th><th style="text-align: right; padding: 4px 12px 4px 0;">Duration</th>{{if .Validates}}<th style="text-align: left; padding: 4px 12px 4px 0;">Validation</th>{{end}}<th style="text-align: left; padding: 4px 0;">Ref or reason</th></tr>
</thead>
<tbody>
{{- range .Rows}}
<tr style="border-bottom: 1px solid #d0d7de;"><td style="padding: 4px 12px 4px 0;">{{if .URL}}<a href="{{.URL}}">{{.Name}}</a>{{else}}{{.Name}}{{end}}</td><td style="padding: 4px 12px 4px 0; color: {{.Color}}; font-weight: bold;">{{.Status}}</td><td style="text-align: right; padding: 4px 12px 4px 0;">{{.Duration}}</td>{{if $.Validates}}<td style="padding: 4px 12px 4px 0;">{{.Validation}}</td>{{end}}<td style="padding: 4px 0; font-family: monospace;">{{.Detail}}</td></tr>
{{- end}}
</tbody>
</table>
{{- end}}
{{- range .Failures}}
<h3 style="font-size: 15px; margin: 16px 0 4px 0;">{{if .URL}}<a href="{{.URL}}">{{.Name}}</a>{{else}}{{.Name}}{{end}} failed</h3>
<p style="margin: 0 0 4px 0; white-space: pre-wrap;">{{.Error}}</p>
{{- if .Packages}}
<p style="margin: 0 0 4px 0; color: #656d76;">{{.Packages}}</p>
{{- end}}
{{- if .Tests}}
<ul style="margin: 0 0 4px 0; padding-left: 20px;">
{{- range .Tests}}
<li><strong>{{.Name}}</strong>: <span style="font-family: monospace;">{{.Why}}</span></li>
{{- end}}
{{- if .MoreTests}}
<li>and {{.MoreTests}} more failing tests</li>
{{- end}}
</ul>
{{- end}}
{{- if .Tail}}
<pre style="background: #f6f8fa; padding: 8px; font-size: 12px; overflow-x: auto; white-space: pre-wrap;">
{{- if .Omitted}}[{{.Omitted}} earlier lines]
{{end}}
{{- range .Tail}}{{.}}
{{end}}</pre>
{{- end}}
{{- end}}
{{- if .Undelivered}}
<p style="color: #9a6700;">{{.Undelivered}}</p>
{{- end}}
<p style="color: #656d76; font-size: 12px;">nightshift</p>
</body>
</html>
`))

// color is a status's colour in the HTML table.
func color(s store.Status) string {
	switch s {
	case store.Succeeded:
		return "#1a7f37"
	case store.Failed:
		return "#cf222e"
	case store.Interrupted:
		return "#9a6700"
	}
	return "#656d76"
}

// cell keeps a tab out of a tabwriter cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "\t", " ")
}
