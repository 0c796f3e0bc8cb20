package discord

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
)

// The webhook every test posts to. The token is distinctive so that a test
// can tell it leaked into an error.
const (
	testID    = "112233445566778899"
	testToken = "s3cr3t-T0KEN_do-not-leak"
)

// fakeDiscord imitates Discord's execute-webhook endpoint as documented:
// POST .../webhooks/{id}/{token}[?wait=true] with a JSON body; 200 and the
// message with wait=true, 204 without; 400 "Invalid Form Body" (50035) for
// a message over any of the limits; 404 "Unknown Webhook" (10015) for
// another webhook.
type fakeDiscord struct {
	t      *testing.T
	srv    *httptest.Server
	prefix string // path before /webhooks/
	// respond, when set, may answer request n (from 0) itself, after the
	// request is recorded and before it is validated.
	respond func(w http.ResponseWriter, r *http.Request, n int) bool
	// header is added to every successful response.
	header http.Header

	mu  sync.Mutex
	got []received
}

type received struct {
	Path, Query, Host, ContentType string
	Raw                            []byte
	Msg                            wireMessage
	Status                         int // what the fake answered
}

// wireMessage is the execute-webhook body, as Discord reads it: decoded
// independently of discordgo's types.
type wireMessage struct {
	Content         string       `json:"content"`
	Username        string       `json:"username"`
	Embeds          []wireEmbed  `json:"embeds"`
	AllowedMentions *wireAllowed `json:"allowed_mentions"`
}

type wireEmbed struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	URL         string `json:"url"`
	Color       int    `json:"color"`
	Timestamp   string `json:"timestamp"`
	Footer      *struct {
		Text string `json:"text"`
	} `json:"footer"`
	Author *struct {
		Name string `json:"name"`
	} `json:"author"`
	Fields []struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Inline bool   `json:"inline"`
	} `json:"fields"`
}

type wireAllowed struct {
	Parse *[]string `json:"parse"` // nil when absent or null
	Users []string  `json:"users"`
	Roles []string  `json:"roles"`
}

func newFake(t *testing.T, prefix string) *fakeDiscord {
	t.Helper()
	f := &fakeDiscord{t: t, prefix: prefix}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// url is the webhook URL to configure.
func (f *fakeDiscord) url() string {
	return f.srv.URL + f.prefix + "/webhooks/" + testID + "/" + testToken
}

// client reaches the fake and nothing else: a request to any other host
// (discord.com, say) fails the test.
func (f *fakeDiscord) client() *http.Client {
	u, _ := url.Parse(f.srv.URL)
	return &http.Client{Transport: onlyTo{t: f.t, host: u.Host, base: f.srv.Client().Transport}}
}

func (f *fakeDiscord) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

type onlyTo struct {
	t    *testing.T
	host string
	base http.RoundTripper
}

func (o onlyTo) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != o.host {
		o.t.Errorf("request to %s://%s, want only %s", r.URL.Scheme, r.URL.Host, o.host)
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("test: request to a foreign host")
	}
	return o.base.RoundTrip(r)
}

var webhookPath = regexp.MustCompile(`^(.*)/webhooks/([^/]+)/([^/]+)$`)

func (f *fakeDiscord) serve(w http.ResponseWriter, r *http.Request) {
	rec := received{Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, ContentType: r.Header.Get("Content-Type")}
	rec.Raw, _ = io.ReadAll(r.Body)
	status := f.answer(w, r, &rec)
	rec.Status = status
	f.mu.Lock()
	f.got = append(f.got, rec)
	f.mu.Unlock()
}

func (f *fakeDiscord) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

// answer replies to one request and returns the status it sent.
func (f *fakeDiscord) answer(w http.ResponseWriter, r *http.Request, rec *received) int {
	m := webhookPath.FindStringSubmatch(r.URL.Path)
	if r.Method != http.MethodPost || m == nil || m[1] != f.prefix || m[2] != testID || m[3] != testToken {
		return reply(w, http.StatusNotFound, `{"message": "Unknown Webhook", "code": 10015}`)
	}
	jsonErr := json.Unmarshal(rec.Raw, &rec.Msg)
	if f.respond != nil && f.respond(w, r, f.count()) {
		return -1 // whatever respond sent
	}
	if !strings.HasPrefix(rec.ContentType, "application/json") {
		return reply(w, http.StatusBadRequest, `{"message": "Cannot send an empty message", "code": 50006}`)
	}
	if jsonErr != nil {
		return reply(w, http.StatusBadRequest, `{"message": "The request body contains invalid JSON.", "code": 50109}`)
	}
	if problems := validate(rec.Msg); len(problems) > 0 {
		errs := map[string]any{}
		for _, p := range problems {
			errs[p.path] = map[string]any{"_errors": []any{map[string]string{"code": "BASE_TYPE_MAX_LENGTH", "message": p.msg}}}
		}
		b, _ := json.Marshal(map[string]any{"message": "Invalid Form Body", "code": 50035, "errors": errs})
		return reply(w, http.StatusBadRequest, string(b))
	}
	for k, vs := range f.header {
		w.Header()[k] = vs
	}
	if r.URL.Query().Get("wait") != "true" {
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	b, _ := json.Marshal(map[string]any{
		"id": "1300000000000000001", "type": 0, "channel_id": "1200000000000000001", "webhook_id": testID,
		"content": rec.Msg.Content, "embeds": rec.Msg.Embeds, "mentions": []any{}, "attachments": []any{},
		"author":    map[string]any{"id": testID, "username": rec.Msg.Username, "bot": true},
		"timestamp": "2026-11-23T02:41:04.000000+00:00",
	})
	return reply(w, http.StatusOK, string(b))
}

func reply(w http.ResponseWriter, status int, body string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
	return status
}

type problem struct{ path, msg string }

// length counts as strictly as Discord could: UTF-16 code units, which are
// never fewer than code points.
func length(s string) int { return len(utf16.Encode([]rune(s))) }

// validate checks a message against Discord's documented limits.
func validate(m wireMessage) []problem {
	var ps []problem
	over := func(path, s string, limit int) {
		if n := length(s); n > limit {
			ps = append(ps, problem{path, fmt.Sprintf("Must be %d or fewer in length (is %d).", limit, n)})
		}
	}
	over("content", m.Content, 2000)
	over("username", m.Username, 80)
	for _, w := range []string{"discord", "clyde"} {
		if strings.Contains(strings.ToLower(m.Username), w) {
			ps = append(ps, problem{"username", "Username cannot contain \"" + w + "\""})
		}
	}
	if m.Content == "" && len(m.Embeds) == 0 {
		ps = append(ps, problem{"content", "Cannot send an empty message"})
	}
	if len(m.Embeds) > 10 {
		ps = append(ps, problem{"embeds", "Must be 10 or fewer in length."})
	}
	total := 0
	for i, e := range m.Embeds {
		p := fmt.Sprintf("embeds.%d.", i)
		over(p+"title", e.Title, 256)
		over(p+"description", e.Description, 4096)
		total += length(e.Title) + length(e.Description)
		if e.URL != "" {
			if u, err := url.Parse(e.URL); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
				ps = append(ps, problem{p + "url", "Not a well formed URL."})
			}
		}
		if e.Color < 0 || e.Color > 0xffffff {
			ps = append(ps, problem{p + "color", "Int value should be less than or equal to 16777215."})
		}
		if e.Footer != nil {
			over(p+"footer.text", e.Footer.Text, 2048)
			total += length(e.Footer.Text)
		}
		if e.Author != nil {
			over(p+"author.name", e.Author.Name, 256)
			total += length(e.Author.Name)
		}
		if len(e.Fields) > 25 {
			ps = append(ps, problem{p + "fields", "Must be 25 or fewer in length."})
		}
		for j, f := range e.Fields {
			fp := fmt.Sprintf("%sfields.%d.", p, j)
			over(fp+"name", f.Name, 256)
			over(fp+"value", f.Value, 1024)
			if strings.TrimSpace(f.Name) == "" {
				ps = append(ps, problem{fp + "name", "This field is required"})
			}
			if strings.TrimSpace(f.Value) == "" {
				ps = append(ps, problem{fp + "value", "This field is required"})
			}
			total += length(f.Name) + length(f.Value)
		}
	}
	if total > 6000 {
		ps = append(ps, problem{"embeds", fmt.Sprintf("Embed size exceeds maximum size of 6000 (is %d)", total)})
	}
	if a := m.AllowedMentions; a != nil {
		if len(a.Users) > 100 || len(a.Roles) > 100 {
			ps = append(ps, problem{"allowed_mentions", "Must be 100 or fewer in length."})
		}
		if a.Parse != nil {
			for _, p := range *a.Parse {
				switch {
				case p != "users" && p != "roles" && p != "everyone":
					ps = append(ps, problem{"allowed_mentions.parse", "Value must be one of {'users', 'roles', 'everyone'}."})
				case p == "users" && len(a.Users) > 0, p == "roles" && len(a.Roles) > 0:
					ps = append(ps, problem{"allowed_mentions", "Mutually exclusive fields"})
				}
			}
		}
	}
	return ps
}

// TestFakeRefuses checks the fake itself: a test that its limits pass
// proves nothing if it lets everything through.
func TestFakeRefuses(t *testing.T) {
	t.Parallel()
	field := func(name, value string) wireEmbed {
		e := wireEmbed{Title: "t"}
		e.Fields = append(e.Fields, struct {
			Name   string `json:"name"`
			Value  string `json:"value"`
			Inline bool   `json:"inline"`
		}{name, value, false})
		return e
	}
	ten := make([]wireEmbed, 11)
	for i := range ten {
		ten[i] = wireEmbed{Title: "t"}
	}
	big := []wireEmbed{{Description: strings.Repeat("d", 4000)}, {Description: strings.Repeat("d", 2001)}}
	for name, m := range map[string]wireMessage{
		"content":     {Content: strings.Repeat("c", 2001)},
		"empty":       {},
		"title":       {Embeds: []wireEmbed{{Title: strings.Repeat("t", 257)}}},
		"description": {Embeds: []wireEmbed{{Description: strings.Repeat("🚀", 2049)}}}, // 4098 UTF-16 units
		"field name":  {Embeds: []wireEmbed{field(strings.Repeat("n", 257), "v")}},
		"field value": {Embeds: []wireEmbed{field("n", strings.Repeat("v", 1025))}},
		"empty value": {Embeds: []wireEmbed{field("n", "")}},
		"embeds":      {Embeds: ten},
		"total":       {Embeds: big},
		"url":         {Embeds: []wireEmbed{{Title: "t", URL: "ci.example.com/runs/1"}}},
		"username":    {Content: "c", Username: "Discord"},
	} {
		if len(validate(m)) == 0 {
			t.Errorf("%s: the fake accepts what Discord refuses", name)
		}
	}
}
