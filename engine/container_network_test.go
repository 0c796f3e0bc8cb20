package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"nightshift/internal/testenv"
)

// realEngine starts a private dockerd for t and builds a busybox image in
// it; it returns the engine and the image's ref.
func realEngine(t *testing.T) (*Engine, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("engine test; -short given")
	}
	testenv.Require(t)
	dir, err := os.MkdirTemp("", "ns-eng-") // short: the socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	proc, err := testenv.StartDockerd(filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.Stop)
	c, err := client.New(client.WithHost(proc.Addr))
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{c: c}
	t.Cleanup(func() { e.Close() })
	ctx := context.Background()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatal(err)
	}
	build := filepath.Join(dir, "build")
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(build, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(build, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
	if err := os.WriteFile(filepath.Join(build, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	const image = "nightshift-engine-test:1"
	var log bytes.Buffer
	if _, err := e.Build(ctx, BuildSpec{Context: build, Dockerfile: filepath.Join(build, "Dockerfile"), Tags: []string{image}}, &log); err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	return e, image
}

// networkMode is the network mode the engine gave container id.
func networkMode(t *testing.T, e *Engine, id string) string {
	t.Helper()
	res, err := e.c.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(res.Container.HostConfig.NetworkMode)
}

// TestContainerNetwork checks the network mode the engine records for the
// containers nightshift makes: "none" unless the spec asks for a network,
// for a created container and for one RunContainer is running. The test
// engine has no bridge, so only this inspection can tell the two apart.
func TestContainerNetwork(t *testing.T) {
	e, image := realEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, tc := range []struct {
		network bool
		none    bool
	}{{false, true}, {true, false}} {
		id, err := e.CreateContainer(ctx, ContainerSpec{Image: image, Cmd: []string{"true"}, Network: tc.network})
		if err != nil {
			t.Fatal(err)
		}
		if mode := networkMode(t, e, id); (mode == "none") != tc.none {
			t.Errorf("created with Network %v: network mode %q", tc.network, mode)
		}
		if err := e.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	// A command as a command test runs it: inspected while it sleeps.
	done := make(chan error, 1)
	go func() {
		_, err := e.RunContainer(ctx, ContainerSpec{Image: image, Cmd: []string{"sleep", "30"}, Timeout: 30 * time.Second})
		done <- err
	}()
	var id string
	for id == "" {
		select {
		case err := <-done:
			t.Fatalf("the run ended before it was seen: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		list, err := e.c.ContainerList(ctx, client.ContainerListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list.Items {
			if c.Image == image {
				id = c.ID
			}
		}
	}
	if mode := networkMode(t, e, id); mode != "none" {
		t.Errorf("a running command test container has network mode %q, want none", mode)
	}
	if _, err := e.c.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	list, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("%d containers left behind", len(list.Items))
	}
}
