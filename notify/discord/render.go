package discord

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"nightshift/notify"
	"nightshift/notify/discord/webhook"
	"nightshift/store"
)

// Discord's limits on one webhook message. Exceeding any of them gets the
// whole message refused with 400 "Invalid Form Body" (code 50035).
const (
	maxTitle       = 256
	maxDescription = 4096
	maxFieldName   = 256
	maxFieldValue  = 1024
	maxFields      = 25   // per embed
	maxEmbeds      = 10   // per message
	maxTotal       = 6000 // titles, descriptions, field names and values, footers and authors of all embeds
	maxContent     = 2000
	maxAllowed     = 100 // user or role ids in allowed_mentions
)

// The embed colours, by what the summary is news of.
const (
	green  = 0x2ecc71
	red    = 0xe74c3c
	orange = 0xe67e22
	blue   = 0x3498db
)

const defaultUsername = "nightshift"

// tailLines is how much of a failed step's log a field quotes at most: the
// error is at the end, the dashboard has the rest.
const tailLines = 20

// tailBudget is about what the quoted logs of one summary may take in all,
// two messages' worth; minTail is what each quote gets at least, enough for
// the last few lines.
const (
	tailBudget = 12000
	minTail    = 400
)

// Payloads renders s as the webhook messages that carry it: one, or several
// when the run is too big for Discord's limits on one message, each within
// all of them. The first message pings mentions when s is bad news; no other
// text in any message can ping anyone.
func Payloads(s notify.Summary, username string, mentions []string) []*discordgo.WebhookParams {
	if username == "" {
		username = defaultUsername
	}
	username = truncate(notify.OneLine(username), webhook.MaxUsername)

	base := "nightshift " + notify.OneLine(s.Headline())
	p := packer{colour: colour(s), reserve: min(maxTitle, size(base)+size(part(999, 999)))}
	for _, l := range describe(s) {
		p.line(l)
	}
	for _, f := range failures(s) {
		p.field(f)
	}
	msgs := p.messages()

	runURL := linkable(s.RunURL())
	stamp := timestamp(s.Run)
	content, allowed := ping(s, mentions)
	out := make([]*discordgo.WebhookParams, len(msgs))
	for i, embeds := range msgs {
		title := truncate(base, maxTitle)
		if len(msgs) > 1 && len(msgs) < 1000 {
			sfx := part(i+1, len(msgs))
			title = truncate(base, maxTitle-size(sfx)) + sfx
		}
		embeds[0].Title, embeds[0].URL = title, runURL
		embeds[len(embeds)-1].Timestamp = stamp
		out[i] = &discordgo.WebhookParams{Username: username, Embeds: embeds, AllowedMentions: allowed}
		if i == 0 {
			out[i].Content = content
		} else {
			// The ids are allowed once, where they are mentioned.
			out[i].AllowedMentions = &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
		}
	}
	return out
}

// part numbers one message of a split summary in its title.
func part(i, n int) string { return fmt.Sprintf(" (%d/%d)", i, n) }

// bad reports whether s is news someone should act on: only then are
// people pinged.
func bad(s notify.Summary) bool {
	switch s.Event {
	case notify.EventFailure, notify.EventInterrupted, notify.EventNotStarted:
		return true
	case notify.EventSuccess, notify.EventFixed, notify.EventPromote:
		return false
	}
	return s.Run.Status == store.Failed || s.Run.Status == store.Interrupted
}

func colour(s notify.Summary) int {
	if s.Event == notify.EventPromote {
		if s.Promotion != nil && len(s.Promotion.Refused) > 0 {
			return orange
		}
		return green
	}
	switch s.Event {
	case notify.EventSuccess:
		return green
	case notify.EventFixed:
		return blue
	case notify.EventFailure:
		return red
	case notify.EventInterrupted, notify.EventNotStarted:
		return orange
	}
	switch s.Run.Status {
	case store.Succeeded:
		return green
	case store.Failed:
		return red
	}
	return orange
}

// ping returns the content that mentions people and the allowed_mentions
// that lets exactly those mentions through; a sample summary mentions
// nobody. Parse is always an empty list,
// never absent: absent would let Discord ping whatever the text names.
func ping(s notify.Summary, mentions []string) (string, *discordgo.MessageAllowedMentions) {
	allowed := &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
	if !bad(s) || s.Sample {
		return "", allowed
	}
	var content []string
	used := 0
	seen := map[string]bool{}
	for _, raw := range mentions {
		m, ok := webhook.ParseMention(raw)
		if !ok || seen[m.Text] {
			continue
		}
		if m.User != "" && len(allowed.Users) == maxAllowed || m.Role != "" && len(allowed.Roles) == maxAllowed {
			continue
		}
		n := size(m.Text)
		if len(content) > 0 {
			n++ // the space before it
		}
		if used+n > maxContent {
			continue
		}
		seen[m.Text] = true
		used += n
		content = append(content, m.Text)
		switch {
		case m.User != "":
			allowed.Users = append(allowed.Users, m.User)
		case m.Role != "":
			allowed.Roles = append(allowed.Roles, m.Role)
		case m.Everyone && len(allowed.Parse) == 0:
			// @here and @everyone have no id to list.
			allowed.Parse = append(allowed.Parse, discordgo.AllowedMentionTypeEveryone)
		}
	}
	return strings.Join(content, " "), allowed
}

// describe returns the description's lines: what the run was, then one
// line per image. "" separates paragraphs.
func describe(s notify.Summary) []string {
	r := s.Run
	var ls []string
	if s.Sample {
		ls = append(ls, "*A sample summary from nightshift notify test; it mentions nobody.*")
	}
	if s.Event == notify.EventNotStarted && s.Reason != "" {
		ls = append(ls, "**Could not start:** "+escape(notify.Shorten(notify.OneLine(s.Reason), 1000)))
	}
	if r.Commit != "" {
		c := "`" + notify.ShortCommit(strings.ReplaceAll(r.Commit, "`", "")) + "`"
		if subj := notify.OneLine(r.Subject); subj != "" {
			c += " " + escape(notify.Shorten(subj, 200))
		}
		if r.Dirty {
			c += " (with uncommitted changes)"
		}
		ls = append(ls, c)
	}
	if p := s.Promotion; p != nil {
		return append(ls, promotionLines(s, p)...)
	}
	if r.Finished != nil && !r.Started.IsZero() {
		ls = append(ls, "Took "+notify.Duration(r.Finished.Sub(r.Started)))
	}
	if u := linkable(s.ConsoleURL()); u != "" {
		ls = append(ls, "Jenkins build: [console]("+u+")")
	}
	if r.Error != "" && r.Error != s.Reason {
		ls = append(ls, "**Error:** "+escape(notify.Shorten(notify.OneLine(r.Error), 500)))
	}
	if imgs := s.Images(); len(imgs) > 0 {
		ls = append(ls, "")
		for _, im := range imgs {
			ls = append(ls, imageLine(s, im))
		}
	}
	if u := notify.Unchanged(r); u != "" {
		ls = append(ls, symbol(store.Skipped)+" "+escape(notify.Shorten(u, 500)))
	}
	switch {
	case s.Undelivered == 1:
		ls = append(ls, "", "1 earlier message could not be delivered.")
	case s.Undelivered > 1:
		ls = append(ls, "", fmt.Sprintf("%d earlier messages could not be delivered.", s.Undelivered))
	}
	return ls
}

// promotionLines say who promoted what, then one line per image: where it
// went, or why it did not.
func promotionLines(s notify.Summary, p *store.Promotion) []string {
	code := func(v string) string {
		return "`" + notify.Shorten(strings.ReplaceAll(notify.OneLine(v), "`", ""), 200) + "`"
	}
	by := "Promoted"
	if who := notify.OneLine(p.By); who != "" {
		by += " by " + escape(notify.Shorten(who, 100))
	}
	if p.Forced {
		by += ", with --force"
	}
	ls := []string{by, ""}
	for _, im := range p.Images {
		name := escape(notify.Shorten(notify.OneLine(im.Name), 100))
		if u := linkable(s.ImageURL(im.Name)); u != "" {
			name = "[" + name + "](" + u + ")"
		}
		l := "✅ " + name + " → " + code(im.Ref)
		if len(p.Tags) > 1 {
			l += fmt.Sprintf(" (and %d more tags)", len(p.Tags)-1)
		}
		l += " · " + code(store.ShortDigest(im.Digest))
		if !im.Validated {
			l += " · not validated"
		}
		ls = append(ls, l)
	}
	for _, im := range p.Refused {
		ls = append(ls, "⛔ "+escape(notify.Shorten(notify.OneLine(im.Name), 100))+": "+escape(notify.Shorten(notify.OneLine(im.Reason), 300)))
	}
	return ls
}

// imageLine is one image: status, name (linked to its dashboard page),
// duration, and its ref or why it did not build.
func imageLine(s notify.Summary, im store.ImageResult) string {
	name := escape(notify.Shorten(notify.OneLine(im.Name), 100))
	if u := linkable(s.ImageURL(im.Name)); u != "" {
		name = "[" + name + "](" + u + ")"
	}
	parts := []string{symbol(im.Status) + " " + name}
	if im.Started != nil && im.Finished != nil {
		parts = append(parts, notify.Duration(im.Finished.Sub(*im.Started)))
	}
	switch im.Status {
	case store.Succeeded:
		if ref := strings.ReplaceAll(notify.OneLine(im.Ref), "`", ""); ref != "" {
			parts = append(parts, "`"+notify.Shorten(ref, 200)+"`")
		}
	case "":
		parts = append(parts, "not started")
	default:
		d := string(im.Status)
		if reason := notify.OneLine(im.Error); reason != "" {
			d += ": " + escape(notify.Shorten(reason, 150))
		}
		parts = append(parts, d)
	}
	if f := notify.FlakyBuild(im); f != "" {
		parts = append(parts, f)
	}
	if r := s.Recurs(im.Name); r != "" {
		parts = append(parts, r)
	}
	if v := notify.ValidationStatus(im.Validation); v != "" {
		parts = append(parts, v)
	}
	if p := notify.PackageChanges(im, 3); p != "" {
		parts = append(parts, escape(notify.Shorten(p, 300)))
	}
	return strings.Join(parts, " · ")
}

func symbol(s store.Status) string {
	switch s {
	case store.Succeeded:
		return "✅"
	case store.Failed:
		return "❌"
	case store.Skipped:
		return "⏭️"
	case store.Interrupted:
		return "⚠️"
	case store.Running:
		return "⏳"
	case "":
		return "⬜"
	}
	return "❔"
}

// failures returns, for each image, a field naming its failing tests and a
// field quoting the end of its log if it failed.
//
// When many images failed, each quote is shorter: they usually failed for
// one reason, the last lines of each log say which, the dashboard has the
// rest, and a summary of a few messages is read where one of ten is not.
func failures(s notify.Summary) []*discordgo.MessageEmbedField {
	if s.Promotion != nil {
		return nil // the run's failures were news when it ended
	}
	var failed []store.ImageResult
	n := 0
	for _, im := range s.Images() {
		tests := len(notify.FailedTests(im.Validation))
		if im.Status == store.Failed || tests > 0 {
			failed = append(failed, im)
		}
		if im.Status == store.Failed {
			n++
		}
		if tests > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	limit := min(maxFieldValue, max(minTail, tailBudget/n))
	var fs []*discordgo.MessageEmbedField
	for _, im := range failed {
		name := escape(notify.Shorten(notify.OneLine(im.Name), 200))
		if tests := notify.FailedTests(im.Validation); len(tests) > 0 {
			fs = append(fs, &discordgo.MessageEmbedField{Name: truncate(name+": failing tests", maxFieldName), Value: testList(tests, limit)})
		}
		if im.Status != store.Failed {
			continue
		}
		f := &discordgo.MessageEmbedField{Name: truncate(name+" failed", maxFieldName)}
		switch {
		case len(im.Tail) > 0:
			f.Value = tailBlock(im.Tail, limit)
		case notify.OneLine(im.Error) != "":
			f.Value = truncate(escape(notify.OneLine(im.Error)), limit)
		default:
			f.Value = "no log captured" // Discord refuses an empty value
		}
		fs = append(fs, f)
	}
	return fs
}

// testList names failing tests, one a line with why each failed, in at
// most limit characters; the tests that do not fit are counted at the end.
func testList(tests []notify.FailedTest, limit int) string {
	more := func(n int) string { return fmt.Sprintf("and %d more", n) }
	reserve := size("\n" + more(len(tests))) // kept until the last line, should one not fit
	var lines []string
	used := 0
	for i, t := range tests {
		l := "• **" + escape(notify.Shorten(t.Name, 100)) + "**: " + escape(t.Why)
		sep := min(len(lines), 1) // the newline before it
		room := limit - used - sep
		if i < len(tests)-1 {
			room -= reserve
		}
		if size(l) > room {
			if len(lines) > 0 {
				lines = append(lines, more(len(tests)-i))
				break
			}
			l = truncate(l, room) // the first one is named, however long
		}
		lines = append(lines, l)
		used += sep + size(l)
	}
	return strings.Join(lines, "\n")
}

// tailBlock quotes the last lines of a log in a code block of at most limit
// characters, cutting from the top: the error is at the end.
func tailBlock(tail []string, limit int) string {
	const open, closing = "```\n", "\n```"
	budget := limit - size(open) - size(closing)
	// Room for the marker, at its longest, of lines left out.
	budget -= size(omitted(len(tail)))

	lines := tail[max(0, len(tail)-tailLines):]
	var kept []string
	used := 0
	for i := len(lines) - 1; i >= 0; i-- {
		l := unfence(notify.CleanLine(lines[i]))
		n := size(l)
		if len(kept) > 0 {
			n++ // the newline after it
		}
		if used+n > budget {
			if len(kept) == 0 {
				kept = append(kept, keepEnd(l, budget))
			}
			break
		}
		used += n
		kept = append(kept, l)
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	body := strings.Join(kept, "\n")
	if n := len(tail) - len(kept); n > 0 {
		body = omitted(n) + body
	}
	return open + body + closing
}

func omitted(n int) string { return fmt.Sprintf("[%d earlier lines]\n", n) }

// unfence keeps a log line from closing the code block it is quoted in: no
// two backticks stay next to each other.
func unfence(l string) string {
	if !strings.Contains(l, "``") {
		return l
	}
	var b strings.Builder
	for i := 0; i < len(l); i++ {
		b.WriteByte(l[i])
		if l[i] == '`' && i+1 < len(l) && l[i+1] == '`' {
			b.WriteString("\u200b") // zero-width space
		}
	}
	return b.String()
}

// packer lays lines and fields out in embeds and messages, starting a new
// embed or message before any limit would be passed.
type packer struct {
	colour  int
	reserve int // characters kept for each message's title

	msgs     [][]*discordgo.MessageEmbed
	total    int  // characters in the last message so far, its title's reserve included
	descSize int  // of the last embed's description
	blank    bool // a paragraph break is due before the next line
}

func (p *packer) last() *discordgo.MessageEmbed {
	if len(p.msgs) == 0 {
		return nil
	}
	m := p.msgs[len(p.msgs)-1]
	return m[len(m)-1]
}

// embed starts an embed with room for need more characters, in a new
// message if the last one has no room left.
func (p *packer) embed(need int) *discordgo.MessageEmbed {
	if len(p.msgs) == 0 || len(p.msgs[len(p.msgs)-1]) == maxEmbeds || p.total+need > maxTotal {
		p.msgs = append(p.msgs, nil)
		p.total = p.reserve
	}
	e := &discordgo.MessageEmbed{Color: p.colour}
	p.msgs[len(p.msgs)-1] = append(p.msgs[len(p.msgs)-1], e)
	p.descSize = 0
	p.blank = false
	return e
}

// line adds a line to the description; "" asks for a paragraph break.
func (p *packer) line(l string) {
	if l == "" {
		p.blank = true
		return
	}
	// No line is ever too long for an embed of its own.
	l = truncate(l, min(maxDescription, maxTotal-p.reserve))
	n := size(l)
	e := p.last()
	sep := ""
	if e != nil && p.descSize > 0 {
		sep = "\n"
		if p.blank {
			sep = "\n\n"
		}
	}
	// A line after fields would show above them: it needs a new embed.
	if e == nil || len(e.Fields) > 0 || p.descSize+len(sep)+n > maxDescription || p.total+len(sep)+n > maxTotal {
		e, sep = p.embed(n), ""
	}
	e.Description += sep + l
	p.descSize += len(sep) + n
	p.total += len(sep) + n
	p.blank = false
}

func (p *packer) field(f *discordgo.MessageEmbedField) {
	n := size(f.Name) + size(f.Value)
	e := p.last()
	if e == nil || len(e.Fields) == maxFields || p.total+n > maxTotal {
		e = p.embed(n)
	}
	e.Fields = append(e.Fields, f)
	p.total += n
}

func (p *packer) messages() [][]*discordgo.MessageEmbed {
	if len(p.msgs) == 0 {
		p.embed(0)
	}
	return p.msgs
}

// timestamp is when the run ended (or began), which Discord shows in the
// reader's time zone.
func timestamp(r store.Run) string {
	switch {
	case r.Finished != nil:
		return r.Finished.UTC().Format(time.RFC3339)
	case !r.Started.IsZero():
		return r.Started.UTC().Format(time.RFC3339)
	}
	return ""
}

// linkable returns u if Discord will take it as a link: an absolute http(s)
// URL, with the characters that would end a markdown link escaped. An embed
// URL that is not one gets the whole message refused.
func linkable(u string) string {
	if u == "" || len(u) > 512 {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
		return ""
	}
	return strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29").Replace(p.String())
}

// markdown is what Discord's markdown gives meaning to in running text.
var markdown = strings.NewReplacer(
	`\`, `\\`, "*", `\*`, "_", `\_`, "~", `\~`, "`", "\\`", "|", `\|`,
	">", `\>`, "<", `\<`, "[", `\[`, "]", `\]`,
)

// escape shows s as it is, not as markdown: an image called a_b_c or an
// error quoting **kwargs would otherwise come out in italics or bold.
func escape(s string) string { return markdown.Replace(s) }

// size is the length of s as Discord's limits count it.
func size(s string) int { return webhook.Size(s) }

// truncate cuts s to at most n characters (by size), marking the cut with "…".
func truncate(s string, n int) string {
	if size(s) <= n {
		return s
	}
	rs := []rune(s)
	used := 1 // the "…"
	for i, r := range rs {
		w := size(string(r))
		if used+w > n {
			return string(rs[:i]) + "…"
		}
		used += w
	}
	return s
}

// keepEnd cuts s to at most n characters (by size) from the front, keeping
// its end.
func keepEnd(s string, n int) string {
	if size(s) <= n {
		return s
	}
	rs := []rune(s)
	used := 1 // the "…"
	for i := len(rs) - 1; i >= 0; i-- {
		w := size(string(rs[i]))
		if used+w > n {
			return "…" + string(rs[i+1:])
		}
		used += w
	}
	return s
}
