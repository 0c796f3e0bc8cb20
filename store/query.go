package store

import (
	bolt "go.etcd.io/bbolt"
)

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
