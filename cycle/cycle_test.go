package cycle

import (
	"reflect"
	"testing"
)

func TestFind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		nodes []string
		edges map[string][]string
		want  [][]string
	}{
		{"none", []string{"a", "b", "c"}, map[string][]string{"a": {"b"}, "b": {"c"}}, nil},
		{"two", []string{"a", "b"}, map[string][]string{"a": {"b"}, "b": {"a"}}, [][]string{{"a", "b", "a"}}},
		{"self", []string{"a"}, map[string][]string{"a": {"a"}}, [][]string{{"a", "a"}}},
		{
			// The search enters at x and closes the cycle at c; it is
			// reported from a, the first of it in nodes.
			"entered midway", []string{"x", "a", "b", "c"},
			map[string][]string{"x": {"b"}, "a": {"b"}, "b": {"c"}, "c": {"a"}},
			[][]string{{"a", "b", "c", "a"}},
		},
		{
			"overlapping", []string{"a", "b", "c", "d"},
			map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a", "b"}, "d": {"c"}},
			[][]string{{"a", "b", "c", "a"}, {"b", "c", "b"}},
		},
		{"repeated edge", []string{"a", "b"}, map[string][]string{"a": {"b"}, "b": {"a", "a"}}, [][]string{{"a", "b", "a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Find(tc.nodes, func(n string) []string { return tc.edges[n] })
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Find = %q, want %q", got, tc.want)
			}
		})
	}
}
