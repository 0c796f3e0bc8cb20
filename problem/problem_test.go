package problem

import (
	"errors"
	"testing"
)

func TestString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "nightshift.toml", Line: 7, Key: "image[1].depends_on", Msg: "bad"}, "nightshift.toml:7: image[1].depends_on: bad"},
		{Problem{File: "nightshift.toml", Key: "source", Msg: "bad"}, "nightshift.toml: source: bad"},
		{Problem{File: "tests/a.yaml", Line: 3, Msg: "bad"}, "tests/a.yaml:3: bad"},
		{Problem{File: "tests/a.yaml", Msg: "cannot read"}, "tests/a.yaml: cannot read"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	if err := List(nil).Err(); err != nil {
		t.Errorf("empty Err = %v, want nil", err)
	}
	ps := List{{File: "f", Line: 9, Msg: "c"}, {File: "f", Line: 2, Msg: "a"}, {File: "f", Line: 9, Msg: "d"}, {File: "f", Msg: "b"}}
	ps.Sort()
	const want = "f: b\nf:2: a\nf:9: c\nf:9: d"
	err := ps.Err()
	if err == nil || err.Error() != want {
		t.Fatalf("sorted Err = %v, want:\n%s", err, want)
	}
	var got List
	if !errors.As(err, &got) || len(got) != 4 {
		t.Errorf("errors.As(%v) = %v", err, got)
	}
}
