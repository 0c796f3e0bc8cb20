package web

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"nightshift/packages"
	"nightshift/store"
)

// What images are made of: their package diffs night to night, the
// packages one source has at different versions in a night's images, their
// layers, and their Markdown manifests.

const (
	// diffOpen is how many changes an image's diff shows open; a longer
	// one is collapsed.
	diffOpen = 10
	// mismatchesOpen is how many mismatches the run page shows open.
	mismatchesOpen = 20
)

// diffView is one image's package diff as a page shows it.
type diffView struct {
	Image     string
	Href      string // the image in the run
	SinceRun  uint64 // 0: no earlier run to compare with
	SinceHref string
	Added     int
	Removed   int
	Changed   int
	Rows      []diffRow // changed, then added, then removed
	More      int       // changes not in Rows: the image's page in the run has them
	Open      bool      // short enough to show unfolded
}

// diffRow is one package that came, went or changed version.
type diffRow struct {
	Change string // "added", "removed", "changed": also the CSS class
	Symbol string
	Source string
	Name   string
	From   string
	To     string
}

// Empty reports whether nothing changed.
func (d diffView) Empty() bool { return d.Added+d.Removed+d.Changed == 0 }

// Total is how many packages changed.
func (d diffView) Total() int { return d.Added + d.Removed + d.Changed }

// diffView shows d, the whole diff of an image in run.
func (s *server) diffView(run uint64, d *packages.ImageDiff) diffView {
	v := s.newDiffView(run, d.Image, d.SinceRun, len(d.Added), len(d.Removed), len(d.Changed))
	v.Rows = make([]diffRow, 0, v.Total())
	for _, c := range d.Changed {
		v.Rows = append(v.Rows, newDiffRow(c.Source, c.Name, c.From, c.To))
	}
	for _, e := range d.Added {
		v.Rows = append(v.Rows, newDiffRow(e.Source, e.Name, "", e.Version))
	}
	for _, e := range d.Removed {
		v.Rows = append(v.Rows, newDiffRow(e.Source, e.Name, e.Version, ""))
	}
	return v
}

// briefView shows b, the brief of an image's diff its run's record keeps
// (nil: nothing to compare with): its counts and first changes.
func (s *server) briefView(run uint64, image string, b *store.PackageDiff) diffView {
	if b == nil {
		return s.newDiffView(run, image, 0, 0, 0, 0)
	}
	v := s.newDiffView(run, image, b.SinceRun, b.Added, b.Removed, b.Changed)
	for _, c := range b.First {
		v.Rows = append(v.Rows, newDiffRow(c.Source, c.Name, c.From, c.To))
	}
	v.More = max(v.Total()-len(v.Rows), 0)
	return v
}

func (s *server) newDiffView(run uint64, image string, since uint64, added, removed, changed int) diffView {
	v := diffView{Image: image, Href: s.imageRunHref(run, image), SinceRun: since, Added: added, Removed: removed, Changed: changed}
	if since != 0 {
		v.SinceHref = s.runHref(since)
	}
	v.Open = v.Total() <= diffOpen
	return v
}

// newDiffRow is a package that came (from ""), went (to "") or changed.
func newDiffRow(source, name, from, to string) diffRow {
	r := diffRow{Source: source, Name: name, From: from, To: to}
	switch {
	case from == "":
		r.Change, r.Symbol = "added", "+"
	case to == "":
		r.Change, r.Symbol = "removed", "−"
	default:
		r.Change, r.Symbol = "changed", "→"
	}
	return r
}

// diffOf is how c, the contents of an image read in a run whose record of
// the image is im, changed since the run they were compared with when they
// were read (im.Packages). The record names that run, so a page reads two
// values, where packages.DiffContents looks for it again through every
// run's summary, for each image.
func (s *server) diffOf(c *store.Contents, im *store.ImageResult) (packages.ImageDiff, error) {
	none := packages.ImageDiff{Image: c.Image, Added: []packages.Entry{}, Removed: []packages.Entry{}, Changed: []packages.Change{}}
	if im == nil || im.Packages == nil || im.Packages.SinceRun == 0 {
		return none, nil
	}
	since := im.Packages.SinceRun
	base, err := s.db.Contents(since, c.Image)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return none, nil
	case err != nil:
		return none, err
	}
	return packages.Diff(c.Image, since, base.Lists, c.Lists), nil
}

// nightOf is the run whose images' contents answer for run: run itself, or
// for a validation run, the nightly run it validated. Contents are read
// when an image is pushed.
func (s *server) nightOf(run *store.Run) (*store.Run, error) {
	if run.Kind != store.KindValidate || run.Night == 0 || run.Night == run.ID {
		return run, nil
	}
	return s.run(run.Night)
}

// mismatchView is a package of one source at different versions in the
// images of a night.
type mismatchView struct {
	Name     string
	Source   string
	Versions []versionView // by version
	// Groups are the [packages] consistent groups it breaks, each as its
	// images joined: those images fail validation for it.
	Groups []string
}

type versionView struct {
	Version string
	Images  []link
}

// mismatchViews shows ms, each image linked to its page in the run in(image).
func (s *server) mismatchViews(in func(image string) uint64, ms []packages.Mismatch) []mismatchView {
	out := make([]mismatchView, 0, len(ms))
	for _, m := range ms {
		v := mismatchView{Name: m.Name, Source: m.Source}
		for _, ver := range slices.Sorted(maps.Keys(m.Versions)) {
			vv := versionView{Version: ver}
			for _, im := range m.Versions[ver] {
				vv.Images = append(vv.Images, link{s.imageRunHref(in(im), im), im})
			}
			v.Versions = append(v.Versions, vv)
		}
		for _, g := range s.consistent {
			if breaks(&m, g) {
				v.Groups = append(v.Groups, strings.Join(g, ", "))
			}
		}
		out = append(out, v)
	}
	return out
}

// breaks reports whether images of group have m's package at more than one
// version.
func breaks(m *packages.Mismatch, group []string) bool {
	n := 0
	for _, ims := range m.Versions {
		if slices.ContainsFunc(ims, func(im string) bool { return slices.Contains(group, im) }) {
			n++
		}
	}
	return n > 1
}

// runPackages is what a run's page shows of its images' packages.
type runPackages struct {
	// Night is the run that read them, when another than the page's (a
	// validation run shows its night's).
	Night      *link
	Diffs      []diffView // of each image with contents, by name
	Mismatches []mismatchView
	Grouped    int  // mismatches inside a [packages] consistent group
	Groups     bool // [packages] consistent groups are configured
	Open       bool // few enough mismatches to show unfolded
}

// runPackages reads the contents of run's images (of its night, for a
// validation run), for their consistency: one cursor over the run's. Each
// image's diff is the brief its record keeps; the image's page in the run
// reads its earlier contents for the whole diff.
func (s *server) runPackages(run *store.Run) (*runPackages, error) {
	night, err := s.nightOf(run)
	if err != nil {
		return nil, err
	}
	all, err := s.db.RunContents(night.ID)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	p := &runPackages{Groups: len(s.consistent) > 0}
	if night.ID != run.ID {
		p.Night = &link{s.runHref(night.ID), fmt.Sprintf("run %d", night.ID)}
	}
	// Images link to their page in run, or in its night when run (a
	// validation of some of them) does not have them.
	in := func(image string) uint64 {
		if run.Image(image) != nil {
			return run.ID
		}
		return night.ID
	}
	for i := range all {
		var brief *store.PackageDiff
		if im := night.Image(all[i].Image); im != nil {
			brief = im.Packages
		}
		p.Diffs = append(p.Diffs, s.briefView(in(all[i].Image), all[i].Image, brief))
	}
	p.Mismatches = s.mismatchViews(in, packages.Consistency(all))
	for _, m := range p.Mismatches {
		if len(m.Groups) > 0 {
			p.Grouped++
		}
	}
	p.Open = len(p.Mismatches) <= mismatchesOpen
	return p, nil
}

// contentsView is what an image's pages show of its contents in one run:
// its package diff, its package lists and its layers.
type contentsView struct {
	Run          uint64 // the run that read them
	RunHref      string
	Href         string // the image in the page's run
	ManifestHref string
	Read         time.Time
	Diff         diffView
	Lists        []listView
	Layers       []layerView
	LayerCount   int
	Size         string // of every layer, compressed
	Error        string // why the layers were not read
}

// listView is one info command's package list.
type listView struct {
	Source  string
	Command string
	Count   int
	Absent  bool   // the command is not in the image
	Error   string // why the list is missing or incomplete
}

type layerView struct {
	N           int    // its number; 0 for a step that made no layer
	Size        string // "" for a step that made no layer
	Instruction string
}

// contentsView shows c, the contents of an image read in night and
// recorded there as im; page is the run of the page, whose image pages are
// linked.
func (s *server) contentsView(page uint64, night *store.Run, c *store.Contents) (*contentsView, error) {
	d, err := s.diffOf(c, night.Image(c.Image))
	if err != nil {
		return nil, err
	}
	v := &contentsView{
		Run: night.ID, RunHref: s.runHref(night.ID), Href: s.imageRunHref(page, c.Image), ManifestHref: s.manifestHref(page, c.Image),
		Read: c.Read, Diff: s.diffView(page, &d), Error: c.Error,
	}
	for _, l := range c.Lists {
		v.Lists = append(v.Lists, listView{Source: l.Source, Command: l.Command, Count: len(l.Packages), Absent: l.Absent, Error: l.Error})
	}
	var total int64
	for _, l := range c.Layers {
		lv := layerView{Instruction: packages.Instruction(l.CreatedBy)}
		if l.Digest != "" {
			v.LayerCount++
			lv.N, lv.Size = v.LayerCount, units.HumanSize(float64(l.Size))
			total += l.Size
		}
		v.Layers = append(v.Layers, lv)
	}
	v.Size = units.HumanSize(float64(total))
	return v, nil
}

// imageContents reads the contents of image name in run (in its night, for
// a validation run); nil when none were read.
func (s *server) imageContents(run *store.Run, name string) (*store.Run, *store.Contents, error) {
	night, err := s.nightOf(run)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.db.Contents(night.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return night, nil, nil
	}
	return night, c, err
}

// newestContents shows the contents of image name in the newest night of
// history (newest first) that pushed it and read them; nil if none did.
func (s *server) newestContents(history []imageEntry, name string) (*contentsView, error) {
	for _, e := range history {
		if e.Digest == "" {
			continue // not pushed: nothing was read
		}
		c, err := s.db.Contents(e.RunID, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		night, err := s.run(e.RunID)
		if err != nil {
			return nil, err
		}
		return s.contentsView(e.RunID, night, c)
	}
	return nil, nil
}

func (s *server) manifestHref(run uint64, name string) string {
	return s.imageRunHref(run, name) + "/manifest.md"
}

// manifest answers the Markdown manifest of an image in a run
// (nightshift manifest).
func (s *server) manifest(w http.ResponseWriter, r *http.Request) {
	id, okID := runID(r)
	name, okName := imageName(r)
	if !okID || !okName {
		s.notFound(w, r)
		return
	}
	key := fmt.Sprintf("manifest %d %s", id, name)
	if s.unchanged(w, r, key) {
		return
	}
	version, err := s.db.Version() // before the reads: an ETag never newer than the answer
	if err != nil {
		s.internal(w, r, err)
		return
	}
	run, im, ok := s.pageImage(w, r)
	if !ok {
		return
	}
	night, c, err := s.imageContents(run, im.Name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if c == nil {
		s.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("No packages or layers of %s were read in run %d: they are read once an image is pushed, by a nightshift that lists packages.", name, night.ID))
		return
	}
	var b bytes.Buffer
	if err := packages.WriteManifest(&b, night.ID, c); err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.Header().Set("ETag", s.etag(version, key))
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b.Bytes())
}

// apiDiff is GET /api/v1/runs/{id}/diff: nightshift diff --json.
func (s *server) apiDiff(w http.ResponseWriter, r *http.Request) {
	s.apiPackages(w, r, "diff", func(id uint64) (any, error) { return packages.DiffRun(s.db, id) })
}

// apiConsistency is GET /api/v1/runs/{id}/consistency:
// nightshift consistency --json.
func (s *server) apiConsistency(w http.ResponseWriter, r *http.Request) {
	s.apiPackages(w, r, "consistency", func(id uint64) (any, error) { return packages.RunConsistency(s.db, id) })
}

// apiPackages answers what of run {id} read reads, with an ETag.
func (s *server) apiPackages(w http.ResponseWriter, r *http.Request, what string, read func(uint64) (any, error)) {
	id, ok := runID(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	key := fmt.Sprintf("%s %d", what, id)
	if s.unchanged(w, r, key) {
		return
	}
	version, err := s.db.Version() // before the reads: an ETag never newer than the answer
	if err != nil {
		s.internal(w, r, err)
		return
	}
	v, err := read(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no run %d", id))
		return
	case err != nil:
		s.internal(w, r, err)
		return
	}
	w.Header().Set("ETag", s.etag(version, key))
	writeJSON(w, http.StatusOK, v)
}
