package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/notify"
	"nightshift/pipeline"
	"nightshift/rebuild"
	"nightshift/registry"
	"nightshift/report"
	"nightshift/store"
	"nightshift/validate"
)

const (
	storeTimeout   = time.Second      // a second process must not hang on the lock
	connectTimeout = 10 * time.Second // engine and registry must answer this soon
)

func (c *cli) run(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("run", "[flags]", `Rebuilds every image (or those named by --only) from scratch at one pinned
commit, in dependency order and in parallel, pushes each once under the run's
immutable tag, adds 'latest' as a remote tag, verifies both digests in the
registry, and records every stage. With [validate] configured, each image is
then tested inside (and the Jenkins job run with every ref); what passes is
tagged <tag>-validated (and only then latest, with staging.latest =
"validated"). Exit 0 when every image succeeded, 1 when some failed (build,
push or validation) or the run was interrupted.
`)
	only := fs.String("only", "", "build only these `images` (comma-separated)")
	withDeps := fs.Bool("with-deps", false, "with --only: also build what those images build on")
	noValidate := fs.Bool("no-validate", false, "build and push only; validate later with 'nightshift validate --tag TAG'")
	out := outputFlags(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if !out.check(c, "run") || !checkOnly(c, "run", *only, *withDeps) {
		return exitUsage
	}
	return c.carryOut(ctx, *cfgPath, out, func(*store.DB) (request, bool) {
		return request{sel: pipeline.Selection{Only: list(*only), WithDeps: *withDeps}, noValidate: *noValidate}, true
	})
}

// output is how a run reports: progress as it goes, reports at its end.
type output struct {
	junit, json, progress, trigger *string
}

func outputFlags(fs *flag.FlagSet) output {
	return output{
		junit:    fs.String("junit", "", "write a JUnit XML report (a test case per image and stage, and per test) to `file`"),
		json:     fs.String("json", "", "write the run record as JSON to `file`"),
		progress: fs.String("progress", "auto", "progress output: auto, live (redrawn table) or lines (timestamped)"),
		trigger:  fs.String("trigger", "cli", "what started this run, for the record"),
	}
}

func (o output) check(c *cli, cmd string) bool {
	if p := *o.progress; p != "auto" && p != "live" && p != "lines" {
		fmt.Fprintf(c.stderr, "nightshift %s: --progress must be auto, live or lines, not %q\n", cmd, p)
		return false
	}
	return true
}

// carryOut opens the store, asks what to do (resolve may look in the
// store; false means it said why and the command exits 2), runs it with
// progress, writes the reports and the summary, and delivers the news.
func (c *cli) carryOut(ctx context.Context, cfgPath string, out output, resolve func(*store.DB) (request, bool)) int {
	s, code := c.openSetup(cfgPath)
	if s == nil {
		return code
	}
	defer s.db.Close()
	cfg, db, ns, routes := s.cfg, s.db, s.ns, s.routes
	c.interruptLeftovers(db, outbox(cfg, routes))
	req, ok := resolve(db)
	if !ok {
		return exitUsage
	}

	observe, stopProgress, live := c.progress(*out.progress)
	log := c.log
	if live {
		// Info lines on the same terminal would break the redrawn table;
		// the summary below says the same. Warnings and errors still show.
		log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rec, code := c.nightly(ctx, cfg, db, routes, req, pipeline.Options{Trigger: *out.trigger, Logger: log, Observe: observe})
	stopProgress()
	if rec == nil {
		if code == exitUnavailable && ctx.Err() == nil {
			c.flush(ctx, cfg, db, ns) // the news that the run could not start
		}
		return code
	}
	if err := c.writeReports(rec, *out.junit, *out.json); err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitFailed
	}
	summary(c.stdout, rec, stagingRepo(cfg))
	if ctx.Err() == nil {
		// After a signal, stop now: what is queued goes with the next start.
		c.flush(ctx, cfg, db, ns)
	}
	return code
}

// request says what one run does.
type request struct {
	sel pipeline.Selection
	// noValidate builds and pushes only; `nightshift validate` follows.
	noValidate bool
	// tag, when set, makes a validation run of the images pushed under
	// it, from commit (when known).
	tag, commit string
	// unattended: nobody watches the run start (the daemon), so a run
	// that a configuration problem stops (a Dockerfile gone from the
	// tree, a FROM that now loops) is news too, not only one that found
	// something unavailable.
	unattended bool
}

// nightly is one run as the CLI and the daemon both carry it out: pin the
// source and plan, reach the engine and the registry, then build, push,
// validate and record. rec is nil when no run started, and code is then the
// exit code that means; when what was missing is the source's remote, the
// engine or the registry (exit 3), or for an unattended run the source's
// tree no longer fits the configuration (exit 2), the news is queued (not
// when the store itself failed: the outbox is in it, and stderr has to say
// it). It
// queues and never delivers: the caller has the one delivery path (the
// CLI flushes, the daemon wakes its deliverer). opts.Outbox and
// opts.Jenkins are set here.
func (c *cli) nightly(ctx context.Context, cfg *config.Config, db *store.DB,
	routes []notify.Route, req request, opts pipeline.Options) (rec *store.Run, code int) {
	var (
		prep *pipeline.Prepared
		err  error
	)
	if req.tag != "" {
		prep, err = pipeline.PrepareValidation(ctx, cfg, req.sel, req.tag, req.commit, time.Now().UTC())
	} else {
		prep, err = pipeline.Prepare(ctx, cfg, req.sel, time.Now().UTC())
	}
	if err != nil {
		code := c.exitCode(err)
		fmt.Fprintln(c.stderr, "nightshift: nothing was built or pushed")
		var usage *pipeline.UsageError
		if code == exitUnavailable || (req.unattended && code == exitUsage && !errors.As(err, &usage)) {
			c.notStarted(ctx, cfg, db, routes, err)
		}
		return nil, code
	}
	eng, err := engine.Connect(ctx, connectTimeout)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\nStart the Docker Engine, or point DOCKER_HOST at one.\n", err)
		c.notStarted(ctx, cfg, db, routes, err)
		return nil, exitUnavailable
	}
	defer eng.Close()
	reg, err := newRegistry(ctx, cfg.Staging.Registry, cfg.Staging.Username, cfg.Staging.Password.Reveal(), cfg.Staging.RetryBudget.Duration)
	if err == nil {
		err = reg.CheckPush(cfg.Staging.Namespace + "/" + prep.Plan.Steps[0].Name)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		c.notStarted(ctx, cfg, db, routes, err)
		return nil, exitUnavailable
	}
	// No build labels: the classic builder adds each as a step of its own,
	// a container commit that costs seconds; the record holds the same facts.
	runner := &rebuild.Runner{Engine: eng, Registry: reg, Jobs: cfg.Build.Jobs, RetryBudget: cfg.Staging.RetryBudget.Duration,
		LatestValidated: cfg.Staging.Latest == config.LatestValidated}
	if prep.Tests != nil && !req.noValidate {
		runner.Test = validate.NewTester(cfg, prep.Tests, eng).Test
		if cfg.Validate.Jenkins.Enabled {
			data := config.NewTemplateData(prep.Plan.Start, prep.Plan.Commit)
			data.Tag = prep.Plan.Tag
			runner.HoldValidated = true
			opts.Jenkins = validate.NewJob(cfg.Validate.Jenkins, data, opts.Logger).Run
		}
	}
	opts.Outbox = outbox(cfg, routes)
	rec, err = pipeline.Run(ctx, cfg, prep, runner, db, opts)
	if rec == nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return nil, exitUnavailable
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err) // the record is incomplete, the run is not
	}
	if rec.Status != store.Succeeded {
		return rec, exitFailed
	}
	return rec, exitOK
}

func newRegistry(ctx context.Context, host, user, password string, budget time.Duration) (*registry.Client, error) {
	opts := []registry.Option{registry.WithRetryBudget(budget)}
	if user != "" {
		opts = append(opts, registry.WithBasicAuth(user, password))
	}
	reg, err := registry.New(host, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := reg.Ping(ctx); err != nil {
		return nil, err
	}
	return reg, nil
}

// notStarted queues the news that a run could not start, for the caller
// to deliver; not when the run was cancelled (Ctrl-C, the daemon
// stopping): then nothing was unavailable, and nobody needs telling.
func (c *cli) notStarted(ctx context.Context, cfg *config.Config, db *store.DB, routes []notify.Route, why error) {
	if ctx.Err() != nil {
		return
	}
	if err := queueNotStarted(cfg, db, routes, why.Error()); err != nil {
		c.log.Error("queueing the notification that the run could not start", "err", err)
	}
}

// queueNotStarted queues, for every notifier that wants it, a message
// saying that a run could not start, and why.
func queueNotStarted(cfg *config.Config, db *store.DB, routes []notify.Route, reason string) error {
	now := time.Now().UTC()
	msgs, err := notify.NotStarted(routes, reason, stagingRepo(cfg), cfg.HTTP.PublicURL, now)
	if err != nil {
		return err
	}
	return db.Enqueue(now, msgs...)
}

// interruptLeftovers records runs that a crash left "running" as
// interrupted, and queues the news.
func (c *cli) interruptLeftovers(db *store.DB, outbox func(store.Finish) ([]store.Message, error)) {
	runs, err := db.Interrupt(time.Now().UTC(), "nightshift stopped during the run", outbox)
	if err != nil {
		c.log.Error("marking crashed runs interrupted", "err", err)
	}
	for _, r := range runs {
		c.log.Warn("run was left running by a stopped nightshift; recorded as interrupted", "run", r.ID, "tag", r.Tag)
	}
}

// progress picks live redrawing on a terminal and plain lines elsewhere,
// and says whether it picked live.
func (c *cli) progress(mode string) (observe func(*store.Run, rebuild.Event), stop func(), live bool) {
	f, isFile := c.stdout.(*os.File)
	if mode == "auto" {
		mode = "lines"
		if isFile && term.IsTerminal(int(f.Fd())) {
			mode = "live"
		}
	}
	if mode == "lines" {
		l := &report.Lines{W: c.stdout}
		return l.Observe, func() {}, false
	}
	view := &report.Live{W: c.stdout}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				view.Tick()
			}
		}
	}()
	return view.Observe, func() { close(done); <-stopped; view.Tick() }, true
}

func (c *cli) writeReports(rec *store.Run, junitPath, jsonPath string) error {
	write := func(path string, render func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := render(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		return f.Close()
	}
	if err := write(junitPath, func(w io.Writer) error { return report.JUnit(w, rec) }); err != nil {
		return err
	}
	return write(jsonPath, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rec)
	})
}

// summary tells a person where the images went and what failed.
func summary(w io.Writer, rec *store.Run, repo string) {
	ok := 0
	for _, im := range rec.Images {
		if im.Status == store.Succeeded {
			ok++
		}
	}
	fmt.Fprintf(w, "\nrun %d %s: %d of %d images pushed to %s with tag %s (commit %.8s)\n",
		rec.ID, rec.Status, ok, len(rec.Planned), repo, rec.Tag, rec.Commit)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, im := range rec.Images {
		detail := im.Ref
		if im.Digest != "" {
			detail += "@" + im.Digest
		}
		if im.Error != "" {
			detail = im.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", im.Name, im.Status, im.Duration(time.Now()).Round(time.Millisecond), detail)
	}
	tw.Flush()
	for _, im := range rec.Images {
		if im.Status == store.Failed && im.Log != "" {
			fmt.Fprintf(w, "  log of %s: %s\n", im.Name, im.Log)
		}
	}
}

func (c *cli) plan(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("plan", "[flags]", `Prints what 'nightshift run' would do now, without building: the build order,
each image's refs for this run, the parent it builds on and its build args.
`)
	only := fs.String("only", "", "plan only these `images` (comma-separated)")
	withDeps := fs.Bool("with-deps", false, "with --only: also plan what those images build on")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if !checkOnly(c, "plan", *only, *withDeps) {
		return exitUsage
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	prep, err := pipeline.Prepare(ctx, cfg, pipeline.Selection{Only: list(*only), WithDeps: *withDeps}, time.Now().UTC())
	if err != nil {
		return c.exitCode(err)
	}
	p := prep.Plan
	dirty := ""
	if prep.Source.Dirty {
		dirty = " (with uncommitted changes)"
	}
	fmt.Fprintf(c.stdout, "commit %s%s %q\ntag    %s\nrepo   %s\n\n", p.Commit, dirty, prep.Source.Subject, p.Tag, p.Repo)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tIMAGE\tPARENT\tREF\tALSO\tBUILD ARGS")
	for i, s := range p.Steps {
		parent := "-"
		if s.Base != "" {
			parent = s.Base
		}
		if len(s.Parents) > 0 && strings.Join(s.Parents, ",") != s.Base {
			parent += " (after " + strings.Join(s.Parents, ", ") + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, s.Name, parent, s.Ref, "latest", formatArgs(s.Args))
	}
	tw.Flush()
	return exitOK
}

// checkOnly refuses --with-deps without --only, and an --only that names
// nothing (which would otherwise mean every image).
func checkOnly(c *cli, cmd, only string, withDeps bool) bool {
	switch {
	case withDeps && only == "":
		fmt.Fprintf(c.stderr, "nightshift %s: --with-deps needs --only\n", cmd)
	case only != "" && len(list(only)) == 0:
		fmt.Fprintf(c.stderr, "nightshift %s: --only %q names no image\n", cmd, only)
	default:
		return true
	}
	return false
}

func formatArgs(args map[string]string) string {
	if len(args) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(args)) {
		parts = append(parts, k+"="+args[k])
	}
	return strings.Join(parts, " ")
}

func (c *cli) configCheck(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("config check", "[flags]", `Checks the configuration: every key, type and path, secrets readable, and the
image graph (Dockerfiles parsed, dependencies known, no cycle). Reports every
problem at once with file:line and key. Builds and pushes nothing. For a git URL
source the repository is fetched to check the tree.
`)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	prep, err := pipeline.Prepare(ctx, cfg, pipeline.Selection{}, time.Now().UTC())
	if err != nil {
		return c.exitCode(err)
	}
	fmt.Fprintf(c.stdout, "%s: ok, %d images in build order: %s\n", cfg.File, len(prep.Plan.Steps), strings.Join(prep.Graph.Order(), ", "))
	return exitOK
}
