package web

import (
	"bytes"
	"encoding/json"
	"sync"

	"nightshift/store"
)

// runCache keeps every run of the store decoded, because decoding a year of
// runs (365 JSON records of 30 images) costs about 85 ms and the dashboard,
// the API and each metrics scrape all read them. A request checks the
// store's Version (one read transaction); only when it moved does the cache
// rescan, and then it decodes only the records whose checksum changed
// (during a night: the run going on).
type runCache struct {
	db *store.DB

	mu   sync.Mutex // held through a refresh, so concurrent requests decode once
	snap *snapshot  // nil until the first get
}

// snapshot is the store's runs at one version. Everything in it is shared
// by the requests that read it and must not be modified.
type snapshot struct {
	version uint64
	runs    []store.Run // newest first
	entries []*entry    // runs[i] is entries[i].run
	index   map[uint64]int

	mu    sync.Mutex
	memos map[string][]byte // answers derived from this snapshot alone
}

// entry is one decoded record, kept across snapshots while its checksum
// stays the same, with its JSON encoding made when first asked for.
type entry struct {
	run  store.Run
	sum  uint64
	once sync.Once
	json []byte
	err  error
}

func (e *entry) encoded() ([]byte, error) {
	e.once.Do(func() { e.json, e.err = json.Marshal(e.run) })
	return e.json, e.err
}

// maxMemos bounds the answers a snapshot keeps: people and scripts ask for
// a few pages and limits over and over; anything else is built each time.
const maxMemos = 16

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
	next := &snapshot{index: map[uint64]int{}, memos: map[string][]byte{}}
	if old != nil {
		next.runs = make([]store.Run, 0, len(old.runs)+1)
		next.entries = make([]*entry, 0, len(old.runs)+1)
	}
	next.version, err = c.db.ScanRuns(0, func(id, sum uint64, decode func() (store.Run, error)) error {
		if old != nil {
			if i, ok := old.index[id]; ok && old.entries[i].sum == sum {
				next.add(old.entries[i])
				return nil
			}
		}
		r, err := decode()
		if err != nil {
			return err
		}
		r.ID = id
		next.add(&entry{run: r, sum: sum})
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.snap = next
	return next, nil
}

func (s *snapshot) add(e *entry) {
	s.index[e.run.ID] = len(s.runs)
	s.runs = append(s.runs, e.run)
	s.entries = append(s.entries, e)
}

// run returns run id, or nil.
func (s *snapshot) run(id uint64) *store.Run {
	i, ok := s.index[id]
	if !ok {
		return nil
	}
	return &s.runs[i]
}

// newest returns up to n runs, newest first; n <= 0 means all.
func (s *snapshot) newest(n int) []store.Run {
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

// runsJSON is the JSON array of the newest limit runs. Each run is encoded
// once for as long as its record does not change, so that even while a
// night records stage after stage, an answer costs one run's encoding.
func (s *snapshot) runsJSON(limit int) ([]byte, error) {
	n := min(limit, len(s.runs))
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, e := range s.entries[:n] {
		b, err := e.encoded()
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}
