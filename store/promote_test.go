package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A promotion is recorded with its run, each target ref is remembered as
// pointing at what was promoted last, and its messages are queued, all at
// once.
func TestPromote(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	older, _ := record(t, db, Run{Tag: "t1", Status: Succeeded, Images: images("base=succeeded+v", "cpu=succeeded+v")})
	night, _ := record(t, db, Run{Tag: "t2", Status: Succeeded, Images: images("base=succeeded+v", "cpu=succeeded")})
	record(t, db, Run{Tag: "t2", Kind: KindValidate, Status: Succeeded, Images: images("cpu=succeeded+v")})

	if r, err := db.NightlyTagged("t2"); err != nil || r.ID != night.ID {
		t.Fatalf("NightlyTagged(t2) = %v, %v; want run %d (not its validation run)", r, err, night.ID)
	}
	if _, err := db.NightlyTagged("t9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("NightlyTagged(t9) error = %v, want ErrNotFound", err)
	}

	when := night0.Add(48 * time.Hour)
	promote := func(id uint64, name string, validated bool) {
		t.Helper()
		p := Promotion{When: when, By: "alice", Tags: []string{"stable", "2026.4-stable"}, Forced: !validated,
			Images: []PromotedImage{{Name: name, Digest: "sha256:" + name + "@" + string(rune('0'+id)),
				Ref: "reg/rel/" + name + ":stable", Repository: "reg/rel/" + name, Validated: validated}}}
		if _, err := db.Promote(id, p, Message{RunID: id, Notifier: "discord", Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	promote(older.ID, "cpu", true)
	promote(night.ID, "cpu", false)
	promote(night.ID, "base", true)

	r, err := db.Run(night.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Promotions) != 2 || !r.Promoted() || r.Promotions[0].By != "alice" {
		t.Errorf("run %d promotions = %+v, want two by alice", night.ID, r.Promotions)
	}
	if refs := r.Promotions[0].Refs(r.Promotions[0].Images[0]); !slices.Equal(refs, []string{"reg/rel/cpu:stable", "reg/rel/cpu:2026.4-stable"}) {
		t.Errorf("Refs = %v", refs)
	}
	rels, err := db.Releases("cpu")
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 {
		t.Fatalf("Releases(cpu) = %+v, want 2 refs", rels)
	}
	for _, rel := range rels {
		if rel.Run != night.ID || rel.Tag != "t2" || !rel.Forced || rel.Digest != "sha256:cpu@2" {
			t.Errorf("release %+v: want run %d (t2) forced, the later promotion", rel, night.ID)
		}
	}
	if all, err := db.Releases(""); err != nil || len(all) != 4 {
		t.Errorf("Releases() = %d, %v; want 4 refs", len(all), err)
	}
	if msgs, err := db.Messages(night.ID); err != nil || len(msgs) != 2 {
		t.Errorf("messages of run %d = %d, %v; want 2 queued", night.ID, len(msgs), err)
	}
}

// Pruned runs keep their records, without log paths, and say when.
func TestMarkPruned(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	a, _ := record(t, db, Run{Tag: "t1", Status: Succeeded, Images: images("base=succeeded")})
	b, _ := record(t, db, Run{Tag: "t2", Status: Succeeded, Images: images("base=succeeded")})
	if err := db.UpdateRun(a.ID, func(r *Run) error { r.Images[0].Log = "logs/1/base.log"; return nil }); err != nil {
		t.Fatal(err)
	}
	when := night0.Add(90 * 24 * time.Hour)
	if err := db.MarkPruned([]uint64{a.ID, a.ID}, when); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkPruned([]uint64{a.ID}, when.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, err := db.Run(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Pruned == nil || !r.Pruned.Equal(when) || r.Images[0].Log != "" || r.Images[0].Digest == "" {
		t.Errorf("pruned run = %+v; want pruned at %s (the first time), no log, the rest kept", r, when)
	}
	if r, _ := db.Run(b.ID); r.Pruned != nil {
		t.Errorf("run %d is marked pruned", b.ID)
	}
	if err := db.MarkPruned([]uint64{99}, when); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkPruned(99) = %v, want ErrNotFound", err)
	}
}

// A database written before releases existed opens with the bucket made,
// no migration needed: new fields are omitted when empty.
func TestReleasesInAnOlderDatabase(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "schema1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if rels, err := db.Releases(""); err != nil || len(rels) != 0 {
		t.Errorf("Releases in an older database = %v, %v; want none", rels, err)
	}
}
