package notify

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"nightshift/store"
)

func TestWants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		on    []string
		event string
		want  bool
	}{
		{[]string{"failure", "fixed"}, EventFailure, true},
		{[]string{"failure", "fixed"}, EventFixed, true},
		{[]string{"failure", "fixed"}, EventSuccess, false},
		{[]string{"failure"}, EventInterrupted, true},
		{[]string{"failure"}, EventNotStarted, true},
		{[]string{"success"}, EventFixed, true},
		{[]string{"success"}, EventFailure, false},
		{[]string{"fixed"}, EventSuccess, false},
		{[]string{"always"}, EventSuccess, true},
		{nil, EventFailure, false},
	}
	for _, tt := range tests {
		if got := Wants(tt.on, tt.event); got != tt.want {
			t.Errorf("Wants(%v, %s) = %v, want %v", tt.on, tt.event, got, tt.want)
		}
	}
}

func TestEventOf(t *testing.T) {
	t.Parallel()
	ok, failed := &store.Run{Status: store.Succeeded}, &store.Run{Status: store.Failed}
	tests := []struct {
		run, prev *store.Run
		want      string
	}{
		{ok, nil, EventSuccess},
		{ok, ok, EventSuccess},
		{ok, failed, EventFixed},
		{ok, &store.Run{Status: store.Interrupted}, EventFixed},
		{failed, ok, EventFailure},
		{&store.Run{Status: store.Interrupted}, ok, EventInterrupted},
	}
	for _, tt := range tests {
		if got := EventOf(tt.run, tt.prev); got != tt.want {
			t.Errorf("EventOf(%s after %v) = %s, want %s", tt.run.Status, tt.prev, got, tt.want)
		}
	}
}

// fake is a notifier whose answers a test scripts.
type fake struct {
	name string
	mu   sync.Mutex
	fail func(n int) (bool, error) // answer to the n-th call (from 1); nil succeeds
	got  []Summary
	n    int
}

func (f *fake) Name() string { return f.name }

func (f *fake) Notify(_ context.Context, s Summary) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.fail != nil {
		if retry, err := f.fail(f.n); err != nil {
			return retry, err
		}
	}
	f.got = append(f.got, s)
	return false, nil
}

func (f *fake) delivered() []Summary {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Summary(nil), f.got...)
}

// clock is a settable time for the deliverer.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var start = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

// finishRun records a run with the given status and queues its summary for
// routes, as pipeline.Run does.
func finishRun(t *testing.T, db *store.DB, status store.Status, routes []Route) *store.Run {
	t.Helper()
	r := &store.Run{Tag: "t", Status: store.Running, Started: start, Images: []store.ImageResult{}}
	if err := db.CreateRun(r); err != nil {
		t.Fatal(err)
	}
	end := start.Add(time.Minute)
	fin, err := db.FinishRun(r.ID, func(r *store.Run) error {
		r.Status, r.Finished = status, &end
		return nil
	}, Messages(routes, "registry/ns", "https://ns.example.org"))
	if err != nil {
		t.Fatal(err)
	}
	return fin
}

func openDB(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestPolicyQueuesOneMessagePerWillingNotifier(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	routes := []Route{{"discord", []string{"failure", "fixed"}}, {"email", []string{"always"}}}

	r1 := finishRun(t, db, store.Succeeded, routes) // first success: news only to "always"
	r2 := finishRun(t, db, store.Failed, routes)
	r3 := finishRun(t, db, store.Succeeded, routes) // fixed
	want := map[uint64][]string{r1.ID: {"email"}, r2.ID: {"discord", "email"}, r3.ID: {"discord", "email"}}
	events := map[uint64]string{r1.ID: EventSuccess, r2.ID: EventFailure, r3.ID: EventFixed}
	for id, notifiers := range want {
		msgs, err := db.Messages(id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			got = append(got, m.Notifier)
			var s Summary
			if err := json.Unmarshal(m.Payload, &s); err != nil {
				t.Fatal(err)
			}
			if s.Event != events[id] || s.Run.ID != id || s.PublicURL != "https://ns.example.org" {
				t.Errorf("run %d message to %s: event %s, run %d; want %s about run %d", id, m.Notifier, s.Event, s.Run.ID, events[id], id)
			}
		}
		if len(got) != len(notifiers) || (len(got) > 0 && got[0] != notifiers[0]) {
			t.Errorf("run %d queued messages to %v, want %v", id, got, notifiers)
		}
	}
}

func TestDeliverRetriesHonouringRetryAfterThenGivesUp(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	clk := &clock{t: start.Add(time.Minute)} // when finishRun ends the run
	slow := &fake{name: "discord", fail: func(n int) (bool, error) {
		if n == 1 {
			return true, &RetryAfterError{Err: errors.New("429 Too Many Requests"), After: 42 * time.Second}
		}
		return true, errors.New("503 Service Unavailable")
	}}
	refused := &fake{name: "email", fail: func(int) (bool, error) { return false, errors.New("550 no such mailbox") }}
	d := &Deliverer{DB: db, Notifiers: map[string]Notifier{"discord": slow, "email": refused}, GiveUpAfter: time.Hour, Now: clk.Now}
	finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}, {"email", []string{"failure"}}})

	next, err := d.Deliver(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(42 * time.Second); !next.Equal(want) {
		t.Errorf("next attempt at %v, want %v (the server's retry_after)", next, want)
	}
	msgs, _ := db.Messages(1)
	byName := map[string]store.Message{}
	for _, m := range msgs {
		byName[m.Notifier] = m
	}
	if m := byName["email"]; m.Status != store.GaveUp || m.LastError != "550 no such mailbox" {
		t.Errorf("refused message = %+v, want given up at once with the server's error", m)
	}
	if m := byName["discord"]; m.Status != store.Pending || m.Attempts != 1 {
		t.Errorf("rate-limited message = %+v, want pending after 1 attempt", m)
	}

	// Not due yet: nothing is sent.
	clk.Add(41 * time.Second)
	d.Deliver(context.Background())
	if slow.n != 1 {
		t.Errorf("sent %d times before retry_after passed, want 1", slow.n)
	}
	// Due: a second failure backs off; after give_up_after it is given up.
	clk.Add(time.Second)
	d.Deliver(context.Background())
	clk.Add(2 * time.Hour)
	if next, _ := d.Deliver(context.Background()); !next.IsZero() {
		t.Errorf("a message is still pending at %v after give_up_after", next)
	}
	msgs, _ = db.Messages(1)
	for _, m := range msgs {
		if m.Status != store.GaveUp {
			t.Errorf("%s message %+v, want given up", m.Notifier, m)
		}
	}

	// The next summary says so, once.
	finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})
	finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})
	for id, want := range map[uint64]int{2: 1, 3: 0} {
		msgs, _ := db.Messages(id)
		var s Summary
		json.Unmarshal(msgs[0].Payload, &s)
		if s.Undelivered != want {
			t.Errorf("run %d summary says %d undelivered, want %d", id, s.Undelivered, want)
		}
	}
}

// A notifier that fails until the process stops; after a restart the
// message is delivered exactly once, and nothing is lost.
func TestPendingMessagesSurviveRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db")
	db := openDB(t, path)
	down := &fake{name: "discord", fail: func(int) (bool, error) { return true, errors.New("502 Bad Gateway") }}
	// The runs are dated 2026-11-23 02:00 while these deliverers run on the
	// wall clock: give_up_after must not be what ends the message here.
	const forever = 100 * 365 * 24 * time.Hour
	d := &Deliverer{DB: db, Notifiers: map[string]Notifier{"discord": down}, GiveUpAfter: forever}
	run := finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	left, err := d.Flush(ctx, time.Hour) // "the process is stopped" while it retries
	cancel()
	if err != nil || left != 1 || down.n == 0 {
		t.Fatalf("Flush against a failing server: %d left, %d attempts, %v; want 1 left after some attempts", left, down.n, err)
	}
	db.Close()

	db = openDB(t, path)
	defer db.Close()
	up := &fake{name: "discord"}
	d = &Deliverer{DB: db, Notifiers: map[string]Notifier{"discord": up}, GiveUpAfter: forever,
		Now: func() time.Time { return time.Now().Add(time.Hour / 2) }} // past any backoff
	if left, err := d.Flush(context.Background(), time.Minute); err != nil || left != 0 {
		t.Fatalf("Flush after restart: %d left, %v", left, err)
	}
	d.Flush(context.Background(), time.Minute) // a second pass must not resend
	got := up.delivered()
	if len(got) != 1 || got[0].Run.ID != run.ID || got[0].Event != EventFailure {
		t.Fatalf("delivered %+v, want exactly the one summary of run %d", got, run.ID)
	}
	msgs, _ := db.Messages(run.ID)
	if msgs[0].Status != store.Sent || msgs[0].Done == nil {
		t.Errorf("message after delivery = %+v, want sent", msgs[0])
	}
}

func TestUnknownNotifierIsGivenUp(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	finishRun(t, db, store.Failed, []Route{{"pager", []string{"failure"}}})
	d := &Deliverer{DB: db, Notifiers: map[string]Notifier{}, GiveUpAfter: time.Hour, Now: func() time.Time { return start.Add(time.Minute) }}
	if next, err := d.Deliver(context.Background()); err != nil || !next.IsZero() {
		t.Fatalf("Deliver = %v, %v", next, err)
	}
	msgs, _ := db.Messages(1)
	if msgs[0].Status != store.GaveUp || msgs[0].LastError == "" {
		t.Errorf("message for a removed notifier = %+v, want given up with a reason", msgs[0])
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for attempts := range 40 {
		d := backoff(attempts)
		limit := min(backoffBase<<min(attempts, 20), backoffMax)
		if d < limit/2 || d > limit {
			t.Errorf("backoff(%d) = %v, want within [%v, %v]", attempts, d, limit/2, limit)
		}
	}
}

// nightshift notify flush tries what is pending at once, not at its backoff.
func TestEagerFlushIgnoresBackoff(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	now := func() time.Time { return start.Add(time.Minute) }
	n := &fake{name: "discord", fail: func(n int) (bool, error) {
		if n == 1 {
			return true, &RetryAfterError{Err: errors.New("429"), After: time.Hour}
		}
		return false, nil
	}}
	finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})
	d := &Deliverer{DB: db, Notifiers: map[string]Notifier{"discord": n}, GiveUpAfter: 24 * time.Hour, Now: now}
	if left, _ := d.Flush(context.Background(), time.Second); left != 1 {
		t.Fatalf("a plain flush left %d pending, want the rate-limited message waiting", left)
	}
	d.Eager = true
	if left, err := d.Flush(context.Background(), time.Second); left != 0 || err != nil || len(n.delivered()) != 1 {
		t.Fatalf("an eager flush left %d pending (%v), delivered %d; want it sent once", left, err, len(n.delivered()))
	}
}

// A server that answers "retry after 0" every time is not asked again at
// once: the backoff is the floor, and attempts stay few until give-up.
func TestRetryAfterZeroBacksOff(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	clk := &clock{t: start.Add(time.Minute)}
	n := &fake{name: "discord", fail: func(int) (bool, error) {
		return true, &RetryAfterError{Err: errors.New("429 Too Many Requests"), After: 0}
	}}
	d := &Deliverer{DB: db, Notifiers: map[string]Notifier{"discord": n}, GiveUpAfter: time.Hour, Now: clk.Now}
	finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})

	for pass := 0; ; pass++ {
		if pass == 1000 {
			t.Fatalf("still pending after %d passes and %d attempts, at %v", pass, n.n, clk.Now())
		}
		before := clk.Now()
		next, err := d.Deliver(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if next.IsZero() {
			break
		}
		if !next.After(before) {
			t.Fatalf("attempt %d: next attempt at %v, not after now (%v)", n.n, next, before)
		}
		if pass == 0 && next.Sub(before) < backoffBase/2 {
			t.Errorf("first retry in %v, want at least the backoff's first step (%v)", next.Sub(before), backoffBase/2)
		}
		clk.t = next
	}
	// Doubling from 2s to a 30m cap reaches an hour in about a dozen tries.
	if n.n > 20 {
		t.Errorf("%d attempts in the hour before giving up, want a bounded backoff", n.n)
	}
	msgs, _ := db.Messages(1)
	if msgs[0].Status != store.GaveUp {
		t.Errorf("message = %+v, want given up after give_up_after", msgs[0])
	}
}

// A server asking to wait past the message's give-up age does not park it
// there: it is tried at its deadline, given up, and the next summary says so.
func TestRetryAfterIsCappedAtGiveUp(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	clk := &clock{t: start.Add(time.Minute)}
	n := &fake{name: "discord", fail: func(int) (bool, error) {
		return true, &RetryAfterError{Err: errors.New("429 Too Many Requests"), After: 1000 * time.Hour}
	}}
	d := &Deliverer{DB: db, Notifiers: map[string]Notifier{"discord": n}, GiveUpAfter: time.Hour, Now: clk.Now}
	finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})

	next, err := d.Deliver(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := db.Messages(1)
	deadline := msgs[0].Created.Add(time.Hour)
	if !next.Equal(deadline) || !msgs[0].NextAttempt.Equal(deadline) {
		t.Fatalf("next attempt at %v (recorded %v), want the give-up deadline %v", next, msgs[0].NextAttempt, deadline)
	}
	clk.t = deadline
	if next, err := d.Deliver(context.Background()); err != nil || !next.IsZero() {
		t.Fatalf("at the deadline: next %v, %v; want nothing pending", next, err)
	}
	msgs, _ = db.Messages(1)
	if msgs[0].Status != store.GaveUp || n.n != 2 {
		t.Fatalf("message = %+v after %d attempts, want given up after 2", msgs[0], n.n)
	}
	next2 := finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})
	msgs, _ = db.Messages(next2.ID)
	var s Summary
	if err := json.Unmarshal(msgs[0].Payload, &s); err != nil || s.Undelivered != 1 {
		t.Errorf("the next summary says %d undelivered (%v), want 1", s.Undelivered, err)
	}
}

// settler is a notifier during whose send another path settles the message
// (sent), then it reports its own failure.
type settler struct {
	db *store.DB
	id uint64
}

func (s *settler) Name() string { return "discord" }

func (s *settler) Notify(context.Context, Summary) (bool, error) {
	now := start
	if err := s.db.UpdateMessage(s.id, func(m *store.Message) { m.Status, m.Done = store.Sent, &now }); err != nil {
		return false, err
	}
	return false, errors.New("400 Bad Request")
}

// The first outcome recorded stands: a send that fails after the message
// was sent by someone else does not make it "given up".
func TestLateOutcomeDoesNotOverwriteSent(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	finishRun(t, db, store.Failed, []Route{{"discord", []string{"failure"}}})
	d := &Deliverer{DB: db, Notifiers: map[string]Notifier{"discord": &settler{db: db, id: 1}}, GiveUpAfter: time.Hour,
		Now: func() time.Time { return start.Add(time.Minute) }}
	if next, err := d.Deliver(context.Background()); err != nil || !next.IsZero() {
		t.Fatalf("Deliver = %v, %v; want nothing pending and no error", next, err)
	}
	msgs, _ := db.Messages(1)
	if msgs[0].Status != store.Sent || msgs[0].LastError != "" {
		t.Errorf("message = %+v, want it left sent", msgs[0])
	}
}

// A promotion is news only to notifiers that ask for it (or for
// everything), and its headline says what went where.
func TestPromoted(t *testing.T) {
	t.Parallel()
	run := &store.Run{ID: 7, Tag: "2026-11-23-02-00-00-1a2b3c4d", Status: store.Failed}
	p := store.Promotion{Tags: []string{"stable", "2026.4-stable"}, Forced: true,
		Images: []store.PromotedImage{{Name: "base"}, {Name: "cpu"}}, Refused: []store.RefusedImage{{Name: "gpu"}}}
	routes := []Route{{"discord", []string{"failure", "fixed"}}, {"email", []string{"promote"}}, {"chat", []string{"always"}}}
	msgs, err := Promoted(routes, run, p, "reg/ns", "")
	if err != nil {
		t.Fatal(err)
	}
	var to []string
	for _, m := range msgs {
		to = append(to, m.Notifier)
		var s Summary
		if err := json.Unmarshal(m.Payload, &s); err != nil {
			t.Fatal(err)
		}
		want := "promoted 2 of 3 images of 2026-11-23-02-00-00-1a2b3c4d to stable, 2026.4-stable (forced)"
		if m.RunID != 7 || s.Event != EventPromote || s.Promotion == nil || s.Headline() != want {
			t.Errorf("message %+v: headline %q, want run 7, event promote, %q", m, s.Headline(), want)
		}
	}
	if len(to) != 2 || to[0] != "email" || to[1] != "chat" {
		t.Errorf("messages to %v, want email and chat", to)
	}
	if !Wants([]string{"always"}, EventPromote) || Wants([]string{"success", "failure"}, EventPromote) {
		t.Error("promote is wanted by promote and always alone")
	}
}
