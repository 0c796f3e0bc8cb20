package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketSchedule = []byte("schedule")
	keyLastFire    = []byte("last-fire")
)

// LastFire is the last time the schedule fired (or was skipped), zero if
// never: what lets a daemon that was down notice the nights it missed.
func (db *DB) LastFire() (time.Time, error) {
	var t time.Time
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSchedule).Get(keyLastFire); v != nil {
			return t.UnmarshalBinary(v)
		}
		return nil
	})
	return t, err
}

// SetLastFire records the time the schedule last fired.
func (db *DB) SetLastFire(t time.Time) error {
	v, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSchedule).Put(keyLastFire, v)
	})
}
