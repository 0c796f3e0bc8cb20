package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"

	"nightshift/config"
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
		if im := run.Image(s.Name); im != nil && im.Status == store.Succeeded {
			refs[s.Name] = s.Ref.String()
		} else {
			broken = append(broken, s.Name)
		}
	}
	recordJob := func(b store.JenkinsBuild) {
		if err := x.p.db.UpdateRun(x.id, func(r *store.Run) error { r.Jenkins = &b; return nil }); err != nil {
			x.p.log.Error("recording the Jenkins job failed", "run", x.id, "err", err)
		}
	}
	jcfg := x.p.cfg.Validate.Jenkins
	if len(broken) > 0 && (len(refs) == 0 || jcfg.When == config.JenkinsAllBuilt) {
		// With when = "all-built" the job tests the stack as a whole only.
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
	// A partial validation: what did not build is left to the job's
	// defaults, or given its last validated ref.
	var partial []store.PartialImage
	for _, name := range broken {
		p := store.PartialImage{Name: name}
		if jcfg.Missing == config.JenkinsLastValidated {
			p.Ref = lastValidated(x.p.db, name, x.id)
			if p.Ref != "" {
				refs[name] = p.Ref
			}
		}
		partial = append(partial, p)
	}

	withPartial := func(b store.JenkinsBuild) store.JenkinsBuild { b.Partial = partial; return b }
	build := withPartial(x.job.Run(ctx, refs, func(b store.JenkinsBuild) { recordJob(withPartial(b)) }))
	recordJob(build)
	for i, s := range plan.Steps {
		im := run.Image(s.Name)
		if slices.Contains(broken, s.Name) {
			continue // failed before the job: never validated
		}
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
		x.validate(ctx, &plan.Steps[i], im, v)
	}
}

// lastValidated is the immutable ref under which image was last
// validated, according to the record of runs before run; "" if never.
func lastValidated(db *store.DB, image string, before uint64) string {
	sums, _, err := db.Summaries(0) // newest first, without decoding records
	if err != nil {
		return ""
	}
	for _, r := range sums {
		if im := r.Image(image); r.ID < before && im != nil && im.Status == store.Succeeded && im.Validated {
			if run, err := db.Run(r.ID); err == nil && run.Image(image) != nil {
				return run.Image(image).Ref
			}
			return ""
		}
	}
	return ""
}
