// Package notifytest holds the sample run that the notifiers' render tests
// (and their golden files) share.
package notifytest

import (
	"strings"
	"time"

	"nightshift/notify"
	"nightshift/store"
)

// Sample is a failing run, carried out by a Jenkins build: 5 of 7 images
// built, one failed with a log tail, its child skipped, one built but
// failing two of its tests, two messages lost before it.
func Sample() notify.Summary {
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
	node := ok("node", 4*time.Minute+12*time.Second, 12*time.Minute)
	node.Status, node.Digest = store.Failed, "sha256:"+strings.Repeat("ab", 32)
	node.Error = "test: 2 of 3 tests failed: node version, npm ci"
	node.Tail = []string{"running tests/node.yaml in registry.example.com/ci/node:2026-11-23-02-00-00-1a2b3c4d", "  FAIL node version (tests/node.yaml, 120ms)"}
	node.Validation = &store.Validation{Status: store.Failed, Error: "2 of 3 tests failed: node version, npm ci", Tests: []store.TestResult{
		{Name: "node version", Kind: "command", Errors: []string{"Expected string 'v22' not found in output 'v20.11.1'"}},
		{Name: "npm ci", Kind: "command", Output: "added 0 packages\n\x1b[31mnpm ERR!\x1b[0m code ENOTFOUND\n"},
		{Name: "npm works", Kind: "command", Passed: true},
	}}
	return notify.Summary{
		Event:       notify.EventFailure,
		Previous:    store.Succeeded,
		Repo:        "registry.example.com/ci",
		PublicURL:   "https://ci.example.com/nightshift/",
		Undelivered: 2,
		Recurring:   map[string]store.Recurrence{"python": {Seen: 3, Of: 7}},
		Run: store.Run{
			ID: 42, Tag: "2026-11-23-02-00-00-1a2b3c4d", Commit: "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
			Subject: "Bump Python to 3.13 (**finally**)", Status: store.Failed, Trigger: "cron",
			BuildURL: "https://jenkins.example.com/job/ci-images/job/nightly/1234/",
			Started:  start, Finished: at(41*time.Minute + 3*time.Second + 400*time.Millisecond),
			Planned: []string{"base", "python", "python_ml", "node", "go", "java", "rust"},
			Images: []store.ImageResult{
				validated(ok("base", 0, 4*time.Minute+12*time.Second)),
				{Name: "python", Status: store.Failed, Started: at(4*time.Minute + 12*time.Second), Finished: at(9*time.Minute + 47*time.Second),
					Error: "build: exit code 1", Tail: tail},
				{Name: "python_ml", Status: store.Skipped, Error: "parent python failed"},
				node,
				validated(ok("go", 4*time.Minute+12*time.Second, 10*time.Minute+1*time.Second), store.TestResult{Name: "go test ./...", Passed: true, Flaky: true, Attempts: 2}),
				withValidation(ok("java", 12*time.Minute, 30*time.Minute+500*time.Millisecond), &store.Validation{Status: store.Skipped, Error: "no tests"}),
				validated(ok("rust", 10*time.Minute+1*time.Second, 41*time.Minute)),
			},
		},
	}
}

func withValidation(im store.ImageResult, v *store.Validation) store.ImageResult {
	im.Validation = v
	return im
}

func validated(im store.ImageResult, tests ...store.TestResult) store.ImageResult {
	return withValidation(im, &store.Validation{Status: store.Succeeded, Tests: append([]store.TestResult{{Name: "busybox works", Passed: true}}, tests...)})
}

// Promotion is the news that the sample run's images were promoted to
// stable and 2026.4-stable: three of them, one without being validated
// (--force), and two refused.
func Promotion() notify.Summary {
	s := Sample()
	s.Event, s.Undelivered = notify.EventPromote, 0
	rel := "registry.example.com/release/"
	image := func(name, hex string, validated bool) store.PromotedImage {
		return store.PromotedImage{Name: name, Digest: "sha256:" + strings.Repeat(hex, 32), Ref: rel + name + ":stable",
			Repository: rel + name, Validated: validated}
	}
	s.Promotion = &store.Promotion{
		When: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC), By: "alice", Tags: []string{"stable", "2026.4-stable"}, Forced: true,
		Images: []store.PromotedImage{image("base", "0a", true), image("java", "1b", true), image("python", "2c", false)},
		Refused: []store.RefusedImage{
			{Name: "node", Reason: "not validated in night 42: validation failed"},
			{Name: "python_ml", Reason: "nothing was pushed in night 42 (skipped)"},
		},
	}
	return s
}
