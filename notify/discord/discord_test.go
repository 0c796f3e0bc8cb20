package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"nightshift/notify/notifytest"
	"nightshift/retry"
)

// newNotifier returns a notifier posting to f, which must not sleep.
func newNotifier(t *testing.T, f *fakeDiscord, mentions ...string) *Notifier {
	t.Helper()
	n, err := New(Config{WebhookURL: f.url(), Client: f.client(), Mentions: mentions})
	if err != nil {
		t.Fatal(err)
	}
	n.sleep = func(context.Context, time.Duration) error {
		t.Error("Notify waited between messages")
		return nil
	}
	return n
}

// noToken fails the test if err's text shows the webhook token.
func noToken(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Errorf("error shows the webhook token: %v", err)
	}
}

func TestNotifySuccess(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	retry, err := newNotifier(t, f).Notify(context.Background(), notifytest.Sample())
	if err != nil || retry {
		t.Fatalf("Notify = %v, %v; want success", retry, err)
	}
	got := f.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	r := got[0]
	u, _ := url.Parse(f.srv.URL)
	if r.Path != "/api/webhooks/"+testID+"/"+testToken || r.Query != "wait=true" || r.Host != u.Host {
		t.Errorf("request to %s %s?%s, want the configured webhook with wait=true", r.Host, r.Path, r.Query)
	}
	if r.Status != http.StatusOK {
		t.Errorf("fake answered %d", r.Status)
	}
	if r.Msg.Username != "nightshift" || len(r.Msg.Embeds) != 1 || !strings.HasPrefix(r.Msg.Embeds[0].Title, "nightshift failed: 5 of 7") {
		t.Errorf("message = %+v", r.Msg)
	}
}

// A 204 with no body (what Discord answers without wait=true, and what a
// proxy may answer) is success, for every message of a split summary.
func TestNotify204IsSuccess(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	f.respond = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	s := bigRun()
	retry, err := newNotifier(t, f).Notify(context.Background(), s)
	if err != nil || retry {
		t.Fatalf("Notify = %v, %v; want success", retry, err)
	}
	if want := len(Payloads(s, "", nil)); f.count() != want || want < 2 {
		t.Errorf("%d requests, want all %d messages sent", f.count(), want)
	}
}

// TestNotifyKeepsConfiguredPrefix posts through a proxy path and keeps the
// configured query next to discordgo's.
func TestNotifyKeepsConfiguredPrefix(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/relay/discord")
	n, err := New(Config{WebhookURL: f.url() + "?thread_id=77", Client: f.client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), notifytest.Sample()); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	q, _ := url.ParseQuery(r.Query)
	if r.Path != "/relay/discord/webhooks/"+testID+"/"+testToken || q.Get("wait") != "true" || q.Get("thread_id") != "77" {
		t.Errorf("request to %s?%s", r.Path, r.Query)
	}
}

func TestNotifyClassifies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		retry   bool
		after   time.Duration // 0: no RetryAfterError
		mention []string      // in the error
	}{
		{name: "429 json", status: 429,
			header: map[string]string{"X-RateLimit-Reset-After": "1.5", "X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5", "Retry-After": "2"},
			body:   `{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}`,
			retry:  true, after: 1500 * time.Millisecond, mention: []string{"429", "You are being rate limited."}},
		{name: "429 json wins over headers", status: 429,
			header: map[string]string{"Retry-After": "9", "X-RateLimit-Reset-After": "9"},
			body:   `{"message": "You are being rate limited.", "retry_after": 0.25, "global": true}`,
			retry:  true, after: 250 * time.Millisecond, mention: []string{"global"}},
		{name: "429 not json, Retry-After", status: 429,
			header: map[string]string{"Retry-After": "7", "Content-Type": "text/html"},
			body:   "<html><body>429 Too Many Requests</body></html>",
			retry:  true, after: 7 * time.Second, mention: []string{"429"}},
		{name: "429 not json, reset-after", status: 429,
			header: map[string]string{"X-RateLimit-Reset-After": "3.25"}, body: "slow down",
			retry: true, after: 3250 * time.Millisecond},
		{name: "429 malformed rate-limit header", status: 429,
			header: map[string]string{"X-RateLimit-Reset-After": "soon", "Retry-After": "4"}, body: "slow down",
			retry: true, after: 4 * time.Second},
		{name: "429 no wait given", status: 429, body: "", retry: true},
		{name: "500", status: 500, body: `{"message": "Internal Server Error", "code": 0}`, retry: true, mention: []string{"500"}},
		{name: "502", status: 502, body: "<html>Bad Gateway</html>", retry: true, mention: []string{"502"}},
		{name: "503", status: 503, body: "upstream connect error", retry: true},
		{name: "504", status: 504, retry: true},
		{name: "408", status: 408, retry: true},
		{name: "400", status: 400,
			body:    `{"message": "Invalid Form Body", "code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}}`,
			mention: []string{"400", "Invalid Form Body", "50035", "embeds.0.description: Must be 4096 or fewer in length."}},
		{name: "401", status: 401, body: `{"message": "401: Unauthorized", "code": 0}`, mention: []string{"Unauthorized"}},
		{name: "403", status: 403, body: `{"message": "Missing Permissions", "code": 50013}`, mention: []string{"Missing Permissions", "50013"}},
		{name: "404", status: 404, body: `{"message": "Unknown Webhook", "code": 10015}`, mention: []string{"Unknown Webhook", "10015"}},
		{name: "404 echoing the URL", status: 404,
			body:    "Cannot POST /api/webhooks/" + testID + "/" + testToken + "?wait=true",
			mention: []string{"404", testID + "/*****"}},
		{name: "redirect", status: 308, header: map[string]string{"Location": "https://discord.com/api/webhooks/1/other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, "/api")
			f.respond = func(w http.ResponseWriter, r *http.Request, n int) bool {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
				return true
			}
			again, err := newNotifier(t, f).Notify(context.Background(), notifytest.Sample())
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			noToken(t, err)
			if again != tc.retry {
				t.Errorf("retry = %v, want %v (err: %v)", again, tc.retry, err)
			}
			after, ok := retry.After(err)
			if ok != (tc.after != 0) || after != tc.after {
				t.Errorf("retry after %v (%v), want %v (err: %v)", after, ok, tc.after, err)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
			if n := f.count(); n != 1 {
				t.Errorf("%d requests, want 1: retrying is the outbox's business", n)
			}
		})
	}
}

// TestNotifyUnreachable: a webhook that does not answer is worth a retry.
func TestNotifyUnreachable(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	n := newNotifier(t, f)
	f.srv.Close()
	retry, err := n.Notify(context.Background(), notifytest.Sample())
	if err == nil || !retry {
		t.Fatalf("Notify = %v, %v; want a retry", retry, err)
	}
	noToken(t, err)
	if strings.Contains(err.Error(), "discord.com") {
		t.Errorf("error %q names discordgo's URL, not the configured one", err)
	}
}

func TestNotifyCancelled(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	arrived := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(done) }) // before the server closes: Cleanup runs last-in first-out
	f.respond = func(w http.ResponseWriter, r *http.Request, n int) bool {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-done:
		}
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	retry, err := newNotifier(t, f).Notify(ctx, notifytest.Sample())
	if err == nil || !retry || !errors.Is(err, context.Canceled) {
		t.Fatalf("Notify = %v, %v; want a retry after context.Canceled", retry, err)
	}
	noToken(t, err)
}

func TestNotifyDeadlinePassed(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	retry, err := newNotifier(t, f).Notify(ctx, notifytest.Sample())
	if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, %v; want a retry after context.DeadlineExceeded", retry, err)
	}
	noToken(t, err)
}

// TestNotifyBigRun sends a run too big for one message to a fake that
// refuses, as Discord does, any message over a limit.
func TestNotifyBigRun(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	retry, err := newNotifier(t, f, testMentions...).Notify(context.Background(), bigRun())
	if err != nil || retry {
		t.Fatalf("Notify = %v, %v; want success", retry, err)
	}
	got := f.requests()
	if len(got) < 2 {
		t.Fatalf("%d requests, want the summary split", len(got))
	}
	for i, r := range got {
		if r.Status != http.StatusOK {
			t.Errorf("message %d: fake answered %d", i, r.Status)
		}
		if (r.Msg.Content != "") != (i == 0) {
			t.Errorf("message %d: content %q; want the mentions in the first message only", i, r.Msg.Content)
		}
	}
}

func TestNotifySplitStopsAtFailure(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	f.respond = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n < 1 {
			return false
		}
		reply(w, http.StatusServiceUnavailable, `{"message": "Service Unavailable", "code": 0}`)
		return true
	}
	retry, err := newNotifier(t, f).Notify(context.Background(), bigRun())
	if err == nil || !retry || !strings.Contains(err.Error(), "message 2 of") {
		t.Fatalf("Notify = %v, %v; want a retry naming message 2", retry, err)
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d requests, want 2: none after the failed one", n)
	}
}

// TestNotifyPaces: when Discord says the bucket is empty, the next message
// waits for it to refill, or the send is a retry when ctx cannot wait that
// long.
func TestNotifyPaces(t *testing.T) {
	t.Parallel()
	f := newFake(t, "/api")
	f.header = http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset-After": {"1.5"}}
	n := newNotifier(t, f)
	var mu sync.Mutex
	var waits []time.Duration
	n.sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return nil
	}
	if _, err := n.Notify(context.Background(), bigRun()); err != nil {
		t.Fatal(err)
	}
	if sent := f.count(); len(waits) != sent-1 || waits[0] != 1500*time.Millisecond {
		t.Errorf("waited %v between %d messages, want 1.5s before each but the first", waits, sent)
	}

	g := newFake(t, "/api")
	g.header = http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset-After": {"30"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	again, err := newNotifier(t, g).Notify(ctx, bigRun())
	if after, ok := retry.After(err); !again || !ok || after != 30*time.Second {
		t.Errorf("Notify = %v, %v; want a retry after 30s", again, err)
	}
	if g.count() != 1 {
		t.Errorf("%d requests, want 1", g.count())
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	const secret = "sEcReT-token"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // in the error; "" for no error
	}{
		{"discord", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret}, ""},
		{"trailing slash", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret + "/"}, ""},
		{"proxy", Config{WebhookURL: "http://127.0.0.1:8080/hooks/webhooks/123/" + secret + "?thread_id=5"}, ""},
		{"mentions", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret, Mentions: []string{"<@1>", "<@!2>", "<@&3>", "@here", "@everyone"}}, ""},
		{"no token", Config{WebhookURL: "https://discord.com/api/webhooks/123"}, "https://discord.com/api/webhooks/123/*****"},
		{"extra segment", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret + "/github"}, "https://discord.com/api/webhooks/123/*****"},
		{"id not a number", Config{WebhookURL: "https://discord.com/api/webhooks/" + secret + "/x"}, "https://discord.com/api/webhooks/*****"},
		{"not a URL", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret + "%zz"}, "https://discord.com/api/webhooks/123/*****"},
		{"no scheme", Config{WebhookURL: "discord.com/api/webhooks/123/" + secret}, "/webhooks/123/*****"},
		{"ftp", Config{WebhookURL: "ftp://discord.com/api/webhooks/123/" + secret}, "ftp://discord.com/api/webhooks/123/*****"},
		{"no webhooks", Config{WebhookURL: "https://discord.com/api/" + secret}, "https://discord.com/*****"},
		{"userinfo", Config{WebhookURL: "https://user:" + secret + "@discord.com/api/webhook/123/x"}, "https://discord.com/*****"},
		{"odd token", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret + "%2Fx"}, "webhooks/123/*****"},
		{"empty", Config{}, "*****"},
		{"username", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret, Username: "My Discord Bot"}, `contains "discord"`},
		{"long username", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret, Username: strings.Repeat("n", 81)}, "longer than 80"},
		{"mention", Config{WebhookURL: "https://discord.com/api/webhooks/123/" + secret, Mentions: []string{"<@1>", "@ops"}}, `mention 2: "@ops"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want == "":
				if n.Name() != "discord" {
					t.Errorf("Name = %q", n.Name())
				}
				return
			case err == nil:
				t.Fatalf("New accepted %+v", tc.cfg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the token: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestConfigStringHidesToken(t *testing.T) {
	t.Parallel()
	c := Config{WebhookURL: "https://discord.com/api/webhooks/123/" + testToken, Mentions: []string{"<@1>"}}
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c)} {
		if strings.Contains(s, testToken) || !strings.Contains(s, "webhooks/123/*****") {
			t.Errorf("%s", s)
		}
	}
}
