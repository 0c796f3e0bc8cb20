package main

import (
	"context"
	"fmt"

	"nightshift/pipeline"
	"nightshift/store"
)

func (c *cli) validate(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("validate", "--tag TAG | --run RUN [flags]", `Validates images already in the staging registry without rebuilding them:
pulls each image pushed under TAG (or by run RUN) by its digest, runs its
tests inside it and the Jenkins job with every ref ([validate] in the
configuration), tags what passes <tag>-validated (and latest, with
staging.latest = "validated"), and records the outcome as a validation run.
The test files come from the source at the run's commit when it is known.
This is the second half of a two-job setup whose first half is
'nightshift run --no-validate'. Exit codes as for 'nightshift run'.
`)
	tag := fs.String("tag", "", "validate the images pushed under this immutable `tag`")
	runID := fs.Uint64("run", 0, "validate the images of this recorded `run`")
	only := fs.String("only", "", "validate only these `images` (comma-separated)")
	out := outputFlags(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	switch {
	case (*tag == "") == (*runID == 0):
		fmt.Fprintln(c.stderr, "nightshift validate: give either --tag TAG or --run RUN")
		return exitUsage
	case !out.check(c, "validate") || !checkOnly(c, "validate", *only, false):
		return exitUsage
	}
	return c.carryOut(ctx, *cfgPath, out, func(db *store.DB) (request, bool) {
		req := request{sel: pipeline.Selection{Only: list(*only)}, tag: *tag}
		if *runID != 0 {
			r, err := db.Run(*runID)
			if err != nil {
				fmt.Fprintf(c.stderr, "nightshift validate: run %d: %v (see nightshift history)\n", *runID, err)
				return req, false
			}
			req.tag, req.commit = r.Tag, r.Commit
			return req, true
		}
		// The newest rebuild that pushed the tag says which commit the
		// tests come from.
		runs, err := db.Runs(0)
		if err != nil {
			fmt.Fprintf(c.stderr, "nightshift validate: %v\n", err)
			return req, false
		}
		for _, r := range runs {
			if r.Tag == *tag && r.Kind == "" {
				req.commit = r.Commit
				break
			}
		}
		return req, true
	})
}
