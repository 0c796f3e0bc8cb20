package store

import (
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RecentNights is how many nights, the finishing run's own included, a
// summary looks back over for a failure that recurs.
const RecentNights = 7

// Recurrence is a failure that recurs: seen on Seen of the last Of nights.
type Recurrence struct {
	Seen int `json:"seen"`
	Of   int `json:"of"`
}

// Occurrence is one night in which an image failed with a signature: the
// run of the night that failed so, and whether its logs were pruned.
type Occurrence struct {
	Night  uint64
	Run    uint64
	When   time.Time // the night's start
	Pruned bool
}

// Failure is one signature of an image's failures and every night it
// occurred, newest first.
type Failure struct {
	Signature Signature
	Nights    []Occurrence
}

// Failures returns the signatures of image name's failures, the most
// recent first, each with every night it occurred.
func (db *DB) Failures(name string) ([]Failure, error) {
	var out []Failure
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nights, err := nightsThrough(tx, 0, 0)
		out = FailuresIn(nights, name)
		return err
	})
	return out, err
}

// FailuresIn is Failures over nights (newest first), for a reader that
// has them already.
func FailuresIn(nights []Night, name string) []Failure {
	var out []Failure
	at := map[string]int{} // signature id -> index in out
	for i := range nights {
		n := &nights[i]
		for _, o := range n.signatures(name) {
			j, ok := at[o.sig.ID]
			if !ok {
				j = len(out)
				at[o.sig.ID] = j
				out = append(out, Failure{Signature: o.sig})
			}
			out[j].Nights = append(out[j].Nights, Occurrence{Night: n.ID(), Run: o.run.ID, When: n.Run.Started, Pruned: o.run.Pruned})
		}
	}
	return out
}

type nightSignature struct {
	sig Signature
	run *Summary
}

// signatures are image name's failure signatures in the night, each once,
// with the first run of the night that failed so.
func (n *Night) signatures(name string) []nightSignature {
	var out []nightSignature
	add := func(s *Summary) {
		im := s.Image(name)
		if im == nil || im.Signature.ID == "" {
			return
		}
		if !slices.ContainsFunc(out, func(o nightSignature) bool { return o.sig.ID == im.Signature.ID }) {
			out = append(out, nightSignature{im.Signature, s})
		}
	}
	add(&n.Run)
	for i := range n.Validations {
		add(&n.Validations[i])
	}
	return out
}

// recurring is Finish.Recurring for r: for each of r's failed images whose
// signature was seen on another of the last RecentNights nights (r's own
// included), how often.
func recurring(tx *bolt.Tx, r *Run) (map[string]Recurrence, error) {
	b := tx.Bucket(bucketSummaries)
	own, err := nightOf(b, itob(r.ID), b.Get(itob(r.ID))) // r's summary is written before its messages
	if err != nil {
		return nil, err
	}
	var nights []Night
	out := map[string]Recurrence{}
	for i := range r.Images {
		sig, ok := SignatureOf(&r.Images[i])
		if !ok {
			continue
		}
		if nights == nil {
			if nights, err = nightsThrough(tx, own, RecentNights); err != nil {
				return nil, err
			}
		}
		rec := Recurrence{Of: len(nights)}
		for j := range nights {
			if slices.ContainsFunc(nights[j].signatures(r.Images[i].Name), func(o nightSignature) bool { return o.sig.ID == sig.ID }) {
				rec.Seen++
			}
		}
		if rec.Seen > 1 {
			out[r.Images[i].Name] = rec
		}
	}
	return out, nil
}

// nightsThrough returns up to limit nights (limit <= 0: all) up to and
// including night through (0: the newest), newest first. A validation run
// of a night is part of it, whenever it ran.
func nightsThrough(tx *bolt.Tx, through uint64, limit int) ([]Night, error) {
	var out []Night
	b := tx.Bucket(bucketSummaries)
	d := newDecoder()
	pending := map[uint64][]Summary{} // validation runs newest first, by night
	c := b.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if limit > 0 && len(out) >= limit {
			break
		}
		night, err := nightOf(b, k, v)
		if err != nil {
			return nil, err
		}
		if through != 0 && night > through {
			continue
		}
		s, err := d.summary(v)
		if err != nil {
			return nil, fmt.Errorf("summary of run %d: %w", btoi(k), err)
		}
		if night != btoi(k) {
			pending[night] = append(pending[night], s)
			continue
		}
		vals := pending[s.ID]
		slices.Reverse(vals)
		delete(pending, s.ID)
		out = append(out, Night{Run: s, Validations: vals})
	}
	return out, nil
}
