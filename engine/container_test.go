package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

func TestCapped(t *testing.T) {
	t.Parallel()
	c := &capped{max: 5}
	for _, s := range []string{"ab", "cd", "efgh", "ij"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v: a capped writer takes everything", s, n, err)
		}
	}
	if got := string(c.bytes()); got != "abcde" || !c.dropped {
		t.Errorf("kept %q (dropped %v), want the first 5 bytes and dropped", got, c.dropped)
	}
	c = &capped{max: 5}
	c.Write([]byte("abcde"))
	if c.dropped {
		t.Error("exactly the limit is not dropping")
	}
}

// TestUnavailable checks that an engine that does not answer is told apart
// from an engine that refuses, for every container operation.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	c, err := client.New(client.WithHost("unix://" + t.TempDir() + "/no.sock"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{c: c}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, errConfig := e.ImageConfig(ctx, "img")
	_, errRun := e.RunContainer(ctx, ContainerSpec{Image: "img", Cmd: []string{"true"}})
	_, errCopy := e.CopyFromContainer(ctx, "c", "/etc")
	for name, err := range map[string]error{
		"ImageConfig":       errConfig,
		"RunContainer":      errRun,
		"CopyFromContainer": errCopy,
		"RemoveContainer":   e.RemoveContainer(ctx, "c"),
		"RemoveImage":       e.RemoveImage(ctx, "img"),
	} {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", name, err)
		}
	}
}
