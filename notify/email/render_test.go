package email

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/notify"
	"nightshift/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sample is a failing run: 5 of 7 images built, one failed with a log tail,
// its child skipped, two messages lost before it.
func sample() notify.Summary {
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := start.Add(d); return &t }
	ok := func(name string, from, to time.Duration) store.ImageResult {
		return store.ImageResult{Name: name, Status: store.Succeeded, Started: at(from), Finished: at(to),
			Ref: "registry.example.com/ci/" + name + ":2026-11-23-02-00-00-1a2b3c4d"}
	}
	tail := []string{"#12 [build 4/6] RUN pip install -r requirements.txt"}
	for i := 1; i <= 22; i++ {
		tail = append(tail, "#12 "+strings.Repeat(".", i%5+1)+" collecting wheel "+string(rune('a'+i)))
	}
	tail = append(tail,
		"#12 \x1b[31mERROR: No matching distribution found for numpy==9.9\x1b[0m",
		"#12 ERROR: process \"/bin/sh -c pip install -r requirements.txt\" did not complete successfully: exit code: 1\r")
	return notify.Summary{
		Event:       notify.EventFailure,
		Previous:    store.Succeeded,
		Repo:        "registry.example.com/ci",
		PublicURL:   "https://ci.example.com/nightshift/",
		Undelivered: 2,
		Run: store.Run{
			ID: 42, Tag: "2026-11-23-02-00-00-1a2b3c4d", Commit: "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
			Subject: "Bump Python to 3.13", Status: store.Failed, Trigger: "cron",
			Started: start, Finished: at(41*time.Minute + 3*time.Second + 400*time.Millisecond),
			Planned: []string{"base", "python", "python-ml", "node", "go", "java", "rust"},
			Images: []store.ImageResult{
				ok("base", 0, 4*time.Minute+12*time.Second),
				{Name: "python", Status: store.Failed, Started: at(4*time.Minute + 12*time.Second), Finished: at(9*time.Minute + 47*time.Second),
					Error: "build: exit code 1", Tail: tail},
				{Name: "python-ml", Status: store.Skipped, Error: "parent python failed"},
				ok("node", 4*time.Minute+12*time.Second, 12*time.Minute),
				ok("go", 4*time.Minute+12*time.Second, 10*time.Minute+1*time.Second),
				ok("java", 12*time.Minute, 30*time.Minute+500*time.Millisecond),
				ok("rust", 10*time.Minute+1*time.Second, 41*time.Minute),
			},
		},
	}
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	subject, text, html, err := Render(sample())
	if err != nil {
		t.Fatal(err)
	}
	if want := "[nightshift] failed: 5 of 7 images built (2026-11-23-02-00-00-1a2b3c4d)"; subject != want {
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
	s := sample()
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
	fixed := sample()
	fixed.Event, fixed.Previous, fixed.Undelivered = notify.EventFixed, store.Failed, 1
	fixed.Run.Status = store.Succeeded
	fixed.Run.Images[1] = store.ImageResult{Name: "python", Status: store.Succeeded, Ref: "registry.example.com/ci/python:x"}
	fixed.Run.Images[2] = store.ImageResult{Name: "python-ml", Status: store.Succeeded, Ref: "registry.example.com/ci/python-ml:x"}
	interrupted := sample()
	interrupted.Event = notify.EventInterrupted
	interrupted.Run.Status, interrupted.Run.Finished = store.Interrupted, nil
	interrupted.Run.Images = interrupted.Run.Images[:3]
	interrupted.Run.Images[2] = store.ImageResult{Name: "python-ml", Status: store.Running}

	for _, tc := range []struct {
		name    string
		s       notify.Summary
		subject string
		want    []string // in both bodies
		not     []string // in neither
	}{
		{"not started", notStarted, "[nightshift] could not start: registry.example.com: connection refused after 3 tries",
			[]string{"could not start a run", "after 3 tries"}, []string{"IMAGE", "Image", "Run"}},
		{"fixed", fixed, "[nightshift] fixed: 7 of 7 images built (2026-11-23-02-00-00-1a2b3c4d)",
			[]string{"1 earlier message could not be delivered.", "Previous run"}, []string{"failed:", "earlier messages"}},
		{"interrupted", interrupted, "[nightshift] interrupted: 1 of 7 images built (2026-11-23-02-00-00-1a2b3c4d)",
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
