package config

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// TemplateData is what staging.tag_format and image build_args templates
// see. Tag and Name are set only when rendering build args.
type TemplateData struct {
	Start     time.Time // run start for utc; when zero, Timestamp is used
	Timestamp string    // run start in UTC as 2006-01-02-15-04-05
	Date      string    // run start in UTC as 2006-01-02
	Commit    string    // full commit hash
	Short     string    // first 8 characters of Commit
	Tag       string    // the rendered immutable tag (build args only)
	Name      string    // the image name (build args only)
}

// The layouts of TemplateData.Timestamp and TemplateData.Date.
const (
	timestampLayout = "2006-01-02-15-04-05"
	dateLayout      = "2006-01-02"
)

// NewTemplateData returns the fields of a run that started at start and
// builds commit; the caller adds Tag and Name for build args.
func NewTemplateData(start time.Time, commit string) TemplateData {
	utc := start.UTC()
	return TemplateData{
		Start:     start,
		Timestamp: utc.Format(timestampLayout),
		Date:      utc.Format(dateLayout),
		Commit:    commit,
		Short:     commit[:min(8, len(commit))],
	}
}

// TemplateFuncs returns the functions available to nightshift templates
// for a run that started at start. They are bound to the run rather than
// the clock so that every image of a run renders the same values.
//
//	utc LAYOUT  the run start in UTC, formatted with a Go time layout
func TemplateFuncs(start time.Time) template.FuncMap {
	return template.FuncMap{
		"utc": func(layout string) string { return start.UTC().Format(layout) },
	}
}

// dockerTag is the grammar of a Docker image tag.
var dockerTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// RenderTag renders the immutable tag of a run from format (see
// DefaultTagFormat) and checks that the result is a valid Docker tag.
func RenderTag(format string, start time.Time, commit string) (string, error) {
	tag, err := render("tag_format", format, NewTemplateData(start, commit))
	if err != nil {
		return "", err
	}
	if !dockerTag.MatchString(tag) {
		return "", fmt.Errorf(`renders %q, which is not a valid Docker tag: use at most 128 letters, digits, "_", "." and "-", not starting with "." or "-"`, tag)
	}
	return tag, nil
}

// CheckTag reports whether tag is a valid Docker tag.
func CheckTag(tag string) error {
	if !dockerTag.MatchString(tag) {
		return fmt.Errorf(`not a valid Docker tag: at most 128 letters, digits, "_", "." and "-", not starting with "." or "-"`)
	}
	return nil
}

// RenderArg renders one build arg template.
func RenderArg(tmpl string, d TemplateData) (string, error) {
	return render("build_arg", tmpl, d)
}

func render(name, text string, d TemplateData) (string, error) {
	return execute(name, text, TemplateFuncs(d.start()), d, "fields: .Timestamp .Date .Commit .Short .Tag .Name; function: utc")
}

// execute renders text with funcs and data; a failure names what the
// template may use (help).
func execute(name, text string, funcs template.FuncMap, data any, help string) (string, error) {
	t, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		return "", fmt.Errorf("not a valid template: %s", strings.TrimPrefix(err.Error(), "template: "))
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("cannot render: %s (%s)", strings.TrimPrefix(err.Error(), "template: "), help)
	}
	return b.String(), nil
}

// start returns the run start that utc formats. Callers that fill in only
// the strings still get the run's time rather than the zero time.
func (d TemplateData) start() time.Time {
	if d.Start.IsZero() {
		if t, err := time.Parse(timestampLayout, d.Timestamp); err == nil {
			return t
		}
	}
	return d.Start
}
