// Package notify tells people what a run did: one summary per run, to
// Discord and by email, delivered at least once through an outbox in the
// record store.
package notify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"nightshift/notify/event"
	"nightshift/store"
)

// The events a summary can be about (see package event). A notifier's `on`
// policy names them.
const (
	EventFailure     = event.Failure
	EventFixed       = event.Fixed
	EventSuccess     = event.Success
	EventInterrupted = event.Interrupted
	EventNotStarted  = event.NotStarted
	EventPromote     = event.Promote
)

// Summary is everything one message says about one run.
type Summary struct {
	Event string    `json:"event"`
	Run   store.Run `json:"run"`
	// Previous is the status of what the run is compared with, "" if
	// nothing: for a validation, the night before; for a rebuild, the
	// rebuild before it (see store.Finish.Previous).
	Previous store.Status `json:"previous,omitempty"`
	Repo     string       `json:"repo,omitempty"` // <registry>/<namespace>
	// PublicURL is the dashboard's base URL ("" when unset): links are
	// PublicURL/runs/<id> and PublicURL/runs/<id>/images/<name>.
	PublicURL string `json:"public_url,omitempty"`
	// Undelivered counts earlier messages to this notifier that were given
	// up since the last summary got through.
	Undelivered int `json:"undelivered,omitempty"`
	// Reason says why a run could not start (EventNotStarted).
	Reason string `json:"reason,omitempty"`
	// Sample marks a made-up summary (nightshift notify test): it pings
	// nobody, whatever mentions a notifier has.
	Sample bool `json:"sample,omitempty"`
	// Recurring says, of a failed image whose failure signature recurs,
	// on how many of the last nights it was seen (store.Finish.Recurring).
	Recurring map[string]store.Recurrence `json:"recurring,omitempty"`
	// Promotion is what a promotion of Run's images did (EventPromote).
	Promotion *store.Promotion `json:"promotion,omitempty"`
}

// Headline is the one line that says it all, used as email subject and
// Discord title, e.g. "failed: 5 of 7 images built (2026-11-23-02-00-00-1a2b3c4d)".
func (s Summary) Headline() string {
	ok, validated, validates := 0, 0, false
	for _, im := range s.Run.Images {
		if im.Status == store.Succeeded || im.Digest != "" && im.Validation != nil {
			ok++ // built and pushed; its validation is counted apart
		}
		if im.Validation != nil {
			validates = true
			if im.Validation.Status == store.Succeeded {
				validated++
			}
		}
	}
	total := max(len(s.Run.Planned), len(s.Run.Images))
	status := string(s.Run.Status)
	switch s.Event {
	case EventNotStarted:
		return "could not start: " + s.Reason
	case EventPromote:
		return s.promotionHeadline()
	case EventFixed:
		status = "fixed"
	}
	switch {
	case s.Run.Kind == store.KindValidate:
		return fmt.Sprintf("%s: %d of %d images validated (%s)", status, validated, total, s.Run.Tag)
	case validates:
		return fmt.Sprintf("%s: %d of %d images built, %d validated (%s)", status, ok, total, validated, s.Run.Tag)
	}
	return fmt.Sprintf("%s: %d of %d images built (%s)", status, ok, total, s.Run.Tag)
}

// RunURL is the dashboard page of the run, "" without a public URL.
func (s Summary) RunURL() string {
	if s.PublicURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/runs/%d", strings.TrimRight(s.PublicURL, "/"), s.Run.ID)
}

// ImageURL is the dashboard page of one image in the run, "" without a
// public URL.
func (s Summary) ImageURL(name string) string {
	if s.PublicURL == "" {
		return ""
	}
	return s.RunURL() + "/images/" + name
}

// Notifier sends summaries to one destination.
//
// Notify reports whether a failed send is worth retrying: a timeout, a 5xx,
// a 429 or an SMTP 4xx is; a 400 or a refused address is not. Retrying and
// backoff are the outbox's business, never the notifier's. An error may
// carry how long the server asked to wait (see RetryAfterError).
type Notifier interface {
	Name() string
	Notify(ctx context.Context, s Summary) (retry bool, err error)
}

// RetryAfterError is a failure whose server said when to try again
// (Retry-After, Discord's retry_after, X-RateLimit-Reset-After).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter is the server's wait, as retry.After finds it.
func (e *RetryAfterError) RetryAfter() time.Duration { return e.After }

// promotionHeadline says what a promotion did: "promoted 4 of 5 images of
// <tag> to stable, 2026.2-stable (forced)".
func (s Summary) promotionHeadline() string {
	p := s.Promotion
	if p == nil {
		return "promoted " + s.Run.Tag
	}
	n := len(p.Images) + len(p.Refused)
	h := fmt.Sprintf("promoted %d of %d images of %s to %s", len(p.Images), n, s.Run.Tag, strings.Join(p.Tags, ", "))
	if p.Forced {
		h += " (forced)"
	}
	return h
}
