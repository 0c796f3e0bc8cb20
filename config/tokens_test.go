package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	aliceToken = "alice-0123456789abcdef"
	bobToken   = "bob-0123456789abcdef01"
)

func TestParseTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		names []string
		want  []string
	}{
		{
			name:  "names, comments, blank lines, tabs and CRLF",
			file:  "# who may trigger\n\nalice " + aliceToken + "\r\n  # jenkins\n\tbob\t\t" + bobToken + "  \n",
			names: []string{"alice", "bob"},
		},
		{
			name: "every line that is wrong, none quoted",
			file: "alice " + aliceToken + "\n" + // 1
				aliceToken + "\n" + // 2: a token alone
				"carol " + bobToken + " extra\n" + // 3
				"alice " + bobToken + "\n" + // 4: name again
				"dave " + aliceToken + "\n" + // 5: token again
				"-eve " + bobToken + "x\n" + // 6: bad name
				"frank short-secret\n" + // 7: too short
				"bob " + bobToken + "\n", // 8: fine
			names: []string{"alice", "bob"},
			want: []string{
				`tokens:2: http.tokens_file: want "name token", two fields separated by spaces; this line has 1`,
				`tokens:3: http.tokens_file: want "name token", two fields separated by spaces; this line has 3`,
				"tokens:4: http.tokens_file: the name is already given to the token on line 1: give each name one token",
				"tokens:5: http.tokens_file: the token is the same as on line 1: give each name a token of its own",
				`tokens:6: http.tokens_file: the name is not one: use letters, digits, ".", "_", "@" and "-" (at most 64, starting with a letter or digit)`,
				"tokens:7: http.tokens_file: the token is shorter than 16 characters: make one with 'openssl rand -hex 32'",
			},
		},
		{
			name:  "names that are mail addresses and job names",
			file:  "jane.doe@example.org " + aliceToken + "\nci_nightly-2 " + bobToken + "\n",
			names: []string{"jane.doe@example.org", "ci_nightly-2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tokens, ps := ParseTokens([]byte(tt.file), "tokens")
			var names []string
			for _, tok := range tokens {
				names = append(names, tok.Name)
			}
			if !slices.Equal(names, tt.names) {
				t.Errorf("names %v, want %v", names, tt.names)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, secret := range []string{aliceToken, bobToken, "short-secret"} {
				if strings.Contains(strings.Join(got, "\n"), secret) {
					t.Errorf("a problem quotes a token")
				}
			}
		})
	}
	if tokens, _ := ParseTokens([]byte("alice "+aliceToken+"\n"), "tokens"); len(tokens) != 1 || tokens[0].Token.Reveal() != aliceToken {
		t.Errorf("tokens %+v, want alice's", tokens)
	}
}

// [http] tokens_file is read relative to the config file; a file that
// cannot be read, holds nothing or has wrong lines is a problem, located in
// the config or in the tokens file.
func TestTokensFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, sampleTree...)
	files := map[string]string{
		"tokens":       "alice " + aliceToken + "\nbob " + bobToken + "\n",
		"empty-tokens": "# nobody yet\n",
		"bad-tokens":   "alice " + aliceToken + "\nbob\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	http := func(file string) []byte {
		return []byte(okStaging + okImage + "[http]\ntokens_file = \"" + file + "\"\n") // lines 7-8
	}

	c, err := Parse(http("tokens"), "bad.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.TokensFile != filepath.Join(dir, "tokens") || len(c.HTTP.Tokens) != 2 || c.HTTP.Tokens[1].Name != "bob" || c.HTTP.Tokens[1].Token.Reveal() != bobToken {
		t.Errorf("http = %+v, want alice and bob from %s", c.HTTP, filepath.Join(dir, "tokens"))
	}
	if s := c.HTTP.Tokens[0].Token.String(); s != "[redacted]" {
		t.Errorf("a token prints as %q", s)
	}

	for _, tt := range []struct{ file, want string }{
		{"missing", "bad.toml:8: http.tokens_file: cannot read the API tokens: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"empty-tokens", "bad.toml:8: http.tokens_file: " + filepath.Join(dir, "empty-tokens") + ` holds no token: write one "name token" pair a line`},
		{"bad-tokens", filepath.Join(dir, "bad-tokens") + `:2: http.tokens_file: want "name token", two fields separated by spaces; this line has 1`},
	} {
		_, err := Parse(http(tt.file), "bad.toml", dir)
		if got := problemStrings(t, err); !slices.Equal(got, []string{tt.want}) {
			t.Errorf("%s: problems %q, want %q", tt.file, got, tt.want)
		}
	}
}
