// Package store keeps nightshift's records in an embedded bbolt database:
// runs and their images, with every stage transition written as it happens.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the version of the database layout this code writes.
const SchemaVersion = 3

var (
	// ErrLocked means another process has the database open.
	ErrLocked = errors.New("the database is in use by another nightshift process")
	// ErrNotFound means no record has the requested id.
	ErrNotFound = errors.New("not found")
	// ErrSchema means the database's layout is one this nightshift cannot
	// use: newer than it, or older with no way to bring it up to date.
	ErrSchema = errors.New("the database's schema is not one this nightshift can use")
)

var (
	bucketMeta   = []byte("meta")
	bucketRuns   = []byte("runs")
	bucketActive = []byte("active") // ids of runs still running, so start-up need not scan history
	keySchema    = []byte("schema")
)

// DB is the record store.
type DB struct {
	bolt *bolt.DB
	path string
}

// Open opens or creates the database at path, bringing an older layout up
// to SchemaVersion. When another process holds it, Open gives up after
// timeout and returns an error wrapping ErrLocked; a layout it cannot use
// is an error wrapping ErrSchema, and the file is left as it was.
func Open(path string, timeout time.Duration) (*DB, error) {
	return open(path, timeout, layout())
}

func open(path string, timeout time.Duration, s schema) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, fs.ErrNotExist)
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (waited %s)", path, ErrLocked, timeout)
	}
	if err != nil {
		if fresh {
			// A file bbolt began and could not finish (a full disk) would
			// refuse every later open ("file size too small"): it goes.
			os.Remove(path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	if err := b.Update(s.migrate); err != nil {
		b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// Close releases the database.
func (db *DB) Close() error { return db.bolt.Close() }

// Path is the file the database lives in.
func (db *DB) Path() string { return db.path }

// CreateRun stores a new run and sets its ID. A run without a Kind is
// recorded as KindNightly; a validation run without a Night is linked to
// the newest nightly run recorded with its Tag, if any.
func (db *DB) CreateRun(r *Run) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		id, err := runs.NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		if r.Kind == "" {
			r.Kind = KindNightly
		}
		if r.Kind == KindValidate && r.Night == 0 {
			if r.Night, err = nightTagged(tx, r.Tag, id); err != nil {
				return err
			}
		}
		return putRun(tx, r)
	})
}

// UpdateRun changes run id in one transaction: fn gets the stored record
// and its changes are written when it returns nil.
func (db *DB) UpdateRun(id uint64, fn func(*Run) error) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		r, err := getRun(tx, id)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
		r.ID = id
		return putRun(tx, r)
	})
}

// Run returns run id.
func (db *DB) Run(id uint64) (*Run, error) {
	var r *Run
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRun(tx, id)
		return err
	})
	return r, err
}

// Runs returns up to limit runs, newest first; limit <= 0 means all.
func (db *DB) Runs(limit int) ([]Run, error) {
	var runs []Run
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(runs) < limit); k, v = c.Prev() {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("run %d: %w", btoi(k), err)
			}
			runs = append(runs, r)
		}
		return nil
	})
	return runs, err
}

// Interrupt marks every run still recorded as running (left so by a crash
// or a kill) as interrupted, with its running images and stages, queues
// what outbox (which may be nil) says about each in the same transaction,
// and returns those runs as they are now recorded. A run still queued is
// interrupted too, saying that it never started, and without news: it is
// a run cancelled before it started, and the run it waited for is the news.
func (db *DB) Interrupt(now time.Time, reason string, outbox func(Finish) ([]Message, error)) ([]Run, error) {
	var out []Run
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		var ids []uint64
		if err := tx.Bucket(bucketActive).ForEach(func(k, _ []byte) error {
			ids = append(ids, btoi(k))
			return nil
		}); err != nil {
			return err
		}
		for _, id := range ids {
			r, err := interrupt(tx, id, now, reason, outbox)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, *r)
		}
		return nil
	})
	return out, err
}

// InterruptRun is Interrupt for run id alone; a run already done is left
// as it is, and returned.
func (db *DB) InterruptRun(id uint64, now time.Time, reason string, outbox func(Finish) ([]Message, error)) (*Run, error) {
	var out *Run
	err := db.bolt.Update(func(tx *bolt.Tx) (err error) {
		out, err = interrupt(tx, id, now, reason, outbox)
		return err
	})
	return out, err
}

// interrupt ends run id if it is not done: a queued run quietly (it never
// started), a running one with its news.
func interrupt(tx *bolt.Tx, id uint64, now time.Time, reason string, outbox func(Finish) ([]Message, error)) (*Run, error) {
	r, err := getRun(tx, id)
	if err != nil || r.Status.Done() {
		return r, err
	}
	queued := r.Status == Queued
	if queued {
		r.MarkInterrupted(now, "nightshift stopped before the run started")
	} else {
		r.MarkInterrupted(now, reason)
	}
	if err := putRun(tx, r); err != nil {
		return nil, err
	}
	if outbox != nil && !queued {
		if err := queueFor(tx, r, outbox); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// MarkInterrupted ends r and everything in it that was still running, and
// records images that were planned but never started.
func (r *Run) MarkInterrupted(now time.Time, reason string) {
	if r.Status.Done() {
		return
	}
	r.Status = Interrupted
	r.Finished = &now
	if r.Error == "" {
		r.Error = reason
	}
	for i := range r.Images {
		im := &r.Images[i]
		if im.Status.Done() {
			continue
		}
		im.Status = Interrupted
		im.Finished = &now
		im.Error = reason
		for j := range im.Stages {
			if !im.Stages[j].Status.Done() {
				im.Stages[j].Status = Interrupted
				im.Stages[j].Finished = &now
			}
		}
	}
	for _, name := range r.Planned {
		if r.Image(name) == nil {
			r.Images = append(r.Images, ImageResult{
				Name: name, Status: Interrupted, Finished: &now,
				Error: reason + " before this image started",
			})
		}
	}
}

func getRun(tx *bolt.Tx, id uint64) (*Run, error) { return get[Run](tx, bucketRuns, "run", id) }

func putRun(tx *bolt.Tx, r *Run) error {
	if r.Kind == "" {
		r.Kind = KindNightly
	}
	if err := put(tx, bucketRuns, r.ID, r, bucketActive, !r.Status.Done()); err != nil {
		return err
	}
	return putSummary(tx, r)
}

// nightTagged is the newest nightly run recorded before id with tag, 0 if
// none.
func nightTagged(tx *bolt.Tx, tag string, before uint64) (uint64, error) {
	if tag == "" {
		return 0, nil
	}
	c := tx.Bucket(bucketRuns).Cursor()
	for k, v := seekBefore(c, before); k != nil; k, v = c.Prev() {
		var r struct{ Kind, Tag string }
		if err := json.Unmarshal(v, &r); err != nil {
			return 0, fmt.Errorf("run %d: %w", btoi(k), err)
		}
		if r.Tag == tag && (r.Kind == KindNightly || r.Kind == "") {
			return btoi(k), nil
		}
	}
	return 0, nil
}

// get reads record id of a bucket; what names the kind in errors.
func get[T any](tx *bolt.Tx, bucket []byte, what string, id uint64) (*T, error) {
	v := tx.Bucket(bucket).Get(itob(id))
	if v == nil {
		return nil, fmt.Errorf("%s %d: %w", what, id, ErrNotFound)
	}
	var rec T
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("%s %d: %w", what, id, err)
	}
	return &rec, nil
}

// put writes record id of a bucket, and keeps it in the index bucket (the
// runs still running, the messages still pending) exactly while indexed.
func put(tx *bolt.Tx, bucket []byte, id uint64, rec any, index []byte, indexed bool) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	k := itob(id)
	if err := tx.Bucket(bucket).Put(k, v); err != nil {
		return err
	}
	if indexed {
		return tx.Bucket(index).Put(k, nil)
	}
	return tx.Bucket(index).Delete(k)
}

// seekBefore moves c to the last key before id, whether or not id is a key.
func seekBefore(c *bolt.Cursor, id uint64) (key, value []byte) {
	if k, _ := c.Seek(itob(id)); k == nil {
		return c.Last()
	}
	return c.Prev()
}

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func btoi(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
