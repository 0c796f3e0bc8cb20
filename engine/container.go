package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ErrUnavailable marks an error as the engine being unreachable (the
// connection failed), as opposed to the engine refusing one request.
var ErrUnavailable = errors.New("docker engine unavailable")

// ErrNotFound marks an error as a missing object: an image, a container, or
// a path inside a container.
var ErrNotFound = errors.New("not found")

// cleanupTimeout bounds each removal, kill and commit done on the way out,
// which run on a context of their own so that a cancelled caller still
// leaves nothing behind.
const cleanupTimeout = 30 * time.Second

// ImageConfig is what an image says about the containers made from it.
type ImageConfig struct {
	Env          []string // "KEY=value", in the image's order
	Entrypoint   []string
	Cmd          []string
	WorkingDir   string
	User         string
	ExposedPorts []string // "80/tcp", sorted
	Volumes      []string // sorted
	Labels       map[string]string
}

// ImageConfig returns the configuration of the local image ref.
func (e *Engine) ImageConfig(ctx context.Context, ref string) (ImageConfig, error) {
	res, err := e.c.ImageInspect(ctx, ref)
	if err != nil {
		return ImageConfig{}, fmt.Errorf("inspect image %s: %w", ref, classify(err))
	}
	var cfg ImageConfig
	if c := res.Config; c != nil {
		cfg = ImageConfig{
			Env:        c.Env,
			Entrypoint: c.Entrypoint,
			Cmd:        c.Cmd,
			WorkingDir: c.WorkingDir,
			User:       c.User,
			Labels:     c.Labels,
		}
		for p := range c.ExposedPorts {
			cfg.ExposedPorts = append(cfg.ExposedPorts, p)
		}
		for v := range c.Volumes {
			cfg.Volumes = append(cfg.Volumes, v)
		}
		slices.Sort(cfg.ExposedPorts)
		slices.Sort(cfg.Volumes)
	}
	return cfg, nil
}

// ContainerSpec says what container to make. Cmd runs as given: the image's
// entrypoint is not used.
type ContainerSpec struct {
	Image string
	Cmd   []string
	Env   []string // "KEY=value", added to (and overriding) the image's
	// Network gives the container the engine's default network; without it
	// the container has none (network mode "none").
	Network bool
	// Timeout bounds the run: at it the container is killed. Zero: no bound.
	Timeout time.Duration
	// Commit makes RunContainer commit the container as a new image once
	// it has exited (not when it timed out).
	Commit bool
	// OutputLimit bounds each of stdout and stderr kept in memory; zero
	// means DefaultOutputLimit. Output past it is read and dropped.
	OutputLimit int
}

// DefaultOutputLimit is the stdout (and the stderr) a run keeps by default.
const DefaultOutputLimit = 16 << 20

// Run is the outcome of RunContainer.
type Run struct {
	ExitCode  int
	Stdout    []byte
	Stderr    []byte
	Truncated bool // some output went past the limit and was dropped
	// TimedOut: spec.Timeout passed before the container started
	// (ExitCode -1), before it exited (it was killed; ExitCode is the
	// kill's) or before its output was all read (ExitCode is its own; the
	// output is incomplete).
	TimedOut bool
	Image    string
}

// CreateContainer creates (and does not start) a container for spec. The
// caller removes it with RemoveContainer.
func (e *Engine) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	host := &container.HostConfig{NetworkMode: "none"}
	if spec.Network {
		host.NetworkMode = ""
	}
	// Not cancelled with ctx: a create the engine finished after the
	// caller gave up would leave a container nobody knows the ID of.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	res, err := e.c.ContainerCreate(cctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:        spec.Image,
			Cmd:          spec.Cmd,
			Env:          spec.Env,
			Entrypoint:   []string{}, // empty, not nil: no entrypoint at all
			AttachStdout: true,
			AttachStderr: true,
			Labels:       map[string]string{LabelOwner: owner},
		},
		HostConfig: host,
	})
	if err != nil {
		return "", fmt.Errorf("create container from %s: %w", spec.Image, classify(err))
	}
	return res.ID, nil
}

// RemoveContainer removes a container and its anonymous volumes, killing
// it first if it runs. It works even when ctx is already cancelled.
func (e *Engine) RemoveContainer(ctx context.Context, id string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, err := e.c.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %.12s: %w", id, classify(err))
	}
	return nil
}

// RemoveImage removes an image by ID, and not its parents. It works even
// when ctx is already cancelled.
func (e *Engine) RemoveImage(ctx context.Context, id string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, err := e.c.ImageRemove(rctx, id, client.ImageRemoveOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove image %s: %w", id, classify(err))
	}
	return nil
}

// CopyFromContainer returns a tar stream of path in the container's
// filesystem, as the engine archives it: the first entry is path itself
// (a symlink is not followed), named by its base name. The caller closes
// it; closing early stops the transfer. A missing path is ErrNotFound.
func (e *Engine) CopyFromContainer(ctx context.Context, id, path string) (io.ReadCloser, error) {
	res, err := e.c.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, classify(err))
	}
	return res.Content, nil
}

// ErrLeftBehind marks an error as a container RunContainer could not
// remove: the engine now holds something nobody will clean up.
var ErrLeftBehind = errors.New("container left behind")

// drainGrace bounds the wait for a run's output stream to end once its
// container has exited (or been killed), when spec.Timeout does not.
const drainGrace = 10 * time.Second

// RunContainer creates a container for spec, runs it until it exits or
// until spec.Timeout, and returns its exit code and its stdout and stderr,
// kept apart. spec.Timeout bounds the whole run: attaching, starting,
// waiting and reading the output. The container is removed on every path,
// ctx cancelled included; a removal that fails is an error marked
// ErrLeftBehind (joined to any other). With spec.Commit, the image
// committed from it is the caller's to remove.
func (e *Engine) RunContainer(ctx context.Context, spec ContainerSpec) (run Run, err error) {
	var deadline time.Time
	if spec.Timeout > 0 {
		deadline = time.Now().Add(spec.Timeout)
	}
	id, err := e.CreateContainer(ctx, spec)
	if err != nil {
		return Run{}, err
	}
	defer func() {
		if rerr := e.RemoveContainer(ctx, id); rerr != nil {
			err = errors.Join(err, fmt.Errorf("%w: %w", ErrLeftBehind, rerr))
		}
	}()

	// Attaching and starting are bounded by the deadline too; the attached
	// stream itself outlives sctx (the client ties only its handshake to it).
	sctx, stop := ctx, context.CancelFunc(func() {})
	if !deadline.IsZero() {
		sctx, stop = context.WithDeadline(ctx, deadline)
	}
	defer stop()
	timedOut := func() bool { return ctx.Err() == nil && sctx.Err() != nil }

	limit := spec.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	stdout, stderr := &capped{max: limit}, &capped{max: limit}
	att, err := e.c.ContainerAttach(sctx, id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		if timedOut() {
			return Run{ExitCode: -1, TimedOut: true}, nil
		}
		return Run{}, fmt.Errorf("attach to %.12s: %w", id, classify(err))
	}
	defer att.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		stdcopy.StdCopy(stdout, stderr, att.Reader)
	}()
	output := func() {
		run.Stdout, run.Stderr = stdout.bytes(), stderr.bytes()
		run.Truncated = stdout.dropped || stderr.dropped
	}

	wctx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	// Registered before the start, so that a quick exit is not missed.
	wait := e.c.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := e.c.ContainerStart(sctx, id, client.ContainerStartOptions{}); err != nil {
		if timedOut() {
			// The start may still happen: the removal kills it.
			att.Close()
			<-copied
			run = Run{ExitCode: -1, TimedOut: true}
			output()
			return run, nil
		}
		return Run{}, fmt.Errorf("start %v: %w", spec.Cmd, classify(err))
	}

	select {
	case res := <-wait.Result:
		if res.Error != nil && res.Error.Message != "" {
			return Run{}, fmt.Errorf("wait for %.12s: %s", id, res.Error.Message)
		}
		run.ExitCode = int(res.StatusCode)
	case err := <-wait.Error:
		if ctx.Err() != nil {
			return Run{}, ctx.Err()
		}
		return Run{}, fmt.Errorf("wait for %.12s: %w", id, classify(err))
	case <-ctx.Done():
		return Run{}, ctx.Err()
	case <-sctx.Done():
		if ctx.Err() != nil {
			return Run{}, ctx.Err()
		}
		run.TimedOut = true
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		_, err := e.c.ContainerKill(kctx, id, client.ContainerKillOptions{Signal: "KILL"})
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			return Run{}, fmt.Errorf("kill %.12s after %s: %w", id, spec.Timeout, classify(err))
		}
		select {
		case res := <-wait.Result:
			run.ExitCode = int(res.StatusCode)
		case <-wait.Error:
			run.ExitCode = -1
		case <-time.After(cleanupTimeout):
			run.ExitCode = -1
		}
	}

	// The stream ends once the container's stdio closes, right after it
	// exits. Until the deadline it may take its time; past it (or without
	// one) a short grace keeps a wedged stream from holding the run.
	drain := drainGrace
	if !deadline.IsZero() && !run.TimedOut {
		drain = max(time.Until(deadline), 0)
	}
	select {
	case <-copied:
	default:
		t := time.NewTimer(drain)
		select {
		case <-copied:
		case <-t.C:
			if !deadline.IsZero() {
				// The output is incomplete: no verdict can be drawn from it.
				run.TimedOut = true
			}
			att.Close()
			<-copied
		}
		t.Stop()
	}
	output()

	if spec.Commit && !run.TimedOut {
		// Not cancelled with ctx, for the same reason as the create.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		res, err := e.c.ContainerCommit(cctx, id, client.ContainerCommitOptions{})
		if err != nil {
			return run, fmt.Errorf("commit %.12s: %w", id, classify(err))
		}
		run.Image = res.ID
	}
	return run, nil
}

// classify marks the client's errors with ErrUnavailable or ErrNotFound.
func classify(err error) error {
	switch {
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - len(c.buf)
	if len(p) > room {
		c.dropped = true
		c.buf = append(c.buf, p[:max(room, 0)]...)
	} else {
		c.buf = append(c.buf, p...)
	}
	return len(p), nil
}

func (c *capped) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf
}
