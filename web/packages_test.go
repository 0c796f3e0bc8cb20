package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	units "github.com/docker/go-units"
	"github.com/prometheus/client_golang/prometheus"

	"nightshift/packages"
	"nightshift/store"
)

const evil = "<script>alert(1)</script>"

// packagesFixture is a store of two nights whose images' packages were
// read, as the pipeline stores them, and a validation run of the second:
//
//   - run 1: ci_base, ci_cpu, ci_gpu, each read.
//   - run 2: ci_cpu's libc6 and numpy changed, a package named like a
//     script came, oldpkg went; ci_gpu kept numpy 1.25.2 (a mismatch with
//     ci_cpu, inside the consistent group ci_cpu, ci_gpu); ci_base was
//     pushed but not read; ci_new is new (nothing to compare with).
//   - run 3: a validation of run 2.
func packagesFixture(t *testing.T) *fixture {
	t.Helper()
	db := openStore(t)
	pip := func(pkgs ...string) store.PackageList {
		l := store.PackageList{Source: "pip", Command: "pip list --format=freeze", Format: "pip"}
		for i := 0; i < len(pkgs); i += 2 {
			l.Packages = append(l.Packages, store.Package{Name: pkgs[i], Version: pkgs[i+1]})
		}
		return l
	}
	dpkg := func(pkgs ...string) store.PackageList {
		l := pip(pkgs...)
		l.Source, l.Command, l.Format = "dpkg", "dpkg-query -W", "dpkg"
		return l
	}
	conda := store.PackageList{Source: "conda", Command: "conda list --export", Format: "conda", Absent: true}
	layers := []store.Layer{
		{CreatedBy: "/bin/sh -c #(nop) ADD file:4b03b5 in / ", Digest: "sha256:" + strings.Repeat("1", 64), Size: 31_457_280},
		{CreatedBy: "/bin/sh -c #(nop)  ENV PATH=/opt/conda/bin:/usr/bin"},
		{CreatedBy: "/bin/sh -c apt-get install -y curl", Digest: "sha256:" + strings.Repeat("2", 64), Size: 1536},
	}
	nights := []struct {
		images   []string
		contents map[string][]store.PackageList
	}{
		{[]string{"ci_base", "ci_cpu", "ci_gpu"}, map[string][]store.PackageList{
			"ci_base": {dpkg("libc6", "2.36-9")},
			"ci_cpu":  {dpkg("curl", "7.88.1", "libc6", "2.36-9"), pip("numpy", "1.25.2", "oldpkg", "0.1"), conda},
			"ci_gpu":  {pip("numpy", "1.25.2")},
		}},
		{[]string{"ci_base", "ci_cpu", "ci_gpu", "ci_new"}, map[string][]store.PackageList{
			"ci_cpu": {dpkg("curl", "7.88.1", "libc6", "2.36-9+deb12u1"), pip(evil, "1.0", "numpy", "1.26.0"), conda},
			"ci_gpu": {pip("numpy", "1.25.2")},
			"ci_new": {pip("numpy", "1.26.0")},
		}},
	}
	var runs []store.Run
	for i, n := range nights {
		start := fillStart.Add(time.Duration(i) * 24 * time.Hour)
		end := start.Add(time.Hour)
		r := store.Run{Tag: fmt.Sprintf("night-%d", i+1), Commit: strings.Repeat("c", 40), Status: store.Succeeded,
			Trigger: "cron", Started: start, Finished: &end}
		for _, name := range n.images {
			r.Images = append(r.Images, store.ImageResult{Name: name, Status: store.Succeeded, Started: &start, Finished: &end,
				Ref: "registry.example.org/ci-staging/" + name + ":" + r.Tag, Digest: "sha256:" + strings.Repeat(fmt.Sprint(i+3), 64)})
		}
		if err := db.CreateRun(&r); err != nil {
			t.Fatal(err)
		}
		// As the pipeline's packages stage: store the contents, then
		// record their diff in brief.
		for _, name := range slices.Sorted(maps.Keys(n.contents)) {
			im := r.Image(name)
			c := &store.Contents{Image: name, Ref: im.Ref, Digest: im.Digest, Read: end, Layers: layers, Lists: n.contents[name]}
			if err := db.PutContents(r.ID, c); err != nil {
				t.Fatal(err)
			}
			d, err := packages.DiffContents(db, r.ID, c)
			if err != nil {
				t.Fatal(err)
			}
			if d.SinceRun != 0 {
				if err := db.UpdateRun(r.ID, func(r *store.Run) error { r.Image(name).Packages = d.Brief(); return nil }); err != nil {
					t.Fatal(err)
				}
			}
		}
		runs = append(runs, r)
	}
	start := fillStart.Add(2 * 24 * time.Hour)
	v := store.Run{Kind: store.KindValidate, Night: runs[1].ID, Tag: runs[1].Tag, Status: store.Succeeded, Started: start,
		Images: []store.ImageResult{{Name: "ci_cpu", Status: store.Succeeded}, {Name: "ci_gpu", Status: store.Succeeded}}}
	if err := db.CreateRun(&v); err != nil {
		t.Fatal(err)
	}
	runs = append(runs, v)
	s, err := newServer(Config{DB: db, Registry: prometheus.NewRegistry(), Consistent: [][]string{{"ci_cpu", "ci_gpu"}, {"ci_base", "ci_new"}}})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, s: s, h: s.handler(), runs: runs}
}

func TestPackagesOnRunPage(t *testing.T) {
	t.Parallel()
	f := packagesFixture(t)
	rec := f.do("GET", "/runs/2", "", "")
	if rec.Code != 200 {
		t.Fatalf("GET /runs/2 = %d: %s", rec.Code, rec.Body)
	}
	html(`<h2 id="packages">Packages</h2>`,
		`<h3 id="diff-ci_cpu"><a href="/runs/2/images/ci_cpu">ci_cpu</a></h3>`,
		`<details class="diff" open>`,
		`Since <a href="/runs/1">run 1</a>: 1 added, 1 removed, 2 changed`,
		`<th scope="row"><code class="wrap">libc6</code></th><td>dpkg</td><td><code class="wrap">2.36-9</code> → <code class="wrap">2.36-9&#43;deb12u1</code></td>`,
		`<th scope="row"><code class="wrap">numpy</code></th><td>pip</td><td><code class="wrap">1.25.2</code> → <code class="wrap">1.26.0</code></td>`,
		`<span aria-hidden="true">&#43;</span> added</td><th scope="row"><code class="wrap">&lt;script&gt;alert(1)&lt;/script&gt;</code></th><td>pip</td><td><code class="wrap">1.0</code>`,
		`<span aria-hidden="true">−</span> removed</td><th scope="row"><code class="wrap">oldpkg</code></th><td>pip</td><td><code class="wrap">0.1</code>`,
		`No package changed since <a href="/runs/1">run 1</a>.`, // ci_gpu
		`No earlier run in which ci_new succeeded had its packages read: nothing to compare with.`,
		`<h2 id="consistency">Package consistency</h2>`,
		"1 package has different versions in different images, within one source; 1 of them inside a <code>[packages] consistent</code> group",
		`<tr class="pkg-broken"><th scope="row"><code class="wrap">numpy</code></th><td>pip</td><td><code class="wrap">1.25.2</code>: <a href="/runs/2/images/ci_gpu">ci_gpu</a><br><code class="wrap">1.26.0</code>: <a href="/runs/2/images/ci_cpu">ci_cpu</a>, <a href="/runs/2/images/ci_new">ci_new</a></td><td><span aria-hidden="true">✗</span> inside ci_cpu, ci_gpu</td></tr>`,
	)(t, f, rec)
	body := rec.Body.String()
	if strings.Contains(body, evil) {
		t.Error("the run page has a package name unescaped")
	}
	if strings.Contains(body, `id="diff-ci_base"`) {
		t.Error("the run page shows a diff of ci_base, whose packages run 2 did not read")
	}
	// ci_base and ci_new are a group too, but ci_base has no numpy: no
	// mismatch inside it.
	if strings.Contains(body, "inside ci_base, ci_new") {
		t.Error("a mismatch is marked inside a group whose images agree")
	}

	// A finished run's page has an ETag until the store changes.
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("the page of a finished run has no ETag")
	}
	req := httptest.NewRequest("GET", "/runs/2", nil)
	req.Header.Set("If-None-Match", etag)
	again := httptest.NewRecorder()
	f.h.ServeHTTP(again, req)
	if again.Code != http.StatusNotModified {
		t.Errorf("GET /runs/2 with its ETag = %d, want 304", again.Code)
	}

	// Run 1: nothing to compare with, and its images agree.
	html(`No earlier run in which ci_cpu succeeded had its packages read`,
		"Every package has one version in all the images that have it, within each source.")(t, f, f.do("GET", "/runs/1", "", ""))

	// The validation run shows what its night read, linked to its images.
	html(`as read when <a href="/runs/2">run 2</a> pushed the images.`,
		`Since <a href="/runs/1">run 1</a>: 1 added, 1 removed, 2 changed`,
		`<a href="/runs/3/images/ci_gpu">ci_gpu</a>`,
		// ci_new was not validated: its page is in run 2.
		`<h3 id="diff-ci_new"><a href="/runs/2/images/ci_new">ci_new</a></h3>`, `<a href="/runs/2/images/ci_new">ci_new</a></td>`)(t, f, f.do("GET", "/runs/3", "", ""))
}

// A long diff is folded; the run page lists the first changes its record
// keeps, and points to the image's page in the run for every change. A run
// without contents has no package sections.
func TestLongDiffFolds(t *testing.T) {
	t.Parallel()
	f := packagesFixture(t)
	addLongDiff(t, f)
	rec := f.do("GET", "/runs/2", "", "")
	html(`<details class="diff">`, "Since <a href=\"/runs/1\">run 1</a>: 105 added, 0 removed, 0 changed", "pkg009",
		`And 95 more: <a href="/runs/2/images/ci_gpu#packages">every change of ci_gpu in this run</a>.`)(t, f, rec)
	if strings.Contains(rec.Body.String(), "pkg010") {
		t.Errorf("the run page lists more changes of an image than its record keeps")
	}
	rec = f.do("GET", "/runs/2/images/ci_gpu", "", "")
	html(`<details class="diff">`, "pkg104")(t, f, rec)
	if strings.Contains(rec.Body.String(), "more: <a") {
		t.Errorf("the image's page in the run does not list every change")
	}

	g := newFixture(t)
	if strings.Contains(g.do("GET", "/runs/3", "", "").Body.String(), "Package") {
		t.Error("a run whose packages were not read has package sections")
	}
}

// addLongDiff gives ci_gpu 105 packages more in run 2, and records its
// diff as the pipeline does.
func addLongDiff(t *testing.T, f *fixture) {
	t.Helper()
	c, err := f.db.Contents(2, "ci_gpu")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 105 {
		c.Lists[0].Packages = append(c.Lists[0].Packages, store.Package{Name: fmt.Sprintf("pkg%03d", i), Version: "1"})
	}
	if err := f.db.PutContents(2, c); err != nil {
		t.Fatal(err)
	}
	d, err := packages.DiffContents(f.db, 2, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.UpdateRun(2, func(r *store.Run) error { r.Image("ci_gpu").Packages = d.Brief(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestContentsOnImagePages(t *testing.T) {
	t.Parallel()
	f := packagesFixture(t)
	contents := func(run string) []string {
		return []string{
			`<h2 id="packages">Packages and layers</h2>`,
			`in <a href="/runs/2">run 2</a> · <a href="/runs/` + run + `/images/ci_cpu/manifest.md" type="text/markdown">Markdown manifest</a>`,
			`Since <a href="/runs/1">run 1</a>: 1 added, 1 removed, 2 changed`,
			`<code class="wrap">&lt;script&gt;alert(1)&lt;/script&gt;</code>`,
			`<tr><th scope="row">dpkg</th><td><code class="wrap">dpkg-query -W</code></td><td>2</td></tr>`,
			`<tr><th scope="row">pip</th><td><code class="wrap">pip list --format=freeze</code></td><td>2</td></tr>`,
			`<tr><th scope="row">conda</th><td><code class="wrap">conda list --export</code></td><td>not in this image</td></tr>`,
			"2 layers, " + units.HumanSize(31_457_280+1536) + " compressed.",
			`<tr><td class="num">1</td><td class="num">` + units.HumanSize(31_457_280) + `</td><td><code class="wrap">ADD file:4b03b5 in /</code></td></tr>`,
			`<tr><td class="num"></td><td class="num">–</td><td><code class="wrap">ENV PATH=/opt/conda/bin:/usr/bin</code></td></tr>`,
			`<tr><td class="num">2</td><td class="num">` + units.HumanSize(1536) + `</td><td><code class="wrap">RUN apt-get install -y curl</code></td></tr>`,
		}
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/runs/2/images/ci_cpu", contents("2")},
		{"/runs/3/images/ci_cpu", contents("3")}, // a validation run: its night's
		{"/images/ci_cpu", append(contents("2"), `Of the newest night whose packages were read: <a href="/runs/2/images/ci_cpu">ci_cpu in run 2</a>.`)},
		// ci_base was not read in run 2: its page shows run 1's.
		{"/images/ci_base", []string{`<a href="/runs/1/images/ci_base">ci_base in run 1</a>`, `href="/runs/1/images/ci_base/manifest.md"`,
			"No earlier run in which ci_base succeeded had its packages read"}},
		{"/runs/2/images/ci_base", []string{"None were read for ci_base in this run: they are read once an image is pushed."}},
	} {
		rec := f.do("GET", tt.path, "", "")
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d: %s", tt.path, rec.Code, rec.Body)
		}
		t.Run(tt.path, func(t *testing.T) { html(tt.want...)(t, f, rec) })
		if strings.Contains(rec.Body.String(), evil) {
			t.Errorf("%s has a package name unescaped", tt.path)
		}
	}
	if strings.Contains(f.do("GET", "/runs/1/images/ci_cpu", "", "").Body.String(), "Since <a") {
		t.Error("run 1's ci_cpu shows a diff with nothing before it")
	}
}

func TestManifestRoute(t *testing.T) {
	t.Parallel()
	f := packagesFixture(t)
	c, err := f.db.Contents(2, "ci_cpu")
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := packages.WriteManifest(&want, 2, c); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/runs/2/images/ci_cpu/manifest.md", "/runs/3/images/ci_cpu/manifest.md"} {
		rec := f.do("GET", path, "", "")
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d: %s", path, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/markdown; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		if rec.Body.String() != want.String() {
			t.Errorf("%s:\n%s\nwant nightshift manifest's:\n%s", path, rec.Body, want.String())
		}
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
		again := httptest.NewRecorder()
		f.h.ServeHTTP(again, req)
		if again.Code != http.StatusNotModified {
			t.Errorf("%s with its ETag = %d, want 304", path, again.Code)
		}
	}
	for _, tt := range []struct{ path, want string }{
		{"/runs/2/images/ci_base/manifest.md", "No packages or layers of ci_base were read in run 2"},
		{"/runs/3/images/ci_base/manifest.md", "nothing at this address"}, // not in the validation run
		{"/runs/2/images/ci_nope/manifest.md", "nothing at this address"},
		{"/runs/99/images/ci_cpu/manifest.md", "nothing at this address"},
	} {
		rec := f.do("GET", tt.path, "", "")
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("GET %s = %d, want 404 saying %q: %s", tt.path, rec.Code, tt.want, rec.Body)
		}
	}
	if rec := f.do("POST", "/runs/2/images/ci_cpu/manifest.md", "", ""); rec.Code != 405 {
		t.Errorf("POST a manifest = %d, want 405", rec.Code)
	}
}

func TestPackagesAPI(t *testing.T) {
	t.Parallel()
	f := packagesFixture(t)
	keys := func(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }
	same := func(t *testing.T, what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s has keys %v, want %v", what, got, want)
		}
	}

	rec := f.do("GET", "/api/v1/runs/2/diff", "", "")
	if rec.Code != 200 {
		t.Fatalf("diff = %d: %s", rec.Code, rec.Body)
	}
	var diffs []map[string]json.RawMessage
	decode(t, rec, &diffs)
	if len(diffs) != 3 {
		t.Fatalf("%d diffs, want ci_cpu, ci_gpu, ci_new: %s", len(diffs), rec.Body)
	}
	for _, d := range diffs {
		same(t, "a diff", keys(d), "added", "changed", "image", "removed", "since_run")
	}
	var cpu struct {
		Image    string                       `json:"image"`
		SinceRun uint64                       `json:"since_run"`
		Added    []map[string]json.RawMessage `json:"added"`
		Removed  []map[string]json.RawMessage `json:"removed"`
		Changed  []map[string]json.RawMessage `json:"changed"`
	}
	if err := json.Unmarshal(must(json.Marshal(diffs[0])), &cpu); err != nil {
		t.Fatal(err)
	}
	if cpu.Image != "ci_cpu" || cpu.SinceRun != 1 || len(cpu.Added) != 1 || len(cpu.Removed) != 1 || len(cpu.Changed) != 2 {
		t.Fatalf("ci_cpu's diff = %+v", cpu)
	}
	same(t, "an added package", keys(cpu.Added[0]), "name", "source", "version")
	same(t, "a removed package", keys(cpu.Removed[0]), "name", "source", "version")
	same(t, "a changed package", keys(cpu.Changed[0]), "from", "name", "source", "to")
	if !strings.Contains(rec.Body.String(), `{"name":"libc6","from":"2.36-9","to":"2.36-9+deb12u1","source":"dpkg"}`) {
		t.Errorf("diff lacks libc6's change: %s", rec.Body)
	}
	if !strings.Contains(rec.Body.String(), `{"image":"ci_new","since_run":0,"added":[],"removed":[],"changed":[]}`) {
		t.Errorf("ci_new's diff is not empty lists since run 0: %s", rec.Body)
	}
	want, err := packages.DiffRun(f.db, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(rec.Body.String()); got != string(must(json.Marshal(want))) {
		t.Errorf("diff = %s, want packages.DiffRun's", got)
	}
	// A validation run answers for its night.
	if got := f.do("GET", "/api/v1/runs/3/diff", "", "").Body.String(); got != rec.Body.String() {
		t.Errorf("run 3's diff = %s, want its night's", got)
	}

	rec = f.do("GET", "/api/v1/runs/2/consistency", "", "")
	if rec.Code != 200 {
		t.Fatalf("consistency = %d: %s", rec.Code, rec.Body)
	}
	var ms []map[string]json.RawMessage
	decode(t, rec, &ms)
	if len(ms) != 1 {
		t.Fatalf("%d mismatches, want numpy: %s", len(ms), rec.Body)
	}
	same(t, "a mismatch", keys(ms[0]), "name", "source", "versions")
	if got := strings.TrimSpace(rec.Body.String()); got != `[{"name":"numpy","source":"pip","versions":{"1.25.2":["ci_gpu"],"1.26.0":["ci_cpu","ci_new"]}}]` {
		t.Errorf("consistency = %s", got)
	}
	if got := strings.TrimSpace(f.do("GET", "/api/v1/runs/1/consistency", "", "").Body.String()); got != "[]" {
		t.Errorf("run 1's consistency = %s, want []", got)
	}
	if got := strings.TrimSpace(f.do("GET", "/api/v1/runs/1/diff", "", "").Body.String()); !strings.HasPrefix(got, `[{"image":"ci_base","since_run":0,`) {
		t.Errorf("run 1's diff = %s", got)
	}

	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/v1/runs/99/diff", 404},
		{"GET", "/api/v1/runs/99/consistency", 404},
		{"GET", "/api/v1/runs/x/diff", 404},
		{"POST", "/api/v1/runs/2/diff", 405},
		{"DELETE", "/api/v1/runs/2/consistency", 405},
	} {
		rec := f.do(tt.method, tt.path, "", "")
		if rec.Code != tt.code {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.code)
		}
		jsonError(t, f, rec)
	}
}

// The pages compare an image's packages with the run its record names;
// the API (and the CLI) look for that run again: they agree.
func TestPageDiffIsTheCLIDiff(t *testing.T) {
	t.Parallel()
	f := packagesFixture(t)
	for _, id := range []uint64{1, 2} {
		want, err := packages.DiffRun(f.db, id)
		if err != nil {
			t.Fatal(err)
		}
		run, err := f.s.run(id)
		if err != nil {
			t.Fatal(err)
		}
		all, err := f.db.RunContents(id)
		if err != nil {
			t.Fatal(err)
		}
		var got []packages.ImageDiff
		for i := range all {
			d, err := f.s.diffOf(&all[i], run.Image(all[i].Image))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, d)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("run %d: the page's diffs %+v, nightshift diff's %+v", id, got, want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
