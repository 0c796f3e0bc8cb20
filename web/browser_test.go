package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"nightshift/store"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// browser starts a headless chromium of its own (fresh profile, no network
// besides the test server) and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skipf("no chromium (%v); apt-get install chromium", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	tmp := t.TempDir() // chromium leaves its singleton socket directory in $TMPDIR
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Env("TMPDIR="+tmp),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is small in containers
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	return ctx
}

// artifact is where a screenshot goes: $NIGHTSHIFT_ARTIFACTS (a directory,
// or a file name for the first screenshot), else artifacts/browser/ at the
// root of the repository (ignored by git), so that every run of the tests
// leaves the pages to look at in one known place.
func artifact(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("NIGHTSHIFT_ARTIFACTS")
	if dir == "" {
		dir = defaultArtifacts(t)
	}
	if strings.HasSuffix(dir, ".png") {
		if name == "dashboard.png" {
			os.MkdirAll(filepath.Dir(dir), 0o755)
			return dir
		}
		dir = filepath.Dir(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// defaultArtifacts is artifacts/browser/ in the repository that holds this
// package (go test runs in the package's directory), or a temporary
// directory if there is no such repository or it is read-only.
func defaultArtifacts(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "go.mod"))
	}
	dir := filepath.Join(root, "artifacts", "browser")
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Logf("screenshots go to a temporary directory: %v", err)
		return t.TempDir()
	}
	return dir
}

func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	f := newFixture(t)
	srv := httptest.NewServer(f.h) // 127.0.0.1
	defer srv.Close()

	// What every cell should say and where it should lead.
	want := map[string]string{}
	all, err := f.db.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		for i := range r.Images {
			want[fmt.Sprintf("/runs/%d/images/%s", r.ID, r.Images[i].Name)] = imageBadge(&r.Images[i]).Status
		}
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("table.matrix"))); err != nil {
		t.Fatal(err)
	}
	cells, err := chromedp.Run(ctx, chromedp.AttributesAll(chromedp.CSSAll("a.cell")))
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != len(want) {
		t.Errorf("%d cells link somewhere, want %d", len(cells), len(want))
	}
	seen := map[string]bool{}
	for _, c := range cells {
		st, ok := want[c["href"]]
		if !ok {
			t.Errorf("cell links to %q, no image of a run", c["href"])
			continue
		}
		seen[c["data-status"]] = true
		if c["data-status"] != st || !strings.Contains(c["class"], "st-"+st) {
			t.Errorf("cell %s says %q (class %q), want %q", c["href"], c["data-status"], c["class"], st)
		}
		if !strings.Contains(c["title"], st) {
			t.Errorf("cell %s has no text for its status: title %q", c["href"], c["title"])
		}
	}
	for _, st := range []string{"built", "validated", "failed", "skipped", "running"} {
		if !seen[st] {
			t.Errorf("no %s cell in the matrix; the fixture should have one", st)
		}
	}
	heads, err := chromedp.Run(ctx, chromedp.AttributesAll(chromedp.CSSAll("thead a.run-head")))
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != len(all) || heads[0]["href"] != fmt.Sprintf("/runs/%d", f.running) || heads[len(heads)-1]["href"] != "/runs/1" {
		t.Errorf("column heads %v, want newest first linking to /runs/{id}", heads)
	}

	// The first Tab reaches the skip link; the page is not wider than a
	// phone's screen (the matrix scrolls inside its box).
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	focused, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[string](`document.activeElement.className`))
	if err != nil || focused != "skip" {
		t.Errorf("first Tab focuses %q (%v), want the skip link", focused, err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, "dashboard.png", shot)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[int](`document.documentElement.scrollWidth`))
	if err != nil || width > 390 {
		t.Errorf("on a 390px screen the page is %dpx wide (%v)", width, err)
	}
	phone, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	save(t, "dashboard-phone.png", phone)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}

	// Follow a column's heading to its run's page.
	run := f.runs[2]
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`thead a.run-head[href="/runs/%d"]`, run.ID)), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	); err != nil {
		t.Fatal(err)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != fmt.Sprintf("%s/runs/%d", srv.URL, run.ID) {
		t.Fatalf("after the click on run %d's heading the tab is at %q (%v)", run.ID, loc, err)
	}
	if h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); err != nil || !strings.HasPrefix(h1, fmt.Sprintf("Run %d ", run.ID)) || !strings.Contains(h1, string(run.Status)) {
		t.Errorf("run page heading %q (%v), want run %d and its status %s", h1, err, run.ID, run.Status)
	}
	rows, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[[]string](
		`[...document.querySelectorAll('[aria-labelledby="images"] tbody tr')].map(tr => tr.innerText)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(run.Images) {
		t.Errorf("the run page lists %d images, want %d", len(rows), len(run.Images))
	}
	for i, row := range rows {
		if i >= len(run.Images) {
			break
		}
		im := &run.Images[i]
		if st := imageBadge(im).Status; !strings.HasPrefix(row, im.Name) || !strings.Contains(row, st) {
			t.Errorf("row %d of the run page is %q, want %s %s", i, row, im.Name, st)
		}
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{run.Tag, store.ShortCommit(run.Commit), "ci/test #12", "discord", "smtp: 451 try again later"} {
		if !strings.Contains(body, w) {
			t.Errorf("the run page lacks %q", w)
		}
	}
	jenkins, err := chromedp.Run(ctx, chromedp.AttributesAll(chromedp.CSSAll(`a[href^="https://ci.example.org/"]`)))
	if err != nil || len(jenkins) != 1 || jenkins[0]["href"] != "https://ci.example.org/job/ci/job/test/12/" {
		t.Errorf("links to Jenkins on the run page: %v (%v)", jenkins, err)
	}
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, "run.png", shot)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("table.matrix"))); err != nil {
		t.Fatal(err)
	}

	// Follow a failed cell to its page.
	var failed string
	for href, st := range want {
		if st == "failed" && !strings.HasPrefix(href, fmt.Sprintf("/runs/%d/", f.running)) {
			failed = href
			break
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a.cell[href=%q]`, failed)), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || loc != srv.URL+failed {
		t.Fatalf("after the click the tab is at %q (%v), want %s", loc, err, failed)
	}
	var id uint64
	var name string
	fmt.Sscanf(strings.ReplaceAll(failed, "/", " "), " runs %d images %s", &id, &name)
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || h1 != fmt.Sprintf("%s in run %d", name, id) {
		t.Errorf("heading %q (%v)", h1, err)
	}
	body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"failed", "build: exit status 1", "step 30/30: compiling <module_29> & linking", "Every night of " + name, "view the log of " + name} {
		if !strings.Contains(body, w) {
			t.Errorf("the image page lacks %q", w)
		}
	}
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, "image-run.png", shot)

	// And on to the image's history.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/images/%s"]`, name)), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("svg")),
	); err != nil {
		t.Fatal(err)
	}
	nights := 0
	for _, r := range all {
		if r.Image(name) != nil {
			nights++
		}
	}
	bars, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("svg rect.bar")))
	if err != nil || len(bars) != nights {
		t.Errorf("the chart has %d bars (%v), want one for each of %d nights", len(bars), err, nights)
	}
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, "image.png", shot)
}

func save(t *testing.T, name string, png []byte) {
	t.Helper()
	path := artifact(t, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// The package sections fold long diffs, unfold on a click, and keep the
// run's and the image's pages within a phone's width.
func TestPackagesInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	f := packagesFixture(t)
	addLongDiff(t, f)
	srv := httptest.NewServer(f.h) // 127.0.0.1
	defer srv.Close()

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/runs/2"), chromedp.WaitVisible(chromedp.CSS("#consistency"))); err != nil {
		t.Fatal(err)
	}
	open, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[[]bool](`[...document.querySelectorAll('details.diff')].map(d => d.open)`))
	if err != nil || len(open) != 2 || !open[0] || open[1] {
		t.Errorf("diffs open %v (%v), want ci_cpu's short one open and ci_gpu's long one folded", open, err)
	}
	shown, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[bool](
		`(() => { const s = document.querySelector('#diff-ci_gpu ~ details > summary'); s.click(); return s.parentElement.open })()`))
	if err != nil || !shown {
		t.Errorf("a click on a folded diff's summary leaves it folded (%v)", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Since run 1: 1 added, 1 removed, 2 changed", "<script>alert(1)</script>", "1.25.2: ci_gpu", "inside ci_cpu, ci_gpu"} {
		if !strings.Contains(text, w) {
			t.Errorf("the run page reads without %q", w)
		}
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, "run-packages.png", shot)

	for _, path := range []string{"/runs/2", "/runs/2/images/ci_cpu", "/images/ci_cpu"} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(srv.URL+path), chromedp.WaitVisible(chromedp.CSS("#packages"))); err != nil {
			t.Fatal(err)
		}
		width, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[int](`document.documentElement.scrollWidth`))
		if err != nil || width > 390 {
			t.Errorf("on a 390px screen %s is %dpx wide (%v)", path, width, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(srv.URL+"/runs/2/images/ci_cpu"), chromedp.WaitVisible(chromedp.CSS("#packages"))); err != nil {
		t.Fatal(err)
	}
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, "image-run-packages.png", shot)
}
