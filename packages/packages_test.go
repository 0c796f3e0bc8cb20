package packages

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/store"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		format, out string
		want        []store.Package
		wantErr     bool
	}{
		{config.FormatDpkg, "bash\t5.2.15-2+b2\nlibc6:amd64\t2.36-9\nghost\t\n",
			[]store.Package{pkg("bash", "5.2.15-2+b2"), pkg("libc6:amd64", "2.36-9")}, false},
		{config.FormatDpkg, "no tab here\n", nil, true},
		{config.FormatPip, "# comment\nNumPy==1.26.0\nPyYAML==6.0.1\nmypkg @ file:///src/mypkg\n-e git+https://x/y.git#egg=y\n",
			[]store.Package{pkg("git+https://x/y.git#egg=y", "editable"), pkg("mypkg", "file:///src/mypkg"), pkg("numpy", "1.26.0"), pkg("pyyaml", "6.0.1")}, false},
		{config.FormatConda, "# This file may be used to create an environment using:\n# platform: linux-64\n_libgcc_mutex=0.1=main\nnumpy=1.26.0=py311h08b1b3b_0\n",
			[]store.Package{pkg("_libgcc_mutex", "0.1"), pkg("numpy", "1.26.0")}, false},
		{config.FormatConda, "=1.0\n", nil, true},
		{config.FormatLines, "llvm 17.0.6\nonly-a-name\n\n", []store.Package{pkg("llvm", "17.0.6"), pkg("only-a-name", "")}, false},
	}
	for _, tc := range cases {
		got, err := Parse(tc.format, []byte(tc.out))
		if (err != nil) != tc.wantErr {
			t.Errorf("Parse(%s, %q) error = %v, want error %v", tc.format, tc.out, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%s, %q) = %v, want %v", tc.format, tc.out, got, tc.want)
		}
	}
}

func list(source string, pkgs ...string) store.PackageList {
	l := store.PackageList{Source: source, Format: config.FormatLines}
	for _, p := range pkgs {
		name, version, _ := strings.Cut(p, " ")
		l.Packages = append(l.Packages, store.Package{Name: name, Version: version})
	}
	return l
}

func TestDiff(t *testing.T) {
	t.Parallel()
	old := []store.PackageList{
		list("dpkg", "bash 5.1", "curl 7.88", "libfoo 1.0"),
		list("pip", "numpy 1.25.2"),
		{Source: "conda", Error: "exited 1"},
	}
	now := []store.PackageList{
		list("dpkg", "bash 5.2", "curl 7.88", "wget 1.21"),
		list("pip", "numpy 1.25.2"),
		list("conda", "python 3.11"), // was not read before: no change
		list("npm", "left-pad 1.3"),  // a new command: no change
	}
	d := Diff("ci_cpu", 41, old, now)
	want := ImageDiff{Image: "ci_cpu", SinceRun: 41,
		Added:   []Entry{{Name: "wget", Version: "1.21", Source: "dpkg"}},
		Removed: []Entry{{Name: "libfoo", Version: "1.0", Source: "dpkg"}},
		Changed: []Change{{Name: "bash", From: "5.1", To: "5.2", Source: "dpkg"}},
	}
	if got, _ := json.Marshal(d); string(got) != mustJSON(t, want) {
		t.Errorf("Diff = %s\nwant %s", got, mustJSON(t, want))
	}
	b := d.Brief()
	if b.SinceRun != 41 || b.Added != 1 || b.Removed != 1 || b.Changed != 1 || len(b.First) != 3 || b.First[0].String() != "dpkg bash 5.1 -> 5.2" {
		t.Errorf("Brief = %+v", b)
	}
	if b.Counts() != "1 added, 1 removed, 1 changed" {
		t.Errorf("Counts = %q", b.Counts())
	}
}

// The JSON of a diff is the documented shape, with empty lists as [].
func TestDiffJSONShape(t *testing.T) {
	t.Parallel()
	got := mustJSON(t, Diff("ci_lint", 0, nil, nil))
	if want := `{"image":"ci_lint","since_run":0,"added":[],"removed":[],"changed":[]}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func TestConsistency(t *testing.T) {
	t.Parallel()
	contents := []store.Contents{
		{Image: "ci_cpu", Lists: []store.PackageList{list("pip", "numpy 1.26.0", "torch 2.1"), list("dpkg", "bash 5.2")}},
		{Image: "ci_gpu", Lists: []store.PackageList{list("pip", "numpy 1.25.2", "torch 2.1"), list("dpkg", "bash 5.2", "cuda 12")}},
		{Image: "ci_lint", Lists: []store.PackageList{list("pip", "numpy 1.26.0"), {Source: "dpkg", Error: "timed out"}}},
	}
	ms := Consistency(contents)
	want := `[{"name":"numpy","source":"pip","versions":{"1.25.2":["ci_gpu"],"1.26.0":["ci_cpu","ci_lint"]}}]`
	if got := mustJSON(t, ms); got != want {
		t.Errorf("Consistency = %s\nwant %s", got, want)
	}
	if got := ms[0].String(); got != "pip numpy: 1.25.2 in ci_gpu; 1.26.0 in ci_cpu, ci_lint" {
		t.Errorf("String = %q", got)
	}
	if got := Consistency(Within(contents, []string{"ci_cpu", "ci_lint"})); len(got) != 0 {
		t.Errorf("within ci_cpu and ci_lint: %v, want none", got)
	}
}

func TestWriteManifest(t *testing.T) {
	t.Parallel()
	c := &store.Contents{Image: "ci_cpu", Ref: "r/ci/ci_cpu:t", Digest: "sha256:abc", Read: time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC),
		Layers: []store.Layer{
			{CreatedBy: "/bin/sh -c #(nop) COPY file:1a2b in /bin/busybox ", Digest: "sha256:l1", Size: 1 << 20},
			{CreatedBy: "/bin/sh -c #(nop)  ENV A=b|c"},
			{CreatedBy: "/bin/sh -c echo `date` > /x", Digest: "sha256:l2", Size: 512},
			{CreatedBy: "RUN /bin/sh -c make -j4 # buildkit", Digest: "sha256:l3", Size: 2048},
			{CreatedBy: "COPY . /src # buildkit", Digest: "sha256:l4", Size: 4096},
		},
		Lists: []store.PackageList{
			{Source: "dpkg", Command: "dpkg-query -W", Absent: true},
			list("pip", "numpy 1.26.0"),
			{Source: "conda", Command: "conda list --export", Error: "exited 2: broken"},
		},
	}
	c.Lists[1].Command = "pip list --format=freeze"
	var b bytes.Buffer
	if err := WriteManifest(&b, 7, c); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# ci_cpu\n", "- Ref: `r/ci/ci_cpu:t`", "- Digest: `sha256:abc`", "- Run: 7, read 2026-12-04 02:00:00 UTC",
		"4 layers, 1.055MB compressed.",
		"| 1 | 1.049MB | ` COPY file:1a2b in /bin/busybox ` |",
		"|  | - | ` ENV A=b\\|c ` |",
		"| 2 | 512B | `` RUN echo `date` > /x `` |",
		"| 3 | 2.048kB | ` RUN make -j4 ` |",
		"| 4 | 4.096kB | ` COPY . /src ` |",
		"## dpkg\n\n`dpkg-query -W`: not in this image.",
		"## pip\n\n`pip list --format=freeze`: 1 packages.\n\n| Package | Version |\n|---|---|\n| numpy | 1.26.0 |",
		"## conda\n\n`conda list --export`: failed: exited 2: broken",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("manifest lacks %q:\n%s", want, b.String())
		}
	}
}

// Baseline and DiffRun compare an image with the last nightly run in which
// it succeeded and had contents, and a validation run with its night.
func TestDiffRunBaseline(t *testing.T) {
	t.Parallel()
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	night := func(status store.Status, pkgs ...string) uint64 {
		t.Helper()
		end := start.Add(time.Minute)
		r := &store.Run{Tag: "t", Status: status, Started: start, Finished: &end,
			Images: []store.ImageResult{{Name: "ci_cpu", Status: status}}}
		if err := db.CreateRun(r); err != nil {
			t.Fatal(err)
		}
		if err := db.PutContents(r.ID, &store.Contents{Image: "ci_cpu", Lists: []store.PackageList{list("pip", pkgs...)}}); err != nil {
			t.Fatal(err)
		}
		start = start.AddDate(0, 0, 1)
		return r.ID
	}
	good := night(store.Succeeded, "numpy 1.25")
	night(store.Failed, "numpy 1.24") // failed: no baseline
	last := night(store.Succeeded, "numpy 1.26")
	diffs, err := DiffRun(db, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || diffs[0].SinceRun != good || len(diffs[0].Changed) != 1 || diffs[0].Changed[0].From != "1.25" {
		t.Errorf("DiffRun = %+v, want numpy 1.25 -> 1.26 since run %d", diffs, good)
	}
	v := &store.Run{Kind: store.KindValidate, Night: last, Tag: "t", Status: store.Succeeded, Started: start}
	if err := db.CreateRun(v); err != nil {
		t.Fatal(err)
	}
	if again, err := DiffRun(db, v.ID); err != nil || mustJSON(t, again) != mustJSON(t, diffs) {
		t.Errorf("DiffRun of the validation = %+v, %v; want its night's %+v", again, err, diffs)
	}
	first, err := DiffRun(db, good)
	if err != nil || len(first) != 1 || first[0].SinceRun != 0 || !first[0].Empty() {
		t.Errorf("DiffRun of the first night = %+v, %v; want nothing to compare with", first, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func pkg(name, version string) store.Package { return store.Package{Name: name, Version: version} }
