package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"nightshift/retry"
	"nightshift/store"
)

// Route is one notifier's policy: the `on` list of its config.
type Route struct {
	Notifier string
	On       []string
}

// EventOf says what a finished run is news of, given the run before it.
func EventOf(r *store.Run, prev *store.Run) string {
	switch r.Status {
	case store.Succeeded:
		if prev != nil && prev.Status != store.Succeeded {
			return EventFixed
		}
		return EventSuccess
	case store.Interrupted:
		return EventInterrupted
	}
	return EventFailure
}

// Wants reports whether a notifier whose policy is on speaks of event, with
// Jenkins' meanings: "failure" covers every run that did not succeed (and
// a run that could not start), "success" every success, "fixed" the first
// success after a failure, "always" everything; "promote" is a promotion
// of a run's images, which only it and "always" want.
func Wants(on []string, event string) bool {
	for _, o := range on {
		switch {
		case o == "always",
			o == event,
			o == EventFailure && (event == EventInterrupted || event == EventNotStarted),
			o == EventSuccess && event == EventFixed:
			return true
		}
	}
	return false
}

// Messages returns what store.FinishRun (and store.Interrupt) call to queue
// a run's summary: one message for each route that wants it, rendered now so
// that a restart sends what would have been sent.
func Messages(routes []Route, repo, publicURL string) func(store.Finish) ([]store.Message, error) {
	return func(f store.Finish) ([]store.Message, error) {
		event := EventOf(f.Run, f.Previous)
		var prev store.Status
		if f.Previous != nil {
			prev = f.Previous.Status
		}
		var msgs []store.Message
		for _, rt := range routes {
			if !Wants(rt.On, event) {
				continue
			}
			s := Summary{Event: event, Run: *f.Run, Previous: prev, Repo: repo, PublicURL: publicURL,
				Recurring: f.Recurring, Undelivered: f.Undelivered(rt.Notifier)}
			payload, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, store.Message{RunID: f.Run.ID, Notifier: rt.Notifier, Payload: payload})
		}
		return msgs, nil
	}
}

// NotStarted returns the messages saying that a run could not start.
func NotStarted(routes []Route, reason, repo, publicURL string, now time.Time) ([]store.Message, error) {
	var msgs []store.Message
	for _, rt := range routes {
		if !Wants(rt.On, EventNotStarted) {
			continue
		}
		s := Summary{Event: EventNotStarted, Reason: reason, Repo: repo, PublicURL: publicURL,
			Run: store.Run{Status: store.Failed, Started: now, Error: reason, Images: []store.ImageResult{}}}
		payload, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, store.Message{Notifier: rt.Notifier, Payload: payload})
	}
	return msgs, nil
}

// Promoted returns the messages saying that p promoted images of run: one
// for each route whose policy wants promotions.
func Promoted(routes []Route, run *store.Run, p store.Promotion, repo, publicURL string) ([]store.Message, error) {
	var msgs []store.Message
	for _, rt := range routes {
		if !Wants(rt.On, EventPromote) {
			continue
		}
		s := Summary{Event: EventPromote, Run: *run, Promotion: &p, Repo: repo, PublicURL: publicURL}
		payload, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, store.Message{RunID: run.ID, Notifier: rt.Notifier, Payload: payload})
	}
	return msgs, nil
}

// Deliverer sends the outbox's pending messages. A message is marked sent
// only after its server accepted it; a failure worth retrying is retried
// with jittered exponential backoff (longer when the server asked for a
// longer wait), until the message is GiveUpAfter old; a permanent failure
// gives up at once. The state lives in the store, so pending messages
// survive a restart. One process has one delivery path: two Deliverers on
// one store may both send a message, and the store keeps the first
// outcome recorded.
type Deliverer struct {
	DB          *store.DB
	Notifiers   map[string]Notifier
	GiveUpAfter time.Duration
	Timeout     time.Duration // of one send; default 30s
	Log         *slog.Logger
	Now         func() time.Time
	// Eager tries every pending message on the first pass, whatever its
	// backoff says: a person asked for it (nightshift notify flush).
	Eager bool
}

// Backoff bounds: a restarted SMTP server is back within seconds, a Discord
// outage may last an hour.
const (
	backoffBase = 2 * time.Second
	backoffMax  = 30 * time.Minute
)

// Deliver makes one pass over the messages that are due: notifiers in
// parallel, each one's messages in the order queued. It returns when the
// earliest message still pending is due, zero when none is.
func (d *Deliverer) Deliver(ctx context.Context) (time.Time, error) {
	msgs, err := d.DB.PendingMessages()
	if err != nil {
		return time.Time{}, err
	}
	now := d.now()
	byNotifier := map[string][]store.Message{}
	for _, m := range msgs {
		if d.Eager || !m.NextAttempt.After(now) {
			byNotifier[m.Notifier] = append(byNotifier[m.Notifier], m)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(byNotifier))
	for name, queue := range byNotifier {
		wg.Go(func() {
			for _, m := range queue {
				retrying, err := d.send(ctx, name, m)
				if err != nil {
					errs <- err
					return
				}
				if retrying {
					return // the server is struggling: keep the rest for later, in order
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err, failed := <-errs; failed {
		return time.Time{}, err
	}
	return d.nextDue()
}

func (d *Deliverer) nextDue() (time.Time, error) {
	msgs, err := d.DB.PendingMessages()
	if err != nil || len(msgs) == 0 {
		return time.Time{}, err
	}
	next := msgs[0].NextAttempt
	for _, m := range msgs[1:] {
		if m.NextAttempt.Before(next) {
			next = m.NextAttempt
		}
	}
	return next, nil
}

// send delivers m and records the outcome; it reports whether m stays
// pending for a retry. Its error is about recording, not sending.
func (d *Deliverer) send(ctx context.Context, name string, m store.Message) (bool, error) {
	log := d.logger().With("notifier", name, "message", m.ID, "run", m.RunID)
	n, ok := d.Notifiers[name]
	var retry bool
	var err error
	if !ok {
		err = fmt.Errorf("notifier %s is no longer configured", name)
	} else {
		var s Summary
		if err = json.Unmarshal(m.Payload, &s); err == nil {
			sendCtx, cancel := context.WithTimeout(ctx, d.timeout())
			retry, err = n.Notify(sendCtx, s)
			cancel()
		}
	}
	if ctx.Err() != nil {
		return true, nil // cancelled, not failed: the message stays as it was
	}
	now := d.now()
	switch {
	case err == nil:
		log.Info("notification sent", "attempts", m.Attempts+1)
		return false, d.settled(log, d.DB.UpdateMessage(m.ID, func(m *store.Message) {
			m.Status, m.Done, m.LastError = store.Sent, &now, ""
		}))
	case retry && now.Sub(m.Created) < d.GiveUpAfter:
		next := d.nextAttempt(m, now, err)
		log.Warn("notification failed; will retry", "err", err, "attempts", m.Attempts+1, "retry_in", next.Sub(now).Round(time.Millisecond))
		return true, d.settled(log, d.DB.UpdateMessage(m.ID, func(m *store.Message) {
			m.Attempts++
			m.NextAttempt = next
			m.LastError = err.Error()
		}))
	default:
		why := "refused"
		if retry {
			why = fmt.Sprintf("still failing after %s", d.GiveUpAfter)
		}
		log.Error("notification given up: "+why, "err", err, "attempts", m.Attempts+1)
		return false, d.settled(log, d.DB.UpdateMessage(m.ID, func(m *store.Message) {
			m.Attempts++
			m.Status, m.Done, m.LastError = store.GaveUp, &now, err.Error()
		}))
	}
}

// nextAttempt is when to try m again after err failed it at now: after the
// backoff, or after the server's wait when that is longer. The backoff is
// the floor, so that a server answering "retry after 0" every time is not
// asked again at once, over and over. m's give-up deadline is the cap, so
// that a server saying "in a month" does not park m past the age at which
// it is given up and reported: m is tried once more then, and given up if
// it still fails.
func (d *Deliverer) nextAttempt(m store.Message, now time.Time, err error) time.Time {
	wait := backoff(m.Attempts)
	if after, ok := retry.After(err); ok {
		wait = max(after, wait)
	}
	return minTime(now.Add(wait), m.Created.Add(d.GiveUpAfter))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// settled turns the store's refusal to change a message that is no longer
// pending into no error: whatever settled it first stands.
func (d *Deliverer) settled(log *slog.Logger, err error) error {
	if errors.Is(err, store.ErrSettled) {
		log.Warn("notification outcome not recorded: the message was settled meanwhile", "err", err)
		return nil
	}
	return err
}

// Flush delivers until nothing is pending, or until the next message due
// would be due after within has passed; it returns how many stay pending.
func (d *Deliverer) Flush(ctx context.Context, within time.Duration) (int, error) {
	deadline := d.now().Add(within)
	eager := d.Eager
	defer func() { d.Eager = eager }()
	for {
		next, err := d.Deliver(ctx)
		d.Eager = false // later passes keep to the schedule
		if err != nil {
			return 0, err
		}
		if next.IsZero() || next.After(deadline) || ctx.Err() != nil {
			break
		}
		wait := time.NewTimer(next.Sub(d.now()))
		select {
		case <-ctx.Done():
		case <-wait.C:
		}
		wait.Stop()
	}
	left, err := d.DB.PendingMessages()
	return len(left), err
}

// backoff is the wait after the given number of failed attempts: doubling
// from backoffBase up to backoffMax, jittered so that many messages failing
// together do not come back together. The outbox stores when to try next,
// so it needs the policy's backoff, not its loop.
func backoff(attempts int) time.Duration {
	return retry.Policy{Base: backoffBase, Max: backoffMax}.Backoff(attempts)
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deliverer) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 30 * time.Second
}

func (d *Deliverer) logger() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}
