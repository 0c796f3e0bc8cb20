package config

import (
	"strings"
	"testing"
	"time"
)

const twoImages = okImage + "[[image]]\nname = \"ci_cpu\"\ndockerfile = \"Dockerfile\"\n" // 6 lines

// [promote] and [retention] are checked as every table is: each problem
// with its line and key, all at once.
func TestPromoteAndRetentionProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, toml string
		want       []string
	}{
		{
			name: "promote",
			toml: okStaging + twoImages + // 1-9
				"[promote]\nregistry = \"https://rel.example.org\"\nnamespace = \"Release/\"\nname = \"{{ .Nmae }}\"\ncolour = 1\n", // 10-14
			want: []string{
				`bad.toml:11: promote.registry: "https://rel.example.org" has a scheme: remove "https://" and write only the host[:port] that released images are pushed to`,
				`bad.toml:12: promote.namespace: "Release/" is not a valid repository path: use lowercase letters and digits, separated by ".", "_", "__" or "-", in components joined by "/"`,
				`bad.toml:13: promote.name: cannot render: name:1:3: executing "name" at <.Nmae>: can't evaluate field Nmae in type config.ReleaseData (fields: .Name .Tag .Commit .Short .Year .Quarter .Month .Day .Date; functions: utc, replace, lower)`,
				"bad.toml:14: promote.colour: unknown key (check the spelling; see config.example.toml)",
			},
		},
		{
			name: "two images, one repository",
			toml: okStaging + twoImages + "[promote]\nname = 'ci{{ replace .Name \"_base\" \"_cpu\" }}'\n",
			want: []string{`bad.toml:11: promote.name: renders "cici_cpu" for both ci_base and ci_cpu: each image needs a repository of its own`},
		},
		{
			name: "a repository path that is none",
			toml: okStaging + twoImages + "[promote]\nname = '{{ replace .Name \"_\" \"--\" }}/'\n",
			want: []string{`bad.toml:11: promote.name: renders "ci--base/" for image ci_base, which is not a repository path: use lowercase letters and digits, separated by ".", "_", "__" or "-", in components joined by "/"`},
		},
		{
			name: "retention",
			toml: okStaging + okImage + "[retention]\nkeep_last = 0\nkeep_days = -3\nkeep = 2\n",
			want: []string{
				"bad.toml:8: retention.keep_last: must be at least 1 (got 0): the nightly runs of how many runs to keep; leave it out to not prune by it",
				"bad.toml:9: retention.keep_days: must be at least 1 (got -3): the nightly runs of how many days to keep; leave it out to not prune by it",
				"bad.toml:10: retention.keep: unknown key (check the spelling; see config.example.toml)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, sampleTree...)
			_, err := Parse([]byte(tt.toml), "bad.toml", dir)
			got := problemStrings(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// Without [promote], images are promoted in place; without [retention],
// nothing is pruned.
func TestPromoteAndRetentionDefaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	cfg, err := Parse([]byte(okStaging+okImage), "ok.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Promote; p.Registry != "localhost:5000" || p.Namespace != "ci" || p.Name != DefaultPromoteName {
		t.Errorf("Promote = %+v, want the staging registry and namespace, the image's name", p)
	}
	if cfg.Retention.Enabled {
		t.Errorf("Retention = %+v, want it off", cfg.Retention)
	}
	cfg, err = Parse([]byte(okStaging+okImage+"[promote]\nregistry = \"rel.example.org\"\n[retention]\nkeep_days = 7\n"), "ok.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Promote; p.Registry != "rel.example.org" || p.Namespace != "ci" {
		t.Errorf("Promote = %+v, want rel.example.org with the staging namespace", p)
	}
	if r := cfg.Retention; !r.Enabled || r.KeepDays != 7 || r.KeepLast != 0 {
		t.Errorf("Retention = %+v, want 7 days and no count", r)
	}
}

func TestRenderRelease(t *testing.T) {
	t.Parallel()
	when := time.Date(2026, 4, 2, 23, 30, 0, 0, time.FixedZone("", -3*3600)) // April 3rd, UTC
	d := NewReleaseData(when, "ci_cpu", "2026-04-01-02-00-00-1a2b3c4d", "1a2b3c4d5e6f")
	for tmpl, want := range map[string]string{
		"stable":                                   "stable",
		"{{ .Year }}.{{ .Quarter }}-stable":        "2026.2-stable",
		"{{ .Date }}":                              "2026-04-03",
		`{{ utc "2006.01" }}-{{ .Short }}`:         "2026.04-1a2b3c4d",
		"{{ .Tag }}-rc":                            "2026-04-01-02-00-00-1a2b3c4d-rc",
		`{{ replace .Name "_" "-" }}-{{ .Month }}`: "ci-cpu-4",
	} {
		got, err := RenderReleaseTag(tmpl, d)
		if err != nil || got != want {
			t.Errorf("RenderReleaseTag(%q) = %q, %v; want %q", tmpl, got, err, want)
		}
	}
	for _, bad := range []string{"{{ .Name }}:x", "-stable", "{{ .Year"} {
		if got, err := RenderReleaseTag(bad, d); err == nil {
			t.Errorf("RenderReleaseTag(%q) = %q, want an error", bad, got)
		}
	}
	if got, err := RenderPromoteName(`ci-{{ replace .Name "_" "-" }}`, "ci_cpu"); err != nil || got != "ci-ci-cpu" {
		t.Errorf("RenderPromoteName = %q, %v", got, err)
	}
}
