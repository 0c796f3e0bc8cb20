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

// imageEntry is one image in one run, as the image's history shows it.
type imageEntry struct {
	RunID           uint64       `json:"run_id"`
	Tag             string       `json:"tag"`
	Commit          string       `json:"commit"`
	Status          store.Status `json:"status"`
	Started         *time.Time   `json:"started,omitempty"`
	Finished        *time.Time   `json:"finished,omitempty"`
	DurationSeconds float64      `json:"duration_seconds"`
	Digest          string       `json:"digest,omitempty"`
	Error           string       `json:"error,omitempty"`

	run   *store.Summary
	badge badge
}

// imageHistory is GET /api/v1/images/{name}.
type imageHistory struct {
	Name    string       `json:"name"`
	History []imageEntry `json:"history"` // newest first
	// LastGood is the newest run the image succeeded in, FirstBad the first
	// run after it that it failed in: the commits between them broke it.
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
			ID: m.ID, Notifier: m.Notifier, Status: m.Status, Attempts: m.Attempts,
			LastError: m.LastError, Created: m.Created, Done: m.Done,
		})
	}
	return run, notes, nil
}

func (s *server) apiTrigger(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
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
	outcome, err := s.control.Trigger(reason, req.Only)
	switch {
	case outcome == outcomeRejected:
		msg := "a run is going on and [schedule] overlap is \"reject\""
		if err != nil {
			msg = err.Error()
		}
		writeJSON(w, http.StatusConflict, map[string]string{"outcome": outcome, "error": msg})
	case err != nil:
		s.log.Error("trigger failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		s.log.Info("run triggered through the API", "reason", reason, "only", req.Only, "outcome", outcome)
		writeJSON(w, http.StatusAccepted, map[string]string{"outcome": outcome})
	}
}

func (s *server) apiCancel(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
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
	err := s.control.Cancel(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no run %d", id))
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Info("run cancelled through the API", "run", id)
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
	runs, version, err := s.db.Summaries(0)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	h := historyOf(runs, name, s.now())
	if len(h.History) == 0 {
		s.notFound(w, r)
		return
	}
	if !h.clocked {
		w.Header().Set("ETag", s.etag(version, key))
	}
	writeJSON(w, http.StatusOK, h)
}

// historyOf is image name in every run of runs (newest first) that has it.
func historyOf(runs []store.Summary, name string, now time.Time) imageHistory {
	h := imageHistory{Name: name, History: []imageEntry{}}
	for i := range runs {
		run := &runs[i]
		im := run.Image(name)
		if im == nil {
			continue
		}
		duration := store.ImageResult{Started: timePtr(im.Started), Finished: timePtr(im.Finished)}.Duration(now)
		h.History = append(h.History, imageEntry{
			RunID: run.ID, Tag: run.Tag, Commit: run.Commit, Status: im.Status,
			Started: timePtr(im.Started), Finished: timePtr(im.Finished),
			DurationSeconds: duration.Seconds(),
			Digest:          im.Digest, Error: im.Error,
			run: run, badge: statusBadge(im.Status, im.Validated),
		})
		h.clocked = h.clocked || im.Status == store.Running
	}
	// Newest first: the first success met is the last good night, and the
	// oldest failure newer than it is the first bad one.
	for i := range h.History {
		e := &h.History[i]
		if e.Status == store.Succeeded {
			h.LastGood = e
			break
		}
		if e.Status == store.Failed {
			h.FirstBad = e
		}
	}
	return h
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
