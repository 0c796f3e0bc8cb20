package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// schema1 copies testdata/schema1.db, a database written by nightshift at
// schema version 1 (see testdata/mkschema1), to a temporary file.
func schema1(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nightshift.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// schemaOf reads the version a database file records, without migrating it.
func schemaOf(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var v uint64
	if err := b.View(func(tx *bolt.Tx) error {
		v = btoi(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// A database written by the version before migrations existed opens with
// every record kept, the kinds and nights filled in.
func TestOpenSchema1(t *testing.T) {
	t.Parallel()
	path := schema1(t)
	if v := schemaOf(t, path); v != 1 {
		t.Fatalf("testdata/schema1.db is at schema %d, want 1", v)
	}
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	runs, err := db.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		kind   string
		night  uint64
		status Status
	}
	wants := map[uint64]want{
		1: {KindNightly, 0, Succeeded},
		2: {KindValidate, 1, Failed},
		3: {KindNightly, 0, Succeeded},
		4: {KindValidate, 3, Failed},
		5: {KindValidate, 0, Succeeded}, // its tag was never rebuilt here
		6: {KindNightly, 0, Running},
	}
	if len(runs) != len(wants) {
		t.Fatalf("%d runs after migrating, want %d", len(runs), len(wants))
	}
	for _, r := range runs {
		w := wants[r.ID]
		if r.Kind != w.kind || r.Night != w.night || r.Status != w.status {
			t.Errorf("run %d: kind %q night %d status %s, want %q, %d, %s", r.ID, r.Kind, r.Night, r.Status, w.kind, w.night, w.status)
		}
	}
	val, err := db.Run(4)
	if err != nil {
		t.Fatal(err)
	}
	if lint := val.Image("ci_lint"); lint == nil || lint.Validation == nil || lint.Validation.Status != Failed ||
		len(lint.Validation.Tests) != 1 || lint.Validation.Tests[0].Name != "flake8" {
		t.Errorf("run 4's ci_lint = %+v, want its failed validation kept", lint)
	}
	// Summaries are written again with the failures' signatures (schema 3).
	if n, err := db.Night(4); err != nil || len(n.Validations) == 0 || n.Validations[len(n.Validations)-1].Image("ci_lint").Signature.ID == "" {
		t.Errorf("night of run 4 = %+v, %v; want ci_lint's failure signed", n, err)
	}

	// The rest of the file: the outbox, the schedule, the index of runs
	// still running.
	if msgs, err := db.Messages(2); err != nil || len(msgs) != 1 || msgs[0].Status != Sent {
		t.Errorf("messages of run 2 = %+v, %v; want the one sent", msgs, err)
	}
	if pending, err := db.PendingMessages(); err != nil || len(pending) != 1 || pending[0].RunID != 4 {
		t.Errorf("pending = %+v, %v; want run 4's message", pending, err)
	}
	if fired, err := db.LastFire(); err != nil || !fired.Equal(time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("last fire = %v, %v", fired, err)
	}
	interrupted, err := db.Interrupt(time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC), "nightshift stopped", nil)
	if err != nil || len(interrupted) != 1 || interrupted[0].ID != 6 {
		t.Errorf("Interrupt = %+v, %v; want run 6, left running by the crash", interrupted, err)
	}
	db.Close()
	if v := schemaOf(t, path); v != SchemaVersion {
		t.Errorf("schema after opening = %d, want %d", v, SchemaVersion)
	}

	// Opening again takes no step.
	db, err = Open(path, time.Second)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer db.Close()
	if r, err := db.Run(4); err != nil || r.Night != 3 {
		t.Errorf("run 4 after a second open = %+v, %v", r, err)
	}
}

// A run created without a kind is a nightly; a validation run created
// without its night is linked to the newest nightly with its tag.
func TestCreateRunFillsKindAndNight(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	for _, r := range []*Run{
		{Tag: "a", Status: Succeeded},                     // 1
		{Tag: "b", Status: Succeeded},                     // 2
		{Tag: "a", Status: Succeeded, Kind: KindNightly},  // 3
		{Tag: "a", Status: Failed, Kind: KindValidate},    // 4: night 3
		{Tag: "c", Status: Failed, Kind: KindValidate},    // 5: no night
		{Tag: "b", Status: Failed, Kind: KindValidate},    // 6: night 2
		{Tag: "a", Kind: KindValidate, Night: 1},          // 7: as given
		{Tag: "a", Status: Succeeded, Kind: KindEnsure},   // 8
		{Tag: "a", Status: Succeeded, Kind: KindValidate}, // 9: night 3, not the ensure
	} {
		if err := db.CreateRun(r); err != nil {
			t.Fatal(err)
		}
	}
	want := map[uint64][2]any{1: {KindNightly, 0}, 2: {KindNightly, 0}, 3: {KindNightly, 0}, 4: {KindValidate, 3},
		5: {KindValidate, 0}, 6: {KindValidate, 2}, 7: {KindValidate, 1}, 8: {KindEnsure, 0}, 9: {KindValidate, 3}}
	runs, err := db.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if w := want[r.ID]; r.Kind != w[0] || r.Night != uint64(w[1].(int)) {
			t.Errorf("run %d: kind %q night %d, want %v", r.ID, r.Kind, r.Night, w)
		}
	}
}

func TestSchemaRefused(t *testing.T) {
	t.Parallel()
	noop := func(*bolt.Tx) error { return nil }
	tests := []struct {
		name   string
		schema schema
		want   []string // in the error
	}{
		{"newer than the code", schema{version: 0}, []string{"schema version 1", "newer than this nightshift's 0"}},
		{"a step missing", schema{version: 3, steps: map[int]func(*bolt.Tx) error{1: noop}},
			[]string{"at schema version 1", "no step from version 2 to 3", "nothing was changed"}},
		{"the first step missing", schema{version: 2, steps: map[int]func(*bolt.Tx) error{2: noop}},
			[]string{"no step from version 1 to 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := schema1(t)
			_, err := open(path, time.Second, tt.schema)
			if !errors.Is(err, ErrSchema) {
				t.Fatalf("open = %v, want ErrSchema", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if v := schemaOf(t, path); v != 1 {
				t.Errorf("the refused database is now at schema %d", v)
			}
		})
	}
}

// A database of the current layout, once a later nightshift wrote it, is
// refused by this one.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nightshift.db")
	later := schema{version: SchemaVersion + 1, steps: map[int]func(*bolt.Tx) error{SchemaVersion: func(*bolt.Tx) error { return nil }}}
	db, err := open(path, time.Second, later)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, time.Second)
	if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema = %v, want ErrSchema saying it is newer", err)
	}
}

// Steps run in order, each once, and a failing one leaves the file as it
// was.
func TestStepsRunInOrder(t *testing.T) {
	t.Parallel()
	var ran []int
	step := func(v int, err error) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			ran = append(ran, v)
			if err == nil {
				return tx.Bucket(bucketMeta).Put([]byte{byte(v)}, nil)
			}
			return err
		}
	}
	path := schema1(t)
	broken := errors.New("step 3 broke")
	_, err := open(path, time.Second, schema{version: 4, steps: map[int]func(*bolt.Tx) error{1: step(1, nil), 2: step(2, nil), 3: step(3, broken)}})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "migrate schema 3 to 4") {
		t.Fatalf("open = %v, want step 3's error", err)
	}
	if v := schemaOf(t, path); v != 1 {
		t.Errorf("after a failed step the database is at schema %d, want 1", v)
	}
	db, err := open(path, time.Second, schema{version: 3, steps: map[int]func(*bolt.Tx) error{1: step(1, nil), 2: step(2, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if want := []int{1, 2, 3, 1, 2}; !slices.Equal(ran, want) {
		t.Errorf("steps ran %v, want %v", ran, want)
	}
	if v := schemaOf(t, path); v != 3 {
		t.Errorf("schema = %d, want 3", v)
	}
}
