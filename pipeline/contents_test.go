package pipeline

import (
	"slices"
	"strings"
	"testing"

	"nightshift/config"
	"nightshift/source"
	"nightshift/store"
)

// After its push each image's packages are read and stored with the run;
// the next night records how they changed since. In a [packages]
// consistent group, a package at two versions fails the validation of the
// images involved, and only theirs: the others of the group are validated
// once the check is through.
func TestPackagesDiffAndConsistentGroup(t *testing.T) {
	t.Parallel()
	reg := newStubRegistry()
	eng := &stubEngine{reg: reg, lists: map[string]string{
		"base": "bash 5.1\n",
		"cpu":  "bash 5.1\nnumpy 1.25\n",
		"lint": "bash 5.1\nnumpy 1.25\n",
	}}
	p, db := newTestPipeline(t, eng, reg)
	p.cfg.Packages = config.Packages{Timeout: config.Duration{Duration: 1e9},
		Commands:   []config.PackageCommand{{Name: "pip", Command: "pip freeze", Format: config.FormatLines}},
		Consistent: [][]string{{"cpu", "lint"}}}
	p.tester = func(*Prepared) tester { return fixedTests{} }
	night := func() *store.Run {
		t.Helper()
		prep := &Prepared{Source: source.Checkout{Commit: "abc123"}, Plan: testPlan()}
		got, err := runPrepared(t.Context(), p, prep, Request{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	first := night()
	if first.Status != store.Succeeded {
		t.Fatalf("first night %s: %+v", first.Status, first.Images)
	}
	c, err := db.Contents(first.ID, "cpu")
	if err != nil || len(c.Lists) != 1 || !slices.Equal(c.Lists[0].Packages, []store.Package{{Name: "bash", Version: "5.1"}, {Name: "numpy", Version: "1.25"}}) || len(c.Layers) != 1 {
		t.Fatalf("cpu's contents = %+v, %v", c, err)
	}
	for _, name := range []string{"cpu", "lint"} {
		if im := first.Image(name); im.Packages != nil || !slices.Contains(im.Tags, "t-validated") {
			t.Errorf("%s on the first night: packages %+v (nothing to compare with), tags %q (want validated)", name, im.Packages, im.Tags)
		}
	}

	eng.lists["cpu"] = "bash 5.2\nnumpy 1.26\nrequests 2.31\n"
	second := night()
	cpu, lint, base := second.Image("cpu"), second.Image("lint"), second.Image("base")
	if d := cpu.Packages; d == nil || d.SinceRun != first.ID || d.Added != 1 || d.Changed != 2 || d.Removed != 0 {
		t.Errorf("cpu's packages on the second night = %+v, want since run %d: 1 added, 2 changed", d, first.ID)
	}
	if base.Packages == nil || !base.Packages.Empty() || base.Status != store.Succeeded {
		t.Errorf("base = %s, packages %+v; want succeeded, no change", base.Status, base.Packages)
	}
	for _, im := range []*store.ImageResult{cpu, lint} {
		if im.Status != store.Failed || im.Validation == nil || im.Validation.Status != store.Failed ||
			!strings.Contains(im.Error, "pip numpy: 1.25 in lint; 1.26 in cpu") || slices.Contains(im.Tags, "t-validated") {
			t.Errorf("%s = %s (%q), validation %+v, tags %q; want failed by the pip numpy mismatch, not validated", im.Name, im.Status, im.Error, im.Validation, im.Tags)
		}
	}
	if !slices.Contains(base.Tags, "t-validated") {
		t.Errorf("base, in no group, tags %q: want validated", base.Tags)
	}
}
