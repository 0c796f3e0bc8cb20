package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"nightshift/packages"
	"nightshift/store"
)

// runFlag adds --run to fs: the run a command reads, by default the newest
// nightly run.
func runFlag(fs *flag.FlagSet) *uint64 {
	return fs.Uint64("run", 0, "the `run` to read (see nightshift history); default: the newest nightly run")
}

// pickRun resolves --run: id itself, or the newest nightly run.
func (c *cli) pickRun(db *store.DB, cmd string, id uint64) (uint64, int) {
	if id != 0 {
		if _, err := db.Run(id); err != nil {
			fmt.Fprintf(c.stderr, "nightshift %s: run %d: %v (see nightshift history)\n", cmd, id, err)
			return 0, exitUsage
		}
		return id, exitOK
	}
	sums, _, err := db.Summaries(0)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift %s: %v\n", cmd, err)
		return 0, exitUnavailable
	}
	for _, s := range sums {
		if s.Kind == store.KindNightly && s.Status.Done() {
			return s.ID, exitOK
		}
	}
	fmt.Fprintf(c.stderr, "nightshift %s: no nightly run is recorded yet\n", cmd)
	return 0, exitUsage
}

// readRun carries out a verb that reads one recorded run: its flags
// (--run, and those flags adds), the record store, the run picked; read
// does the rest and returns the exit code.
func (c *cli) readRun(args []string, name, synopsis, help string, flags func(*flag.FlagSet), read func(db *store.DB, id uint64) int) int {
	fs, cfgPath := c.flags(name, synopsis, help)
	run := runFlag(fs)
	flags(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	db, code := c.openRecords(*cfgPath)
	if db == nil {
		return code
	}
	defer db.Close()
	id, code := c.pickRun(db, name, *run)
	if id == 0 {
		return code
	}
	return read(db, id)
}

func (c *cli) manifest(args []string) int {
	fs, cfgPath := c.flags("manifest", "--image NAME [--run RUN] [flags]", `Prints the Markdown manifest of an image of a run: its ref and digest, a
table of its layers (size, the instruction that made each), then a section
per info command ([packages]) with the packages it listed. A validation
run's images are those of the night it validated.
`)
	run := runFlag(fs)
	image := fs.String("image", "", "the `image` (required)")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if *image == "" {
		fmt.Fprintln(c.stderr, "nightshift manifest: --image is required")
		fs.Usage()
		return exitUsage
	}
	db, code := c.openRecords(*cfgPath)
	if db == nil {
		return code
	}
	defer db.Close()
	id, code := c.pickRun(db, "manifest", *run)
	if id == 0 {
		return code
	}
	night, err := packages.Night(db, id)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift manifest: %v\n", err)
		return exitUnavailable
	}
	contents, err := db.Contents(night, *image)
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(c.stderr, "nightshift manifest: run %d has no contents of %s: it was not pushed in that run, or a nightshift without package manifests ran it\n", night, *image)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift manifest: %v\n", err)
		return exitUnavailable
	}
	if err := packages.WriteManifest(c.stdout, night, contents); err != nil {
		fmt.Fprintf(c.stderr, "nightshift manifest: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func (c *cli) diff(args []string) int {
	var asJSON *bool
	return c.readRun(args, "diff", "[--run RUN] [--json] [flags]", `Prints, per image of a run, the packages added, removed and changed since
the last run before it in which that image succeeded (and had its packages
read). A validation run answers for the night it validated.
`, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, `print JSON: [{"image","since_run","added":[{"name","version","source"}],"removed":[...],"changed":[{"name","from","to","source"}]}]`)
	}, func(db *store.DB, id uint64) int { return c.printDiff(db, id, *asJSON) })
}

// printDiff prints the package diff of run id.
func (c *cli) printDiff(db *store.DB, id uint64, asJSON bool) int {
	diffs, err := packages.DiffRun(db, id)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift diff: %v\n", err)
		return exitUnavailable
	}
	if asJSON {
		return c.printJSON(diffs)
	}
	if len(diffs) == 0 {
		fmt.Fprintf(c.stdout, "run %d has no package lists: no image was pushed, or a nightshift without package manifests ran it\n", id)
		return exitOK
	}
	for _, d := range diffs {
		switch {
		case d.SinceRun == 0:
			fmt.Fprintf(c.stdout, "%s  no earlier run to compare with\n", d.Image)
			continue
		case d.Empty():
			fmt.Fprintf(c.stdout, "%s  since run %d: no change\n", d.Image, d.SinceRun)
			continue
		}
		fmt.Fprintf(c.stdout, "%s  since run %d: %s\n", d.Image, d.SinceRun, d.Brief().Counts())
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, ch := range d.Changed {
			fmt.Fprintf(tw, "  ~\t%s\t%s\t%s -> %s\n", ch.Source, ch.Name, ch.From, ch.To)
		}
		for _, a := range d.Added {
			fmt.Fprintf(tw, "  +\t%s\t%s\t%s\n", a.Source, a.Name, a.Version)
		}
		for _, r := range d.Removed {
			fmt.Fprintf(tw, "  -\t%s\t%s\t%s\n", r.Source, r.Name, r.Version)
		}
		tw.Flush()
	}
	return exitOK
}

func (c *cli) consistency(args []string) int {
	var asJSON *bool
	return c.readRun(args, "consistency", "[--run RUN] [--json] [flags]", `Prints the packages of one source (dpkg, pip, ...) that the images of a run
have at different versions, with the images at each version. It reports;
a [packages] consistent group is what fails a run's validation.
`, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, `print JSON: [{"name","source","versions":{"<version>":["<image>",...]}}]`)
	}, func(db *store.DB, id uint64) int { return c.printConsistency(db, id, *asJSON) })
}

// printConsistency prints the packages the images of run id disagree on.
func (c *cli) printConsistency(db *store.DB, id uint64, asJSON bool) int {
	ms, err := packages.RunConsistency(db, id)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift consistency: %v\n", err)
		return exitUnavailable
	}
	if asJSON {
		return c.printJSON(ms)
	}
	if len(ms) == 0 {
		fmt.Fprintf(c.stdout, "run %d: every package listed in more than one image has one version\n", id)
		return exitOK
	}
	for _, m := range ms {
		fmt.Fprintf(c.stdout, "%s %s\n", m.Source, m.Name)
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, v := range m.VersionList() {
			fmt.Fprintf(tw, "  %s\t%s\n", v, strings.Join(m.Versions[v], ", "))
		}
		tw.Flush()
	}
	return exitOK
}
