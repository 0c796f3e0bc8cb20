package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNotifyProblems(t *testing.T) {
	tests := []struct {
		name string
		toml string // after okStaging + okImage (lines 1-6)
		want []string
	}{
		{
			name: "discord without a webhook",
			// The Discord notifier's own rules: @here is a mention, <@abc>
			// is not, and Discord refuses a username naming Clyde.
			toml: "[notify.discord]\non = [\"failure\", \"sometimes\"]\nmentions = [\"@here\", \"<@abc>\", \"<@!12>\"]\nusername = \"Clyde bot\"\n", // 7-10
			want: []string{
				"bad.toml:7: notify.discord: no webhook URL: name a file holding it with webhook_url_file, or set $NIGHTSHIFT_DISCORD_WEBHOOK_URL",
				`bad.toml:8: notify.discord.on: "sometimes" is not one of failure, fixed, success, promote, always`,
				`bad.toml:9: notify.discord.mentions: mention 2: "<@abc>" is not <@user id>, <@!user id>, <@&role id>, @here or @everyone`,
				`bad.toml:10: notify.discord.username: username "Clyde bot" contains "clyde", which Discord refuses`,
			},
		},
		{
			name: "a webhook URL that is not one says so without quoting it",
			toml: "[notify.discord]\nwebhook_url_file = \"hook\"\n", // 7-8; hook holds "secret-token-123"
			want: []string{
				"bad.toml:8: notify.discord.webhook_url_file: the webhook URL is not of the form https://discord.com/api/webhooks/<id>/<token>",
			},
		},
		{
			name: "a webhook URL whose id is not a number",
			toml: "[notify.discord]\nwebhook_url_file = \"hook-bad-id\"\n", // 7-8
			want: []string{
				"bad.toml:8: notify.discord.webhook_url_file: the webhook URL is not of the form https://discord.com/api/webhooks/<id>/<token>",
			},
		},
		{
			name: "email",
			toml: "[notify.email]\ntls = \"ssl\"\nport = 70000\nusername = \"bot\"\nfrom = \"not an address\"\nto = []\n", // 7-12
			want: []string{
				"bad.toml:7: notify.email.host: required: the SMTP submission server's host name",
				`bad.toml:8: notify.email.tls: "ssl" is not "starttls", "tls" or "none"`,
				"bad.toml:9: notify.email.port: 70000 is not a TCP port",
				"bad.toml:10: notify.email.username: a user name is given but no password: name a file holding it with password_file, or set $NIGHTSHIFT_SMTP_PASSWORD",
				`bad.toml:11: notify.email.from: "not an address" is not a mail address: mail: no angle-addr`,
				"bad.toml:12: notify.email.to: required: at least one address to send summaries to",
			},
		},
		{
			name: "public url and durations",
			toml: "[notify]\ngive_up_after = \"0s\"\n[http]\npublic_url = \"nightshift.example.org\"\n", // 7-10
			want: []string{
				`bad.toml:8: notify.give_up_after: must be positive, e.g. "24h"`,
				`bad.toml:10: http.public_url: "nightshift.example.org" is not an http(s) URL such as https://nightshift.example.org`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, sampleTree...)
			if err := os.WriteFile(filepath.Join(dir, "hook"), []byte("secret-token-123\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "hook-bad-id"), []byte("https://discord.com/api/webhooks/abc/secret-token-123\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv(EnvDiscordWebhook, "")
			t.Setenv(EnvSMTPPassword, "")
			_, err := Parse([]byte(okStaging+okImage+tt.toml), "bad.toml", dir)
			got := problemStrings(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if strings.Contains(strings.Join(got, "\n"), "secret-token") {
				t.Errorf("a problem quotes the secret")
			}
		})
	}
}

func TestNotifyGood(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	t.Setenv(EnvDiscordWebhook, "https://discord.example/api/webhooks/1/tok")
	t.Setenv(EnvSMTPPassword, "smtp-secret")
	c, err := Parse([]byte(okStaging+okImage+`
[notify.discord]
mentions = ["@here", "@everyone", "<@123>", "<@!124>", "<@&456>"]
username = "ci bot"
[notify.email]
host = "smtp.example.org"
tls = "tls"
username = "bot"
from = "nightshift <ns@example.org>"
to = ["infra@example.org"]
on = ["always"]
[http]
public_url = "https://ns.example.org/"
`), "good.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	d, e := c.Notify.Discord, c.Notify.Email
	if !d.Enabled || d.WebhookURL.Reveal() != "https://discord.example/api/webhooks/1/tok" || !slices.Equal(d.On, []string{"failure", "fixed"}) {
		t.Errorf("discord = %+v, want enabled from the environment with the default policy", d)
	}
	if !e.Enabled || e.Port != 465 || e.Password.Reveal() != "smtp-secret" || !slices.Equal(e.On, []string{"always"}) {
		t.Errorf("email = %+v, want enabled, port 465 for tls, the password from the environment", e)
	}
	if c.HTTP.PublicURL != "https://ns.example.org" || c.Notify.GiveUpAfter.Hours() != 24 {
		t.Errorf("public url %q, give up after %v", c.HTTP.PublicURL, c.Notify.GiveUpAfter)
	}
	if c2, _ := Parse([]byte(okStaging+okImage), "plain.toml", dir); c2.Notify.Discord.Enabled || c2.Notify.Email.Enabled {
		t.Errorf("notifiers enabled without their tables")
	}
}

func TestScheduleProblems(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	t.Setenv(EnvHTTPToken, "")
	_, err := Parse([]byte(okStaging+okImage+"[schedule]\ncron = \"61 * * * *\"\nmissed = \"later\"\noverlap = \"queue\"\n[http]\nlisten = \"8080\"\n"), "bad.toml", dir)
	got := strings.Join(problemStrings(t, err), "\n")
	for _, want := range []string{
		"bad.toml:8: schedule.cron: ",
		`bad.toml:9: schedule.missed: "later" is not "run-once" or "skip"`,
		`bad.toml:10: schedule.overlap: "queue" is not "coalesce" or "reject"`,
		`bad.toml:12: http.listen: "8080" is not host:port, e.g. "127.0.0.1:8080"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	c, err := Parse([]byte(okStaging+okImage+"[schedule]\ncron = \"CRON_TZ=Europe/Berlin 0 2 * * *\"\n"), "good.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Schedule; !s.Enabled || s.Missed != "run-once" || s.Overlap != "coalesce" || s.Grace.Hours() != 6 || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("schedule defaults = %+v, listen %q", s, c.HTTP.Listen)
	}
}
