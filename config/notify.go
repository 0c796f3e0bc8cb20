package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

	"nightshift/notify/discord/webhook"
	"nightshift/notify/email/tlsmode"
	"nightshift/notify/event"
)

// Environment variables that may hold notification secrets when no *_file
// key names a file.
const (
	EnvDiscordWebhook = "NIGHTSHIFT_DISCORD_WEBHOOK_URL"
	EnvSMTPPassword   = "NIGHTSHIFT_SMTP_PASSWORD"
)

// defaultOn is when a notifier speaks unless told otherwise: when a run
// fails, and when one succeeds after a failure.
func defaultOn() []string { return []string{event.Failure, event.Fixed} }

const (
	defaultGiveUpAfter  = 24 * time.Hour
	defaultFlushTimeout = 2 * time.Minute
)

// Notify is where run summaries go.
type Notify struct {
	// GiveUpAfter is how long an undeliverable message is retried.
	GiveUpAfter Duration `toml:"give_up_after"`
	// FlushTimeout is how long `nightshift run` waits for deliveries before
	// leaving them to the next nightshift that starts.
	FlushTimeout Duration `toml:"flush_timeout"`
	Discord      Discord  `toml:"discord"`
	Email        Email    `toml:"email"`
}

// Discord is a Discord channel webhook.
type Discord struct {
	Enabled bool `toml:"-"` // the [notify.discord] table is present
	// WebhookURLFile names a file holding the webhook URL (it holds a
	// token); else $NIGHTSHIFT_DISCORD_WEBHOOK_URL.
	WebhookURLFile string   `toml:"webhook_url_file"`
	WebhookURL     Secret   `toml:"-"`
	On             []string `toml:"on"`
	Username       string   `toml:"username"`
	// Mentions are put in failure messages: "<@user id>", "<@!user id>",
	// "<@&role id>", "@here" or "@everyone".
	Mentions []string `toml:"mentions"`
}

// Email is an SMTP submission server and the people to write to.
type Email struct {
	Enabled      bool     `toml:"-"` // the [notify.email] table is present
	Host         string   `toml:"host"`
	Port         int      `toml:"port"`
	TLS          string   `toml:"tls"` // a tlsmode: "starttls", "tls" or "none"
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	Password     Secret   `toml:"-"`
	From         string   `toml:"from"`
	To           []string `toml:"to"`
	On           []string `toml:"on"`
}

// HTTP is nightshift's web side: the daemon's API and dashboard.
type HTTP struct {
	// Listen is the daemon's address. Default: 127.0.0.1:8080.
	Listen string `toml:"listen"`
	// TokenFile names a file holding the bearer token that API writes
	// (trigger, cancel) need; else $NIGHTSHIFT_HTTP_TOKEN. Without one,
	// writes are refused.
	TokenFile string `toml:"token_file"`
	Token     Secret `toml:"-"`
	// TokensFile names a file of named bearer tokens, one "name token"
	// pair a line (see ParseTokens): a run triggered with one of them
	// records its name. Token, if set, is accepted too, unnamed.
	TokensFile string       `toml:"tokens_file"`
	Tokens     []NamedToken `toml:"-"`
	// PublicURL is where people reach the dashboard; messages link to it.
	PublicURL string `toml:"public_url"`
}

func (l *loader) notify(n *Notify) {
	if !l.has("notify.give_up_after") {
		n.GiveUpAfter.Duration = defaultGiveUpAfter
	} else if n.GiveUpAfter.Duration <= 0 {
		l.problem("notify.give_up_after", `must be positive, e.g. "24h"`)
	}
	if !l.has("notify.flush_timeout") {
		n.FlushTimeout.Duration = defaultFlushTimeout
	} else if n.FlushTimeout.Duration < 0 {
		l.problem("notify.flush_timeout", `must not be negative: "0s" leaves every delivery to a later nightshift`)
	}
	if n.Discord.Enabled = l.has("notify.discord"); n.Discord.Enabled {
		l.discord(&n.Discord)
	}
	if n.Email.Enabled = l.has("notify.email"); n.Email.Enabled {
		l.email(&n.Email)
	}
}

func (l *loader) discord(d *Discord) {
	d.On = l.on("notify.discord.on", d.On)
	var unreadable bool
	d.WebhookURL, unreadable = l.readSecret("notify.discord.webhook_url_file", &d.WebhookURLFile, EnvDiscordWebhook, "the Discord webhook URL")
	switch {
	case unreadable:
	case d.WebhookURL == "":
		l.problem("notify.discord", "no webhook URL: name a file holding it with webhook_url_file, or set $"+EnvDiscordWebhook)
	default:
		// The URL holds the webhook's token: say what is wrong, never what it is.
		if _, _, _, err := webhook.Parse(d.WebhookURL.Reveal()); err != nil {
			l.problem("notify.discord.webhook_url_file", "the webhook URL is not of the form https://discord.com/api/webhooks/<id>/<token>")
		}
	}
	// The notifier's own rules, checked here so that a problem names file,
	// line and key rather than failing later without them.
	if d.Username != "" {
		if err := webhook.CheckUsername(d.Username); err != nil {
			l.problem("notify.discord.username", err.Error())
		}
	}
	for i, m := range d.Mentions {
		if err := webhook.CheckMention(m); err != nil {
			l.problem("notify.discord.mentions", fmt.Sprintf("mention %d: %v", i+1, err))
		}
	}
}

func (l *loader) email(e *Email) {
	e.On = l.on("notify.email.on", e.On)
	if e.Host == "" {
		l.problem("notify.email.host", "required: the SMTP submission server's host name")
	}
	if e.TLS == "" {
		e.TLS = tlsmode.Default
	}
	port, known := tlsmode.Port(e.TLS)
	if !known {
		l.problem("notify.email.tls", fmt.Sprintf(`%q is not %q, %q or %q`, e.TLS, tlsmode.StartTLS, tlsmode.Implicit, tlsmode.None))
	}
	if e.Port == 0 {
		e.Port = port
	} else if e.Port < 1 || e.Port > 65535 {
		l.problem("notify.email.port", fmt.Sprintf("%d is not a TCP port", e.Port))
	}
	var unreadable bool
	e.Password, unreadable = l.readSecret("notify.email.password_file", &e.PasswordFile, EnvSMTPPassword, "the SMTP password")
	switch {
	case e.Password != "" && e.Username == "" && e.PasswordFile != "":
		l.problem("notify.email.username", "a password_file is given but no user name: set notify.email.username")
	case e.Password == "" && e.Username != "" && !unreadable:
		l.problem("notify.email.username", "a user name is given but no password: name a file holding it with password_file, or set $"+EnvSMTPPassword)
	}
	if e.Username == "" {
		e.Password = "" // a password from the environment alone is not an instruction to log in
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		l.problem("notify.email.from", fmt.Sprintf("%q is not a mail address: %v", e.From, err))
	}
	if len(e.To) == 0 {
		l.problem("notify.email.to", "required: at least one address to send summaries to")
	}
	for _, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			l.problem("notify.email.to", fmt.Sprintf("%q is not a mail address: %v", to, err))
		}
	}
}

// on checks a notifier's `on` list at key and returns it, or the default.
func (l *loader) on(key string, on []string) []string {
	if !l.has(key) {
		return defaultOn()
	}
	for _, ev := range on {
		if !slices.Contains(event.Policy(), ev) {
			l.problem(key, fmt.Sprintf("%q is not one of %s", ev, strings.Join(event.Policy(), ", ")))
		}
	}
	return on
}

func (l *loader) http(h *HTTP) {
	l.daemonHTTP(h)
	if h.PublicURL == "" {
		return
	}
	u, err := url.Parse(h.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		l.problem("http.public_url", fmt.Sprintf("%q is not an http(s) URL such as https://nightshift.example.org", h.PublicURL))
		return
	}
	h.PublicURL = strings.TrimRight(h.PublicURL, "/")
}
