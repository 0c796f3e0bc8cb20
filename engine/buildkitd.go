package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
)

// Daemon is a standalone buildkitd, as buildx's remote driver reaches one:
// it builds with its Dockerfile frontend and its image exporter pushes the
// result straight to the registry, with no engine image store in between.
// It runs no containers, so an image it built is tested on an engine.
type Daemon struct {
	addr string
	opts []bkclient.ClientOpt
	// Insecure says whether a registry host is reached over plain HTTP
	// (loopback registries, as an engine treats them).
	Insecure func(host string) bool

	mu     sync.Mutex
	pushed map[string]string // ref -> the digest its build pushed
}

// NewDaemon returns a client of the buildkitd at addr (unix:///path or
// tcp://host:port; tcp with h's TLS files when given), reaching nothing yet.
func NewDaemon(addr string, ca, cert, key string) *Daemon {
	d := &Daemon{addr: addr, pushed: map[string]string{}, Insecure: func(string) bool { return false }}
	if ca != "" {
		d.opts = append(d.opts, bkclient.WithServerConfig("", ca), bkclient.WithCredentials(cert, key))
	}
	return d
}

func (d *Daemon) client(ctx context.Context) (*bkclient.Client, error) {
	c, err := bkclient.New(ctx, d.addr, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("buildkitd %s: %w", d.addr, err)
	}
	return c, nil
}

// Ping checks that the buildkitd answers and has a worker.
func (d *Daemon) Ping(ctx context.Context) error {
	c, err := d.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ws, err := c.ListWorkers(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("buildkitd %s: %w", d.addr, err)
	case len(ws) == 0:
		return fmt.Errorf("buildkitd %s has no worker", d.addr)
	}
	return nil
}

// Build builds spec and pushes it to the registry of its first tag by
// BuildKit's image exporter; it returns the manifest digest pushed, which
// Push then reports for that tag.
func (d *Daemon) Build(ctx context.Context, spec BuildSpec, log io.Writer) (string, error) {
	if len(spec.Tags) != 1 {
		return "", errors.New("buildkitd: a build pushes exactly one tag")
	}
	c, err := d.client(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	opt, cleanup, err := solveOpt(spec)
	if err != nil {
		return "", err
	}
	defer cleanup()
	attrs := map[string]string{"name": spec.Tags[0], "push": "true"}
	ref, err := name.ParseReference(spec.Tags[0])
	if err != nil {
		return "", err
	}
	if d.Insecure(ref.Context().RegistryStr()) {
		attrs["registry.insecure"] = "true"
	}
	opt.Exports = []bkclient.ExportEntry{{Type: bkclient.ExporterImage, Attrs: attrs}}
	res, err := solve(ctx, c, opt, log)
	if err != nil {
		return "", err
	}
	digest := res.ExporterResponse[exptypes.ExporterImageDigestKey]
	if digest == "" {
		return "", errors.New("buildkitd reported a push but no digest")
	}
	fmt.Fprintf(log, "pushed %s@%s by BuildKit's image exporter\n", spec.Tags[0], digest)
	d.mu.Lock()
	d.pushed[spec.Tags[0]] = digest
	d.mu.Unlock()
	return digest, nil
}

// Push reports the digest the build of ref pushed: the exporter pushed it
// already.
func (d *Daemon) Push(_ context.Context, ref, _ string, log io.Writer) (string, error) {
	d.mu.Lock()
	digest, ok := d.pushed[ref]
	d.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("buildkitd %s pushes only what it built: %s was not built here", d.addr, ref)
	}
	fmt.Fprintf(log, "%s was pushed by BuildKit's image exporter during the build\n", ref)
	return digest, nil
}

// ErrCannotRun is what a buildkitd answers when asked to pull or run an
// image: it builds only.
var ErrCannotRun = errors.New("a buildkitd builds only: it cannot pull or run images")

// Pull refuses: a buildkitd keeps no images to run.
func (d *Daemon) Pull(context.Context, string, string, io.Writer) error {
	return fmt.Errorf("buildkitd %s: %w", d.addr, ErrCannotRun)
}
