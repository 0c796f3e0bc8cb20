package web

import (
	"encoding/json"
	"slices"
	"sync"
	"time"
	"unique"

	"nightshift/store"
)

// runCache keeps a summary of every run of the store: what the pages that
// read many runs (the dashboard's matrix, an image's history, the metrics)
// need of each, because decoding a year of runs (365 JSON records of 30
// images) costs about 85 ms. Only summaries are kept, not the records: a
// year of records decoded takes some 13 MB, its summaries a fifth of that.
// A page about one run reads its record from the store. A request checks
// the store's Version (one read transaction); only when it moved does the
// cache rescan, and then it decodes only the records whose checksum changed
// (during a night: the run going on).
type runCache struct {
	db *store.DB

	mu   sync.Mutex // held through a refresh, so concurrent requests decode once
	snap *snapshot  // nil until the first get
}

// snapshot is the store's runs at one version. It is shared by the
// requests that read it: nothing in it changes but what mu guards.
type snapshot struct {
	version uint64
	runs    []*runSummary // newest first

	mu    sync.Mutex
	memos map[string][]byte // answers derived from this snapshot alone
	// encoded is the JSON of runs[i] for i < keepJSON, nil until asked for.
	encoded [][]byte
}

// runSummary is what the pages that read many runs need of one: no stages,
// tags, refs, tails or notifications. Strings that repeat from run to run
// (image names, statuses, errors) are shared. The dashboard's template
// reads the exported fields.
type runSummary struct {
	ID      uint64
	Tag     string
	Commit  string
	Subject string
	Status  store.Status
	Started time.Time
	Images  []imageSummary

	sum uint64 // checksum of the record it was made from
}

// imageSummary is one image of a runSummary.
type imageSummary struct {
	Name              string
	Status            store.Status
	Started, Finished *time.Time
	Digest            string
	Error             string
	validated         bool
}

func summarize(id, sum uint64, r *store.Run) *runSummary {
	s := &runSummary{
		ID: id, Tag: r.Tag, Commit: r.Commit, Subject: r.Subject, Status: intern(r.Status),
		Started: r.Started, Images: make([]imageSummary, len(r.Images)), sum: sum,
	}
	for i := range r.Images {
		im := &r.Images[i]
		s.Images[i] = imageSummary{
			Name: intern(im.Name), Status: intern(im.Status), Started: im.Started, Finished: im.Finished,
			Digest: im.Digest, Error: intern(im.Error), validated: validated(im),
		}
	}
	return s
}

// intern returns the one copy of s that the process keeps while it is used.
func intern[S ~string](s S) S { return unique.Make(s).Value() }

// image returns the summary of image name, or nil.
func (r *runSummary) image(name string) *imageSummary {
	for i := range r.Images {
		if r.Images[i].Name == name {
			return &r.Images[i]
		}
	}
	return nil
}

func (im *imageSummary) badge() badge { return statusBadge(im.Status, im.validated) }

// duration is how long the image took, or has taken so far at now.
func (im *imageSummary) duration(now time.Time) time.Duration {
	return store.ImageResult{Started: im.Started, Finished: im.Finished}.Duration(now)
}

// maxMemos bounds the answers a snapshot keeps: people and scripts ask for
// a few pages and limits over and over; anything else is built each time.
const maxMemos = 16

// keepJSON is how many of the newest runs keep their JSON once asked for:
// those of GET /api/v1/runs by default. Older runs are encoded again from
// their records when asked, which is rare, rather than held forever.
const keepJSON = defaultAPIRuns

func newRunCache(db *store.DB) *runCache { return &runCache{db: db} }

// get returns the runs as they are now recorded.
func (c *runCache) get() (*snapshot, error) {
	v, err := c.db.Version()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap
	if old != nil && old.version == v {
		return old, nil
	}
	next := &snapshot{memos: map[string][]byte{}}
	known := map[uint64]int{} // id -> index in old.runs
	if old != nil {
		next.runs = make([]*runSummary, 0, len(old.runs)+1)
		for i, r := range old.runs {
			known[r.ID] = i
		}
	}
	next.version, err = c.db.ScanRuns(0, func(id, sum uint64, decode func() (store.Run, error)) error {
		if i, ok := known[id]; ok && old.runs[i].sum == sum {
			next.runs = append(next.runs, old.runs[i])
			return nil
		}
		r, err := decode()
		if err != nil {
			return err
		}
		next.runs = append(next.runs, summarize(id, sum, &r))
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Carry over the JSON of unchanged runs still among the newest.
	next.encoded = make([][]byte, min(len(next.runs), keepJSON))
	if old != nil {
		old.mu.Lock()
		for i := range next.encoded {
			if j, ok := known[next.runs[i].ID]; ok && j < len(old.encoded) && old.runs[j] == next.runs[i] {
				next.encoded[i] = old.encoded[j]
			}
		}
		old.mu.Unlock()
	}
	c.snap = next
	return next, nil
}

// newest returns up to n runs, newest first; n <= 0 means all.
func (s *snapshot) newest(n int) []*runSummary {
	if n <= 0 || n > len(s.runs) {
		return s.runs
	}
	return s.runs[:n]
}

// memo returns what build makes of this snapshot for key, building it once.
// Builders run under the lock: two requests for the same answer build it
// once, and an answer takes milliseconds.
func (s *snapshot) memo(key string, build func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.memos[key]; ok {
		return b, nil
	}
	b, err := build()
	if err != nil {
		return nil, err
	}
	if len(s.memos) < maxMemos {
		s.memos[key] = b
	}
	return b, nil
}

// runsJSON is the JSON array of the newest limit runs. The JSON of the
// newest keepJSON runs is kept for as long as their records do not change,
// so that even while a night records stage after stage, a default answer
// costs one run's decoding and encoding.
func (s *snapshot) runsJSON(db *store.DB, limit int) ([]byte, error) {
	parts := make([][]byte, min(limit, len(s.runs)))
	s.mu.Lock()
	copy(parts, s.encoded)
	s.mu.Unlock()
	if slices.ContainsFunc(parts, func(b []byte) bool { return b == nil }) {
		var err error
		if parts, err = s.encode(db, parts); err != nil {
			return nil, err
		}
	}
	size := 2 + len(parts)
	for _, b := range parts {
		size += len(b)
	}
	out := make([]byte, 0, size) // a year of runs is megabytes: no regrowing
	out = append(out, '[')
	for i, b := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	return append(out, ']'), nil
}

// encode completes parts, the JSON of the newest len(parts) runs, from their
// records read in one transaction. A part whose record changed since the
// snapshot is encoded again, and the result has fewer parts if runs were
// removed since.
func (s *snapshot) encode(db *store.DB, parts [][]byte) ([][]byte, error) {
	if len(parts) == 0 {
		return parts, nil // ScanRuns(0) would read them all
	}
	n := 0
	_, err := db.ScanRuns(len(parts), func(id, sum uint64, decode func() (store.Run, error)) error {
		i := n
		n++
		unchanged := s.runs[i].ID == id && s.runs[i].sum == sum
		if unchanged && parts[i] != nil {
			return nil
		}
		r, err := decode()
		if err != nil {
			return err
		}
		r.ID = id
		if parts[i], err = json.Marshal(r); err != nil {
			return err
		}
		if unchanged && i < len(s.encoded) {
			s.mu.Lock()
			s.encoded[i] = parts[i]
			s.mu.Unlock()
		}
		return nil
	})
	return parts[:n], err
}
