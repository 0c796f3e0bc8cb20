package main

import (
	"context"
	"fmt"

	"nightshift/pipeline"
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
	return c.carryOut(ctx, *cfgPath, out, (*pipeline.Pipeline).Validate, pipeline.Request{
		Selection: pipeline.Selection{Only: list(*only)}, Tag: *tag, Night: *runID,
	})
}
