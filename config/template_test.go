package config

import (
	"strings"
	"testing"
	"time"
)

func TestRenderTag(t *testing.T) {
	t.Parallel()
	const commit = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	// The same instant seen from Berlin: tags are in UTC wherever they run.
	berlin := start.In(time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		format  string
		start   time.Time
		want    string
		wantErr string
	}{
		{name: "default", format: DefaultTagFormat, start: start, want: "2026-11-23-02-00-00-1a2b3c4d"},
		{name: "default from another zone", format: DefaultTagFormat, start: berlin, want: "2026-11-23-02-00-00-1a2b3c4d"},
		{name: "utc layout", format: `{{ utc "20060102-150405" }}-{{ .Short }}`, start: berlin, want: "20261123-020000-1a2b3c4d"},
		{name: "date and commit", format: "{{ .Date }}_{{ .Commit }}", start: start, want: "2026-11-23_" + commit},
		{name: "not a template", format: "{{ .Short", start: start, wantErr: "not a valid template: tag_format:1: unclosed action"},
		{name: "unknown field", format: "{{ .Branch }}", start: start, wantErr: "cannot render: "},
		{name: "not a tag", format: "{{ .Date }}:{{ .Short }}", start: start, wantErr: `renders "2026-11-23:1a2b3c4d", which is not a valid Docker tag`},
		{name: "empty", format: "{{ .Tag }}", start: start, wantErr: `renders "", which is not a valid Docker tag`},
		{name: "leading dot", format: ".{{ .Short }}", start: start, wantErr: "not a valid Docker tag"},
		{name: "too long", format: "{{ .Commit }}{{ .Commit }}{{ .Commit }}{{ .Commit }}", start: start, wantErr: "not a valid Docker tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RenderTag(tt.format, tt.start, commit)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("RenderTag(%q) error: %v", tt.format, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("RenderTag(%q) = %q, %v; want an error containing %q", tt.format, got, err, tt.wantErr)
			case got != tt.want:
				t.Errorf("RenderTag(%q) = %q, want %q", tt.format, got, tt.want)
			}
		})
	}
}

func TestRenderArg(t *testing.T) {
	t.Parallel()
	d := NewTemplateData(time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC), "1a2b3c4d5e6f")
	d.Tag, d.Name = "2026-11-23-02-00-00-1a2b3c4d", "ci_cpu"
	got, err := RenderArg(`r.example.com/ci/ci_base:{{ .Tag }} {{ .Name }} {{ utc "2006" }} {{ .Short }}`, d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "r.example.com/ci/ci_base:2026-11-23-02-00-00-1a2b3c4d ci_cpu 2026 1a2b3c4d"; got != want {
		t.Errorf("RenderArg = %q, want %q", got, want)
	}
	// Data filled in field by field, without Start, still formats the run.
	got, err = RenderArg(`{{ utc "15:04" }}`, TemplateData{Timestamp: "2026-11-23-02-00-00"})
	if err != nil || got != "02:00" {
		t.Errorf("RenderArg without Start = %q, %v; want %q", got, err, "02:00")
	}
	if _, err := RenderArg("{{ .Nope }}", d); err == nil {
		t.Error("RenderArg with an unknown field: no error")
	}
}

func TestNewTemplateDataShortCommit(t *testing.T) {
	t.Parallel()
	// A commit shorter than 8 characters must not panic.
	if d := NewTemplateData(time.Time{}, "abc"); d.Short != "abc" {
		t.Errorf("Short = %q, want %q", d.Short, "abc")
	}
}
