package rebuild

import (
	"errors"
	"strconv"
	"testing"
)

func TestPoolPlace(t *testing.T) {
	t.Parallel()
	down := errors.New("connection refused")
	p := NewPool(
		Builder{Name: "x86a", Labels: []string{"amd64"}, Jobs: 2},
		Builder{Name: "x86b", Labels: []string{"amd64", "gpu"}, Jobs: 1},
		Builder{Name: "arm", Labels: []string{"arm64"}, Jobs: 1, Down: down},
	)
	place := func(labels []string, prefer string) string {
		t.Helper()
		b, err := p.Place(labels, prefer)
		switch {
		case err != nil:
			return "error: " + err.Error()
		case b == nil:
			return "wait"
		}
		return b.Name
	}
	steps := []struct {
		labels       []string
		prefer, want string
	}{
		{[]string{"gpu"}, "", "x86b"},       // the one with the label
		{[]string{"amd64"}, "x86b", "x86a"}, // the preferred one is full
		{[]string{"amd64"}, "", "x86a"},     // x86a at 1 of 2, x86b full
		{[]string{"amd64"}, "", "wait"},     // all full
		{nil, "", "wait"},                   // arm is down, the rest full
		{[]string{"arm64"}, "", "error: builder arm unreachable: connection refused"},
		{[]string{"riscv"}, "", "error: no builder has all of the labels riscv"},
	}
	for i, s := range steps {
		if got := place(s.labels, s.prefer); got != s.want {
			t.Errorf("step %d: Place(%v, %q) = %s, want %s", i+1, s.labels, s.prefer, got, s.want)
		}
	}
	p.Release("x86b")
	if got := place([]string{"amd64"}, "x86a"); got != "x86b" {
		t.Errorf("after a release of x86b, Place(amd64, prefer full x86a) = %s, want x86b", got)
	}
	p.Release("x86a")
	p.Release("x86a")
	if got := place(nil, ""); got != "x86a" {
		t.Errorf("the least busy of x86a (0 of 2) and x86b (1 of 1) = %s, want x86a", got)
	}
	p.MarkDown("x86b", down)
	var stats []string
	for _, s := range p.Stats() {
		stats = append(stats, s.Name+":"+itoa(s.Busy)+"/"+itoa(s.Jobs)+":"+itoa(s.Builds)+":"+map[bool]string{true: "up", false: "down"}[s.Up])
	}
	if got, want := stats, []string{"x86a:1/2:3:up", "x86b:1/1:2:down", "arm:0/1:0:down"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("Stats = %v, want %v", got, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
