package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Summary is what the pages that read many runs need of one (the
// dashboard's matrix, an image's history, the metrics): no stages, tags,
// refs, tails or tests. The store writes it with its run, in the same
// transaction, so that reading a year of runs decodes summaries, not
// records.
type Summary struct {
	ID       uint64
	Kind     string
	Night    uint64 // as Run.Night
	Tag      string
	Commit   string
	Subject  string
	Status   Status
	Started  time.Time
	Finished time.Time // zero while running
	Pruned   bool      // retention pruned the run: its logs are gone
	Images   []ImageSummary
}

// ImageSummary is one image of a Summary.
type ImageSummary struct {
	Name     string
	Status   Status
	Started  time.Time // zero if it never started
	Finished time.Time // zero while running
	// Tested is when its tests began, zero if none ran: what came before
	// (build, push, verify, tag) is its build.
	Tested     time.Time
	Digest     string
	Error      string
	Validation Status // of its Validation, "" when the run validated nothing
	Validated  bool   // see ImageResult.Validated
	// Signature is a failed image's (SignatureOf); zero otherwise.
	Signature Signature
}

// BuildTime is how long the image took to build, push, verify and tag,
// without its tests, or has taken so far at now.
func (im *ImageSummary) BuildTime(now time.Time) time.Duration {
	switch {
	case im.Started.IsZero():
		return 0
	case !im.Tested.IsZero():
		return im.Tested.Sub(im.Started)
	case !im.Finished.IsZero():
		return im.Finished.Sub(im.Started)
	}
	return now.Sub(im.Started)
}

// Image returns the summary of image name, or nil.
func (s *Summary) Image(name string) *ImageSummary {
	for i := range s.Images {
		if s.Images[i].Name == name {
			return &s.Images[i]
		}
	}
	return nil
}

// Validated reports whether im was validated: its validation passed, or it
// carries a <tag>-validated tag.
func (im *ImageResult) Validated() bool {
	if im.Validation != nil && im.Validation.Status == Succeeded {
		return true
	}
	for _, t := range im.Tags {
		if strings.HasSuffix(t, "-validated") {
			return true
		}
	}
	return false
}

var bucketSummaries = []byte("summaries") // run id -> its Summary, encoded by appendSummary

func summarize(r *Run) Summary {
	s := Summary{ID: r.ID, Kind: r.Kind, Night: r.Night, Tag: r.Tag, Commit: r.Commit, Subject: r.Subject,
		Status: r.Status, Started: r.Started, Pruned: r.Pruned != nil, Images: make([]ImageSummary, len(r.Images))}
	if r.Finished != nil {
		s.Finished = *r.Finished
	}
	for i := range r.Images {
		im := &r.Images[i]
		is := &s.Images[i]
		*is = ImageSummary{Name: im.Name, Status: im.Status, Digest: im.Digest, Error: im.Error, Validated: im.Validated()}
		if im.Started != nil {
			is.Started = *im.Started
		}
		if im.Finished != nil {
			is.Finished = *im.Finished
		}
		if st := im.Stage("test"); st != nil {
			is.Tested = st.Started
		}
		if im.Validation != nil {
			is.Validation = im.Validation.Status
		}
		is.Signature, _ = SignatureOf(im)
	}
	return s
}

func putSummary(tx *bolt.Tx, r *Run) error {
	s := summarize(r)
	return tx.Bucket(bucketSummaries).Put(itob(r.ID), appendSummary(nil, &s))
}

// summaryFormat is the first byte of an encoded summary. Summaries are
// derived from records: a schema step that changes the format writes them
// again from the records.
const summaryFormat = 2

// appendSummary encodes s. Kind and Night come first, so that a reader
// can tell which night a summary belongs to without decoding the rest
// (peekNight). Strings are a length and bytes; times are Unix seconds,
// nanoseconds and the zone's offset, so that a decoded time prints as the
// record's does.
func appendSummary(b []byte, s *Summary) []byte {
	b = append(b, summaryFormat)
	b = appendString(b, s.Kind)
	b = binary.AppendUvarint(b, s.Night)
	b = binary.AppendUvarint(b, s.ID)
	for _, str := range []string{s.Tag, s.Commit, s.Subject, string(s.Status)} {
		b = appendString(b, str)
	}
	b = appendTime(b, s.Started)
	b = appendTime(b, s.Finished)
	var flags byte
	if s.Pruned {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(s.Images)))
	for i := range s.Images {
		im := &s.Images[i]
		b = appendString(b, im.Name)
		b = appendString(b, string(im.Status))
		b = appendTime(b, im.Started)
		b = appendTime(b, im.Finished)
		b = appendTime(b, im.Tested)
		b = appendString(b, im.Digest)
		b = appendString(b, im.Error)
		b = appendString(b, string(im.Validation))
		var flags byte
		if im.Validated {
			flags |= 1
		}
		b = append(b, flags)
		b = appendString(b, im.Signature.ID)
		b = appendString(b, im.Signature.Text)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	_, offset := t.Zone()
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(offset))
}

// decoder decodes summaries. It keeps one copy of the strings that repeat
// from run to run (kinds, statuses, image names, errors) and one location
// per zone offset, for all the summaries it decodes.
type decoder struct {
	strings map[string]string
	zones   map[int]*time.Location
}

func newDecoder() *decoder {
	return &decoder{strings: map[string]string{}, zones: map[int]*time.Location{}}
}

var errShort = errors.New("summary ends early")

// reader is one encoded summary being decoded; its first error sticks.
type reader struct {
	b   []byte
	err error
	d   *decoder
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < n {
		r.err = errShort
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// string decodes a string that is likely to repeat: one copy is kept.
func (r *reader) string() string {
	b := r.bytes()
	if s, ok := r.d.strings[string(b)]; ok {
		return s
	}
	s := string(b)
	r.d.strings[s] = s
	return s
}

// unique decodes a string that does not repeat.
func (r *reader) unique() string { return string(r.bytes()) }

func (r *reader) time() time.Time {
	if r.byte() == 0 {
		return time.Time{}
	}
	sec, nsec, offset := r.varint(), r.uvarint(), int(r.varint())
	loc, ok := r.d.zones[offset]
	if !ok {
		loc = time.UTC
		if offset != 0 {
			loc = time.FixedZone("", offset)
		}
		r.d.zones[offset] = loc
	}
	return time.Unix(sec, int64(nsec)).In(loc)
}

func (d *decoder) summary(b []byte) (Summary, error) {
	r := &reader{b: b, d: d}
	if f := r.byte(); f != summaryFormat {
		return Summary{}, fmt.Errorf("summary format %d, want %d", f, summaryFormat)
	}
	s := Summary{Kind: r.string(), Night: r.uvarint(), ID: r.uvarint()}
	s.Tag, s.Commit, s.Subject, s.Status = r.unique(), r.unique(), r.unique(), Status(r.string())
	s.Started, s.Finished = r.time(), r.time()
	s.Pruned = r.byte()&1 != 0
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) { // every image takes bytes
		r.err = errShort
	}
	if r.err != nil {
		return Summary{}, r.err
	}
	s.Images = make([]ImageSummary, n)
	for i := range s.Images {
		im := &s.Images[i]
		im.Name, im.Status = r.string(), Status(r.string())
		im.Started, im.Finished, im.Tested = r.time(), r.time(), r.time()
		im.Digest, im.Error, im.Validation = r.unique(), r.string(), Status(r.string())
		im.Validated = r.byte()&1 != 0
		im.Signature = Signature{ID: r.string(), Text: r.string()}
	}
	if r.err != nil {
		return Summary{}, r.err
	}
	return s, nil
}

// peekNight reads the kind and night of an encoded summary.
func peekNight(b []byte) (kind string, night uint64, err error) {
	r := &reader{b: b}
	if f := r.byte(); f != summaryFormat {
		return "", 0, fmt.Errorf("summary format %d, want %d", f, summaryFormat)
	}
	k := r.bytes()
	night = r.uvarint()
	if r.err != nil {
		return "", 0, r.err
	}
	switch string(k) { // no allocation for the kinds there are
	case KindNightly:
		kind = KindNightly
	case KindValidate:
		kind = KindValidate
	default:
		kind = string(k)
	}
	return kind, night, nil
}

// Summaries returns the summaries of up to limit runs (limit <= 0: all),
// newest first, and the store's Version they are of.
func (db *DB) Summaries(limit int) ([]Summary, uint64, error) {
	var (
		out     []Summary
		version uint64
	)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		version = uint64(tx.ID())
		d := newDecoder()
		c := tx.Bucket(bucketSummaries).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			s, err := d.summary(v)
			if err != nil {
				return fmt.Errorf("summary of run %d: %w", btoi(k), err)
			}
			out = append(out, s)
		}
		return nil
	})
	return out, version, err
}

// RunsJSON is the JSON array of up to limit runs (limit <= 0: all), newest
// first, as Runs would return them encoded, and the store's Version it is
// of. The records are copied as stored, without decoding: a record is
// stored as its Run encodes.
func (db *DB) RunsJSON(limit int) ([]byte, uint64, error) {
	var (
		out     []byte
		version uint64
	)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		version = uint64(tx.ID())
		c := tx.Bucket(bucketRuns).Cursor()
		// The answer is copied out of the transaction, not written to a
		// client inside it: a slow client must not hold the file's mapping.
		size, n := 2, 0
		for k, v := c.Last(); k != nil && (limit <= 0 || n < limit); k, v = c.Prev() {
			size += len(v) + 1
			n++
		}
		out = make([]byte, 0, size)
		out = append(out, '[')
		i := 0
		for k, v := c.Last(); k != nil && i < n; k, v = c.Prev() {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, v...)
			i++
		}
		out = append(out, ']')
		return nil
	})
	return out, version, err
}
