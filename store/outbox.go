package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MessageStatus is where a message is in its delivery.
type MessageStatus string

// The states of an outbox message.
const (
	Pending MessageStatus = "pending"  // not yet accepted by its server
	Sent    MessageStatus = "sent"     // accepted: never sent again
	GaveUp  MessageStatus = "given-up" // permanently refused, or too old
)

// Message is one notification in the outbox: what one notifier is to say
// about one run. The store keeps its payload as it was rendered when the
// run ended, so a restart sends what would have been sent.
type Message struct {
	ID       uint64          `json:"id"`
	RunID    uint64          `json:"run_id"`
	Notifier string          `json:"notifier"`
	Payload  json.RawMessage `json:"payload"`
	Status   MessageStatus   `json:"status"`
	Created  time.Time       `json:"created"`
	// Attempts counts sends that failed; NextAttempt is when to try again.
	Attempts    int        `json:"attempts"`
	NextAttempt time.Time  `json:"next_attempt"`
	LastError   string     `json:"last_error,omitempty"`
	Done        *time.Time `json:"done,omitempty"` // when it was sent or given up
	// Reported is set on a given-up message once a later summary has said
	// that it could not be delivered.
	Reported bool `json:"reported,omitempty"`
}

var (
	bucketOutbox  = []byte("outbox")
	bucketPending = []byte("outbox-pending") // ids of pending messages, so delivery need not scan history
)

// Finish is what an outbox function sees when a run ends.
type Finish struct {
	Run      *Run
	Previous *Run // the finished run before this one, nil if none
	// Undelivered counts the messages for notifier that were given up and
	// not yet reported, and marks them reported when the transaction commits.
	Undelivered func(notifier string) int
}

// FinishRun changes run id with fn and queues the messages outbox returns,
// in one transaction: a run is never recorded as ended without its
// messages, nor messages queued for a run that is not. outbox may be nil.
func (db *DB) FinishRun(id uint64, fn func(*Run) error, outbox func(Finish) ([]Message, error)) (*Run, error) {
	var out *Run
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		r, err := getRun(tx, id)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
		r.ID = id
		if err := putRun(tx, r); err != nil {
			return err
		}
		if outbox != nil {
			if err := queueFor(tx, r, outbox); err != nil {
				return err
			}
		}
		out = r
		return nil
	})
	return out, err
}

// queueFor asks outbox for the messages about r and queues them.
func queueFor(tx *bolt.Tx, r *Run, outbox func(Finish) ([]Message, error)) error {
	prev, err := previousRun(tx, r.ID)
	if err != nil {
		return err
	}
	var markErr error
	msgs, err := outbox(Finish{Run: r, Previous: prev, Undelivered: func(notifier string) int {
		n, err := takeUndelivered(tx, notifier)
		markErr = errors.Join(markErr, err)
		return n
	}})
	if err := errors.Join(err, markErr); err != nil {
		return err
	}
	queued := time.Now()
	if r.Finished != nil {
		queued = *r.Finished // the messages are as old as the news
	}
	return queue(tx, queued, msgs)
}

// Enqueue queues messages that belong to no finishing run (a run that
// could not start, say).
func (db *DB) Enqueue(now time.Time, msgs ...Message) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return queue(tx, now, msgs) })
}

func queue(tx *bolt.Tx, now time.Time, msgs []Message) error {
	b := tx.Bucket(bucketOutbox)
	for _, m := range msgs {
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		m.ID, m.Status, m.Attempts = id, Pending, 0
		if m.Created.IsZero() {
			m.Created = now
		}
		if m.NextAttempt.IsZero() {
			m.NextAttempt = m.Created
		}
		if err := putMessage(tx, &m); err != nil {
			return err
		}
	}
	return nil
}

// PendingMessages returns every message not yet sent or given up, oldest
// first.
func (db *DB) PendingMessages() ([]Message, error) {
	var out []Message
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			m, err := getMessage(tx, btoi(k))
			if err != nil {
				return err
			}
			out = append(out, *m)
			return nil
		})
	})
	return out, err
}

// Messages returns the messages about run id, in the order queued.
func (db *DB) Messages(runID uint64) ([]Message, error) {
	var out []Message
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(_, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if m.RunID == runID {
				out = append(out, m)
			}
			return nil
		})
	})
	return out, err
}

// ErrSettled is UpdateMessage's refusal to change a message that is
// already sent or given up.
var ErrSettled = errors.New("message already sent or given up")

// UpdateMessage changes message id in one transaction, if it is still
// pending. Sent and given up are final: a late outcome of a second send
// must not turn "sent" into "given up", nor the reverse, so a message that
// is no longer pending is left as it is and the error is ErrSettled.
func (db *DB) UpdateMessage(id uint64, fn func(*Message)) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		m, err := getMessage(tx, id)
		if err != nil {
			return err
		}
		if m.Status != Pending {
			return fmt.Errorf("message %d is %s: %w", id, m.Status, ErrSettled)
		}
		fn(m)
		m.ID = id
		return putMessage(tx, m)
	})
}

func takeUndelivered(tx *bolt.Tx, notifier string) (int, error) {
	var given []*Message
	if err := tx.Bucket(bucketOutbox).ForEach(func(_, v []byte) error {
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.Notifier == notifier && m.Status == GaveUp && !m.Reported {
			given = append(given, &m)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, m := range given {
		m.Reported = true
		if err := putMessage(tx, m); err != nil {
			return 0, err
		}
	}
	return len(given), nil
}

// previousRun is the latest finished run recorded before id.
func previousRun(tx *bolt.Tx, id uint64) (*Run, error) {
	c := tx.Bucket(bucketRuns).Cursor()
	for k, v := seekBefore(c, id); k != nil; k, v = c.Prev() {
		var r Run
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("run %d: %w", btoi(k), err)
		}
		if r.Status.Done() {
			return &r, nil
		}
	}
	return nil, nil
}

func getMessage(tx *bolt.Tx, id uint64) (*Message, error) {
	return get[Message](tx, bucketOutbox, "message", id)
}

func putMessage(tx *bolt.Tx, m *Message) error {
	return put(tx, bucketOutbox, m.ID, m, bucketPending, m.Status == Pending)
}
