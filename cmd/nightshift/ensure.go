package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/pipeline"
	"nightshift/store"
)

// images is a flag that may repeat: --image a --image b (or a,b).
type images []string

func (i *images) String() string { return strings.Join(*i, ",") }

func (i *images) Set(v string) error {
	names := list(v)
	if len(names) == 0 {
		return errors.New("names no image")
	}
	*i = append(*i, names...)
	return nil
}

func (c *cli) ensure(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("ensure", "--image NAME [--image NAME ...] | --all [flags]", `Makes sure the image of this commit exists in the staging registry, named by
its content: the tag of an image without parents, inputs or build args whose
Dockerfile lies in its context is the git tree hash of the context at the
pinned commit (git rev-parse <commit>:<context>), after [ensure] tag_prefix;
any other image's is a hash over what it is built from and its parents' tags
(see the README).

If <registry>/<namespace>/<image>:<tag> exists, its ref is printed, in one
request; nothing is built or pulled. If not: with --push it is built (its
parents ensured first and built on by digest), pushed, verified and printed;
without --push, a builder job is waited for (--wait, looking every --poll),
and when the wait runs out it is built here, not pushed, and its local ref
printed. An existing tag is never pushed over without --force-push.

The last line of standard output is the ref (one line per image, in
dependency order), so IMAGE=$(nightshift ensure ... | tail -1) works; with
--json, a JSON object per image instead: {"image","tag","ref","digest",
"outcome"} with outcome exists, built, pushed or waited. Progress goes to
stderr. Uncommitted or untracked changes in what an image is built from, or
an input git does not have, exit 2 naming the files, before anything is
built. An ensure that builds is recorded (kind ensure); one that found its
images is not. Exit codes as for run.
`)
	var names images
	fs.Var(&names, "image", "ensure this `image` (may repeat, or a,b)")
	all := fs.Bool("all", false, "ensure every image of the configuration")
	push := fs.Bool("push", false, "build a missing image and push it (a builder job)")
	wait := fs.Duration("wait", 2*time.Hour, "without --push: how long to wait for a builder job to push a missing image before building it here")
	poll := fs.Duration("poll", 60*time.Second, "without --push: how often to look while waiting (with jitter)")
	alwaysRebuild := fs.Bool("always-rebuild", false, "build the images even when they exist")
	forcePush := fs.Bool("force-push", false, "with --push: push over an existing tag")
	output := fs.String("output", "", "also write the ref(s) to `file`, one per line, for a later pipeline step")
	asJSON := fs.Bool("json", false, "print a JSON object per image instead of its ref")
	trigger := fs.String("trigger", "cli", "what started this ensure, for the record")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	reg, err := stagingRegistry(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitUsage
	}
	eng, err := engine.New()
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\nPoint DOCKER_HOST at a Docker Engine.\n", err)
		return exitUnavailable
	}
	defer eng.Close()
	// The store is opened only to record a build: an ensure that finds its
	// image, or waits for it for hours, leaves it to others.
	p := pipeline.New(cfg, nil, pipeline.WithEngine(eng), pipeline.WithRegistry(reg), pipeline.WithLogger(c.log),
		pipeline.WithStoreOpener(func() (*store.DB, error) { return store.Open(cfg.Store.Path, storeTimeout) }))
	defer p.Close()

	results, err := p.Ensure(ctx, pipeline.EnsureRequest{
		Images: names, All: *all, Push: *push, Wait: *wait, Poll: *poll,
		AlwaysRebuild: *alwaysRebuild, ForcePush: *forcePush, Trigger: *trigger, Progress: c.stderr,
	})
	var refs []string
	for _, r := range results {
		refs = append(refs, r.Pinned())
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintf(c.stdout, "%s\n", b)
		} else {
			fmt.Fprintln(c.stdout, r.Pinned())
		}
	}
	if *output != "" && len(refs) > 0 {
		if werr := os.WriteFile(*output, []byte(strings.Join(refs, "\n")+"\n"), 0o644); werr != nil {
			fmt.Fprintf(c.stderr, "nightshift: %v\n", werr)
			return exitFailed
		}
	}
	if err == nil {
		return exitOK
	}
	var ps config.Problems
	var usage *pipeline.UsageError
	var unavailable *pipeline.Unavailable
	if errors.As(err, &ps) || errors.As(err, &usage) || errors.As(err, &unavailable) {
		return c.exitCode(err)
	}
	fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
	return exitFailed
}
