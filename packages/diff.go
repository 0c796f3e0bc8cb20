package packages

import (
	"cmp"
	"errors"
	"slices"

	"nightshift/store"
)

// ImageDiff is how one image's packages changed since an earlier run.
type ImageDiff struct {
	Image string `json:"image"`
	// SinceRun is the run compared with: the last one before in which the
	// image succeeded and had its packages read; 0 when there is none, and
	// then nothing is listed.
	SinceRun uint64   `json:"since_run"`
	Added    []Entry  `json:"added"`
	Removed  []Entry  `json:"removed"`
	Changed  []Change `json:"changed"`
}

// Entry is a package that came or went.
type Entry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
}

// Change is a package whose version changed.
type Change struct {
	Name   string `json:"name"`
	From   string `json:"from"`
	To     string `json:"to"`
	Source string `json:"source"`
}

// Empty reports whether nothing changed.
func (d *ImageDiff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// Diff compares package lists, source by source. A source listed in one
// side only, or whose list failed on either side, is not compared: an info
// command added to the configuration, or one that failed, is no change of
// the image.
func Diff(image string, since uint64, old, now []store.PackageList) ImageDiff {
	d := ImageDiff{Image: image, SinceRun: since, Added: []Entry{}, Removed: []Entry{}, Changed: []Change{}}
	for _, n := range now {
		i := slices.IndexFunc(old, func(o store.PackageList) bool { return o.Source == n.Source })
		if i < 0 || !comparable(old[i]) || !comparable(n) {
			continue
		}
		was := versions(old[i].Packages)
		is := versions(n.Packages)
		for _, p := range n.Packages {
			switch from, ok := was[p.Name]; {
			case !ok:
				d.Added = append(d.Added, Entry{Name: p.Name, Version: p.Version, Source: n.Source})
			case from != p.Version:
				d.Changed = append(d.Changed, Change{Name: p.Name, From: from, To: p.Version, Source: n.Source})
			}
		}
		for _, p := range old[i].Packages {
			if _, ok := is[p.Name]; !ok {
				d.Removed = append(d.Removed, Entry{Name: p.Name, Version: p.Version, Source: n.Source})
			}
		}
	}
	return d
}

// comparable: a list that is whole (read, without error). An absent
// command is a whole, empty list: the package manager coming or going
// shows as every package added or removed.
func comparable(l store.PackageList) bool { return l.Error == "" }

// versions maps each package to its version; a package listed at several
// versions (two Python environments) keeps them joined.
func versions(pkgs []store.Package) map[string]string {
	m := make(map[string]string, len(pkgs))
	for _, p := range pkgs {
		if v, ok := m[p.Name]; ok {
			m[p.Name] = v + ", " + p.Version
		} else {
			m[p.Name] = p.Version
		}
	}
	return m
}

// summaryChanges is how many changes a PackageDiff keeps to show.
const summaryChanges = 10

// Brief is d for a run's record: counts, and the first changes.
func (d *ImageDiff) Brief() *store.PackageDiff {
	b := &store.PackageDiff{SinceRun: d.SinceRun, Added: len(d.Added), Removed: len(d.Removed), Changed: len(d.Changed)}
	for _, c := range d.Changed {
		b.First = append(b.First, store.PackageChange{Source: c.Source, Name: c.Name, From: c.From, To: c.To})
	}
	for _, a := range d.Added {
		b.First = append(b.First, store.PackageChange{Source: a.Source, Name: a.Name, To: a.Version})
	}
	for _, r := range d.Removed {
		b.First = append(b.First, store.PackageChange{Source: r.Source, Name: r.Name, From: r.Version})
	}
	b.First = b.First[:min(len(b.First), summaryChanges)]
	return b
}

// Baseline finds what image is compared with in run: the contents of the
// last run before it (of the same kind, a rebuild) in which the image
// succeeded and had its packages read. It returns nil when there is none.
func Baseline(db *store.DB, image string, run uint64) (*store.Contents, uint64, error) {
	sums, _, err := db.Summaries(0) // newest first
	if err != nil {
		return nil, 0, err
	}
	return baseline(db, sums, image, run)
}

func baseline(db *store.DB, sums []store.Summary, image string, run uint64) (*store.Contents, uint64, error) {
	for _, s := range sums {
		if s.ID >= run || s.Kind != store.KindNightly {
			continue
		}
		im := s.Image(image)
		if im == nil || im.Status != store.Succeeded {
			continue
		}
		c, err := db.Contents(s.ID, image)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // read by a nightshift without package lists
		case err != nil:
			return nil, 0, err
		}
		return c, s.ID, nil
	}
	return nil, 0, nil
}

// DiffRun is the diff of every image of run whose packages were read,
// each since its Baseline, in image order. A validation run is answered
// for the night it validated.
func DiffRun(db *store.DB, run uint64) ([]ImageDiff, error) {
	run, err := Night(db, run)
	if err != nil {
		return nil, err
	}
	all, err := db.RunContents(run)
	if err != nil {
		return nil, err
	}
	sums, _, err := db.Summaries(0)
	if err != nil {
		return nil, err
	}
	diffs := []ImageDiff{}
	for _, c := range all {
		base, since, err := baseline(db, sums, c.Image, run)
		if err != nil {
			return nil, err
		}
		diffs = append(diffs, diffSince(&c, base, since))
	}
	slices.SortFunc(diffs, func(a, b ImageDiff) int { return cmp.Compare(a.Image, b.Image) })
	return diffs, nil
}

// DiffContents is the diff of c, read in run, since its Baseline.
func DiffContents(db *store.DB, run uint64, c *store.Contents) (ImageDiff, error) {
	base, since, err := Baseline(db, c.Image, run)
	if err != nil {
		return ImageDiff{}, err
	}
	return diffSince(c, base, since), nil
}

func diffSince(c, base *store.Contents, since uint64) ImageDiff {
	if base == nil {
		return ImageDiff{Image: c.Image, Added: []Entry{}, Removed: []Entry{}, Changed: []Change{}}
	}
	return Diff(c.Image, since, base.Lists, c.Lists)
}

// Night is the run whose images' contents answer for run: itself, or for
// a validation run, the night it validated.
func Night(db *store.DB, run uint64) (uint64, error) {
	r, err := db.Run(run)
	if err != nil {
		return 0, err
	}
	if r.Kind == store.KindValidate && r.Night != 0 {
		return r.Night, nil
	}
	return run, nil
}
