package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nightshift/store"
)

// notification is what the API and the dashboard say about one outbox
// message: its fate, never its payload (which may quote a run's logs to a
// private channel).
type notification struct {
	ID        uint64              `json:"id"`
	Notifier  string              `json:"notifier"`
	Status    store.MessageStatus `json:"status"`
	Attempts  int                 `json:"attempts"`
	LastError string              `json:"last_error,omitempty"`
	Created   time.Time           `json:"created"`
	Done      *time.Time          `json:"done,omitempty"`
}

// runDetail is GET /api/v1/runs/{id}: the run as stored, and its messages.
type runDetail struct {
	store.Run
	Notifications []notification `json:"notifications"`
}

// imageEntry is one image in one night, as the image's history shows it:
// its build in the night's run, and the night's verdict on it.
type imageEntry struct {
	RunID  uint64 `json:"run_id"` // the night's run
	Tag    string `json:"tag"`
	Commit string `json:"commit"`
	// Status is the image's outcome in the night: a failed validation, in
	// the night's run or in a validation run of its images, fails it.
	Status   store.Status `json:"status"`
	Started  *time.Time   `json:"started,omitempty"`
	Finished *time.Time   `json:"finished,omitempty"`
	// DurationSeconds is how long its build took (build, push, verify,
	// tag), without its tests.
	DurationSeconds float64 `json:"duration_seconds"`
	Digest          string  `json:"digest,omitempty"`
	Error           string  `json:"error,omitempty"`
	// Validation is the night's verdict on the image's validation, nil
	// when the night did not validate it.
	Validation *entryValidation `json:"validation,omitempty"`

	night *store.Night
	badge badge
}

// entryValidation is how a night's validation of an image went.
type entryValidation struct {
	RunID  uint64       `json:"run_id"` // the run that validated it: a validation run, or the night's own
	Status store.Status `json:"status"` // succeeded, failed, skipped (nothing to test), ...
}

// imageHistory is GET /api/v1/images/{name}.
type imageHistory struct {
	Name    string       `json:"name"`
	History []imageEntry `json:"history"` // newest first, one entry per night
	// LastGood is the newest night the image was good in (built, and
	// validated when validation is configured or the night validated it),
	// FirstBad the first night after it that it failed in: the commits
	// between them broke it.
	LastGood *imageEntry `json:"last_good,omitempty"`
	FirstBad *imageEntry `json:"first_bad,omitempty"`

	clocked bool // some entry is still running: durations depend on the clock
}

// runID is the {id} of the path, false if it is not a run id.
func runID(r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// imageName is the {name} of the path, false if it could not be an image's
// name. Names become file names under the log directory, so anything that
// is not a single plain path element is refused here already.
func imageName(r *http.Request) (string, bool) {
	name := r.PathValue("name")
	return name, validName(name)
}

// validName reports whether name is one plain file name element made of the
// characters image names have (config allows fewer).
func validName(name string) bool {
	if name == "" || len(name) > 255 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// queryInt reads a positive integer query parameter, def when absent.
func queryInt(r *http.Request, key string, def int) (int, error) {
	q := r.URL.Query().Get(key)
	if q == "" {
		return def, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive whole number", key, q)
	}
	return n, nil
}

func (s *server) apiRuns(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit", defaultAPIRuns)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	key := "runs " + strconv.Itoa(limit)
	if s.unchanged(w, r, key) {
		return
	}
	b, version, err := s.db.RunsJSON(limit)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("ETag", s.etag(version, key))
	writeJSONBytes(w, http.StatusOK, b)
}

func (s *server) apiRun(w http.ResponseWriter, r *http.Request) {
	id, ok := runID(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	run, notes, err := s.runWithNotes(id)
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runDetail{Run: *run, Notifications: notes})
}

// run reads run id in full from the store.
func (s *server) run(id uint64) (*store.Run, error) {
	run, err := s.db.Run(id)
	if err != nil {
		return nil, err
	}
	run.ID = id
	return run, nil
}

// runWithNotes reads run id and what became of its notifications.
func (s *server) runWithNotes(id uint64) (*store.Run, []notification, error) {
	run, err := s.run(id)
	if err != nil {
		return nil, nil, err
	}
	msgs, err := s.db.Messages(id)
	if err != nil {
		return nil, nil, err
	}
	notes := make([]notification, 0, len(msgs))
	for _, m := range msgs {
		notes = append(notes, notification{
			ID: m.ID, Notifier: m.Notifier, Status: m.Status, Attempts: m.Tries(),
			LastError: m.LastError, Created: m.Created, Done: m.Done,
		})
	}
	return run, notes, nil
}

// triggerAnswer is what POST /api/v1/runs answers an accepted trigger
// with: the run that carries it out, to follow.
type triggerAnswer struct {
	ID      uint64 `json:"id"`
	URL     string `json:"url"`
	Outcome string `json:"outcome"`
}

func (s *server) apiTrigger(w http.ResponseWriter, r *http.Request) {
	by, ok := s.authorized(w, r)
	if !ok {
		return
	}
	if s.control == nil {
		writeError(w, http.StatusServiceUnavailable, "this server cannot start runs")
		return
	}
	var req struct {
		Only   []string `json:"only"`
		Reason string   `json:"reason"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTriggerBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "body: want {\"only\": [image, ...], \"reason\": \"...\"}: "+err.Error())
		return
	}
	for _, name := range req.Only {
		if !validName(name) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("only: %q is not an image name", name))
			return
		}
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "api"
	}
	res, err := s.control.Trigger(reason, req.Only, by)
	switch {
	case res.Outcome == outcomeRejected:
		msg := "a run is going on and [schedule] overlap is \"reject\""
		if err != nil {
			msg = err.Error()
		}
		writeJSON(w, http.StatusConflict, map[string]string{"outcome": res.Outcome, "error": msg})
	case err != nil:
		s.internal(w, r, fmt.Errorf("trigger: %w", err))
	default:
		u := s.base + "/api/v1/runs/" + strconv.FormatUint(res.ID, 10)
		s.log.Info("run triggered through the API", "run", res.ID, "outcome", res.Outcome, "by", by, "reason", reason, "only", req.Only)
		w.Header().Set("Location", u)
		writeJSON(w, http.StatusAccepted, triggerAnswer{ID: res.ID, URL: u, Outcome: res.Outcome})
	}
}

func (s *server) apiCancel(w http.ResponseWriter, r *http.Request) {
	by, ok := s.authorized(w, r)
	if !ok {
		return
	}
	id, ok := runID(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	if s.control == nil {
		writeError(w, http.StatusServiceUnavailable, "this server cannot cancel runs")
		return
	}
	err := s.control.Cancel(id, by)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no run %d", id))
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Info("run cancelled through the API", "run", id, "by", by)
		writeJSON(w, http.StatusAccepted, map[string]any{"run": id, "outcome": "cancelling"})
	}
}

func (s *server) apiImage(w http.ResponseWriter, r *http.Request) {
	name, ok := imageName(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	key := "image " + name
	if s.unchanged(w, r, key) {
		return
	}
	all, err := s.db.History(0)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	h := s.historyOf(all.Nights, name)
	if len(h.History) == 0 {
		s.notFound(w, r)
		return
	}
	if !h.clocked {
		w.Header().Set("ETag", s.etag(all.Version, key))
	}
	writeJSON(w, http.StatusOK, h)
}

// historyOf is image name in every night of nights (newest first) that has
// it.
func (s *server) historyOf(nights []store.Night, name string) imageHistory {
	h := imageHistory{Name: name, History: []imageEntry{}}
	now := s.now()
	for i := range nights {
		night := &nights[i]
		im, ok := night.Image(name)
		if !ok {
			continue
		}
		e := imageEntry{RunID: night.ID(), Tag: night.Run.Tag, Commit: night.Run.Commit, Status: im.Status(),
			night: night, badge: nightBadge(&im)}
		if b := im.Build; b != nil {
			e.Started, e.Finished = timePtr(b.Started), timePtr(b.Finished)
			e.DurationSeconds = b.BuildTime(now).Seconds()
			e.Digest = b.Digest
			h.clocked = h.clocked || b.Status == store.Running
		}
		rec, run := im.Decisive(night)
		e.Error = rec.Error
		if e.Digest == "" {
			e.Digest = rec.Digest
		}
		if v := im.Validation(); v != "" {
			e.Validation = &entryValidation{RunID: run.ID, Status: v}
		}
		h.History = append(h.History, e)
	}
	good, bad := judge(h.History, s.validates)
	// Newest first: the first good night met is the last good one, and the
	// oldest failure newer than it is the first bad one.
	for i := range h.History {
		if good[i] {
			h.LastGood = &h.History[i]
			break
		}
		if bad[i] {
			h.FirstBad = &h.History[i]
		}
	}
	return h
}

// judge tells the good nights of an image's history (newest first) and the
// bad ones. Good is built, and validated when validates is set or the
// night validated it (a validation that had nothing to test counts); bad
// is failed, to build or in validation. The rest (skipped, interrupted,
// running, built but not yet validated) is neither.
func judge(history []imageEntry, validates bool) (good, bad []bool) {
	good, bad = make([]bool, len(history)), make([]bool, len(history))
	for i, e := range history {
		var v store.Status
		if e.Validation != nil {
			v = e.Validation.Status
		}
		good[i] = e.Status == store.Succeeded && (v == store.Succeeded || v == store.Skipped || v == "" && !validates)
		bad[i] = e.Status == store.Failed
	}
	return good, bad
}

// timePtr is t, nil when zero.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := s.db.Version(); err != nil {
		s.log.Error("health check: the store does not answer", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "store unavailable\n")
		return
	}
	io.WriteString(w, "ok\n")
}
