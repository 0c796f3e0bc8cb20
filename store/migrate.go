package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// schema is a layout of the database and the way to it: steps[v] brings a
// database at version v to version v+1, inside the transaction that opens
// it, so that a failing step leaves the file as it was.
type schema struct {
	version int
	steps   map[int]func(tx *bolt.Tx) error
}

// layout is the schema this code writes, with a step from every version
// since the first.
func layout() schema {
	return schema{version: SchemaVersion, steps: map[int]func(*bolt.Tx) error{
		1: kindsAndNights,
		2: rewriteSummaries,
	}}
}

// migrate brings the database to s.version: a new database starts there,
// an older one takes every step from its version on, and a newer one, or
// one that a missing step would strand, is refused before anything changes.
func (s schema) migrate(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	version := s.version // a new database starts at the current layout
	if v := meta.Get(keySchema); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("%w: the schema version is %d bytes long, not 8", ErrSchema, len(v))
		}
		version = int(binary.BigEndian.Uint64(v))
	}
	if version > s.version {
		return fmt.Errorf("%w: the database is at schema version %d, newer than this nightshift's %d: use the nightshift that wrote it, or a newer one",
			ErrSchema, version, s.version)
	}
	for v := version; v < s.version; v++ {
		if s.steps[v] == nil {
			return fmt.Errorf("%w: the database is at schema version %d and this nightshift (schema %d) has no step from version %d to %d; nothing was changed",
				ErrSchema, version, s.version, v, v+1)
		}
	}
	if err := createBuckets(tx); err != nil {
		return err
	}
	for ; version < s.version; version++ {
		if err := s.steps[version](tx); err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", version, version+1, err)
		}
	}
	return meta.Put(keySchema, itob(uint64(s.version)))
}

// createBuckets makes every bucket the code expects, so that a step and
// the code after it may take them as given.
func createBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRuns, bucketActive, bucketSummaries, bucketOutbox, bucketPending, bucketSchedule, bucketReleases, bucketContents} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// kindsAndNights (schema 1 to 2) records the kind of every run, which was
// "" for a rebuild, links each validation run to the night it validated
// (the newest rebuild with its tag recorded before it), and writes every
// run's summary, as putRun does from now on.
func kindsAndNights(tx *bolt.Tx) error {
	var runs []*Run
	if err := tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
		r := new(Run)
		if err := json.Unmarshal(v, r); err != nil {
			return fmt.Errorf("run %d: %w", btoi(k), err)
		}
		r.ID = btoi(k)
		runs = append(runs, r)
		return nil
	}); err != nil {
		return err
	}
	nightly := map[string]uint64{} // tag -> the newest rebuild so far
	for _, r := range runs {       // in id order: a rebuild comes before its validation
		switch r.Kind {
		case "":
			r.Kind = KindNightly
			nightly[r.Tag] = r.ID
		case KindValidate:
			if r.Night == 0 && r.Tag != "" {
				r.Night = nightly[r.Tag]
			}
		}
		if err := putRun(tx, r); err != nil {
			return err
		}
	}
	return nil
}

// rewriteSummaries (schema 2 to 3) writes every run's summary again, in
// the format that carries failure signatures.
func rewriteSummaries(tx *bolt.Tx) error {
	return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
		r := new(Run)
		if err := json.Unmarshal(v, r); err != nil {
			return fmt.Errorf("run %d: %w", btoi(k), err)
		}
		r.ID = btoi(k)
		return putSummary(tx, r)
	})
}
