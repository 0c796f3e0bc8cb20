package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/cli/cli/config/configfile"
	clitypes "github.com/docker/cli/cli/config/types"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/moby/moby/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// Secret is where a build's secret comes from: a file, or an environment
// variable of nightshift's own process. Its value is read only when the
// build asks for it, and goes nowhere but to the build.
type Secret struct {
	File string
	Env  string
}

// buildKit builds spec with the engine's built-in BuildKit, reached through
// the Engine API's /grpc and /session endpoints as buildx's docker driver
// reaches it: the Dockerfile frontend, the context and Dockerfile sent
// through the session, credentials and secrets served by it, the progress
// written to log as `--progress=plain` text. spec.NoCache reuses nothing
// from earlier builds and spec.Pull resolves every base image afresh.
//
// The image lands in the engine's image store under spec.Tags, and its ID
// is returned: an engine without the containerd image store (Docker 20.10
// here) has no exporter that pushes, so the caller pushes through the
// engine, as buildx's docker driver does. A failed build is a *BuildError
// naming the failing step.
func (e *Engine) buildKit(ctx context.Context, spec BuildSpec, log io.Writer) (string, error) {
	if err := e.negotiate(ctx); err != nil {
		return "", err
	}
	bk, err := bkclient.New(ctx, "",
		bkclient.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return e.c.DialHijack(ctx, "/grpc", "h2c", nil)
		}),
		bkclient.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return e.c.DialHijack(ctx, "/session", proto, meta)
		}),
	)
	if err != nil {
		return "", fmt.Errorf("buildkit: %w", err)
	}
	defer bk.Close()

	opt, cleanup, err := solveOpt(spec)
	if err != nil {
		return "", err
	}
	defer cleanup()
	if bridge, err := e.hasBridge(ctx); err != nil {
		return "", err
	} else if !bridge {
		opt.FrontendAttrs["force-network-mode"] = "none"
	}

	res, err := solve(ctx, bk, opt, log)
	if err != nil {
		return "", err
	}
	id := res.ExporterResponse[exptypes.ExporterImageConfigDigestKey]
	if id == "" {
		id = res.ExporterResponse[exptypes.ExporterImageDigestKey]
	}
	if id == "" {
		return "", errors.New("buildkit reported success but no image ID")
	}
	return id, nil
}

// solve carries out opt on bk, writing its progress to log as
// `--progress=plain` text and, at its end, when each step started and
// ended. A failed build is a *BuildError naming the failing step.
func solve(ctx context.Context, bk *bkclient.Client, opt bkclient.SolveOpt, log io.Writer) (*bkclient.SolveResponse, error) {
	statuses := make(chan *bkclient.SolveStatus)
	display := make(chan *bkclient.SolveStatus)
	steps := newStepLog()
	var res *bkclient.SolveResponse
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		res, err = bk.Solve(gctx, nil, opt, statuses)
		return err
	})
	g.Go(func() error {
		defer close(display)
		for s := range statuses {
			steps.update(s)
			display <- s
		}
		return nil
	})
	g.Go(func() error {
		// Not gctx: the display must print the failing step's end.
		d, err := progressui.NewDisplay(log, progressui.PlainMode)
		if err != nil {
			for range display {
			}
			return err
		}
		_, err = d.UpdateFrom(context.WithoutCancel(ctx), display)
		return err
	})
	err := g.Wait()
	steps.summary(log)
	if err != nil {
		return nil, steps.failure(err)
	}
	return res, nil
}

// negotiate agrees with the engine on the API version before a hijacked
// dial: the client's default version is newer than an old engine accepts.
func (e *Engine) negotiate(ctx context.Context) error {
	if _, err := e.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("docker engine at %s: %w", e.c.DaemonHost(), &callError{err})
	}
	return nil
}

// hasBridge says whether the engine has its default bridge network. One
// started with --bridge=none runs its classic builder's RUN steps without a
// network, as any container in the default network mode; its BuildKit fails
// them ("network bridge not found") unless the build asks for no network.
func (e *Engine) hasBridge(ctx context.Context) (bool, error) {
	_, err := e.c.NetworkInspect(ctx, "bridge", client.NetworkInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("docker engine: %w", &callError{err})
	}
	return true, nil
}

// solveOpt is how BuildKit builds spec; cleanup removes what it wrote.
func solveOpt(spec BuildSpec) (bkclient.SolveOpt, func(), error) {
	cleanup := func() {}
	contextFS, err := fsutil.NewFS(spec.Context)
	if err != nil {
		return bkclient.SolveOpt{}, cleanup, fmt.Errorf("build context %s: %w", spec.Context, err)
	}
	dockerfileDir, dockerfileName := filepath.Split(spec.Dockerfile)
	if spec.DockerfileContent != nil {
		dir, err := os.MkdirTemp("", "nightshift-dockerfile-")
		if err != nil {
			return bkclient.SolveOpt{}, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		dockerfileDir, dockerfileName = dir, "Dockerfile"
		if err := os.WriteFile(filepath.Join(dir, dockerfileName), spec.DockerfileContent, 0o600); err != nil {
			cleanup()
			return bkclient.SolveOpt{}, func() {}, err
		}
	}
	dockerfileFS, err := fsutil.NewFS(dockerfileDir)
	if err != nil {
		cleanup()
		return bkclient.SolveOpt{}, func() {}, fmt.Errorf("dockerfile %s: %w", spec.Dockerfile, err)
	}

	attrs := map[string]string{"filename": dockerfileName}
	if spec.Target != "" {
		attrs["target"] = spec.Target
	}
	if spec.NoCache {
		attrs["no-cache"] = ""
	}
	if spec.Pull {
		attrs["image-resolve-mode"] = "pull"
	}
	for k, v := range spec.Args {
		attrs["build-arg:"+k] = v
	}

	auths, err := buildAuths(spec.RegistryAuths)
	if err != nil {
		cleanup()
		return bkclient.SolveOpt{}, func() {}, err
	}
	cf := &configfile.ConfigFile{AuthConfigs: make(map[string]clitypes.AuthConfig, len(auths))}
	for host, a := range auths {
		cf.AuthConfigs[host] = clitypes.AuthConfig{
			Username: a.Username, Password: a.Password, Auth: a.Auth, ServerAddress: host,
			IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
		}
	}
	attachables := []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(cf),
	})}
	if len(spec.Secrets) > 0 {
		sources := make([]secretsprovider.Source, 0, len(spec.Secrets))
		for id, s := range spec.Secrets {
			sources = append(sources, secretsprovider.Source{ID: id, FilePath: s.File, Env: s.Env})
		}
		store, err := secretsprovider.NewStore(sources)
		if err != nil {
			cleanup()
			return bkclient.SolveOpt{}, func() {}, fmt.Errorf("build secrets: %w", err)
		}
		attachables = append(attachables, secretsprovider.NewSecretProvider(store))
	}

	// The engine's own exporter: Docker 20.10's BuildKit has no "image"
	// exporter ("exporter \"image\" could not be found"), so no push=true.
	export := bkclient.ExportEntry{Type: "moby", Attrs: map[string]string{"name": strings.Join(spec.Tags, ",")}}
	return bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": contextFS, "dockerfile": dockerfileFS},
		Session:       attachables,
		Exports:       []bkclient.ExportEntry{export},
	}, cleanup, nil
}

// BuildError is a BuildKit build that failed at one of its steps.
type BuildError struct {
	Step  string   // the step as the progress names it: "[stage 2/3] RUN make"
	Lines []string // the step's last lines of output
	Err   error
}

func (e *BuildError) Error() string {
	if e.Step == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s: %v", e.Step, e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// stepLines is how many of each step's last lines a *BuildError keeps.
const stepLines = 30

// stepLog follows a build's progress: each step's name, times and last
// lines, and the first step that failed.
type stepLog struct {
	names  map[digest.Digest]string
	times  map[digest.Digest]*stepTimes
	lines  map[digest.Digest][]string
	failed digest.Digest
}

type stepTimes struct {
	started, completed time.Time
	cached             bool
}

func newStepLog() *stepLog {
	return &stepLog{names: map[digest.Digest]string{}, times: map[digest.Digest]*stepTimes{}, lines: map[digest.Digest][]string{}}
}

func (s *stepLog) update(st *bkclient.SolveStatus) {
	for _, v := range st.Vertexes {
		s.names[v.Digest] = v.Name
		if v.Started != nil {
			t := s.times[v.Digest]
			if t == nil {
				t = &stepTimes{started: *v.Started}
				s.times[v.Digest] = t
			}
			if v.Completed != nil {
				t.completed = *v.Completed
			}
			t.cached = v.Cached
		}
		// The first step to fail is the cause; others fail after it,
		// cancelled by it.
		if v.Error != "" && s.failed == "" {
			s.failed = v.Digest
		}
	}
	for _, l := range st.Logs {
		// A step's output comes in whole lines but for its last.
		lines := append(s.lines[l.Vertex], strings.Split(strings.TrimSuffix(string(l.Data), "\n"), "\n")...)
		s.lines[l.Vertex] = lines[max(0, len(lines)-stepLines):]
	}
}

// summary writes when each step started and ended, in seconds since the
// first began, in the order they started: the progress above prints one
// step's lines at a time, and this shows which ran at once.
func (s *stepLog) summary(log io.Writer) {
	steps := slices.Collect(maps.Keys(s.times))
	if len(steps) == 0 {
		return
	}
	slices.SortFunc(steps, func(a, b digest.Digest) int {
		return cmp.Or(s.times[a].started.Compare(s.times[b].started), cmp.Compare(s.names[a], s.names[b]))
	})
	begin := s.times[steps[0]].started
	fmt.Fprintf(log, "\n==> steps (seconds since %s: start, end)\n", begin.UTC().Format(time.RFC3339Nano))
	for _, d := range steps {
		t := s.times[d]
		end := "-"
		if !t.completed.IsZero() {
			end = fmt.Sprintf("%.3f", t.completed.Sub(begin).Seconds())
		}
		cached := ""
		if t.cached {
			cached = " CACHED"
		}
		fmt.Fprintf(log, "%8.3f %8s  %s%s\n", t.started.Sub(begin).Seconds(), end, s.names[d], cached)
	}
}

// failure is err, the build's failure, as a *BuildError naming the step
// that failed: the one the error names (a vertex error), else the first
// step the progress reported failed.
func (s *stepLog) failure(err error) error {
	dgst := s.failed
	var ve *errdefs.VertexError
	if errors.As(err, &ve) && ve.Digest != "" {
		dgst = digest.Digest(ve.Digest)
	}
	return &BuildError{Step: s.names[dgst], Lines: slices.Clone(s.lines[dgst]), Err: err}
}
