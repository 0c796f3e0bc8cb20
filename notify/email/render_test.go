package email

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/notify"
	"nightshift/notify/notifytest"
	"nightshift/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	subject, text, html, err := Render(notifytest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	if want := "[nightshift] failed: 5 of 7 images built, 3 validated (2026-11-23-02-00-00-1a2b3c4d)"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	golden(t, "summary.txt", text)
	golden(t, "summary.html", html)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

func TestRenderEscapes(t *testing.T) {
	t.Parallel()
	s := notifytest.Sample()
	s.PublicURL = "javascript:alert(1)//"
	s.Run.Images[1].Error = `<script>alert("pwned")</script>`
	s.Run.Images[1].Tail = []string{"</pre><img src=x onerror=alert(1)>"}
	_, text, html, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "<img", "javascript:"} {
		if strings.Contains(html, bad) {
			t.Errorf("HTML contains %q unescaped:\n%s", bad, html)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;", "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML lacks %q:\n%s", want, html)
		}
	}
	// Plain text is plain: shown as written.
	if !strings.Contains(text, `<script>alert("pwned")</script>`) {
		t.Errorf("text lost the error:\n%s", text)
	}
}

func TestRenderEvents(t *testing.T) {
	t.Parallel()
	notStarted := notify.Summary{Event: notify.EventNotStarted, Reason: "registry.example.com: connection refused\nafter 3 tries",
		Run: store.Run{Status: store.Failed, Started: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC),
			Error: "registry.example.com: connection refused\nafter 3 tries", Images: []store.ImageResult{}}}
	fixed := notifytest.Sample()
	fixed.Event, fixed.Previous, fixed.Undelivered = notify.EventFixed, store.Failed, 1
	fixed.Run.Status = store.Succeeded
	fixed.Run.Images[1] = store.ImageResult{Name: "python", Status: store.Succeeded, Ref: "registry.example.com/ci/python:x"}
	fixed.Run.Images[2] = store.ImageResult{Name: "python_ml", Status: store.Succeeded, Ref: "registry.example.com/ci/python_ml:x"}
	fixed.Run.Images[3] = store.ImageResult{Name: "node", Status: store.Succeeded, Ref: "registry.example.com/ci/node:x",
		Validation: &store.Validation{Status: store.Succeeded}}
	interrupted := notifytest.Sample()
	interrupted.Event = notify.EventInterrupted
	interrupted.Run.Status, interrupted.Run.Finished = store.Interrupted, nil
	interrupted.Run.Images = interrupted.Run.Images[:3]
	interrupted.Run.Images[2] = store.ImageResult{Name: "python_ml", Status: store.Running}
	changed := notifytest.Sample()
	changed.Run.ChangedSince = "0123456789abcdef0123456789abcdef01234567"
	changed.Run.Unchanged = []store.UnchangedImage{{Name: "go", Status: store.Skipped, Reason: "unchanged since 01234567"}, {Name: "ruby", Status: store.Skipped, Reason: "unchanged since 01234567"}}

	for _, tc := range []struct {
		name    string
		s       notify.Summary
		subject string
		want    []string // in both bodies
		not     []string // in neither
	}{
		{"not started", notStarted, "[nightshift] could not start: registry.example.com: connection refused after 3 tries",
			[]string{"could not start a run", "after 3 tries"}, []string{"IMAGE", "Image", "Run"}},
		{"fixed", fixed, "[nightshift] fixed: 7 of 7 images built, 4 validated (2026-11-23-02-00-00-1a2b3c4d)",
			[]string{"1 earlier message could not be delivered.", "Previous run"}, []string{"failed:", "FAIL", "earlier messages"}},
		{"change-detected", changed, "[nightshift] failed: 5 of 7 images built, 3 validated (2026-11-23-02-00-00-1a2b3c4d)",
			[]string{"Unchanged", "go, ruby (unchanged since 01234567: not rebuilt)"}, nil},
		{"interrupted", interrupted, "[nightshift] interrupted: 1 of 7 images built, 1 validated (2026-11-23-02-00-00-1a2b3c4d)",
			[]string{"not started", "running", "java"}, []string{"Took"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject, text, html, err := Render(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if subject != tc.subject {
				t.Errorf("subject = %q, want %q", subject, tc.subject)
			}
			for _, body := range []string{text, html} {
				for _, w := range tc.want {
					if !strings.Contains(body, w) {
						t.Errorf("body lacks %q:\n%s", w, body)
					}
				}
				for _, n := range tc.not {
					if strings.Contains(body, n) {
						t.Errorf("body has %q:\n%s", n, body)
					}
				}
			}
		})
	}
}

func TestRenderNamesFailingTestsWithinLimit(t *testing.T) {
	t.Parallel()
	s := notifytest.Sample()
	v := &store.Validation{Status: store.Failed, Error: "25 of 25 tests failed"}
	for i := range 25 {
		v.Tests = append(v.Tests, store.TestResult{Name: fmt.Sprintf("check %02d", i), Output: "line one\n" + strings.Repeat("x", 500) + "\n"})
	}
	s.Run.Images[6].Validation = v // rust: built, its tests all failing
	_, text, html, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{text, html} {
		if !strings.Contains(body, "check 09") || strings.Contains(body, "check 10") {
			t.Errorf("body does not name exactly the first %d failing tests:\n%s", maxTests, body)
		}
		if !strings.Contains(body, "and 15 more failing tests") {
			t.Errorf("body does not count the tests left out:\n%s", body)
		}
		if strings.Contains(body, strings.Repeat("x", 201)) || !strings.Contains(body, strings.Repeat("x", 150)) {
			t.Errorf("body does not quote a short excerpt of the output")
		}
	}
	if !strings.Contains(text, "validation failed (25 of 25 tests)") {
		t.Errorf("table lacks rust's validation:\n%s", text)
	}
}

// A validation run is compared with the night before its own, and says so.
func TestRenderPreviousNight(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]string{store.KindNightly: "Previous run", store.KindValidate: "Previous night"} {
		s := notifytest.Sample()
		s.Run.Kind = kind
		_, text, _, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, want+":") || strings.Contains(text, map[bool]string{true: "Previous run", false: "Previous night"}[kind == store.KindValidate]) {
			t.Errorf("a %s run's text lacks %q:\n%s", kind, want, text)
		}
	}
}

// A run carried out by a Jenkins build links to that build's console, in
// both bodies, the URL written once in the text.
func TestRenderLinksTheConsole(t *testing.T) {
	t.Parallel()
	const console = "https://jenkins.example.com/job/ci-images/job/nightly/1234/console"
	_, text, html, err := Render(notifytest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "\nJenkins build:  "+console+"\n") || strings.Count(text, console) != 1 {
		t.Errorf("the text names the console %d times, want once after \"Jenkins build:\":\n%s", strings.Count(text, console), text)
	}
	if !strings.Contains(html, `<a href="`+console+`">`) {
		t.Errorf("the HTML does not link the console:\n%s", html)
	}

	for _, buildURL := range []string{"", "javascript:alert(1)//"} {
		s := notifytest.Sample()
		s.Run.BuildURL = buildURL
		_, text, html, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text+html, "Jenkins build") || strings.Contains(html, "javascript:") {
			t.Errorf("BUILD_URL %q: the message names a Jenkins build", buildURL)
		}
	}
}

// A promotion mail says who promoted what, where each image went, and why
// the others did not; not the run's failures.
func TestRenderPromotion(t *testing.T) {
	t.Parallel()
	subject, text, html, err := Render(notifytest.Promotion())
	if err != nil {
		t.Fatal(err)
	}
	if want := "[nightshift] promoted 3 of 5 images of 2026-11-23-02-00-00-1a2b3c4d to stable, 2026.4-stable (forced)"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	for _, body := range []string{text, html} {
		for _, w := range []string{"2026-11-24 09:30:00 UTC by alice", "stable, 2026.4-stable", "Forced",
			"registry.example.com/release/base:stable@sha256:0a0a0a0a0a0a", "not validated", "not promoted",
			"not validated in night 42: validation failed"} {
			if !strings.Contains(body, w) {
				t.Errorf("body lacks %q:\n%s", w, body)
			}
		}
		for _, n := range []string{"FAIL", "No matching distribution", "Took"} {
			if strings.Contains(body, n) {
				t.Errorf("body has %q:\n%s", n, body)
			}
		}
	}
}
