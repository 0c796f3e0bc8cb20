package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"nightshift/config"
	"nightshift/prune"
)

func (c *cli) prune(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("prune", "[flags]", `Applies [retention]: deletes from the staging namespace the tags of the nightly
runs beyond keep_last and keep_days (each run's <tag> and <tag>-validated), by
digest as the registry API requires, and only where no kept tag shares the
digest. Never latest, never a tag of a promoted run, never a tag no recorded
run made (those are listed as unknown and left alone). The logs of pruned runs
are deleted; their records stay, marked pruned. The daemon does this after
each nightly. A registry that refuses deletes is reported, and nothing is
pruned.

Exit 0 when everything due was pruned, 1 when a deletion failed or the
registry refuses deletes, 2 on a usage or configuration error (no
[retention]), 3 when the registry or the store is unavailable.
`)
	dryRun := fs.Bool("dry-run", false, "print what would be deleted and pruned, change nothing")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	if !cfg.Retention.Enabled {
		fmt.Fprintf(c.stderr, "nightshift prune: %s: %v\n", cfg.File, prune.ErrNoRetention)
		return exitUsage
	}
	reg, err := stagingRegistry(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitUsage
	}
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	err = reg.Ping(pingCtx)
	cancel()
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\nnothing was pruned\n", err)
		return exitUnavailable
	}
	db, code := c.openStore(cfg)
	if db == nil {
		return code
	}
	defer db.Close()
	rep, err := prune.New(cfg, db, reg, prune.WithLogger(c.log)).Prune(ctx, *dryRun)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift prune: %v\n", err)
		return exitFailed
	}
	c.pruneReport(rep, cfg, *dryRun)
	if len(rep.Failed) > 0 {
		return exitFailed
	}
	return exitOK
}

// pruneReport prints what was deleted (or would be), what was kept for a
// reason other than retention, and what is not nightshift's.
func (c *cli) pruneReport(rep *prune.Report, cfg *config.Config, dryRun bool) {
	var keep []string
	if n := cfg.Retention.KeepLast; n > 0 {
		keep = append(keep, fmt.Sprintf("the last %d", n))
	}
	if n := cfg.Retention.KeepDays; n > 0 {
		keep = append(keep, fmt.Sprintf("those of the last %d days", n))
	}
	fmt.Fprintf(c.stdout, "%d nightly runs recorded; keeping %s; %d beyond\n", rep.Nights, strings.Join(keep, " and "), rep.Beyond)
	deleted, pruned := "deleted", "pruned"
	if dryRun {
		deleted, pruned = "would delete", "would prune"
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, t := range rep.Deleted {
		fmt.Fprintf(tw, "  %s\t%s:%s\t%s\trun %d\n", deleted, t.Image, t.Tag, t.Digest, t.Run)
	}
	retained := 0
	for _, t := range rep.Kept {
		switch t.Why {
		case prune.Retained, prune.Latest:
			retained++
		default:
			fmt.Fprintf(tw, "  kept\t%s:%s\t%s\n", t.Image, t.Tag, t.Detail)
		}
	}
	for _, t := range rep.Unknown {
		fmt.Fprintf(tw, "  unknown\t%s:%s\t%s: left alone\n", t.Image, t.Tag, t.Detail)
	}
	for _, t := range rep.Failed {
		fmt.Fprintf(tw, "  failed\t%s:%s\t%s\n", t.Image, t.Tag, t.Detail)
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "%d tags %s, %d kept by retention or as latest, %d unknown\n", len(rep.Deleted), strings.TrimPrefix(deleted, "would "), retained, len(rep.Unknown))
	if dryRun {
		fmt.Fprintf(c.stdout, "nothing changed (dry run)\n")
	}
	if len(rep.Pruned) > 0 {
		ids := make([]string, len(rep.Pruned))
		for i, id := range rep.Pruned {
			ids[i] = fmt.Sprint(id)
		}
		fmt.Fprintf(c.stdout, "%s runs %s: logs deleted, records kept, marked pruned\n", pruned, strings.Join(ids, ", "))
	}
}

// prune applies [retention] after a nightly, as 'nightshift prune' does.
func (d *daemonState) prune(ctx context.Context) {
	cfg := d.p.Config()
	if !cfg.Retention.Enabled || ctx.Err() != nil {
		return
	}
	reg, err := stagingRegistry(cfg)
	if err != nil {
		d.log.Error("pruning", "err", err)
		return
	}
	rep, err := prune.New(cfg, d.db, reg, prune.WithLogger(d.log)).Prune(ctx, false)
	switch {
	case err != nil:
		d.log.Error("pruning", "err", err)
	case len(rep.Failed) > 0:
		d.log.Warn("pruning: some tags could not be deleted; their runs are not marked pruned", "failed", len(rep.Failed), "deleted", len(rep.Deleted))
	}
}
