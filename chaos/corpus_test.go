package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Every broken configuration of the corpus says what its error must name:
// a file without "# want:" would prove nothing in make chaos.
func TestCorpusSaysWhatItWants(t *testing.T) {
	t.Parallel()
	configs, err := filepath.Glob(filepath.Join("testdata", "configs", "*.toml"))
	if err != nil || len(configs) < 20 {
		t.Fatalf("%d configs in the corpus (%v), want at least 20", len(configs), err)
	}
	for _, c := range configs {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(wantLine.FindAllSubmatch(b, -1)) == 0 {
			t.Errorf("%s has no \"# want: file:line: key\" line", c)
		}
	}
}

func TestRunLinks(t *testing.T) {
	t.Parallel()
	got := runLinks([]string{
		`{"embeds":[{"url":"http://chaos.test/runs/3","fields":[{"value":"[log](http://chaos.test/runs/3/images/base/logs)"}]}]}`,
		`{"embeds":[{"url":"http://chaos.test/runs/3"}]}`,
		`{"embeds":[{"url":"http://chaos.test/runs/12"}]}`,
	})
	if got[3] != 2 || got[12] != 1 || len(got) != 2 {
		t.Errorf("runLinks = %v, want run 3 twice and run 12 once", got)
	}
}
