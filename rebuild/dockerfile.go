package rebuild

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// A Stage is one FROM of a Dockerfile.
type Stage struct {
	Line  int    // line of the FROM instruction (1-based)
	Raw   string // the image operand as written, e.g. "${BASE_IMAGE}" or "ci_base:latest"
	Image string // Raw with ARG values substituted
	Name  string // the "AS name", lowercased; "" if none
}

// A ParseError is a Dockerfile that cannot be read, located at a line.
type ParseError struct {
	Line int // 1-based
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// An EmptyImageError is a FROM whose image operand substitutes to nothing.
// It is a type of its own because the fix depends on who reads it: nightshift
// itself can supply BASE_IMAGE, a user has to give an ARG a default.
type EmptyImageError struct {
	Line int      // 1-based
	Raw  string   // the operand as written
	Args []string // the ARGs the operand refers to, in order of use
}

func (e *EmptyImageError) Error() string {
	return fmt.Sprintf("line %d: FROM %s is empty", e.Line, e.Raw)
}

// ReadStages parses the Dockerfile in r. args are build args given by the user; they override
// ARG defaults. Only ARGs declared before the first FROM are in scope for FROM lines (Docker's
// rule); an arg given in args but not declared is not substituted (Docker warns and ignores it).
//
// A FROM whose image substitutes to "" is an *EmptyImageError; other malformed
// lines are a *ParseError.
func ReadStages(r io.Reader, args map[string]string) ([]Stage, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	p := &parser{
		lines:  dockerfileLines(string(data)),
		escape: '\\',
		user:   args,
		global: map[string]string{},
	}
	return p.run()
}

// Base reports the image the final stage (or stage `target`, when non-empty) builds on, following
// FROM lines that name earlier stages, so the result is an image name ("scratch" included).
func Base(stages []Stage, target string) (string, error) {
	if len(stages) == 0 {
		return "", errors.New("the Dockerfile has no FROM")
	}
	i := len(stages) - 1
	if target != "" {
		i = lastStageNamed(stages, strings.ToLower(target))
		if i < 0 {
			return "", fmt.Errorf("the Dockerfile has no stage named %q", target)
		}
	}
	refs := stageRefs(stages)
	for refs[i] >= 0 {
		i = refs[i]
	}
	return stages[i].Image, nil
}

// ExternalImages lists the images FROM lines name that are not earlier stages (in order, unique).
func ExternalImages(stages []Stage) []string {
	var images []string
	for i, ref := range stageRefs(stages) {
		if ref < 0 {
			images = append(images, stages[i].Image)
		}
	}
	return withoutRepeats(images)
}

// stageRefs returns, for each stage, the index of the earlier stage its FROM
// names, or -1 when it names an image. Docker matches stage names without
// regard to case, and a stage cannot name itself or a later one.
func stageRefs(stages []Stage) []int {
	refs := make([]int, len(stages))
	named := map[string]int{}
	for i, st := range stages {
		refs[i] = -1
		if j, ok := named[strings.ToLower(st.Image)]; ok {
			refs[i] = j
		}
		if st.Name != "" {
			named[st.Name] = i
		}
	}
	return refs
}

// lastStageNamed returns the index of the last stage called name, or -1.
func lastStageNamed(stages []Stage, name string) int {
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i].Name == name {
			return i
		}
	}
	return -1
}

// withoutRepeats returns ss without repeats, in order of first appearance.
func withoutRepeats(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// dockerfileLines splits a file into physical lines, dropping a UTF-8 byte order
// mark and the CR of CRLF endings, which Docker accepts too.
func dockerfileLines(s string) []string {
	s = strings.TrimPrefix(s, "\ufeff")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// parser reads a Dockerfile one instruction at a time. It knows only what
// the image graph needs: FROM, global ARG, and enough of RUN/COPY/ADD to step
// over heredoc bodies.
type parser struct {
	lines  []string
	next   int  // index of the next physical line to read
	escape byte // '\\' or '`', set by the escape directive
	user   map[string]string
	global map[string]string // ARGs declared before the first FROM that have a value
	stages []Stage
}

// instruction is one logical line, continuations joined.
type instruction struct {
	line int    // 1-based line where it starts
	cmd  string // lowercased
	args string
}

func (p *parser) run() ([]Stage, error) {
	if err := p.readDirectives(); err != nil {
		return nil, err
	}
	for {
		ins, ok := p.nextInstruction()
		if !ok {
			return p.stages, nil
		}
		var err error
		switch ins.cmd {
		case "arg":
			// An ARG after the first FROM belongs to that stage and is
			// invisible to every FROM.
			if len(p.stages) == 0 {
				err = p.declare(ins)
			}
		case "from":
			err = p.from(ins)
		case "run", "copy", "add":
			p.skipHeredocs(ins)
		}
		if err != nil {
			return nil, err
		}
	}
}

// readDirectives applies the parser directives ("# escape=`") that may open
// the file. Like Docker, it stops looking at the first line that is not one.
func (p *parser) readDirectives() error {
	seenEscape := false
	for i, line := range p.lines {
		key, value, ok := parseDirective(line)
		if !ok {
			return nil
		}
		if key != "escape" {
			continue // syntax, check: nothing the graph depends on
		}
		if seenEscape {
			return &ParseError{i + 1, "the escape directive is given twice"}
		}
		seenEscape = true
		if value != `\` && value != "`" {
			return &ParseError{i + 1, fmt.Sprintf("the escape directive is %q; it must be \\ or `", value)}
		}
		p.escape = value[0]
	}
	return nil
}

// parseDirective recognises "# key=value", returning the key lowercased.
func parseDirective(line string) (key, value string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "#")
	if !ok {
		return "", "", false
	}
	key, value, ok = strings.Cut(rest, "=")
	key = strings.TrimSpace(key)
	if !ok || !isDirectiveKey(key) {
		return "", "", false
	}
	return strings.ToLower(key), strings.TrimSpace(value), true
}

func isDirectiveKey(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// nextInstruction joins continuation lines into one instruction. Comment and
// blank lines are dropped even inside a continuation, as Docker does.
func (p *parser) nextInstruction() (instruction, bool) {
	var b strings.Builder
	start := 0
	for p.next < len(p.lines) {
		n, line := p.next, p.lines[p.next]
		p.next++
		if trimmed := strings.TrimLeft(line, " \t"); trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if start == 0 {
			start = n + 1
		}
		body, more := p.cutContinuation(line)
		b.WriteString(body)
		if !more {
			break
		}
	}
	if start == 0 {
		return instruction{}, false
	}
	text := strings.TrimSpace(b.String())
	cmd, args := text, ""
	if i := strings.IndexAny(text, " \t"); i >= 0 {
		cmd, args = text[:i], text[i+1:]
	}
	return instruction{line: start, cmd: strings.ToLower(cmd), args: strings.TrimSpace(args)}, true
}

// cutContinuation strips a trailing escape character (which may be followed
// by blanks) and reports whether there was one.
func (p *parser) cutContinuation(line string) (string, bool) {
	trimmed := strings.TrimRight(line, " \t")
	if body, ok := strings.CutSuffix(trimmed, string(p.escape)); ok {
		return body, true
	}
	return line, false
}

// declare records the ARGs of a global ARG instruction. A user's value wins
// over the default; a default may refer to ARGs declared before it.
func (p *parser) declare(ins instruction) error {
	for _, word := range splitWords(ins.args, p.escape) {
		name, def, hasDefault := strings.Cut(word, "=")
		if name == "" {
			continue
		}
		if v, ok := p.user[name]; ok {
			p.global[name] = v
			continue
		}
		if !hasDefault {
			continue
		}
		v, _, err := expandWord(def, p.escape, p.lookup)
		if err != nil {
			return &ParseError{ins.line, fmt.Sprintf("ARG %s: %v", word, err)}
		}
		p.global[name] = v
	}
	return nil
}

func (p *parser) lookup(name string) (string, bool) {
	v, ok := p.global[name]
	return v, ok
}

// from reads "FROM [--flag=value...] image [AS name]".
func (p *parser) from(ins instruction) error {
	words := strings.Fields(ins.args)
	for len(words) > 0 && strings.HasPrefix(words[0], "--") {
		words = words[1:]
	}
	var name string
	switch {
	case len(words) == 0:
		return &ParseError{ins.line, "FROM has no image"}
	case len(words) == 3 && strings.EqualFold(words[1], "as"):
		name = strings.ToLower(words[2])
	case len(words) != 1:
		return &ParseError{ins.line, fmt.Sprintf("FROM %s: want an image and an optional AS name", ins.args)}
	}
	image, used, err := expandWord(words[0], p.escape, p.lookup)
	if err != nil {
		return &ParseError{ins.line, fmt.Sprintf("FROM %s: %v", words[0], err)}
	}
	if image == "" {
		return &EmptyImageError{Line: ins.line, Raw: words[0], Args: withoutRepeats(used)}
	}
	p.stages = append(p.stages, Stage{Line: ins.line, Raw: words[0], Image: image, Name: name})
	return nil
}

// skipHeredocs steps over the bodies of the heredocs an instruction opens,
// so that a body line such as "FROM x" is not taken for an instruction.
func (p *parser) skipHeredocs(ins instruction) {
	for _, word := range splitWords(ins.args, p.escape) {
		name, chomp, ok := heredocName(word)
		if !ok {
			continue
		}
		for p.next < len(p.lines) {
			line := p.lines[p.next]
			p.next++
			if chomp {
				line = strings.TrimLeft(line, "\t")
			}
			if line == name {
				break
			}
		}
	}
}

// heredocName recognises a heredoc operator word: [n]<<[-]NAME, the name
// possibly quoted. chomp reports the "<<-" form, whose terminator may be
// indented with tabs.
func heredocName(word string) (name string, chomp bool, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimLeft(word, "0123456789"), "<<")
	if !ok {
		return "", false, false
	}
	rest, chomp = strings.CutPrefix(rest, "-")
	if strings.Contains(rest, "<") {
		return "", false, false // <<< is a here-string, not a heredoc
	}
	name = strings.Trim(rest, `"'`)
	return name, chomp, name != ""
}

// splitWords splits at blanks outside quotes, keeping quotes and escapes for
// expandWord to interpret.
func splitWords(s string, escape byte) []string {
	var words []string
	var b strings.Builder
	var quote byte
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == escape && quote != '\'' && i+1 < len(s):
			b.WriteByte(c)
			i++
			c = s[i]
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
			continue
		}
		b.WriteByte(c)
		inWord = true
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

// expander substitutes ARG references in one word and removes its quotes and
// escapes, following the rules of Docker's shell lexer for the forms a FROM
// line uses.
type expander struct {
	s      string
	pos    int
	escape byte
	lookup func(name string) (string, bool)
	used   []string // ARG names referred to, in order, repeats kept
}

// expandWord returns word substituted, and the ARG names it referred to.
func expandWord(word string, escape byte, lookup func(string) (string, bool)) (string, []string, error) {
	x := &expander{s: word, escape: escape, lookup: lookup}
	v, err := x.until(0)
	return v, x.used, err
}

// until processes the word up to the byte stop, which it leaves unread; stop
// 0 means the end of the word.
func (x *expander) until(stop byte) (string, error) {
	var b strings.Builder
	for x.pos < len(x.s) {
		c := x.s[x.pos]
		var err error
		switch {
		case stop != 0 && c == stop:
			return b.String(), nil
		case c == x.escape:
			// Like Docker, an escape that ends the word is dropped.
			x.pos++
			if x.pos < len(x.s) {
				b.WriteByte(x.s[x.pos])
				x.pos++
			}
		case c == '\'':
			err = x.singleQuoted(&b)
		case c == '"':
			err = x.doubleQuoted(&b)
		case c == '$':
			err = x.dollar(&b)
		default:
			b.WriteByte(c)
			x.pos++
		}
		if err != nil {
			return "", err
		}
	}
	if stop != 0 {
		return "", errors.New("unterminated ${")
	}
	return b.String(), nil
}

func (x *expander) singleQuoted(b *strings.Builder) error {
	end := strings.IndexByte(x.s[x.pos+1:], '\'')
	if end < 0 {
		return errors.New("unterminated single quote")
	}
	b.WriteString(x.s[x.pos+1 : x.pos+1+end])
	x.pos += end + 2
	return nil
}

// doubleQuoted substitutes inside "..."; there the escape character only
// escapes a quote, a dollar or itself, as in a POSIX shell.
func (x *expander) doubleQuoted(b *strings.Builder) error {
	x.pos++
	for x.pos < len(x.s) {
		c := x.s[x.pos]
		switch {
		case c == '"':
			x.pos++
			return nil
		case c == '$':
			if err := x.dollar(b); err != nil {
				return err
			}
		case c == x.escape && x.pos+1 < len(x.s) && strings.IndexByte("\"$"+string(x.escape), x.s[x.pos+1]) >= 0:
			b.WriteByte(x.s[x.pos+1])
			x.pos += 2
		default:
			b.WriteByte(c)
			x.pos++
		}
	}
	return errors.New("unterminated double quote")
}

// dollar substitutes $NAME or ${...}. A dollar that starts neither stays.
func (x *expander) dollar(b *strings.Builder) error {
	x.pos++
	if x.pos < len(x.s) && x.s[x.pos] == '{' {
		return x.braced(b)
	}
	name := x.name()
	if name == "" {
		b.WriteByte('$')
		return nil
	}
	v, _ := x.get(name)
	b.WriteString(v)
	return nil
}

// braced substitutes ${A}, ${A:-word}, ${A-word}, ${A:+word}, ${A+word},
// ${A:?word} and ${A?word}; the forms with a colon treat an empty value as
// unset.
func (x *expander) braced(b *strings.Builder) error {
	x.pos++ // {
	name := x.name()
	if x.pos >= len(x.s) {
		return errors.New("unterminated ${")
	}
	if name == "" {
		return errors.New("bad substitution: ${ needs an ARG name")
	}
	if x.s[x.pos] == '}' {
		x.pos++
		v, _ := x.get(name)
		b.WriteString(v)
		return nil
	}
	colon := x.s[x.pos] == ':'
	if colon {
		x.pos++
	}
	if x.pos >= len(x.s) {
		return errors.New("unterminated ${")
	}
	op := x.s[x.pos]
	if op != '-' && op != '+' && op != '?' {
		return fmt.Errorf("unsupported substitution: nightshift reads ${%s}, ${%s:-word}, ${%s:+word} and ${%s:?word}", name, name, name, name)
	}
	x.pos++
	word, err := x.until('}')
	if err != nil {
		return err
	}
	x.pos++ // }
	v, err := x.modify(name, colon, op, word)
	b.WriteString(v)
	return err
}

func (x *expander) modify(name string, colon bool, op byte, word string) (string, error) {
	v, set := x.get(name)
	if colon && v == "" {
		set = false
	}
	switch {
	case op == '-' && !set:
		return word, nil
	case op == '+' && set:
		return word, nil
	case op == '+':
		return "", nil
	case op == '?' && !set:
		if word == "" {
			word = "is not set"
		}
		return "", fmt.Errorf("ARG %s: %s", name, word)
	}
	return v, nil
}

func (x *expander) get(name string) (string, bool) {
	x.used = append(x.used, name)
	return x.lookup(name)
}

// name reads an ARG name at the current position; "" if there is none.
func (x *expander) name() string {
	start := x.pos
	for x.pos < len(x.s) && isNameByte(x.s[x.pos]) {
		x.pos++
	}
	return x.s[start:x.pos]
}

func isNameByte(c byte) bool { return isLetter(c) || isDigit(c) || c == '_' }
func isLetter(c byte) bool   { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool    { return '0' <= c && c <= '9' }
