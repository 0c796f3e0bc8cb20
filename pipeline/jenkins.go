package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"nightshift/rebuild"
	"nightshift/store"
)

// jenkins runs the project's Jenkins job on the images of the run once all
// are pushed and have passed their own tests, records it, and tags the
// images it passes validated (and latest, when latest waits for that).
func (x *execution) jenkins(ctx context.Context) {
	plan := x.prep.Plan
	run, err := x.p.db.Run(x.id)
	if err != nil {
		return // the record is gone: recording errors are reported by record
	}
	refs := map[string]string{}
	var broken []string
	for _, s := range plan.Steps {
		im := run.Image(s.Name)
		if im == nil || im.Status != store.Succeeded {
			broken = append(broken, s.Name)
			continue
		}
		refs[s.Name] = s.Ref.String()
	}
	recordJob := func(b store.JenkinsBuild) {
		if err := x.p.db.UpdateRun(x.id, func(r *store.Run) error { r.Jenkins = &b; return nil }); err != nil {
			x.p.log.Error("recording the Jenkins job failed", "run", x.id, "err", err)
		}
	}
	if len(broken) > 0 {
		// The job tests the stack as a whole: without every image it would
		// test a mix of tonight's images and older ones.
		why := "not triggered: " + strings.Join(broken, ", ") + " did not pass build, push and tests"
		now := x.p.now()
		recordJob(store.JenkinsBuild{Status: store.Skipped, Error: why, Started: now, Finished: &now})
		for _, s := range plan.Steps {
			if _, ok := refs[s.Name]; ok {
				x.record(rebuild.Event{Image: s.Name, Validation: &store.Validation{Status: store.Skipped,
					Error: "the Jenkins job " + why, Tests: run.Image(s.Name).ValidationTests()}})
			}
		}
		return
	}

	build := x.job.Run(ctx, refs, recordJob)
	recordJob(build)
	for i, s := range plan.Steps {
		im := run.Image(s.Name)
		v := &store.Validation{Tests: im.ValidationTests()}
		switch {
		case ctx.Err() != nil:
			v.Status, v.Error = store.Interrupted, "the Jenkins job was cancelled with the run"
			x.record(rebuild.Event{Image: s.Name, Validation: v})
			continue
		case build.Status != store.Succeeded:
			v.Status, v.Error = store.Failed, "Jenkins job: "+build.Summary()
			x.record(rebuild.Event{Image: s.Name, Validation: v})
			x.record(rebuild.Event{Image: s.Name, Status: store.Failed, Err: errors.New("validation: Jenkins job: " + build.Summary()),
				Digest: im.Digest, Tags: im.Tags, Tail: build.Console})
			continue
		}
		x.record(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Running})
		added, err := x.tagValidated(ctx, &plan.Steps[i], im.Digest)
		if err != nil {
			err = fmt.Errorf("%s: %w", rebuild.StageValidated, err)
			x.record(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Failed, Err: err})
			x.record(rebuild.Event{Image: s.Name, Status: store.Failed, Err: err, Digest: im.Digest, Tags: im.Tags})
			continue
		}
		v.Status = store.Succeeded
		x.record(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Succeeded, Validation: v})
		x.record(rebuild.Event{Image: s.Name, Status: store.Succeeded, Digest: im.Digest, Tags: append(slices.Clone(im.Tags), added...)})
	}
}
