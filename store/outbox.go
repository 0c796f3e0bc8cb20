package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// Tries counts the sends of m: those that failed, and the one its server
// accepted.
func (m *Message) Tries() int {
	if m.Status == Sent {
		return m.Attempts + 1
	}
	return m.Attempts
}

var (
	bucketOutbox  = []byte("outbox")
	bucketPending = []byte("outbox-pending") // ids of pending messages, so delivery need not scan history
)

// Finish is what an outbox function sees when a run ends.
type Finish struct {
	Run *Run
	// Previous is what Run is compared with (the fixed policy): nights
	// with nights, for each of Run's images the last word on it before
	// Run. For a validation run, that is the image's outcome in the
	// nights before its own (built and validated); for any other run, the
	// image's status in the last earlier run of the same kind that had
	// it, so that a run of some images (--only) is compared with the last
	// run that built those. Previous holds the newest run (or night's
	// run) compared with: its id, tag, commit and times; Images just the
	// names and statuses compared, and Status their combined outcome, or
	// that run's (night's) own status when its images are exactly Run's.
	// A run without images is compared with the run (night) before it as
	// a whole. nil when no earlier run had any of Run's images.
	Previous *Run
	// Recurring holds, for each of Run's failed images whose failure
	// signature was seen on more than one of the last RecentNights nights
	// (Run's own included; a validation run is part of its night), how
	// many of how many.
	Recurring map[string]Recurrence
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
	prev, err := baseline(tx, r)
	if err != nil {
		return err
	}
	rec, err := recurring(tx, r)
	if err != nil {
		return err
	}
	var markErr error
	msgs, err := outbox(Finish{Run: r, Previous: prev, Recurring: rec, Undelivered: func(notifier string) int {
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

func getMessage(tx *bolt.Tx, id uint64) (*Message, error) {
	return get[Message](tx, bucketOutbox, "message", id)
}

func putMessage(tx *bolt.Tx, m *Message) error {
	return put(tx, bucketOutbox, m.ID, m, bucketPending, m.Status == Pending)
}

// baseline is Finish.Previous for r.
func baseline(tx *bolt.Tx, r *Run) (*Run, error) {
	var names []string
	for _, name := range r.Planned {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for i := range r.Images {
		if !slices.Contains(names, r.Images[i].Name) {
			names = append(names, r.Images[i].Name)
		}
	}
	var (
		first *Run          // the newest earlier run, or night, compared with
		found []ImageResult // the last word on each of names
		whole bool          // first has exactly names
		last  = map[string]bool{}
	)
	// take considers an earlier run (or night) s, with status and the
	// outcome of each image; it reports whether every name has been met.
	take := func(s *Summary, status Status, images []ImageResult) bool {
		useful := len(names) == 0
		for _, im := range images {
			useful = useful || slices.Contains(names, im.Name) && !last[im.Name]
		}
		if first == nil && useful {
			first = &Run{ID: s.ID, Kind: s.Kind, Night: s.Night, Tag: s.Tag, Commit: s.Commit, Subject: s.Subject,
				Status: status, Started: s.Started}
			if !s.Finished.IsZero() {
				fin := s.Finished
				first.Finished = &fin
			}
			whole = len(images) == len(names)
			for _, im := range images {
				whole = whole && slices.Contains(names, im.Name)
			}
		}
		for _, im := range images {
			if slices.Contains(names, im.Name) && !last[im.Name] {
				last[im.Name] = true
				found = append(found, im)
			}
		}
		return len(names) == 0 || len(found) == len(names)
	}
	if err := earlier(tx, r, take); err != nil || first == nil {
		return nil, err
	}
	first.Images = found
	switch {
	case len(names) == 0 || whole && len(found) == len(names):
		// The same images: the run's own status, as before it had images.
	case len(found) == 0:
		return nil, nil // nothing to compare with
	default:
		first.Status = Succeeded
		for _, im := range found {
			switch im.Status {
			case Failed, Skipped:
				first.Status = Failed
			case Interrupted:
				if first.Status == Succeeded {
					first.Status = Interrupted
				}
			}
		}
	}
	return first, nil
}

// earlier calls take with the finished runs before r that r is compared
// with, newest first, until take returns true: for a validation run the
// nights before its own, for any other run the runs of its kind.
func earlier(tx *bolt.Tx, r *Run, take func(s *Summary, status Status, images []ImageResult) bool) error {
	b := tx.Bucket(bucketSummaries)
	d := newDecoder()
	own, err := nightOf(b, itob(r.ID), b.Get(itob(r.ID))) // r's summary is written before its messages
	if err != nil {
		return err
	}
	pending := map[uint64][]Summary{} // validation runs newest first, by night
	c := b.Cursor()
	for k, v := seekBefore(c, r.ID); k != nil; k, v = c.Prev() {
		id := btoi(k)
		kind, _, err := peekNight(v)
		if err != nil {
			return fmt.Errorf("summary of run %d: %w", id, err)
		}
		if r.Kind != KindValidate {
			if kind != r.Kind {
				continue
			}
			s, err := d.summary(v)
			if err != nil {
				return fmt.Errorf("summary of run %d: %w", id, err)
			}
			if !s.Status.Done() {
				continue
			}
			images := make([]ImageResult, len(s.Images))
			for i := range s.Images {
				images[i] = ImageResult{Name: s.Images[i].Name, Status: s.Images[i].Status}
			}
			if take(&s, s.Status, images) {
				return nil
			}
			continue
		}
		night, err := nightOf(b, k, v)
		if err != nil {
			return err
		}
		if night >= own {
			continue // r's own night, or a later one
		}
		s, err := d.summary(v)
		if err != nil {
			return fmt.Errorf("summary of run %d: %w", id, err)
		}
		if night != id {
			if s.Status.Done() {
				pending[night] = append(pending[night], s)
			}
			continue
		}
		vals := pending[id]
		slices.Reverse(vals)
		delete(pending, id)
		n := Night{Run: s, Validations: vals}
		if n.Running() {
			continue
		}
		names := n.Names()
		images := make([]ImageResult, 0, len(names))
		for _, name := range names {
			im, _ := n.Image(name)
			images = append(images, ImageResult{Name: name, Status: im.Status()})
		}
		if take(&n.Run, n.Status(), images) {
			return nil
		}
	}
	return nil
}
