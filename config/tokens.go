package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// NamedToken is one entry of [http] tokens_file: a bearer token that API
// writes accept, and the name that the runs it triggers are recorded with.
type NamedToken struct {
	Name  string
	Token Secret
}

// MinTokenLength is the fewest characters a named token may have.
const MinTokenLength = 16

// tokenName is what a token's name may be: it is recorded and shown, so it
// is a plain word (a login, a mail address, a job's name).
var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// tokens reads [http] tokens_file.
func (l *loader) tokens(h *HTTP) {
	if h.TokensFile == "" {
		return
	}
	h.TokensFile = l.path(h.TokensFile)
	data, err := os.ReadFile(h.TokensFile)
	if err != nil {
		l.problem("http.tokens_file", fmt.Sprintf("cannot read the API tokens: %v", err))
		return
	}
	tokens, ps := ParseTokens(data, h.TokensFile)
	l.problems = append(l.problems, ps...)
	if len(tokens) == 0 && len(ps) == 0 {
		l.problem("http.tokens_file", fmt.Sprintf(`%s holds no token: write one "name token" pair a line`, h.TokensFile))
	}
	h.Tokens = tokens
}

// ParseTokens reads a tokens file: one "name token" pair a line, the two
// separated by spaces or tabs; blank lines and lines starting with "#" are
// left out. A name is letters, digits, ".", "_", "@" and "-" (at most 64,
// starting with a letter or digit); a token is at least MinTokenLength
// characters without spaces. Names and tokens are each unique. file names
// the file in the problems, which are located by line and never quote the
// file's content: a line that is not as it should be may hold a token.
func ParseTokens(data []byte, file string) ([]NamedToken, Problems) {
	var (
		tokens []NamedToken
		ps     Problems
		names  = map[string]int{} // name -> line
		seen   = map[Secret]int{} // token -> line
	)
	bad := func(line int, msg string) {
		ps = append(ps, Problem{File: file, Line: line, Key: "http.tokens_file", Msg: msg})
	}
	for i, text := range strings.Split(string(data), "\n") {
		line := i + 1
		text = strings.TrimSpace(text)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			bad(line, fmt.Sprintf(`want "name token", two fields separated by spaces; this line has %d`, len(fields)))
			continue
		}
		name, token := fields[0], Secret(fields[1])
		ok := true
		if !tokenName.MatchString(name) {
			bad(line, `the name is not one: use letters, digits, ".", "_", "@" and "-" (at most 64, starting with a letter or digit)`)
			ok = false
		} else if first, dup := names[name]; dup {
			bad(line, fmt.Sprintf("the name is already given to the token on line %d: give each name one token", first))
			ok = false
		}
		if len(token) < MinTokenLength {
			bad(line, fmt.Sprintf("the token is shorter than %d characters: make one with 'openssl rand -hex 32'", MinTokenLength))
			ok = false
		} else if first, dup := seen[token]; dup {
			bad(line, fmt.Sprintf("the token is the same as on line %d: give each name a token of its own", first))
			ok = false
		}
		if !ok {
			continue
		}
		names[name], seen[token] = line, line
		tokens = append(tokens, NamedToken{Name: name, Token: token})
	}
	return tokens, ps
}
