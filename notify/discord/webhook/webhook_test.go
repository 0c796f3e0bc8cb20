package webhook

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-T0ken_x"
	u, id, tok, err := Parse("https://discord.com/api/webhooks/123/" + token + "/")
	if err != nil || id != "123" || tok != token || u.String() != "https://discord.com/api/webhooks/123/"+token {
		t.Fatalf("Parse = %v, %q, %q, %v", u, id, tok, err)
	}
	for _, bad := range []string{
		"ftp://discord.com/api/webhooks/123/" + token,
		"https:///api/webhooks/123/" + token,
		"https://discord.com/api/hooks/123/" + token,
		"https://discord.com/api/webhooks/abc/" + token,
		"https://discord.com/api/webhooks/123/" + token + "/extra",
		"https://discord.com/api/webhooks/123/%zz" + token,
	} {
		_, _, _, err := Parse(bad)
		if err == nil {
			t.Errorf("Parse(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), token) {
			t.Errorf("Parse(%q) error holds the token: %v", bad, err)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://discord.com/api/webhooks/123/tok":     "https://discord.com/api/webhooks/123/*****",
		"https://user:pw@proxy.local/webhooks/123/tok": "https://proxy.local/webhooks/123/*****",
		"https://discord.com/api/webhooks/tok":         "https://discord.com/api/webhooks/*****",
		"https://discord.com/somewhere/tok":            "https://discord.com/*****",
		"not a url with tok":                           "*****",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMentions(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Mention{
		"<@42>":     {Text: "<@42>", User: "42"},
		"<@!42>":    {Text: "<@!42>", User: "42"},
		"<@&7>":     {Text: "<@&7>", Role: "7"},
		"@here":     {Text: "@here", Everyone: true},
		"@everyone": {Text: "@everyone", Everyone: true},
	} {
		if got, ok := ParseMention(in); !ok || got != want {
			t.Errorf("ParseMention(%q) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"<@abc>", "@channel", "42", "<#42>"} {
		if CheckMention(bad) == nil {
			t.Errorf("CheckMention(%q) accepted it", bad)
		}
	}
}

func TestCheckUsername(t *testing.T) {
	t.Parallel()
	if err := CheckUsername(strings.Repeat("n", MaxUsername)); err != nil {
		t.Errorf("a username of %d characters: %v", MaxUsername, err)
	}
	for _, bad := range []string{strings.Repeat("n", MaxUsername-1) + "😀", "my Discord bot", "clyde"} {
		if CheckUsername(bad) == nil {
			t.Errorf("CheckUsername(%q) accepted it", bad)
		}
	}
}
