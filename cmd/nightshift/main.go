// Command nightshift rebuilds a repository's CI images from scratch, pushes
// them to a staging registry namespace, verifies them and records every
// outcome.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/pipeline"
	"nightshift/registry"
	"nightshift/store"
)

// Exit codes, as Jenkins stages and cron wrappers rely on them.
const (
	exitOK          = 0 // everything succeeded
	exitFailed      = 1 // the run finished and some image failed (or it was interrupted)
	exitUsage       = 2 // usage or configuration error: nothing was built or pushed
	exitUnavailable = 3 // engine, registry, source or store unavailable before work began
)

const usage = `nightshift rebuilds CI images from scratch every night, pushes them to a
staging registry namespace, verifies what landed and records every outcome.

Usage:
  nightshift COMMAND [flags]

Commands:
  run            rebuild, push, tag, verify and validate every image now
  validate       validate images already pushed under a tag, without rebuilding
  plan           print what a run would do: order, refs, parents, build args
  ensure         the image for this commit by content tag: found, waited for, or built
  history        list recorded runs, newest first
  show RUN       one run in detail: every image and stage
  manifest       an image of a run in Markdown: ref, digest, layers, packages
  diff           each image's packages added, removed, changed since it last succeeded
  consistency    packages at different versions in different images of a run
  promote        promote a night's validated images to release tags
  prune          delete the staging tags and logs of runs beyond [retention]
  config check   check the configuration and the image graph, build nothing
  daemon         run on a schedule, serve the API, dashboard and metrics
  trigger        ask the daemon for a run now (through its API)
  status         what the daemon is doing and how the last run went
  notify test    send a sample summary to every configured notifier
  notify flush   deliver the notifications still pending now

Every command takes -c/--config FILE (default ./nightshift.toml, or
$NIGHTSHIFT_CONFIG). 'nightshift COMMAND --help' describes a command.

Exit codes: 0 success; 1 the run finished and some image failed (build, push
or validation) or it was interrupted; 2 usage or configuration error (nothing built or pushed);
3 engine, registry, source or store unavailable before work began.
`

// cli is the environment a command runs in, so tests can run it in-process.
type cli struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the first signal stops cleanly; a second one kills at once
	}()
	c := &cli{stdout: os.Stdout, stderr: os.Stderr}
	c.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	os.Exit(c.main(ctx, os.Args[1:]))
}

func (c *cli) main(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return c.run(ctx, rest)
	case "plan":
		return c.plan(ctx, rest)
	case "ensure":
		return c.ensure(ctx, rest)
	case "validate":
		return c.validate(ctx, rest)
	case "history":
		return c.history(rest)
	case "show":
		return c.show(rest)
	case "manifest":
		return c.manifest(rest)
	case "diff":
		return c.diff(rest)
	case "consistency":
		return c.consistency(rest)
	case "promote":
		return c.promote(ctx, rest)
	case "prune":
		return c.prune(ctx, rest)
	case "notify":
		return c.notifyCmd(ctx, rest)
	case "daemon":
		return c.daemon(ctx, rest)
	case "trigger":
		return c.trigger(ctx, rest)
	case "status":
		return c.status(ctx, rest)
	case "config":
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help") {
			fmt.Fprintln(c.stdout, "Usage: nightshift config check [flags]\n\nRun 'nightshift config check --help' for its flags.")
			return exitOK
		}
		if len(rest) == 0 || rest[0] != "check" {
			fmt.Fprintln(c.stderr, "nightshift config: the only subcommand is 'check' (nightshift config check)")
			return exitUsage
		}
		return c.configCheck(ctx, rest[1:])
	}
	fmt.Fprintf(c.stderr, "nightshift: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// flags returns a flag set for a command with the -c/--config flag every
// command takes.
func (c *cli) flags(name, synopsis, help string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	path := os.Getenv("NIGHTSHIFT_CONFIG")
	if path == "" {
		path = "nightshift.toml"
	}
	cfg := new(string)
	fs.StringVar(cfg, "config", path, "configuration `file`")
	fs.StringVar(cfg, "c", path, "configuration `file` (shorthand)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nightshift %s %s\n\n%s\nFlags:\n", name, synopsis, help)
		fs.PrintDefaults()
	}
	return fs, cfg
}

// parse parses args, flags and the positional arguments in any order, and
// says whether the command should go on; code is the exit code when it
// should not. A command takes exactly len(want) positional arguments.
func parse(fs *flag.FlagSet, args []string, want ...*string) (ok bool, code int) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return false, exitOK
			}
			return false, exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != len(want) {
		if len(positional) > len(want) {
			fmt.Fprintf(fs.Output(), "nightshift %s: unexpected argument %q (names of images go in --only)\n", fs.Name(), positional[len(want)])
		} else {
			fmt.Fprintf(fs.Output(), "nightshift %s: missing argument\n", fs.Name())
		}
		fs.Usage()
		return false, exitUsage
	}
	for i, p := range positional {
		*want[i] = p
	}
	return true, 0
}

// loadConfig loads the configuration, printing every problem.
func (c *cli) loadConfig(path string) (*config.Config, int) {
	return c.loadConfigExcept(path, nil)
}

// loadConfigExcept is loadConfig, not counting the problems ignore says a
// command does not care about.
func (c *cli) loadConfigExcept(path string, ignore func(config.Problem) bool) (*config.Config, int) {
	cfg, ps := config.Inspect(path)
	if ignore != nil {
		ps = slices.DeleteFunc(ps, ignore)
	}
	if len(ps) > 0 {
		ps = append(ps, pipeline.GraphProblems(cfg, ps)...)
		ps.Sort()
		c.printError(ps)
		return nil, exitUsage
	}
	return cfg, exitOK
}

// openRecords opens the record store named by the configuration at path,
// reading only its [store] table: reading records must not need a
// configuration that could build.
func (c *cli) openRecords(path string) (*store.DB, int) {
	st, err := config.LoadStore(path)
	if err != nil {
		c.printError(err)
		return nil, exitUsage
	}
	return c.openStore(&config.Config{Store: st})
}

// setup is what the commands that run or deliver work with.
type setup struct {
	cfg   *config.Config
	db    *store.DB
	eng   *engine.Engine
	nodes []*engine.Engine // the [[builder]]s' engines and [validate] engine
	p     *pipeline.Pipeline
}

// openSetup loads the configuration, builds its notifiers, engine and
// registry clients (which reach nothing yet) and opens its record store;
// it returns nil and the exit code when any of that fails. The caller
// closes s.
func (c *cli) openSetup(path string, log *slog.Logger) (*setup, int) {
	cfg, code := c.loadConfig(path)
	if cfg == nil {
		return nil, code
	}
	ns, routes, err := notifiers(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return nil, exitUsage
	}
	reg, err := stagingRegistry(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return nil, exitUsage
	}
	eng, err := engine.New()
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\nPoint DOCKER_HOST at a Docker Engine.\n", err)
		return nil, exitUnavailable
	}
	s := &setup{cfg: cfg, eng: eng}
	builders, err := s.builders()
	if err != nil {
		s.close()
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return nil, exitUsage
	}
	if s.db, code = c.openStore(cfg); s.db == nil {
		s.close()
		return nil, code
	}
	opts := []pipeline.Option{pipeline.WithEngine(eng), pipeline.WithRegistry(reg), pipeline.WithBuilders(builders...),
		pipeline.WithNotifiers(ns, routes), pipeline.WithLogger(log)}
	if cfg.Validate.Engine != "" {
		te, err := engine.NewAt(engine.Host{URL: cfg.Validate.Engine})
		if err != nil {
			s.close()
			fmt.Fprintf(c.stderr, "nightshift: validate.engine: %v\n", err)
			return nil, exitUsage
		}
		s.nodes = append(s.nodes, te)
		opts = append(opts, pipeline.WithTestEngine(te))
	}
	s.p = pipeline.New(cfg, s.db, opts...)
	return s, exitOK
}

// builders makes a client of each [[builder]]'s engine (reaching none).
func (s *setup) builders() ([]pipeline.Builder, error) {
	var bs []pipeline.Builder
	for _, n := range s.cfg.Nodes {
		if n.BuildKit != "" {
			d := engine.NewDaemon(n.BuildKit, n.TLSCA, n.TLSCert, n.TLSKey)
			d.Insecure = registry.IsLoopback // as an engine treats loopback registries
			bs = append(bs, pipeline.Builder{Name: n.Name, Labels: n.Labels, Jobs: n.Jobs, Builds: d})
			continue
		}
		e, err := engine.NewAt(engine.Host{URL: n.Host, CA: n.TLSCA, Cert: n.TLSCert, Key: n.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("builder %s: %w", n.Name, err)
		}
		s.nodes = append(s.nodes, e)
		bs = append(bs, pipeline.Builder{Name: n.Name, Labels: n.Labels, Jobs: n.Jobs, Engine: e, Legacy: n.Builder == config.BuilderLegacy})
	}
	return bs, nil
}

func (s *setup) close() {
	if s.db != nil {
		s.db.Close()
	}
	s.eng.Close()
	for _, e := range s.nodes {
		e.Close()
	}
}

// stagingRegistry is the client of the staging registry cfg names.
func stagingRegistry(cfg *config.Config) (*registry.Client, error) {
	opts := []registry.Option{registry.WithRetryBudget(cfg.Staging.RetryBudget.Duration)}
	if cfg.Staging.Username != "" {
		opts = append(opts, registry.WithBasicAuth(cfg.Staging.Username, cfg.Staging.Password.Reveal()))
	}
	return registry.New(cfg.Staging.Registry, opts...)
}

// openStore opens the record store, failing fast if another process has it.
func (c *cli) openStore(cfg *config.Config) (*store.DB, int) {
	db, err := store.Open(cfg.Store.Path, storeTimeout)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			fmt.Fprintf(c.stderr, "nightshift: %v\nAnother nightshift (a run or the daemon) is using it; wait for it to finish, or give this one another [store] path.\n", err)
		} else {
			fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		}
		return nil, exitUnavailable
	}
	return db, exitOK
}

// exitCode maps an error from preparing a run to the exit code it means,
// printing it.
func (c *cli) exitCode(err error) int {
	c.printError(err)
	var unavailable *pipeline.Unavailable
	if errors.As(err, &unavailable) {
		return exitUnavailable
	}
	return exitUsage
}

func (c *cli) printError(err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		fmt.Fprintf(c.stderr, "nightshift: %d problem(s) in the configuration:\n", len(ps))
		for _, p := range ps {
			fmt.Fprintln(c.stderr, "  "+p.String())
		}
		return
	}
	fmt.Fprintln(c.stderr, "nightshift: "+err.Error())
}

// printWarnings prints what in the configuration or the Dockerfiles is
// likely a mistake but does not stop a run, located as problems are. It
// changes no exit code.
func (c *cli) printWarnings(ws config.Problems) {
	if len(ws) == 0 {
		return
	}
	fmt.Fprintf(c.stderr, "nightshift: %d warning(s) in the configuration:\n", len(ws))
	for _, w := range ws {
		fmt.Fprintln(c.stderr, "  "+w.String())
	}
}

// list splits a comma-separated flag value.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
