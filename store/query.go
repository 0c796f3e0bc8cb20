package store

import (
	"encoding/json"
	"fmt"
	"hash/maphash"

	bolt "go.etcd.io/bbolt"
)

// sumSeed keys the checksums of ScanRuns. It is set once when the program
// starts and never changed, so checksums from different calls compare.
var sumSeed = maphash.MakeSeed()

// Version is a number that changes with every write committed to the store
// (bbolt's transaction id): a reader that derived something from the store
// can keep it while Version stays the same, at the cost of one read
// transaction instead of decoding records again.
func (db *DB) Version() (uint64, error) {
	var v uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v = uint64(tx.ID())
		return nil
	})
	return v, err
}

// ScanRuns calls fn for up to limit runs (limit <= 0: all), newest first,
// in one read transaction, and returns the store's Version as of that
// transaction. fn gets the run's id, a checksum of its stored record that
// changes when the record does (within one process), and decode, which
// decodes the record: decoding is what costs, so a caller that kept the run
// from an earlier scan with the same checksum need not call it. decode is
// valid only until fn returns.
func (db *DB) ScanRuns(limit int, fn func(id, sum uint64, decode func() (Run, error)) error) (version uint64, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		version = uint64(tx.ID())
		c := tx.Bucket(bucketRuns).Cursor()
		n := 0
		for k, v := c.Last(); k != nil && (limit <= 0 || n < limit); k, v = c.Prev() {
			n++
			id := btoi(k)
			decode := func() (Run, error) {
				var r Run
				if err := json.Unmarshal(v, &r); err != nil {
					return Run{}, fmt.Errorf("run %d: %w", id, err)
				}
				return r, nil
			}
			if err := fn(id, maphash.Bytes(sumSeed, v), decode); err != nil {
				return err
			}
		}
		return nil
	})
	return version, err
}

// PendingCount is the number of outbox messages not yet sent or given up,
// counted without decoding them.
func (db *DB) PendingCount() (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketPending).Stats().KeyN
		return nil
	})
	return n, err
}
