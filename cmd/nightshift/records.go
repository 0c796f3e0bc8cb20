package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"nightshift/store"
)

func (c *cli) history(args []string) int {
	fs, cfgPath := c.flags("history", "[flags]", `Lists recorded runs, newest first.
`)
	asJSON := fs.Bool("json", false, "print a JSON array of runs (id, tag, commit, status, started, finished, images)")
	limit := fs.Int("limit", 20, "show at most `n` runs; 0 shows all")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	db, code := c.openRecords(*cfgPath)
	if db == nil {
		return code
	}
	defer db.Close()
	runs, err := db.Runs(*limit)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitUnavailable
	}
	if *asJSON {
		if runs == nil {
			runs = []store.Run{}
		}
		return c.printJSON(runs)
	}
	if len(runs) == 0 {
		fmt.Fprintln(c.stdout, "no runs recorded yet; start one with 'nightshift run'")
		return exitOK
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATUS\tTAG\tSTARTED\tDURATION\tIMAGES\tTRIGGER")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, cmp.Or(r.Tag, "-"),
			r.Started.Local().Format("2006-01-02 15:04"), r.Duration(now).Round(time.Second), countImages(r),
			cmp.Or(r.Trigger, "-")+triggeredBy(r))
	}
	tw.Flush()
	return exitOK
}

// triggeredBy is " by <names>" for a run an API token triggered, "" for
// any other.
func triggeredBy(r store.Run) string {
	if r.TriggeredBy == "" {
		return ""
	}
	return " by " + r.TriggeredBy
}

// countImages summarizes a run's images, e.g. "4 succeeded, 1 failed, 2 skipped".
func countImages(r store.Run) string {
	counts := map[store.Status]int{}
	for _, im := range r.Images {
		counts[im.Status]++
	}
	var parts []string
	for _, st := range []store.Status{store.Succeeded, store.Failed, store.Skipped, store.Interrupted, store.Running} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func (c *cli) show(args []string) int {
	fs, cfgPath := c.flags("show", "[flags] RUN", `Shows one run in detail: every image with its refs, digest, stages and
durations, how its packages changed since the last run it succeeded in,
its tests and validation, and for a failure the last lines of the
failing step (for failed tests, why they failed); the Jenkins job, if any;
its promotions (when, by whom, to which tags, each image's target and
digest), and whether it was pruned.
`)
	asJSON := fs.Bool("json", false, "print the run record as JSON")
	var arg string
	if ok, code := parse(fs, args, &arg); !ok {
		return code
	}
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift show: %q is not a run number (see 'nightshift history')\n", arg)
		return exitUsage
	}
	db, code := c.openRecords(*cfgPath)
	if db == nil {
		return code
	}
	defer db.Close()
	r, err := db.Run(id)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift show: %v\n", err)
		return exitUsage
	}
	if *asJSON {
		return c.printJSON(r)
	}
	now := time.Now()
	kind := ""
	if r.Kind != "" {
		kind = " (" + r.Kind + ")"
	}
	fmt.Fprintf(c.stdout, "run %d%s  %s\ntag      %s\ncommit   %s %s\n", r.ID, kind, r.Status, r.Tag, r.Commit, r.Subject)
	if r.Dirty {
		fmt.Fprintln(c.stdout, "         (the tree had uncommitted changes)")
	}
	started := "started "
	if r.Status == store.Queued {
		started = "queued  " // waiting its turn since
	}
	fmt.Fprintf(c.stdout, "%s %s (%s%s)\nduration %s\n", started, r.Started.Local().Format(time.RFC3339), r.Trigger, triggeredBy(*r), r.Duration(now).Round(time.Millisecond))
	if u := r.ConsoleURL(); u != "" {
		fmt.Fprintf(c.stdout, "jenkins  %s\n", u)
	}
	if r.Error != "" {
		fmt.Fprintf(c.stdout, "error    %s\n", r.Error)
	}
	if r.Pruned != nil {
		fmt.Fprintf(c.stdout, "pruned   %s: its logs deleted, its tags removed from staging\n", r.Pruned.Local().Format(time.RFC3339))
	}
	for _, im := range r.Images {
		fmt.Fprintf(c.stdout, "\n%s  %s  %s\n", im.Name, im.Status, im.Duration(now).Round(time.Millisecond))
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, kv := range [][2]string{{"ref", im.Ref}, {"digest", im.Digest}, {"tags", strings.Join(im.Tags, ", ")},
			{"parent", im.Parent}, {"builder", im.Builder}, {"log", im.Log}, {"error", im.Error}} {
			if kv[1] != "" {
				fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
			}
		}
		for _, st := range im.Stages {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", st.Name, st.Status, st.Duration(now).Round(time.Millisecond))
		}
		if d := im.Packages; d != nil {
			fmt.Fprintf(tw, "  package diff\tsince run %d\t%s\n", d.SinceRun, d.Counts())
			for _, ch := range d.First {
				fmt.Fprintf(tw, "    %s\n", ch)
			}
			if more := d.Added + d.Removed + d.Changed - len(d.First); more > 0 {
				fmt.Fprintf(tw, "    and %d more (nightshift diff --run %d)\n", more, r.ID)
			}
		}
		if v := im.Validation; v != nil {
			fmt.Fprintf(tw, "  validation\t%s\t%s\n", v.Status, v.Error)
			for _, t := range v.Tests {
				fmt.Fprintf(tw, "    %s\t%s\t%.3fs\t%s\n", testVerdict(t), t.Name, t.Seconds, t.File)
			}
		}
		tw.Flush()
		for _, line := range im.Tail {
			fmt.Fprintln(c.stdout, "    | "+line)
		}
	}
	if j := r.Jenkins; j != nil {
		fmt.Fprintf(c.stdout, "\njenkins  %s  %s\n", j.Status, j.Summary())
		for _, line := range j.Console {
			fmt.Fprintln(c.stdout, "    | "+line)
		}
	}
	c.showPromotions(r)
	msgs, err := db.Messages(id)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift show: %v\n", err)
		return exitUnavailable
	}
	if len(msgs) > 0 {
		fmt.Fprintln(c.stdout, "\nnotifications")
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, m := range msgs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.Notifier, m.Status, messageDetail(m))
		}
		tw.Flush()
	}
	return exitOK
}

// testVerdict is a test's outcome in a word.
func testVerdict(t store.TestResult) string {
	switch {
	case !t.Passed:
		return "FAIL"
	case t.Flaky:
		return fmt.Sprintf("FLAKY (attempt %d)", t.Attempts)
	}
	return "PASS"
}

// messageDetail says when a message went, or why it has not.
func messageDetail(m store.Message) string {
	switch {
	case m.Status == store.Sent && m.Done != nil:
		return fmt.Sprintf("at %s after %d attempt(s)", m.Done.Local().Format(time.RFC3339), m.Attempts+1)
	case m.Status == store.Pending && m.Attempts == 0:
		return "not tried yet"
	case m.Status == store.Pending:
		return fmt.Sprintf("%d attempt(s), next at %s: %s", m.Attempts, m.NextAttempt.Local().Format(time.RFC3339), m.LastError)
	}
	return fmt.Sprintf("after %d attempt(s): %s", m.Attempts, m.LastError)
}

func (c *cli) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitFailed
	}
	return exitOK
}
