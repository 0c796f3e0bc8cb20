// Package discord posts a run's summary to a Discord channel through an
// incoming webhook, with discordgo speaking Discord's REST API.
package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"nightshift/notify"
	"nightshift/notify/discord/webhook"
	"nightshift/retry"
)

// Config says which webhook summaries go to and who to call on a failure.
type Config struct {
	// WebhookURL is the webhook as configured, host included:
	// https://discord.com/api/webhooks/<id>/<token>, or a proxy or test
	// server URL with the same /webhooks/<id>/<token> path ending. It holds a
	// secret: the token never appears in an error.
	WebhookURL string
	// Username overrides the webhook's name; "" means "nightshift".
	Username string
	// Mentions are "<@user id>", "<@!user id>", "<@&role id>", "@here" or
	// "@everyone". They are pinged only when a run failed, was interrupted
	// or could not start, never on a success nor by a sample summary.
	Mentions []string
	// Client sends the requests; nil means a client with the default
	// transport. Timeouts come from the context of Notify. Its redirect
	// policy is replaced: a webhook never redirects, and following one would
	// post the summary somewhere else.
	Client *http.Client
}

// String describes c without the webhook token, so that a Config printed
// with %v or %+v leaks nothing.
func (c Config) String() string {
	return fmt.Sprintf("{WebhookURL:%s Username:%s Mentions:%v}", webhook.Redact(c.WebhookURL), c.Username, c.Mentions)
}

// Notifier posts summaries to one Discord webhook. It is safe for
// concurrent use: every Notify builds its own discordgo session.
type Notifier struct {
	cfg    Config
	target *url.URL // the webhook URL, validated
	id     string   // webhook id: not a secret, and says which webhook failed
	token  string
	// sleep waits between the messages of one summary when Discord says the
	// webhook's bucket is empty; tests replace it so that they never sleep.
	sleep func(ctx context.Context, d time.Duration) error
}

// New checks c and returns a notifier for it. It does not connect: Discord
// being down at start-up is a retry later, not a broken config. The
// configuration loader applies the same checks (package webhook), so that
// its errors name file, line and key.
func New(c Config) (*Notifier, error) {
	u, id, token, err := webhook.Parse(c.WebhookURL)
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	if c.Username == "" {
		c.Username = defaultUsername
	}
	if err := webhook.CheckUsername(c.Username); err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	for i, m := range c.Mentions {
		if err := webhook.CheckMention(m); err != nil {
			return nil, fmt.Errorf("discord: mention %d: %w", i+1, err)
		}
	}
	return &Notifier{cfg: c, target: u, id: id, token: token, sleep: retry.Sleep}, nil
}

// Name is the notifier's name in the outbox and in the config.
func (n *Notifier) Name() string { return "discord" }

// Notify posts s, in several messages when it is too big for one, in order.
// A 429 (with the wait Discord asked for), a 5xx, a timeout or a network
// failure are worth a retry; any other refusal (400, 401, 403, 404) is not.
// When one message of several fails, the outbox sends the whole summary
// again: at least once, not exactly once.
func (n *Notifier) Notify(ctx context.Context, s notify.Summary) (retry bool, err error) {
	payloads := Payloads(s, n.cfg.Username, n.cfg.Mentions)

	rt := &transport{base: http.DefaultTransport, target: n.target, suffix: "/webhooks/" + n.id + "/" + n.token}
	client := &http.Client{}
	if n.cfg.Client != nil {
		*client = *n.cfg.Client
		if n.cfg.Client.Transport != nil {
			rt.base = n.cfg.Client.Transport
		}
	}
	client.Transport = rt
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	sess, err := discordgo.New("")
	if err != nil {
		return false, n.errorf(err, "%v", err)
	}
	sess.Client = client
	sess.ShouldRetryOnRateLimit = false // the outbox owns retries and backoff
	sess.MaxRestRetries = 0
	sess.LogLevel = -1 // discordgo logs through the global logger; our errors say it all

	for i, p := range payloads {
		// A fresh rate limiter per message: discordgo's would sleep through a
		// drained bucket without looking at ctx. We wait ourselves, below.
		sess.Ratelimiter = discordgo.NewRatelimiter()
		_, err := sess.WebhookExecute(n.id, n.token, true, p, discordgo.WithContext(ctx))
		res := rt.take()
		if retry, err := n.classify(res, err, i, len(payloads)); err != nil {
			return retry, err
		}
		if i == len(payloads)-1 || res == nil {
			continue
		}
		if wait, ok := drained(res.header); ok {
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return true, &notify.RetryAfterError{
					Err:   n.errorf(nil, "rate limited after message %d of %d", i+1, len(payloads)),
					After: wait,
				}
			}
			if err := n.sleep(ctx, wait); err != nil {
				return true, n.errorf(err, "waiting to send message %d of %d: %v", i+2, len(payloads), err)
			}
		}
	}
	return false, nil
}

// drained reports how long to wait before the next request when Discord
// says that this one used up the webhook's bucket.
func drained(h http.Header) (time.Duration, bool) {
	if h.Get("X-RateLimit-Remaining") != "0" {
		return 0, false
	}
	return retry.ParseRetryAfter(h.Get("X-RateLimit-Reset-After"), time.Now())
}

// classify turns what discordgo returned, and the response the transport
// saw, into the outbox's (retry, err). The status decides, not discordgo's
// error: discordgo reports a 429 with a body that is not JSON as a bare
// unmarshal error, and a 200 without a message body as one too.
func (n *Notifier) classify(res *response, err error, i, count int) (bool, error) {
	what := ""
	if count > 1 {
		what = fmt.Sprintf("message %d of %d: ", i+1, count)
	}
	if res == nil {
		if err == nil {
			return false, nil
		}
		if errors.Is(err, errForeign) {
			return false, n.errorf(err, "%s%v", what, err)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			// No answer at all: refused, reset, timed out or cancelled.
			// url.Error quotes discordgo's URL, token included; its cause
			// does not.
			return true, n.errorf(ue.Err, "%s%v", what, ue.Err)
		}
		// Anything else failed before a request was made (encoding it).
		return false, n.errorf(err, "%s%v", what, err)
	}

	code := res.status
	if code >= 200 && code < 300 {
		return false, nil
	}
	var body struct {
		Message    string          `json:"message"`
		Code       int             `json:"code"`
		Errors     json.RawMessage `json:"errors"`
		RetryAfter *float64        `json:"retry_after"`
		Global     bool            `json:"global"`
	}
	isJSON := json.Unmarshal(res.body, &body) == nil
	msg := fmt.Sprintf("%sHTTP %d %s", what, code, http.StatusText(code))
	switch {
	case isJSON && body.Message != "":
		msg += ": " + notify.Shorten(notify.OneLine(body.Message), 300)
		if body.Code != 0 {
			msg += fmt.Sprintf(" (code %d)", body.Code)
		}
		if d := formErrors(body.Errors); d != "" {
			msg += ": " + d
		}
	case !isJSON && len(res.body) > 0:
		msg += ": " + notify.Shorten(notify.OneLine(string(res.body)), 200)
	}

	switch {
	case code == http.StatusTooManyRequests:
		if body.Global {
			msg += " (global rate limit)"
		}
		err := n.errorf(nil, "%s", msg)
		var wait time.Duration
		ok := false
		if body.RetryAfter != nil {
			wait, ok = toDuration(*body.RetryAfter)
		}
		if !ok {
			wait, ok = retry.ParseRetryAfter(res.header.Get("Retry-After"), time.Now())
		}
		if !ok {
			wait, ok = retry.ParseRetryAfter(res.header.Get("X-RateLimit-Reset-After"), time.Now())
		}
		if ok {
			return true, &notify.RetryAfterError{Err: err, After: wait}
		}
		return true, err
	case code >= 500, code == http.StatusRequestTimeout:
		return true, n.errorf(nil, "%s", msg)
	case code >= 300 && code < 400:
		return false, n.errorf(nil, "%s: a webhook does not redirect; check the URL", msg)
	}
	return false, n.errorf(nil, "%s", msg)
}

// formErrors sums up the first few of Discord's "errors" object, which says
// which field of a refused message broke which rule:
// {"embeds": {"0": {"description": {"_errors": [{"message": "..."}]}}}}.
func formErrors(raw json.RawMessage) string {
	var tree any
	if len(raw) == 0 || json.Unmarshal(raw, &tree) != nil {
		return ""
	}
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if list, ok := m["_errors"].([]any); ok {
			for _, e := range list {
				if em, ok := e.(map[string]any); ok {
					if s, ok := em["message"].(string); ok {
						out = append(out, strings.TrimPrefix(path, ".")+": "+s)
					}
				}
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "_errors" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(path+"."+k, m[k])
		}
	}
	walk("", tree)
	const most = 3
	if len(out) > most {
		out = append(out[:most], fmt.Sprintf("and %d more", len(out)-most))
	}
	return notify.Shorten(notify.OneLine(strings.Join(out, "; ")), 500)
}

// toDuration converts seconds into a duration, refusing what no server
// means: negative, NaN, or beyond what a Duration holds.
func toDuration(sec float64) (time.Duration, bool) {
	if math.IsNaN(sec) || sec < 0 || sec > math.MaxInt64/float64(time.Second) {
		return 0, false
	}
	return time.Duration(sec * float64(time.Second)), true
}

// errorf makes an error that names the webhook by its id alone and has the
// token scrubbed from its text, whatever the cause said.
func (n *Notifier) errorf(cause error, format string, args ...any) error {
	msg := fmt.Sprintf("discord: webhook %s/*****: "+format, append([]any{n.id}, args...)...)
	return &sendError{msg: strings.ReplaceAll(msg, n.token, "*****"), cause: cause}
}

// sendError is a failure to post, its text free of the webhook token.
type sendError struct {
	msg   string
	cause error // for errors.Is(err, context.DeadlineExceeded) and the like
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.cause }
