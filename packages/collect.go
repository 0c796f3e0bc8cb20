package packages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/registry"
	"nightshift/store"
)

// Engine runs info commands in an image; *engine.Engine is one.
type Engine interface {
	CreateContainer(ctx context.Context, spec engine.ContainerSpec) (string, error)
	CopyFromContainer(ctx context.Context, id, path string) (io.ReadCloser, error)
	RemoveContainer(ctx context.Context, id string) error
	RunContainer(ctx context.Context, spec engine.ContainerSpec) (engine.Run, error)
}

// Registry reads an image's history; *registry.Client is one.
type Registry interface {
	History(ctx context.Context, ref string) ([]registry.Step, error)
}

// Reader reads the contents of pushed images.
type Reader struct {
	Engine   Engine
	Registry Registry
	Timeout  time.Duration // bounds each command
}

// shell runs every info command: a command the image lacks makes it
// answer 127, which tells "not installed" from a failure by status alone.
const shell = "/bin/sh"

// notFound is the status a POSIX shell exits with when it cannot find the
// command.
const notFound = 127

// Read reads the contents of an image: its history from the registry,
// where pushed (a ref by digest) names it, and the output of cmds run in
// image, a name the engine runs it by. What it did goes to log. The
// contents (without their image, ref and digest, which are the caller's)
// are returned whole or in part; the error says what is missing.
func (r *Reader) Read(ctx context.Context, image, pushed string, cmds []config.PackageCommand, log io.Writer) (*store.Contents, error) {
	c := &store.Contents{Layers: []store.Layer{}, Lists: []store.PackageList{}}
	var errs []error
	if steps, err := r.Registry.History(ctx, pushed); err != nil {
		c.Error = err.Error()
		errs = append(errs, err)
		fmt.Fprintf(log, "layers: %v\n", err)
	} else {
		for _, s := range steps {
			c.Layers = append(c.Layers, store.Layer{CreatedBy: s.CreatedBy, Digest: s.Digest, Size: s.Size})
		}
		fmt.Fprintf(log, "layers: %d steps\n", len(steps))
	}
	if len(cmds) == 0 {
		return c, errors.Join(errs...)
	}

	hasShell, err := r.has(ctx, image, shell)
	if err != nil {
		err = fmt.Errorf("look for %s in the image: %w", shell, err)
		fmt.Fprintf(log, "%v\n", err)
		return c, errors.Join(append(errs, err)...)
	}
	// The commands run at once, each in a container of its own: an image
	// is read in about the time of its slowest command.
	lists := make([]store.PackageList, len(cmds))
	outs := make([]bytes.Buffer, len(cmds))
	failed := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		lists[i] = store.PackageList{Source: cmd.Name, Command: cmd.Command, Format: cmd.Format, Packages: []store.Package{}}
		if !hasShell {
			lists[i].Absent = true
			fmt.Fprintf(&outs[i], "%s: not run, the image has no %s\n", cmd.Name, shell)
			continue
		}
		wg.Go(func() {
			if err := r.run(ctx, image, &lists[i], &outs[i]); err != nil {
				lists[i].Error = err.Error()
				failed[i] = fmt.Errorf("%s: %w", cmd.Name, err)
				fmt.Fprintf(&outs[i], "%v\n", failed[i])
			}
		})
	}
	wg.Wait()
	for i := range cmds {
		log.Write(outs[i].Bytes()) // in the configured order, whatever finished first
		errs = append(errs, failed[i])
	}
	c.Lists = lists
	return c, errors.Join(errs...)
}

// run runs l's command in image and fills l in.
func (r *Reader) run(ctx context.Context, image string, l *store.PackageList, log io.Writer) error {
	out, err := r.Engine.RunContainer(ctx, engine.ContainerSpec{
		Image:   image,
		Cmd:     []string{shell, "-c", l.Command},
		Env:     []string{"PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1"},
		Timeout: r.Timeout,
	})
	switch {
	case err != nil:
		return err
	case out.TimedOut:
		return fmt.Errorf("%q did not finish within %s", l.Command, r.Timeout)
	case out.ExitCode == notFound:
		l.Absent = true
		fmt.Fprintf(log, "%s: %q is not in the image\n", l.Source, l.Command)
		return nil
	case out.ExitCode != 0:
		return fmt.Errorf("%q exited %d: %s", l.Command, out.ExitCode, lastLine(out.Stderr))
	}
	pkgs, err := Parse(l.Format, out.Stdout)
	l.Packages = pkgs
	if err == nil && out.Truncated {
		err = errors.New("its output went past the engine's limit: the list is incomplete")
	}
	if err != nil {
		return fmt.Errorf("%q: %w", l.Command, err)
	}
	fmt.Fprintf(log, "%s: %d packages (%s)\n", l.Source, len(pkgs), l.Command)
	return nil
}

// has reports whether path exists in image, without running anything.
func (r *Reader) has(ctx context.Context, image, path string) (bool, error) {
	id, err := r.Engine.CreateContainer(ctx, engine.ContainerSpec{Image: image, Cmd: []string{path}})
	if err != nil {
		return false, err
	}
	defer r.Engine.RemoveContainer(context.WithoutCancel(ctx), id)
	rc, err := r.Engine.CopyFromContainer(ctx, id, path)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, rc.Close()
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return last
	}
	return "no error output"
}
