package web

import (
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"nightshift/store"
)

// fillStart is the first night of a filled store: fixed so that pages and
// assertions are the same on every run of the tests.
var fillStart = time.Date(2025, 11, 23, 2, 0, 0, 0, time.UTC)

// openStore opens a new store in a temporary directory.
func openStore(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "nightshift.db"), time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// imageNames is a stack of n images: a base, its children and theirs, so
// that a failure has descendants to skip.
func imageNames(n int) []string {
	known := []string{"ci_base", "ci_cpu", "ci_gpu", "ci_lint", "ci_arm", "ci_wasm", "ci_docs"}
	names := make([]string, 0, n)
	for i := range n {
		if i < len(known) {
			names = append(names, known[i])
		} else {
			names = append(names, fmt.Sprintf("ci_extra%02d", i))
		}
	}
	return names
}

// fillStore records runs nightly runs of images images each, oldest first,
// with every outcome the dashboard shows: built, validated, failed (with a
// tail), skipped descendants and interrupted runs. It is deterministic: run
// i (1-based) is the same in every call. It returns the runs as stored.
func fillStore(tb testing.TB, db *store.DB, runs, images int) []store.Run {
	tb.Helper()
	names := imageNames(images)
	out := make([]store.Run, 0, runs)
	for i := 1; i <= runs; i++ {
		r := fakeRun(i, names)
		if err := db.CreateRun(&r); err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// fakeRun is night i of a stack of images.
func fakeRun(i int, names []string) store.Run {
	rng := rand.New(rand.NewPCG(uint64(i), 42))
	start := fillStart.Add(time.Duration(i-1) * 24 * time.Hour)
	commit := fmt.Sprintf("%x", sha1.Sum(fmt.Appendf(nil, "commit %d", i)))
	tag := start.Format("2006-01-02-15-04-05") + "-" + commit[:8]
	r := store.Run{
		Tag: tag, Commit: commit, Subject: fmt.Sprintf("Change number %d <script>alert(1)</script>", i),
		Trigger: "cron", Started: start, Planned: names, Status: store.Succeeded,
	}
	interrupted := i%47 == 0
	failed := map[string]bool{}
	t := start
	for k, name := range names {
		im := store.ImageResult{
			Name:   name,
			Ref:    "registry.example.org/ci-staging/" + name + ":" + tag,
			Log:    fmt.Sprintf("logs/%d/%s.log", i, name),
			Parent: parentOf(k, names),
		}
		began := t
		im.Started = &began
		switch {
		case im.Parent != "" && failed[im.Parent]:
			im.Status, im.Error, im.Started = store.Skipped, "parent "+im.Parent+" failed", nil
			failed[name] = true
		case interrupted && k >= len(names)/2:
			im.Status, im.Error = store.Interrupted, "nightshift stopped"
		case rng.IntN(10) == 0:
			im.Status, im.Error = store.Failed, "build: exit status 1"
			im.Tail = make([]string, 30)
			for l := range im.Tail {
				im.Tail[l] = fmt.Sprintf("step %d/30: compiling <module_%d> & linking", l+1, l)
			}
			failed[name] = true
		default:
			im.Status = store.Succeeded
			im.Digest = fmt.Sprintf("sha256:%x", sha256.Sum256(fmt.Appendf(nil, "%d/%s", i, name)))
			im.Tags = []string{tag, "latest"}
			if i%3 == 0 {
				im.Tags = append(im.Tags, tag+"-validated")
			}
		}
		if im.Started != nil {
			for _, st := range []string{"build", "push", "verify", "tag"} {
				d := time.Duration(5+rng.IntN(60)) * time.Second
				if st == "build" {
					d = time.Duration(60+rng.IntN(600)+k*10) * time.Second
				}
				end := t.Add(d)
				stage := store.Stage{Name: st, Status: store.Succeeded, Started: t, Finished: &end}
				t = end
				if im.Status != store.Succeeded {
					stage.Status, stage.Error = im.Status, im.Error
					im.Stages = append(im.Stages, stage)
					break
				}
				im.Stages = append(im.Stages, stage)
			}
			fin := t
			im.Finished = &fin
		} else {
			fin := t
			im.Finished = &fin
		}
		r.Images = append(r.Images, im)
	}
	fin := t
	r.Finished = &fin
	switch {
	case interrupted:
		r.Status, r.Error = store.Interrupted, "nightshift stopped"
	case len(failed) > 0:
		r.Status = store.Failed
	}
	return r
}

// parentOf makes a tree: image 0 is the root, 1-3 build on it, the rest on
// one of those.
func parentOf(k int, names []string) string {
	switch {
	case k == 0:
		return ""
	case k <= 3:
		return names[0]
	default:
		return names[1+k%3]
	}
}
