package web

import (
	"cmp"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"nightshift/store"
)

// The home page: the matrix of images by nights.

type homeData struct {
	frame
	Cols    []homeCol
	Rows    []homeRow
	Latest  *store.Summary // the newest night's run
	Badge   badge          // of the newest night
	Next    time.Time
	Running bool
	Shown   int
	Total   int
	Choices []link
	Legend  []badge

	size int // of the cells, for the page's buffer
}

func (d homeData) pageSize() int { return d.size + 16<<10 }

// homeCol is one night: its run, and the runs that validated its images.
type homeCol struct {
	ID    uint64
	Href  string
	Date  string
	Title string
	Badge badge
}

type homeRow struct {
	Name  string
	Href  string
	Cells template.HTML // see matrixCell
}

func (s *server) home(w http.ResponseWriter, r *http.Request) {
	n, err := queryInt(r, "runs", defaultHomeRuns)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var next time.Time
	if s.control != nil {
		next = s.control.Next()
	}
	// The page depends on the store, n and the next fire time alone.
	key := fmt.Sprintf("home %d %d", n, next.UnixNano())
	if s.unchanged(w, r, key) {
		return
	}
	h, err := s.db.History(n)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d := s.homeData(h, next)
	b, err := s.pages.execute("home", d)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("ETag", s.etag(h.Version, key))
	writePage(w, http.StatusOK, b)
}

func (s *server) homeData(h store.History, next time.Time) homeData {
	nights := h.Nights
	d := homeData{frame: s.frame("Nightly builds"), Shown: len(nights), Total: h.Total, Next: next}
	d.Crumbs = d.Crumbs[:0] // the dashboard is home: no trail
	for _, c := range []int{7, 30, 90, 365} {
		d.Choices = append(d.Choices, link{fmt.Sprintf("%s/?runs=%d", s.base, c), strconv.Itoa(c)})
	}
	for _, st := range []string{"validated", "built", "failed", "skipped", "interrupted", "running", "queued"} {
		d.Legend = append(d.Legend, newBadge(st))
	}
	if len(nights) > 0 {
		d.Latest, d.Badge = &nights[0].Run, newBadge(string(nights[0].Status()))
	}

	var names []string
	seen := map[string]bool{}
	for i := range nights {
		night := &nights[i]
		status := night.Status()
		d.Running = d.Running || status == store.Running || status == store.Queued
		title := fmt.Sprintf("run %d, %s: %s", night.ID(), fmtTime(night.Run.Started), status)
		for _, v := range night.Validations {
			title += fmt.Sprintf("; validation run %d: %s", v.ID, v.Status)
		}
		d.Cols = append(d.Cols, homeCol{
			ID: night.ID(), Href: s.runHref(night.ID()), Date: night.Run.Started.UTC().Format("01-02"),
			Title: title, Badge: newBadge(string(status)),
		})
		for _, name := range night.Names() {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	// Every row's cells are written into one string, each row's a part of
	// it: a year's matrix is megabytes, better not grown and copied a row
	// at a time.
	var cells strings.Builder
	cells.Grow(len(names) * len(nights) * 320)
	ends := make([]int, 0, len(names))
	for _, name := range names {
		for i := range nights {
			night := &nights[i]
			im, ok := night.Image(name)
			if !ok {
				matrixCell(&cells, "", fmt.Sprintf("%s was not in run %d", name, night.ID()), badge{Status: "none", Symbol: "·"})
				continue
			}
			_, run := im.Decisive(night)
			matrixCell(&cells, s.imageRunHref(run.ID, name),
				fmt.Sprintf("%s, run %d (%s): %s", name, night.ID(), night.Run.Started.UTC().Format("2006-01-02"), describe(&im)),
				nightBadge(&im))
		}
		ends = append(ends, cells.Len())
	}
	all, start := cells.String(), 0
	for i, name := range names {
		d.Rows = append(d.Rows, homeRow{Name: name, Href: s.imageHref(name), Cells: template.HTML(all[start:ends[i]])})
		start = ends[i]
	}
	d.size = len(all)
	if d.Running {
		d.Refresh = homeRefreshEvery
	}
	return d
}

// nightBadge is an image's outcome in a night: validated, only built,
// failed (to build, or in its validation), ...
func nightBadge(im *store.NightImage) badge { return statusBadge(im.Status(), im.Validated()) }

// describe says how an image's night went, its build and its validation:
// "built", "validated", "built; validation run 4: failed".
func describe(im *store.NightImage) string {
	if im.Check == nil || im.Build == nil {
		return nightBadge(im).Status
	}
	build := statusBadge(im.Build.Status, im.Build.Validated).Status
	check := statusBadge(im.Check.Status, im.Validated()).Status
	return fmt.Sprintf("%s; validation run %d: %s", build, im.CheckRun.ID, check)
}

// A run, and an image in a run.

type imageView struct {
	Name       string
	Href       string // this image in this run
	ImageHref  string // the image across runs
	LogHref    string // the log viewer
	RawLogHref string
	Badge      badge
	Duration   time.Duration
	Started    *time.Time
	Stages     []stageView
	Ref        string
	Digest     string
	Short      string // digest, abbreviated
	Tags       []string
	Parent     string
	Builder    string // the build host that built it
	Error      string
	Tail       string
	// Pruned says that the run was pruned: its log is gone, so there is
	// nothing to link to.
	Pruned bool
}

type stageView struct {
	Name     string
	Badge    badge
	Duration time.Duration
	Error    string
}

func (s *server) imageView(run *store.Run, im *store.ImageResult) imageView {
	now := s.now()
	v := imageView{
		Name: im.Name, Href: s.imageRunHref(run.ID, im.Name), ImageHref: s.imageHref(im.Name),
		LogHref:    s.imageRunHref(run.ID, im.Name) + "/logs",
		RawLogHref: fmt.Sprintf("%s/api/v1/runs/%d/images/%s/log", s.base, run.ID, url.PathEscape(im.Name)),
		Badge:      imageBadge(im), Duration: im.Duration(now), Started: im.Started,
		Ref: im.Ref, Digest: im.Digest, Short: store.ShortDigest(im.Digest), Tags: im.Tags,
		Parent: im.Parent, Builder: im.Builder, Error: im.Error, Tail: strings.Join(im.Tail, "\n"), Pruned: run.Pruned != nil,
	}
	for _, st := range im.Stages {
		v.Stages = append(v.Stages, stageView{Name: st.Name, Badge: newBadge(string(st.Status)), Duration: st.Duration(now), Error: st.Error})
	}
	return v
}

type runData struct {
	frame
	Run      *store.Run
	Badge    badge
	Commit   string
	Duration time.Duration
	Images   []imageView
	Failures []imageView
	Notes    []noteView
	Counts   string
	Jenkins  *jenkinsView // the project's test job of the run, if it had one
	Night    []nightPart  // the runs of the run's night, when it took more than this one
	Console  string       // the console of the Jenkins build that carried the run out
	// Pruned is when retention pruned the run (zero if not): its logs
	// are gone.
	Pruned     time.Time
	Promotions []promotionView
	Packages   *runPackages // nil when no image's packages were read
}

// promotionView is one promotion of the run's images, as its page shows it.
type promotionView struct {
	When    time.Time
	By      string
	Tags    []string
	Forced  bool
	Images  []promotedView
	Refused []store.RefusedImage
}

type promotedView struct {
	Name, Href    string
	Refs          []string
	Digest, Short string
	Validated     bool
}

func (s *server) promotionViews(run *store.Run) []promotionView {
	var out []promotionView
	for i := range run.Promotions {
		p := &run.Promotions[i]
		v := promotionView{When: p.When, By: p.By, Tags: p.Tags, Forced: p.Forced, Refused: p.Refused}
		for _, im := range p.Images {
			v.Images = append(v.Images, promotedView{Name: im.Name, Href: s.imageRunHref(run.ID, im.Name), Refs: p.Refs(im),
				Digest: im.Digest, Short: store.ShortDigest(im.Digest), Validated: im.Validated})
		}
		out = append(out, v)
	}
	return out
}

// nightPart is one run of a night, as a run's page lists them.
type nightPart struct {
	link
	What  string // "rebuilt", "validated"
	Badge badge
	This  bool // the page's own run
}

// nightParts lists the runs of night, when there are more than one.
func (s *server) nightParts(night store.Night, id uint64) []nightPart {
	if len(night.Validations) == 0 {
		return nil
	}
	part := func(r *store.Summary, what string) nightPart {
		return nightPart{link: link{s.runHref(r.ID), fmt.Sprintf("run %d", r.ID)}, What: what, Badge: newBadge(string(r.Status)), This: r.ID == id}
	}
	parts := []nightPart{part(&night.Run, "built")}
	for i := range night.Validations {
		parts = append(parts, part(&night.Validations[i], "validated"))
	}
	return parts
}

// jenkinsView is a build of the project's Jenkins job. Href is its build
// URL when that is an http(s) URL: a record is no reason to link elsewhere.
type jenkinsView struct {
	Href, Text string
	Badge      badge
	Result     string
	Error      string
	Console    string // the last lines of a failed build's console
}

func newJenkinsView(b *store.JenkinsBuild) *jenkinsView {
	if b == nil {
		return nil
	}
	v := &jenkinsView{Text: cmp.Or(b.Job, "Jenkins job"), Badge: newBadge(string(b.Status)), Result: b.Result, Error: b.Error}
	if b.Number > 0 {
		v.Text += fmt.Sprintf(" #%d", b.Number)
	}
	if u, err := url.Parse(b.URL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		v.Href = u.String()
	}
	if b.Status == store.Failed {
		v.Console = strings.Join(b.Console, "\n")
	}
	return v
}

type noteView struct {
	notification
	Badge badge
}

func (s *server) runPage(w http.ResponseWriter, r *http.Request) {
	id, ok := runID(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	// The store's version is read before the record, so that an ETag is
	// never newer than its page.
	version, err := s.db.Version()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	run, notes, err := s.runWithNotes(id)
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	// A finished run's page depends on the store alone (a running one's
	// durations count): it has an ETag, and a client holding it is
	// answered before the images' contents are read.
	tag := ""
	if run.Status.Done() && run.Finished != nil {
		tag = s.etag(version, fmt.Sprintf("run page %d", id))
		if notModified(w, r, tag) {
			return
		}
	}
	title := fmt.Sprintf("Run %d", run.ID)
	d := runData{
		frame: s.frame(title, link{"", title}), Run: run, Badge: newBadge(string(run.Status)),
		Commit: store.ShortCommit(run.Commit), Duration: run.Duration(s.now()), Console: run.ConsoleURL(),
	}
	count := map[string]int{}
	for i := range run.Images {
		v := s.imageView(run, &run.Images[i])
		count[v.Badge.Status]++
		d.Images = append(d.Images, v)
		if v.Error != "" && run.Images[i].Status == store.Failed {
			d.Failures = append(d.Failures, v)
		}
	}
	var parts []string
	for _, st := range []string{"validated", "built", "failed", "skipped", "interrupted", "running"} {
		if count[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[st], st))
		}
	}
	d.Counts = strings.Join(parts, ", ")
	d.Jenkins = newJenkinsView(run.Jenkins)
	night, err := s.db.Night(id)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d.Night = s.nightParts(night, id)
	d.Promotions = s.promotionViews(run)
	if d.Packages, err = s.runPackages(run); err != nil {
		s.internal(w, r, err)
		return
	}
	if run.Pruned != nil {
		d.Pruned = *run.Pruned
	}
	for _, n := range notes {
		d.Notes = append(d.Notes, noteView{notification: n, Badge: newBadge(string(n.Status))})
	}
	if run.Status == store.Running || run.Status == store.Queued {
		d.Refresh = homeRefreshEvery
	}
	if tag != "" {
		w.Header().Set("ETag", tag)
	}
	s.render(w, r, http.StatusOK, "run", d)
}

type imageRunData struct {
	frame
	Run      *store.Run
	RunBadge badge
	Commit   string
	Image    imageView
	Jenkins  *jenkinsView  // the run's, which tested this image with the others
	Contents *contentsView // nil when none were read
}

func (s *server) imageRunPage(w http.ResponseWriter, r *http.Request) {
	run, im, ok := s.pageImage(w, r)
	if !ok {
		return
	}
	runTitle := fmt.Sprintf("Run %d", run.ID)
	d := imageRunData{
		frame: s.frame(fmt.Sprintf("%s in run %d", im.Name, run.ID), link{s.runHref(run.ID), runTitle}, link{"", im.Name}),
		Run:   run, RunBadge: newBadge(string(run.Status)), Commit: store.ShortCommit(run.Commit),
		Image: s.imageView(run, im), Jenkins: newJenkinsView(run.Jenkins),
	}
	night, c, err := s.imageContents(run, im.Name)
	if err == nil && c != nil {
		d.Contents, err = s.contentsView(run.ID, night, c)
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if im.Status == store.Running {
		d.Refresh = homeRefreshEvery
	}
	s.render(w, r, http.StatusOK, "image_run", d)
}

// pageImage finds the {id} and {name} of a dashboard path, or answers 404.
func (s *server) pageImage(w http.ResponseWriter, r *http.Request) (*store.Run, *store.ImageResult, bool) {
	id, okID := runID(r)
	name, okName := imageName(r)
	if !okID || !okName {
		s.notFound(w, r)
		return nil, nil, false
	}
	run, im, err := s.imageOf(id, name)
	if err != nil {
		s.internal(w, r, err)
		return nil, nil, false
	}
	if im == nil {
		s.notFound(w, r)
		return nil, nil, false
	}
	return run, im, true
}

// The log viewer.

type logsData struct {
	frame
	Run       *store.Run
	Image     imageView
	Text      string
	Missing   bool
	Truncated bool
	All       bool
	Lines     int
	AllHref   string
	TailHref  string
}

func (s *server) logsPage(w http.ResponseWriter, r *http.Request) {
	run, im, ok := s.pageImage(w, r)
	if !ok {
		return
	}
	all := r.URL.Query().Get("all") == "1"
	lines := defaultLogLines
	if all {
		lines = 0
	}
	text, truncated, err := s.logText(run.ID, im.Name, lines)
	if err != nil && !errors.Is(err, errNoLog) {
		s.internal(w, r, err)
		return
	}
	v := s.imageView(run, im)
	title := fmt.Sprintf("Log of %s in run %d", im.Name, run.ID)
	d := logsData{
		frame: s.frame(title, link{s.runHref(run.ID), fmt.Sprintf("Run %d", run.ID)}, link{v.Href, im.Name}, link{"", "Log"}),
		Run:   run, Image: v, Text: string(text), Missing: errors.Is(err, errNoLog),
		Truncated: truncated, All: all, Lines: defaultLogLines,
		AllHref: v.LogHref + "?all=1", TailHref: v.LogHref,
	}
	if im.Status == store.Running {
		d.Refresh = homeRefreshEvery
	}
	s.render(w, r, http.StatusOK, "logs", d)
}

// An image across nights.

type imageData struct {
	frame
	Name     string
	Rows     template.HTML // of the history table, one per entry: see historyRows
	LastGood *entryView
	FirstBad *entryView
	Range    string // last good commit..first bad commit
	Chart    chart
	Releases []releaseView // where the image's release tags point
	Failures []failureView // by signature, the most recent first
	// Contents are of the newest night whose contents were read; nil if
	// none.
	Contents *contentsView

	size int // of the rows and bars, for the page's buffer
}

func (d imageData) pageSize() int { return d.size + 16<<10 }

type entryView struct {
	RunID    uint64
	RunHref  string
	Href     string
	When     time.Time
	Tag      string
	Commit   string
	Subject  string
	Badge    badge
	Duration time.Duration // of its build, without tests
	Digest   string
	Short    string
	Error    string
	// Validation is the run that validated the image in the night, when
	// another than the night's own; ValidationText its verdict, "" when
	// the night did not validate the image.
	Validation     *link
	ValidationText string
}

// failureView is one failure signature of an image and the nights it
// occurred, each linked to the log of the run that failed so; a pruned
// run's night has no link, its log is gone.
type failureView struct {
	ID     string
	Text   string
	Nights []failureNight
}

type failureNight struct {
	Night   uint64
	Run     uint64
	When    time.Time
	LogHref string // "" when the run was pruned
}

// releaseView is one release tag of an image: the night it was promoted
// from.
type releaseView struct {
	Ref    string
	RunID  uint64
	Href   string // the image in that run
	Tag    string // the run's
	Digest string
	Short  string
	When   time.Time
	By     string
	Forced bool
}

// validationWord is a validation's verdict in a word or three.
func validationWord(v store.Status) string {
	switch v {
	case store.Succeeded:
		return "validated"
	case store.Skipped:
		return "nothing to test"
	}
	return string(v)
}

// chart is an inline SVG bar chart of durations, oldest on the left.
type chart struct {
	Width, Height int
	Bars          template.HTML // see chartBars
	Max           time.Duration
	Label         string
}

type bar struct {
	X, Y, W, H float64
	Status     string
	Title      string
}

func (s *server) imagePage(w http.ResponseWriter, r *http.Request) {
	name, ok := imageName(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	if s.unchanged(w, r, "image page "+name) {
		return
	}
	all, err := s.db.History(0)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	h := s.historyOf(all.Nights, name)
	if len(h.History) == 0 {
		s.notFound(w, r)
		return
	}
	d := imageData{frame: s.frame(name, link{"", name}), Name: name}
	view := func(e *imageEntry) entryView {
		v := entryView{
			RunID: e.RunID, RunHref: s.runHref(e.RunID), Href: s.imageRunHref(e.RunID, name),
			When: e.night.Run.Started, Tag: e.Tag, Commit: store.ShortCommit(e.Commit), Subject: e.night.Run.Subject,
			Badge: e.badge, Duration: time.Duration(e.DurationSeconds * float64(time.Second)),
			Digest: e.Digest, Short: store.ShortDigest(e.Digest), Error: e.Error,
		}
		if e.Validation != nil {
			v.ValidationText = validationWord(e.Validation.Status)
			if e.Validation.RunID != e.RunID {
				v.Validation = &link{s.imageRunHref(e.Validation.RunID, name), fmt.Sprintf("run %d", e.Validation.RunID)}
			}
		}
		return v
	}
	entries := make([]entryView, len(h.History))
	for i := range h.History {
		entries[i] = view(&h.History[i])
	}
	d.Rows = historyRows(entries)
	d.size = len(d.Rows) + len(d.Chart.Bars)
	if h.LastGood != nil {
		v := view(h.LastGood)
		d.LastGood = &v
	}
	if h.FirstBad != nil {
		v := view(h.FirstBad)
		d.FirstBad = &v
	}
	if h.LastGood != nil && h.FirstBad != nil {
		d.Range = store.ShortCommit(h.LastGood.Commit) + ".." + store.ShortCommit(h.FirstBad.Commit)
	}
	d.Chart = durationChart(entries, name)
	rels, err := s.db.Releases(name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	for _, rel := range rels {
		d.Releases = append(d.Releases, releaseView{Ref: rel.Ref, RunID: rel.Run, Href: s.imageRunHref(rel.Run, name), Tag: rel.Tag,
			Digest: rel.Digest, Short: store.ShortDigest(rel.Digest), When: rel.When, By: rel.By, Forced: rel.Forced})
	}
	for _, f := range store.FailuresIn(all.Nights, name) {
		v := failureView{ID: f.Signature.ID, Text: f.Signature.Text}
		for _, o := range f.Nights {
			n := failureNight{Night: o.Night, Run: o.Run, When: o.When}
			if !o.Pruned {
				n.LogHref = s.imageRunHref(o.Run, name) + "/logs"
			}
			v.Nights = append(v.Nights, n)
		}
		d.Failures = append(d.Failures, v)
	}
	if d.Contents, err = s.newestContents(h.History, name); err != nil {
		s.internal(w, r, err)
		return
	}
	if !h.clocked {
		w.Header().Set("ETag", s.etag(all.Version, "image page "+name))
	}
	s.render(w, r, http.StatusOK, "image", d)
}

// durationChart draws entries (newest first) as bars, oldest on the left:
// the time each night's build took, without its tests.
func durationChart(entries []entryView, name string) chart {
	const barW, gap, height = 6.0, 2.0, 120.0
	c := chart{Height: int(height)}
	for _, e := range entries {
		c.Max = max(c.Max, e.Duration)
	}
	n := len(entries)
	c.Width = int(float64(n) * (barW + gap))
	bars := make([]bar, 0, n)
	for i := range entries {
		e := entries[n-1-i]
		h := 2.0 // a sliver, so that a night without a build still shows
		if c.Max > 0 && e.Duration > 0 {
			h = max(h, height*float64(e.Duration)/float64(c.Max))
		}
		bars = append(bars, bar{
			X: float64(i) * (barW + gap), Y: height - h, W: barW, H: h, Status: e.Badge.Status,
			Title: fmt.Sprintf("run %d, %s: %s, build time %s", e.RunID, e.When.UTC().Format("2006-01-02"), e.Badge.Status, fmtDuration(e.Duration)),
		})
	}
	c.Bars = chartBars(bars)
	c.Label = fmt.Sprintf("Build times of %s (build, push, verify, tag; without tests) over the last %d nights, oldest on the left; the longest took %s.", name, n, fmtDuration(c.Max))
	return c
}
