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

	now func() time.Time // when a kept answer was last used; tests move it
}

// snapshot is the store's runs at one version. It is shared by the
// requests that read it: nothing in it changes but what mu guards.
type snapshot struct {
	version uint64
	runs    []*runSummary // newest first

	mu    sync.Mutex
	memos map[string][]byte // answers derived from this snapshot alone

	// jsonMu guards answer and encodes. It is held through building an
	// answer, so that requests at once encode once, without holding up
	// the pages' memos meanwhile.
	jsonMu sync.Mutex
	// answer is the JSON of the newest runs as GET /api/v1/runs gives them,
	// the most runs asked for so far: a smaller limit is served from its
	// start. Until this snapshot makes one, it is the previous snapshot's,
	// whose runs that did not change need no encoding again.
	answer *runsAnswer
	// encodes counts the runs encoded for answers, for tests.
	encodes int
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

// keepJSON is how many of the newest runs keep their JSON from snapshot to
// snapshot once asked for: those of GET /api/v1/runs by default.
const keepJSON = defaultAPIRuns

// keepAllJSON is how long the JSON of runs beyond the newest keepJSON is
// kept after the last request that asked for them: a script polling a
// year of runs gets it in milliseconds, while a daemon asked once gives
// the megabytes back (9 MB for a year of 30 images).
const keepAllJSON = 10 * time.Minute

func newRunCache(db *store.DB) *runCache { return &runCache{db: db, now: time.Now} }

// get returns the runs as they are now recorded.
func (c *runCache) get() (*snapshot, error) {
	v, err := c.db.Version()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap
	// jsonMu may be held through a store scan building a large answer:
	// never wait for it under c.mu, which every page takes. Trimming can
	// wait for a later request; carrying the answer over waits aside.
	if old != nil && old.version == v {
		if old.jsonMu.TryLock() {
			old.answer = old.answer.trimmed(c.now())
			old.jsonMu.Unlock()
		}
		return old, nil
	}
	next := &snapshot{memos: map[string][]byte{}}
	known := map[uint64]int{} // id -> index in old.runs
	if old != nil {
		next.runs = make([]*runSummary, 0, len(old.runs)+1)
		for i, r := range old.runs {
			known[r.ID] = i
		}
		now := c.now()
		if old.jsonMu.TryLock() {
			next.carry(old, now)
			old.jsonMu.Unlock()
		} else {
			// old is building an answer: the JSON requests of next wait
			// for it and take it, the pages do not.
			next.jsonMu.Lock()
			go func() {
				old.jsonMu.Lock()
				next.carry(old, now)
				old.jsonMu.Unlock()
				next.jsonMu.Unlock()
			}()
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
	c.snap = next
	return next, nil
}

// carry takes old's answer, trimmed at now, as s's first; the caller holds
// both snapshots' jsonMu.
func (s *snapshot) carry(old *snapshot, now time.Time) {
	if a := old.answer.trimmed(now); a != nil {
		carried := *a // its own used, guarded by s.jsonMu
		s.answer = &carried
	}
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

// runsAnswer is a JSON array of runs, newest first, as GET /api/v1/runs
// answers it, and where each run's JSON lies in it: the answer for fewer
// runs is its start, and a later snapshot takes from it the JSON of the
// runs that did not change.
type runsAnswer struct {
	body []byte        // "[" run "," run ... "]"
	ends []int         // run i is body[start(i):ends[i]]
	runs []*runSummary // what run i was made from
	used time.Time     // when it last answered more than keepJSON runs
}

func (a *runsAnswer) part(i int) []byte {
	start := 1
	if i > 0 {
		start = a.ends[i-1] + 1
	}
	return a.body[start:a.ends[i]]
}

// head is the array of the newest n runs without its closing bracket. Its
// capacity ends with it, so that appending to it copies.
func (a *runsAnswer) head(n int) []byte {
	end := 1
	if n > 0 {
		end = a.ends[n-1]
	}
	return a.body[:end:end]
}

// serves reports whether a holds the JSON of runs as they are.
func (a *runsAnswer) serves(runs []*runSummary) bool {
	if a == nil || len(a.runs) < len(runs) {
		return false
	}
	for i, r := range runs {
		if a.runs[i] != r {
			return false
		}
	}
	return true
}

// trimmed is a, or a copy of its newest keepJSON runs if nothing asked for
// more within keepAllJSON before now.
func (a *runsAnswer) trimmed(now time.Time) *runsAnswer {
	if a == nil || len(a.runs) <= keepJSON || now.Sub(a.used) < keepAllJSON {
		return a
	}
	n := keepJSON
	return &runsAnswer{
		body: append(append([]byte(nil), a.head(n)...), ']'),
		ends: slices.Clone(a.ends[:n]),
		runs: slices.Clone(a.runs[:n]),
	}
}

// runsJSON is the JSON array of the newest limit runs without its closing
// bracket (the caller writes it). The array of the most runs asked for is
// kept, so that asking again costs no encoding; when the store moves, the
// next snapshot encodes again only the runs whose records changed.
func (s *snapshot) runsJSON(db *store.DB, limit int, now time.Time) ([]byte, error) {
	n := min(limit, len(s.runs))
	s.jsonMu.Lock()
	defer s.jsonMu.Unlock()
	a := s.answer
	if !a.serves(s.runs[:n]) {
		// Make at least as many runs as the answer kept: a smaller limit
		// must not cost a poller of a larger one its JSON.
		size, used := n, time.Time{}
		if a != nil {
			size, used = max(n, min(len(a.runs), len(s.runs))), a.used
		}
		var err error
		if a, err = s.build(db, a, size); err != nil {
			return nil, err
		}
		a.used = used
		if a.runs == nil {
			// The store moved since this snapshot: answer what it now
			// holds, but keep nothing that describes other records.
			return a.head(min(n, len(a.ends))), nil
		}
		s.answer = a
	}
	if n > keepJSON {
		a.used = now
	}
	return a.head(n), nil
}

// build makes the answer for the newest n runs, with the JSON of from for
// runs whose records it was made from, and the others encoded from their
// records read in one transaction. Its runs are nil if the store no longer
// holds the snapshot's n newest runs as the snapshot saw them.
func (s *snapshot) build(db *store.DB, from *runsAnswer, n int) (*runsAnswer, error) {
	have := map[uint64]int{} // id -> run in from
	if from != nil {
		for i, r := range from.runs {
			have[r.ID] = i
		}
	}
	parts := make([][]byte, 0, n)
	same := true // parts are of the records s.runs[:n] were made from
	for _, r := range s.runs[:n] {
		i, ok := have[r.ID]
		if !ok || from.runs[i] != r {
			same = false
			break
		}
		parts = append(parts, from.part(i))
	}
	if !same && n > 0 { // ScanRuns(0) would read them all
		parts, same = parts[:0], true
		_, err := db.ScanRuns(n, func(id, sum uint64, decode func() (store.Run, error)) error {
			i := len(parts)
			same = same && i < len(s.runs) && s.runs[i].ID == id && s.runs[i].sum == sum
			if j, ok := have[id]; ok && from.runs[j].sum == sum {
				parts = append(parts, from.part(j))
				return nil
			}
			r, err := decode()
			if err != nil {
				return err
			}
			r.ID = id
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			s.encodes++
			parts = append(parts, b)
			return nil
		})
		if err != nil {
			return nil, err
		}
		same = same && len(parts) == n
	}
	size := 2 + len(parts)
	for _, b := range parts {
		size += len(b)
	}
	a := &runsAnswer{body: make([]byte, 0, size), ends: make([]int, 0, len(parts))}
	a.body = append(a.body, '[')
	for i, b := range parts {
		if i > 0 {
			a.body = append(a.body, ',')
		}
		a.body = append(a.body, b...)
		a.ends = append(a.ends, len(a.body))
	}
	a.body = append(a.body, ']')
	if same {
		a.runs = s.runs[:n:n]
	}
	return a, nil
}
