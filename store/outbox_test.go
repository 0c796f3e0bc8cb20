package store

import (
	"errors"
	"testing"
	"time"
)

// Sent and given up are final: a second outcome for the same message (a
// second sender, a late answer) must not overwrite the first.
func TestUpdateMessageLeavesSettledMessages(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	if err := db.Enqueue(now, Message{Notifier: "discord"}, Message{Notifier: "email"}); err != nil {
		t.Fatal(err)
	}
	settle := map[uint64]MessageStatus{1: Sent, 2: GaveUp}
	for id, status := range settle {
		if err := db.UpdateMessage(id, func(m *Message) { m.Status, m.Done = status, &now }); err != nil {
			t.Fatalf("settling message %d: %v", id, err)
		}
	}
	for id, status := range settle {
		other := map[MessageStatus]MessageStatus{Sent: GaveUp, GaveUp: Sent}[status]
		err := db.UpdateMessage(id, func(m *Message) { m.Status, m.LastError, m.Attempts = other, "late", 9 })
		if !errors.Is(err, ErrSettled) {
			t.Errorf("changing %s message %d: %v, want ErrSettled", status, id, err)
		}
		err = db.UpdateMessage(id, func(m *Message) { m.Status, m.Attempts = Pending, 9 })
		if !errors.Is(err, ErrSettled) {
			t.Errorf("making %s message %d pending again: %v, want ErrSettled", status, id, err)
		}
	}
	msgs, err := db.Messages(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Status != settle[m.ID] || m.Attempts != 0 || m.LastError != "" {
			t.Errorf("message %d = %+v, want %s as first settled", m.ID, m, settle[m.ID])
		}
	}
	if pending, _ := db.PendingMessages(); len(pending) != 0 {
		t.Errorf("pending = %+v, want none", pending)
	}
}

// A run is never recorded as ended without its messages: when queueing
// them fails, the run stays as it was, nothing is queued, and given-up
// messages are not marked reported.
func TestFinishRunRollsBackWhenTheOutboxFails(t *testing.T) {
	t.Parallel()
	db, _ := openTemp(t)
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	if err := db.Enqueue(now, Message{Notifier: "discord"}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateMessage(1, func(m *Message) { m.Status, m.Done = GaveUp, &now }); err != nil {
		t.Fatal(err)
	}
	r := &Run{Tag: "t", Status: Running, Started: now}
	if err := db.CreateRun(r); err != nil {
		t.Fatal(err)
	}

	broken := errors.New("rendering failed")
	for name, outbox := range map[string]func(Finish) ([]Message, error){
		"outbox error": func(f Finish) ([]Message, error) {
			if n := f.Undelivered("discord"); n != 1 {
				t.Errorf("undelivered = %d, want 1", n)
			}
			return []Message{{RunID: f.Run.ID, Notifier: "discord"}}, broken
		},
		// A payload that is not JSON fails when the message is written.
		"write error": func(f Finish) ([]Message, error) {
			f.Undelivered("discord")
			return []Message{{RunID: f.Run.ID, Notifier: "email"}, {RunID: f.Run.ID, Notifier: "discord", Payload: []byte("{not json")}}, nil
		},
	} {
		end := now.Add(time.Minute)
		_, err := db.FinishRun(r.ID, func(r *Run) error { r.Status, r.Finished = Failed, &end; return nil }, outbox)
		if err == nil {
			t.Fatalf("%s: FinishRun succeeded", name)
		}
		got, err := db.Run(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != Running || got.Finished != nil {
			t.Errorf("%s: run = %s finished %v, want still running", name, got.Status, got.Finished)
		}
		if msgs, _ := db.Messages(r.ID); len(msgs) != 0 {
			t.Errorf("%s: queued %+v for a run not recorded as ended", name, msgs)
		}
		if msgs, _ := db.Messages(0); len(msgs) != 1 || msgs[0].Reported {
			t.Errorf("%s: earlier messages = %+v, want the given-up one still unreported", name, msgs)
		}
	}
}
