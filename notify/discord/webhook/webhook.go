// Package webhook holds Discord's rules for what a webhook is given: its
// URL, the username a message may carry and the mentions it may ping. It
// has no dependencies, so that the configuration loader applies the same
// rules as the notifier, with file, line and key, without importing it.
package webhook

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// MaxUsername is Discord's limit on a webhook message's username, in
// characters as Size counts them.
const MaxUsername = 80

var (
	webhookID    = regexp.MustCompile(`^[0-9]+$`)
	webhookToken = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`) // characters a URL path keeps as they are
	userMention  = regexp.MustCompile(`^<@!?([0-9]+)>$`)
	roleMention  = regexp.MustCompile(`^<@&([0-9]+)>$`)
)

// Parse checks a webhook URL and returns it, cleaned, with its id and
// token. Its errors never hold the token.
func Parse(raw string) (u *url.URL, id, token string, err error) {
	u, err = url.Parse(raw)
	if err != nil {
		// url.Parse quotes the whole URL in its error, token included.
		return nil, "", "", fmt.Errorf("webhook URL %s is not a valid URL", Redact(raw))
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, "", "", fmt.Errorf("webhook URL %s is not an http(s) URL with a host", Redact(raw))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	u.Fragment = ""
	id, token, ok := split(u.Path)
	if !ok || !webhookID.MatchString(id) || !webhookToken.MatchString(token) {
		return nil, "", "", fmt.Errorf("webhook URL %s does not end in /webhooks/<id>/<token>", Redact(raw))
	}
	return u, id, token, nil
}

// split finds the id and token in a webhook URL's path: the last two
// segments, after /webhooks/.
func split(path string) (id, token string, ok bool) {
	i := strings.LastIndex(path, "/webhooks/")
	if i < 0 {
		return "", "", false
	}
	id, token, ok = strings.Cut(path[i+len("/webhooks/"):], "/")
	return id, token, ok && id != "" && token != "" && !strings.Contains(token, "/")
}

// Redact shows where a webhook URL points without its token:
// https://discord.com/api/webhooks/<id>/*****.
func Redact(raw string) string {
	const stars = "*****"
	// The first /webhooks/: what follows it is id and token, and nothing
	// before it can be either.
	i := strings.Index(raw, "/webhooks/")
	if i < 0 {
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host + "/" + stars
		}
		return stars
	}
	prefix := stars
	if u, err := url.Parse(raw[:i]); err == nil && u.Host != "" {
		u.User = nil
		prefix = u.String()
	}
	id, _, _ := strings.Cut(raw[i+len("/webhooks/"):], "/")
	if !webhookID.MatchString(id) {
		// No id where one belongs: it may be the token.
		return prefix + "/webhooks/" + stars
	}
	return prefix + "/webhooks/" + id + "/" + stars
}

// CheckUsername says why Discord would refuse name as a webhook's
// username, if it would.
func CheckUsername(name string) error {
	if n := Size(name); n > MaxUsername {
		return fmt.Errorf("username %q is longer than %d characters", name, MaxUsername)
	}
	// Discord refuses these with a 400, which would otherwise only show at
	// the first failing run.
	for _, word := range []string{"discord", "clyde"} {
		if strings.Contains(strings.ToLower(name), word) {
			return fmt.Errorf("username %q contains %q, which Discord refuses", name, word)
		}
	}
	return nil
}

// Mention is a configured mention sorted into what allowed_mentions must
// name for it to ping.
type Mention struct {
	Text       string
	User, Role string // id
	Everyone   bool   // @here or @everyone
}

// ParseMention sorts m, or reports that it is no mention.
func ParseMention(m string) (Mention, bool) {
	switch {
	case m == "@here" || m == "@everyone":
		return Mention{Text: m, Everyone: true}, true
	case userMention.MatchString(m):
		return Mention{Text: m, User: userMention.FindStringSubmatch(m)[1]}, true
	case roleMention.MatchString(m):
		return Mention{Text: m, Role: roleMention.FindStringSubmatch(m)[1]}, true
	}
	return Mention{}, false
}

// CheckMention says why m is not a mention a summary can ping, if it is not.
func CheckMention(m string) error {
	if _, ok := ParseMention(m); !ok {
		return fmt.Errorf("%q is not <@user id>, <@!user id>, <@&role id>, @here or @everyone", m)
	}
	return nil
}

// Size is the length of s as Discord's limits count it. Its documentation
// says "characters"; UTF-16 code units are never fewer than code points, so
// counting them keeps within the limit either way it is meant.
func Size(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r > 0xffff {
			n++
		}
	}
	return n
}
