package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"nightshift/packages"
	"nightshift/rebuild"
	"nightshift/store"
)

// readContents reads what s's image, pushed as digest and run by the engine
// as image, is made of (its
// layers and its packages), stores it with the run and records how its
// packages changed since the image last succeeded. A failure is the
// stage's, not the image's: the contents are insight.
func (x *execution) readContents(ctx context.Context, st *rebuild.Stages, s *rebuild.Step, image, digest string) {
	eng, _ := x.p.runsOn(x.builderOf(s.Name))
	r := &packages.Reader{Engine: eng, Registry: x.p.registry, Timeout: x.p.cfg.Packages.Timeout.Duration}
	var brief *store.PackageDiff
	_ = st.RunWith(ctx, rebuild.StagePackages, func(ctx context.Context) error {
		c, err := r.Read(ctx, image, s.Pinned(digest), x.p.cfg.PackageCommands(s.Name), st.Log)
		c.Image, c.Ref, c.Digest, c.Read = s.Name, s.Ref.String(), digest, x.p.now().UTC()
		if perr := x.p.db.PutContents(x.id, c); perr != nil {
			return errors.Join(err, fmt.Errorf("store the contents: %w", perr))
		}
		d, derr := packages.DiffContents(x.p.db, x.id, c)
		if derr != nil {
			return errors.Join(err, fmt.Errorf("compare with an earlier run: %w", derr))
		}
		if d.SinceRun != 0 {
			brief = d.Brief()
			fmt.Fprintf(st.Log, "since run %d: %d added, %d removed, %d changed\n", d.SinceRun, len(d.Added), len(d.Removed), len(d.Changed))
		}
		return err
	}, func(done *rebuild.Event) { done.Packages = brief })
}

// consistency fails the validation of the images of a [packages]
// consistent group that have a package of one source at different
// versions. Only images still succeeding count: one that failed is not
// validated anyway, and does not drag the others down.
func (x *execution) consistency() {
	groups := x.p.cfg.Packages.Consistent
	if len(groups) == 0 {
		return
	}
	night := x.id
	if x.prep.Pull {
		night = x.req.Night // the contents were read when the night pushed the images
	}
	run, err := x.p.db.Run(x.id)
	if err != nil || night == 0 {
		return // the record is gone (reported by record), or a tag no run pushed
	}
	all, err := x.p.db.RunContents(night)
	if err != nil {
		x.p.log.Error("reading the images' packages failed; no consistency check", "run", x.id, "err", err)
		return
	}
	why := map[string][]string{} // image -> mismatches it is in
	for _, g := range groups {
		var members []string
		for _, name := range g {
			if im := run.Image(name); im != nil && im.Status == store.Succeeded {
				members = append(members, name)
			}
		}
		for _, m := range packages.Consistency(packages.Within(all, members)) {
			for _, name := range m.Images() {
				why[name] = append(why[name], m.String())
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(why)) {
		im := run.Image(name)
		msg := "packages differ within its [packages] consistent group: " + firstOf(why[name], 5)
		x.record(rebuild.Event{Image: name, Validation: &store.Validation{Status: store.Failed, Error: msg, Tests: im.ValidationTests()}})
		x.record(rebuild.Event{Image: name, Status: store.Failed, Err: errors.New("validation: " + msg), Digest: im.Digest, Tags: im.Tags})
	}
}

// release tags validated the images the run held (holds) that are still
// succeeding once the checks of the whole run are through.
func (x *execution) release(ctx context.Context) {
	run, err := x.p.db.Run(x.id)
	if err != nil {
		return
	}
	for i, s := range x.prep.Plan.Steps {
		im := run.Image(s.Name)
		if im == nil || im.Status != store.Succeeded || x.holds(s.Name) == "" || im.Validation == nil || im.Validation.Status != store.Running {
			continue
		}
		x.validate(ctx, &x.prep.Plan.Steps[i], im, &store.Validation{Tests: im.ValidationTests()})
	}
}

// validate tags s's image, recorded as im, validated, and records v as its
// validation: succeeded, or failed when the tag does not land.
func (x *execution) validate(ctx context.Context, s *rebuild.Step, im *store.ImageResult, v *store.Validation) {
	x.record(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Running})
	added, err := x.tagValidated(ctx, s, im.Digest)
	if err != nil {
		err = fmt.Errorf("%s: %w", rebuild.StageValidated, err)
		x.record(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Failed, Err: err})
		x.record(rebuild.Event{Image: s.Name, Status: store.Failed, Err: err, Digest: im.Digest, Tags: im.Tags})
		return
	}
	v.Status = store.Succeeded
	x.record(rebuild.Event{Image: s.Name, Stage: rebuild.StageValidated, Status: store.Succeeded, Validation: v})
	x.record(rebuild.Event{Image: s.Name, Status: store.Succeeded, Digest: im.Digest, Tags: append(slices.Clone(im.Tags), added...)})
}

func firstOf(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:n], "; "), len(items)-n)
}
