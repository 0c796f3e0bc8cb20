package store

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Night is what people see as one night: a nightly run, and the runs that
// validated its images afterwards (nightshift validate --run N, the second
// stage of a two-job Jenkins setup). A run that belongs to no nightly run
// (an ensure; a validation of a tag no nightly run recorded) is a night of
// its own.
type Night struct {
	Run         Summary
	Validations []Summary // oldest first
}

// ID is the night's: its run's.
func (n *Night) ID() uint64 { return n.Run.ID }

// last is the night's latest word: its newest validation run, or its run.
func (n *Night) last() *Summary {
	if len(n.Validations) > 0 {
		return &n.Validations[len(n.Validations)-1]
	}
	return &n.Run
}

// Running reports whether a run of the night is still running.
func (n *Night) Running() bool {
	if n.Run.Status == Running {
		return true
	}
	for i := range n.Validations {
		if n.Validations[i].Status == Running {
			return true
		}
	}
	return false
}

// Names lists the night's images: its run's in the run's order, then those
// that only a validation run has.
func (n *Night) Names() []string {
	names := make([]string, 0, len(n.Run.Images))
	for i := range n.Run.Images {
		names = append(names, n.Run.Images[i].Name)
	}
	for i := range n.Validations {
		for j := range n.Validations[i].Images {
			if name := n.Validations[i].Images[j].Name; !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

// Image is image name in the night; ok is false if no run of the night
// has it.
func (n *Night) Image(name string) (im NightImage, ok bool) {
	im = NightImage{Name: name, Build: n.Run.Image(name)}
	for i := len(n.Validations) - 1; i >= 0; i-- {
		if c := n.Validations[i].Image(name); c != nil {
			im.Check, im.CheckRun = c, &n.Validations[i]
			break
		}
	}
	return im, im.Build != nil || im.Check != nil
}

// Status is the night's outcome: its latest word, unless an image's
// outcome is worse.
func (n *Night) Status() Status {
	if n.Running() {
		return Running
	}
	status := n.last().Status
	if status != Succeeded {
		return status
	}
	for _, name := range n.Names() {
		im, _ := n.Image(name)
		switch im.Status() {
		case Failed, Skipped:
			return Failed
		case Interrupted:
			status = Interrupted
		}
	}
	return status
}

// NightImage is one image in one night: its record in the night's run, and
// in the newest validation run of the night that has it.
type NightImage struct {
	Name     string
	Build    *ImageSummary // in the night's run; nil if only a validation run has it
	Check    *ImageSummary // in the newest validation run that has it; nil if none
	CheckRun *Summary      // that validation run
}

// checked reports whether the validation run has the last word: it
// validated what the night's run pushed.
func (im *NightImage) checked() bool {
	return im.Check != nil && (im.Build == nil || im.Build.Status == Succeeded || im.Build.Digest != "")
}

// Decisive is the record that decides the image's outcome in the night,
// and its run: the validation run's when it validated what was pushed,
// else the night's run's.
func (im *NightImage) Decisive(n *Night) (*ImageSummary, *Summary) {
	if im.checked() {
		return im.Check, im.CheckRun
	}
	return im.Build, &n.Run
}

// Status is the image's outcome in the night: built and, when a validation
// run validated it, its verdict.
func (im *NightImage) Status() Status {
	if im.checked() {
		return im.Check.Status
	}
	if im.Build != nil {
		return im.Build.Status
	}
	return ""
}

// Validation is the night's verdict on the image's validation: Succeeded,
// Failed (or another status when it did not finish), Skipped when it had
// nothing to test; "" when the night did not validate it.
func (im *NightImage) Validation() Status {
	switch {
	case im.checked() && im.Check.Status == Succeeded && im.Check.Validation != "":
		return im.Check.Validation
	case im.checked() && im.Check.Status == Succeeded && !im.Check.Validated:
		return Skipped
	case im.checked():
		return im.Check.Status
	case im.Build != nil:
		return im.Build.Validation
	}
	return ""
}

// Validated reports whether the image was validated in the night.
func (im *NightImage) Validated() bool {
	if im.checked() {
		return im.Check.Status == Succeeded && (im.Check.Validated || im.Check.Validation == Succeeded)
	}
	return im.Build != nil && im.Build.Validated
}

// History is the store's nights as of one Version.
type History struct {
	Nights  []Night // newest first
	Total   int     // how many nights the store holds
	Version uint64
}

// History returns up to limit nights (limit <= 0: all), newest first, in
// one read transaction.
func (db *DB) History(limit int) (History, error) {
	var h History
	err := db.bolt.View(func(tx *bolt.Tx) error {
		h.Version = uint64(tx.ID())
		b := tx.Bucket(bucketSummaries)
		d := newDecoder()
		pending := map[uint64][]Summary{} // validation runs newest first, by night
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			night, err := nightOf(b, k, v)
			if err != nil {
				return err
			}
			own := night == btoi(k)
			if own {
				h.Total++
			}
			if limit > 0 && len(h.Nights) >= limit {
				continue // counting only
			}
			s, err := d.summary(v)
			if err != nil {
				return fmt.Errorf("summary of run %d: %w", btoi(k), err)
			}
			if !own {
				pending[night] = append(pending[night], s)
				continue
			}
			vals := pending[s.ID]
			slices.Reverse(vals)
			delete(pending, s.ID)
			h.Nights = append(h.Nights, Night{Run: s, Validations: vals})
		}
		return nil
	})
	return h, err
}

// nightOf is the night of the run whose summary v is stored under key k:
// for a validation run, the run it names as its night if that is recorded
// and no validation run itself; for any other run, the run's own id.
func nightOf(b *bolt.Bucket, k, v []byte) (uint64, error) {
	kind, night, err := peekNight(v)
	if err != nil {
		return 0, fmt.Errorf("summary of run %d: %w", btoi(k), err)
	}
	if kind != KindValidate || night == 0 || night >= btoi(k) {
		return btoi(k), nil
	}
	nv := b.Get(itob(night))
	if nv == nil {
		return btoi(k), nil // its night is gone
	}
	if nk, _, err := peekNight(nv); err != nil || nk == KindValidate {
		return btoi(k), err
	}
	return night, nil
}

// Night returns the night run id belongs to: its own, or for a validation
// run the night of the run it validated.
func (db *DB) Night(id uint64) (Night, error) {
	var n Night
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSummaries)
		v := b.Get(itob(id))
		if v == nil {
			return fmt.Errorf("run %d: %w", id, ErrNotFound)
		}
		night, err := nightOf(b, itob(id), v)
		if err != nil {
			return err
		}
		d := newDecoder()
		if n.Run, err = d.summary(b.Get(itob(night))); err != nil {
			return fmt.Errorf("summary of run %d: %w", night, err)
		}
		c := b.Cursor()
		c.Seek(itob(night))
		for k, v := c.Next(); k != nil; k, v = c.Next() {
			of, err := nightOf(b, k, v)
			if err != nil {
				return err
			}
			if of != night {
				continue
			}
			s, err := d.summary(v)
			if err != nil {
				return fmt.Errorf("summary of run %d: %w", btoi(k), err)
			}
			n.Validations = append(n.Validations, s)
		}
		return nil
	})
	return n, err
}
