package main

import (
	"context"
	"encoding/json"
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

	"nightshift/pipeline"
	"nightshift/rebuild"
	"nightshift/report"
	"nightshift/store"
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

With --changed-since REV, only the images built from something that changed
between REV and the pinned commit are rebuilt: a changed Dockerfile, a file
of the context (less .dockerignore), a file of [[image]] inputs, a rebuilt
parent; [changes] build_all files and a commit saying "full rebuild" rebuild
everything, [changes] ignore files nothing. The others are not built, pushed
or tagged; a rebuilt child of one builds on its latest, pinned by digest. A
run with nothing to rebuild says so, records nothing, notifies nobody and
exits 0.
`)
	only := fs.String("only", "", "build only these `images` (comma-separated)")
	withDeps := fs.Bool("with-deps", false, "with --only: also build what those images build on")
	noValidate := fs.Bool("no-validate", false, "build and push only; validate later with 'nightshift validate --tag TAG'")
	since := fs.String("changed-since", "", "rebuild only the images that changed since this `revision` (commit, branch or tag), and those built on them")
	out := outputFlags(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if !out.check(c, "run") || !checkOnly(c, "run", *only, *withDeps) {
		return exitUsage
	}
	return c.carryOut(ctx, *cfgPath, out, (*pipeline.Pipeline).Nightly, pipeline.Request{
		Selection: pipeline.Selection{Only: list(*only), WithDeps: *withDeps, ChangedSince: *since}, NoValidate: *noValidate,
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

// startFunc starts a run of a pipeline: Nightly or Validate.
type startFunc func(*pipeline.Pipeline, context.Context, pipeline.Request) (*pipeline.Run, error)

// carryOut starts req with progress, waits for its end, writes the
// reports and the summary, delivers the news, and returns the exit code.
func (c *cli) carryOut(ctx context.Context, cfgPath string, out output, start startFunc, req pipeline.Request) int {
	mode := c.progressMode(*out.progress)
	log := c.log
	if mode == "live" {
		// Info lines on the same terminal would break the redrawn table;
		// the summary below says the same. Warnings and errors still show.
		log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, code := c.openSetup(cfgPath, log)
	if s == nil {
		return code
	}
	defer s.close()
	c.recover(s.p)

	observe, stopProgress := c.progress(mode)
	progress := make(chan pipeline.Update)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for u := range progress {
			observe(u.Run, u.Event)
		}
	}()
	req.Progress, req.Trigger = progress, *out.trigger
	// Under Jenkins, the record and its news link to the build's console.
	req.BuildURL = os.Getenv("BUILD_URL")
	run, err := start(s.p, ctx, req)
	if err != nil {
		<-followed
		stopProgress()
		code := c.exitCode(err)
		fmt.Fprintln(c.stderr, "nightshift: nothing was built or pushed")
		if code == exitUnavailable && ctx.Err() == nil {
			c.flush(ctx, s.p) // the news that the run could not start
		}
		return code
	}
	rec, err := run.Wait()
	<-followed
	stopProgress()
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err) // the record is incomplete, the run is not
	}
	if rec == nil {
		return exitUnavailable
	}
	if err := c.writeReports(rec, *out.junit, *out.json); err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitFailed
	}
	if rec.ID == 0 { // a change-detected run that found nothing to rebuild
		fmt.Fprintf(c.stdout, "nothing to rebuild: %d image(s) unchanged since %.8s (commit %.8s); nothing built, pushed or recorded\n",
			len(rec.Unchanged), rec.ChangedSince, rec.Commit)
		return exitOK
	}
	summary(c.stdout, rec, s.p.Repo())
	if ctx.Err() == nil {
		// After a signal, stop now: what is queued goes with the next start.
		c.flush(ctx, s.p)
	}
	if rec.Status != store.Succeeded {
		return exitFailed
	}
	return exitOK
}

// recover records the runs a crash left running as interrupted, and
// queues the news.
func (c *cli) recover(p *pipeline.Pipeline) {
	if _, err := p.Recover(); err != nil {
		c.log.Error(err.Error())
	}
}

// progressMode turns "auto" into live redrawing on a terminal and plain
// lines elsewhere.
func (c *cli) progressMode(mode string) string {
	if mode != "auto" {
		return mode
	}
	if f, isFile := c.stdout.(*os.File); isFile && term.IsTerminal(int(f.Fd())) {
		return "live"
	}
	return "lines"
}

// progress shows a run's progress in mode, "live" or "lines", until stop.
func (c *cli) progress(mode string) (observe func(*store.Run, rebuild.Event), stop func()) {
	if mode == "lines" {
		l := &report.Lines{W: c.stdout}
		return l.Observe, func() {}
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
	return view.Observe, func() { close(done); <-stopped; view.Tick() }
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
		status := string(im.Status)
		if im.Flaky {
			status += " (flaky build)"
		}
		if im.Reason != "" {
			detail += " (" + im.Reason + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", im.Name, status, im.Duration(time.Now()).Round(time.Millisecond), detail)
	}
	for _, u := range rec.Unchanged {
		fmt.Fprintf(tw, "  %s\tunchanged\t-\t%s: not rebuilt\n", u.Name, u.Reason)
	}
	tw.Flush()
	for _, im := range rec.Images {
		if im.Status == store.Failed && im.Log != "" {
			fmt.Fprintf(w, "  log of %s: %s\n", im.Name, im.Log)
		}
	}
	if rec.Jenkins != nil {
		fmt.Fprintf(w, "  Jenkins job: %s\n", rec.Jenkins.Summary())
	}
}

func (c *cli) plan(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("plan", "[flags]", `Prints what 'nightshift run' would do now, without building: the build order,
each image's refs for this run, the parent it builds on and its build args.
Warnings, as 'nightshift config check' gives them, go to stderr.

With --changed-since REV, first each image with "rebuild" and why (its
Dockerfile or a file it is built from changed, a parent is rebuilt, a
build_all file changed, a commit said "full rebuild") or "unchanged", then
the images rebuilt. A child of an unchanged image is shown on its latest,
which a run pins by digest. --json prints the same as one JSON object.
`)
	only := fs.String("only", "", "plan only these `images` (comma-separated)")
	withDeps := fs.Bool("with-deps", false, "with --only: also plan what those images build on")
	since := fs.String("changed-since", "", "plan only the images that changed since this `revision` (commit, branch or tag)")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
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
	prep, err := pipeline.Prepare(ctx, cfg, pipeline.Selection{Only: list(*only), WithDeps: *withDeps, ChangedSince: *since}, time.Now().UTC())
	if err != nil {
		return c.exitCode(err)
	}
	c.printWarnings(prep.Graph.Warnings())
	if *asJSON {
		return c.planJSON(prep)
	}
	p := prep.Plan
	dirty := ""
	if prep.Source.Dirty {
		dirty = " (with uncommitted changes)"
	}
	fmt.Fprintf(c.stdout, "commit %s%s %q\n", p.Commit, dirty, prep.Source.Subject)
	if prep.Since != "" {
		fmt.Fprintf(c.stdout, "since  %s\n", prep.Since)
	}
	fmt.Fprintf(c.stdout, "tag    %s\nrepo   %s\n\n", p.Tag, p.Repo)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if prep.Since != "" {
		fmt.Fprintln(tw, "IMAGE\tCHANGE\tWHY")
		for _, ch := range prep.Changes {
			what, why := "rebuild", ch.Reason
			if !ch.Rebuild {
				what = "unchanged"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", ch.Image, what, why)
		}
		tw.Flush()
		if len(p.Steps) == 0 {
			fmt.Fprintln(c.stdout, "\nnothing to rebuild")
			return exitOK
		}
		fmt.Fprintln(c.stdout)
	}
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

// planJSON prints what plan prints, as one JSON object.
func (c *cli) planJSON(prep *pipeline.Prepared) int {
	type image struct {
		Name      string            `json:"name"`
		Rebuild   bool              `json:"rebuild"`
		Reason    string            `json:"reason,omitempty"`
		Ref       string            `json:"ref,omitempty"`
		Parent    string            `json:"parent,omitempty"`
		BuildsOn  string            `json:"builds_on,omitempty"`
		After     []string          `json:"after,omitempty"`
		BuildArgs map[string]string `json:"build_args,omitempty"`
	}
	p := prep.Plan
	out := struct {
		Commit       string  `json:"commit"`
		Dirty        bool    `json:"dirty,omitempty"`
		ChangedSince string  `json:"changed_since,omitempty"`
		Tag          string  `json:"tag"`
		Repo         string  `json:"repo"`
		Images       []image `json:"images"`
	}{Commit: p.Commit, Dirty: prep.Source.Dirty, ChangedSince: prep.Since, Tag: p.Tag, Repo: p.Repo, Images: []image{}}
	changes := prep.Changes
	if prep.Since == "" {
		for _, s := range p.Steps {
			changes = append(changes, pipeline.Change{Image: s.Name, Rebuild: true})
		}
	}
	for _, ch := range changes {
		im := image{Name: ch.Image, Rebuild: ch.Rebuild, Reason: ch.Reason}
		if s := p.Step(ch.Image); s != nil {
			im.Ref, im.Parent, im.BuildsOn, im.After, im.BuildArgs = s.Ref.String(), s.Base, s.BaseRef, s.Parents, s.Args
		}
		out.Images = append(out.Images, im)
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(c.stderr, "nightshift plan: %v\n", err)
		return exitFailed
	}
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

Warnings go to stderr and leave the exit code alone: a FROM that names an image
of the stack where it is published (quay.io/jupyter/minimal-notebook) rather
than in staging would build on the published image, not this run's; list that
repository in [staging] published, or the image in depends_on.
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
	c.printWarnings(prep.Graph.Warnings())
	fmt.Fprintf(c.stdout, "%s: ok, %d images in build order: %s\n", cfg.File, len(prep.Plan.Steps), strings.Join(prep.Graph.Order(), ", "))
	return exitOK
}
