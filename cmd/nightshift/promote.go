package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"nightshift/config"
	"nightshift/pipeline"
	"nightshift/promote"
	"nightshift/registry"
	"nightshift/store"
)

func (c *cli) promote(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("promote", "--from TAG --to NAME [--to NAME2] [flags]", `Promotes the images of the nightly run tagged TAG to release tags: those the
record shows validated that night (by the run itself, or by a validation run
of the night); the others are refused with the reason, and the rest still
promoted. Each goes to <[promote] registry>/<namespace>/<name>:NAME. In the
staging repository a promotion is a manifest PUT per tag; to another
repository or registry it is a copy that mounts the blobs the registry has
(only blobs missing in another registry travel, registry to registry), never
through the engine. Every target's digest is checked against the night's.
The promotion is recorded with the run (nightshift show) and sent to the
notifiers whose 'on' has "promote".

NAME is a template: {{ .Year }}.{{ .Quarter }}-stable, {{ .Date }}, {{ .Tag }}
(the run's), {{ .Short }}, {{ .Month }}, {{ .Day }}, utc "LAYOUT" (at the
promotion, in UTC).

Exit 0 when every image asked for was promoted, 1 when some was refused or
failed, 2 on a usage or configuration error (nothing promoted), 3 when a
registry or the store is unavailable.
`)
	from := fs.String("from", "", "the `tag` of the nightly run whose images to promote")
	var to tagList
	fs.Var(&to, "to", "a target `tag` (a template); repeat for more")
	images := fs.String("image", "", "promote only these `images` (comma-separated)")
	dryRun := fs.Bool("dry-run", false, "print every action, change nothing")
	force := fs.Bool("force", false, "promote images the night did not validate, too (the record says so)")
	by := fs.String("by", whoami(), "who promotes, for the record")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	switch {
	case *from == "" || len(to) == 0:
		fmt.Fprintln(c.stderr, "nightshift promote: give --from TAG and at least one --to NAME")
		return exitUsage
	case *images != "" && len(list(*images)) == 0:
		fmt.Fprintf(c.stderr, "nightshift promote: --image %q names no image\n", *images)
		return exitUsage
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	pair, code := c.promoteRegistries(ctx, cfg, !*dryRun)
	if code != exitOK {
		return code
	}
	ns, routes, err := notifiers(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitUsage
	}
	db, code := c.openStore(cfg)
	if db == nil {
		return code
	}
	defer db.Close()

	p := promote.New(cfg, db, pair, promote.WithRoutes(routes), promote.WithLogger(c.log))
	res, err := p.Promote(ctx, promote.Request{From: *from, To: to, Images: list(*images), Force: *force, DryRun: *dryRun, By: *by})
	var ue *promote.UsageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "nightshift promote: %v\n", err)
		return exitUsage
	case err != nil && res == nil:
		fmt.Fprintf(c.stderr, "nightshift promote: %v\n", err)
		return exitUnavailable
	}
	c.promoteReport(res, cfg, *dryRun)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift promote: %v\n", err) // promoted, not recorded
		return exitFailed
	}
	if res.Promotion != nil {
		c.flush(ctx, pipeline.New(cfg, db, pipeline.WithNotifiers(ns, routes), pipeline.WithLogger(c.log)))
	}
	if res.Failed() {
		return exitFailed
	}
	return exitOK
}

// promoteRegistries returns the staging registry and the one [promote]
// names (the same client when they are one registry); with reach, both
// must answer first.
func (c *cli) promoteRegistries(ctx context.Context, cfg *config.Config, reach bool) (registry.Pair, int) {
	staging, err := stagingRegistry(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return registry.Pair{}, exitUsage
	}
	pair := registry.Pair{Source: staging, Target: staging}
	if cfg.Promote.Registry != cfg.Staging.Registry {
		if pair.Target, err = registry.New(cfg.Promote.Registry, registry.WithRetryBudget(cfg.Staging.RetryBudget.Duration)); err != nil {
			fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
			return registry.Pair{}, exitUsage
		}
	}
	if !reach {
		return pair, exitOK
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	for _, r := range []*registry.Client{pair.Source, pair.Target} {
		if err := r.Ping(ctx); err != nil {
			fmt.Fprintf(c.stderr, "nightshift: %v\nnothing was promoted\n", err)
			return registry.Pair{}, exitUnavailable
		}
	}
	return pair, exitOK
}

// promoteReport prints what was done (or would be) to each image.
func (c *cli) promoteReport(res *promote.Result, cfg *config.Config, dryRun bool) {
	tags := strings.Join(res.Tags, ", ")
	head := fmt.Sprintf("promote run %d (%s) to %s", res.Run.ID, res.Run.Tag, tags)
	if dryRun {
		head += " (dry run: nothing changes)"
	}
	fmt.Fprintln(c.stdout, head)
	how := "blobs mounted from staging, none sent"
	if cfg.Promote.Registry != cfg.Staging.Registry {
		how = "blobs the target lacks sent registry to registry"
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, s := range res.Steps {
		switch {
		case dryRun && s.InPlace:
			fmt.Fprintf(tw, "  %s\twould tag\t%s as %s (a manifest PUT each)%s\n", s.Image, s.Source, tags, unvalidated(s))
		case dryRun:
			also := ""
			if len(res.Tags) > 1 {
				also = ", then tag " + strings.Join(res.Tags[1:], ", ")
			}
			fmt.Fprintf(tw, "  %s\twould copy\t%s to %s (%s)%s%s\n", s.Image, s.Source, s.Targets[0], how, also, unvalidated(s))
		case s.Err != nil:
			fmt.Fprintf(tw, "  %s\tfailed\t%v\n", s.Image, s.Err)
		default:
			fmt.Fprintf(tw, "  %s\tpromoted\t%s = %s%s\n", s.Image, strings.Join(s.Targets, ", "), s.Digest, unvalidated(s))
		}
	}
	for _, r := range res.Refused {
		fmt.Fprintf(tw, "  %s\trefused\t%s\n", r.Name, r.Reason)
	}
	tw.Flush()
	if dryRun {
		return
	}
	if pr := res.Promotion; pr != nil {
		fmt.Fprintf(c.stdout, "promoted %d of %d images; recorded with run %d (nightshift show %d)\n",
			len(pr.Images), len(pr.Images)+len(pr.Refused), res.Run.ID, res.Run.ID)
	} else {
		fmt.Fprintln(c.stdout, "nothing was promoted")
	}
}

func unvalidated(s promote.Step) string {
	if s.Validated {
		return ""
	}
	return " [not validated: --force]"
}

// tagList is a flag that may be given more than once.
type tagList []string

func (l *tagList) String() string     { return strings.Join(*l, ",") }
func (l *tagList) Set(v string) error { *l = append(*l, v); return nil }

var _ flag.Value = (*tagList)(nil)

// whoami names the person promoting, for the record: user@host.
func whoami() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = cmp.Or(u.Username, name)
	}
	host, _ := os.Hostname()
	switch {
	case name == "":
		return cmp.Or(host, "unknown")
	case host == "":
		return name
	}
	return name + "@" + host
}

// showPromotions prints the promotions of r, for show.
func (c *cli) showPromotions(r *store.Run) {
	for _, p := range r.Promotions {
		forced := ""
		if p.Forced {
			forced = " (forced)"
		}
		fmt.Fprintf(c.stdout, "\npromoted %s by %s to %s%s\n", p.When.Local().Format("2006-01-02 15:04:05"), p.By, strings.Join(p.Tags, ", "), forced)
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, im := range p.Images {
			v := ""
			if !im.Validated {
				v = "\tnot validated"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s%s\n", im.Name, strings.Join(p.Refs(im), ", "), im.Digest, v)
		}
		for _, im := range p.Refused {
			fmt.Fprintf(tw, "  %s\tnot promoted: %s\n", im.Name, im.Reason)
		}
		tw.Flush()
	}
}
