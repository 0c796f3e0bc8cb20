package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func failed(stage, err string, tail ...string) *ImageResult {
	return &ImageResult{Name: "cpu", Status: Failed, Error: err, Tail: tail,
		Stages: []Stage{{Name: "build", Status: Succeeded}, {Name: stage, Status: Failed}}}
}

func TestSignatureNormalises(t *testing.T) {
	t.Parallel()
	same := []*ImageResult{
		failed("push", "push registry.example.com/ci/cpu:2026-11-20-02-00-00-1a2b3c4d: connection reset",
			"pushing sha256:1f3e5d7c9b0a1f3e5d7c9b0a1f3e5d7c9b0a1f3e5d7c9b0a1f3e5d7c9b0a1f3e",
			"error: dial tcp 10.0.0.12:5000: i/o timeout after 30s at 2026-11-20T02:13:14Z in /var/lib/docker/tmp/buildkit-mount123"),
		failed("push", "push registry.example.com/ci/cpu:2026-11-27-02-00-00-9f8e7d6c: connection reset",
			"pushing sha256:aaaa5d7c9b0a1f3e5d7c9b0a1f3e5d7c9b0a1f3e5d7c9b0a1f3e5d7c9b0a1f3e",
			"error: dial tcp 10.0.0.99:5001: i/o timeout after 1m30s at 2026-11-27T03:01:59Z in /tmp/other/buildkit-mount9",
			"done"),
	}
	a, ok := SignatureOf(same[0])
	b, _ := SignatureOf(same[1])
	if !ok || a != b {
		t.Errorf("failures differing in numbers, hashes, paths and times have signatures\n%+v\n%+v", a, b)
	}
	if len(a.ID) != 12 {
		t.Errorf("signature id %q, want 12 hex digits", a.ID)
	}
	for _, want := range []string{"<addr>", "<time>", "<path>", "<duration>"} {
		if !strings.Contains(a.Text, want) {
			t.Errorf("signature text %q lacks %s", a.Text, want)
		}
	}
	for _, other := range []*ImageResult{
		failed("build", same[0].Error, same[0].Tail...),                            // another step
		failed("push", same[0].Error, "error: manifest unknown to 10.0.0.12:5000"), // another message
		failed("push", "push: unauthorized", same[0].Tail...),
	} {
		if s, _ := SignatureOf(other); s.ID == a.ID {
			t.Errorf("%s %q %q shares the signature of %q", other.Stages[1].Name, other.Error, other.Tail, a.Text)
		}
	}
	if _, ok := SignatureOf(&ImageResult{Name: "cpu", Status: Skipped, Error: "parent base failed"}); ok {
		t.Errorf("a skipped image has a signature")
	}
	// The engine's "did not complete successfully" says less than the
	// step's own output.
	c, _ := SignatureOf(failed("build", "build: exit code 3", "mirror moved: 404", "ERROR: process \"/bin/sh -c x\" did not complete successfully: exit code: 3"))
	if !strings.Contains(c.Text, "mirror moved") {
		t.Errorf("signature %q misses the step's error line", c.Text)
	}
	// The classic builder's progress and colour codes are no error line.
	d, _ := SignatureOf(failed("build", "build: exit code 3", "Step 3/3 : RUN fetch", " ---> Running in 350ec39f6203",
		"\x1b[91mmirror answered 503 at 15:32:04", "\x1b[0mRemoving intermediate container 350ec39f6203",
		"The command '/bin/sh -c fetch' returned a non-zero code: 3"))
	if !strings.HasSuffix(d.Text, "| mirror answered <n> at <time>") {
		t.Errorf("signature %q misses the step's error line", d.Text)
	}
}

func TestRecurringCountsNights(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	fail := func(n int) ImageResult {
		return ImageResult{Name: "cpu", Status: Failed, Error: fmt.Sprintf("build: exit code %d", n),
			Tail: []string{fmt.Sprintf("flaky: mirror answered 503 after %dms", 100*n)}, Stages: []Stage{{Name: "build", Status: Failed}}}
	}
	ok := ImageResult{Name: "cpu", Status: Succeeded, Digest: "sha256:cpu"}
	var got []map[string]Recurrence
	finish := func(r Run) uint64 {
		t.Helper()
		status := r.Status
		r.Status = Running
		if err := db.CreateRun(&r); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FinishRun(r.ID, func(run *Run) error {
			end := night0.Add(time.Duration(run.ID) * time.Hour)
			run.Status, run.Finished = status, &end
			return nil
		}, func(f Finish) ([]Message, error) { got = append(got, f.Recurring); return nil, nil }); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	finish(Run{Tag: "n1", Status: Failed, Images: []ImageResult{fail(1)}})                                // 1
	finish(Run{Tag: "n2", Status: Succeeded, Images: []ImageResult{ok}})                                  // 2
	n3 := finish(Run{Tag: "n3", Status: Succeeded, Images: []ImageResult{ok}})                            // 3
	finish(Run{Tag: "n3", Kind: KindValidate, Night: n3, Status: Failed, Images: []ImageResult{fail(2)}}) // 4: night 3
	finish(Run{Tag: "n5", Status: Failed, Images: []ImageResult{fail(3)}})                                // 5
	want := []string{"map[]", "map[]", "map[]", "map[cpu:{Seen:2 Of:3}]", "map[cpu:{Seen:3 Of:4}]"}
	for i := range want {
		if s := fmt.Sprintf("%+v", got[i]); s != want[i] {
			t.Errorf("run %d: Recurring %s, want %s", i+1, s, want[i])
		}
	}
	fs, err := db.Failures("cpu")
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("%d signatures, want 1: %+v", len(fs), fs)
	}
	var nights []string
	for _, o := range fs[0].Nights {
		nights = append(nights, fmt.Sprintf("%d/%d", o.Night, o.Run))
	}
	if s := fmt.Sprint(nights); s != "[5/5 3/4 1/1]" {
		t.Errorf("nights (night/run) %s, want [5/5 3/4 1/1]", s)
	}
}
