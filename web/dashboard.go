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
	Latest  *store.Summary
	Badge   badge // of Latest
	Next    time.Time
	Running bool
	Shown   int
	Total   int
	Choices []link
	Legend  []badge

	size int // of the cells, for the page's buffer
}

func (d homeData) pageSize() int { return d.size + 16<<10 }

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
	runs, version, err := s.db.Summaries(0)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d := s.homeData(runs[:min(n, len(runs))], len(runs), next)
	b, err := s.pages.execute("home", d)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("ETag", s.etag(version, key))
	writePage(w, http.StatusOK, b)
}

func (s *server) homeData(runs []store.Summary, total int, next time.Time) homeData {
	d := homeData{frame: s.frame("Nightly builds"), Shown: len(runs), Total: total, Next: next}
	d.Crumbs = d.Crumbs[:0] // the dashboard is home: no trail
	for _, c := range []int{7, 30, 90, 365} {
		d.Choices = append(d.Choices, link{fmt.Sprintf("%s/?runs=%d", s.base, c), strconv.Itoa(c)})
	}
	for _, st := range []string{"validated", "built", "failed", "skipped", "interrupted", "running"} {
		d.Legend = append(d.Legend, newBadge(st))
	}
	if len(runs) > 0 {
		d.Latest, d.Badge = &runs[0], newBadge(string(runs[0].Status))
	}

	var names []string
	seen := map[string]bool{}
	for i := range runs {
		run := &runs[i]
		d.Running = d.Running || run.Status == store.Running
		d.Cols = append(d.Cols, homeCol{
			ID: run.ID, Href: s.runHref(run.ID), Date: run.Started.UTC().Format("01-02"),
			Title: fmt.Sprintf("run %d, %s: %s", run.ID, fmtTime(run.Started), run.Status),
			Badge: newBadge(string(run.Status)),
		})
		for _, im := range run.Images {
			if !seen[im.Name] {
				seen[im.Name] = true
				names = append(names, im.Name)
			}
		}
	}
	slices.Sort(names)
	// Every row's cells are written into one string, each row's a part of
	// it: a year's matrix is megabytes, better not grown and copied a row
	// at a time.
	var cells strings.Builder
	cells.Grow(len(names) * len(runs) * 320)
	ends := make([]int, 0, len(names))
	for _, name := range names {
		for i := range runs {
			run := &runs[i]
			im := run.Image(name)
			if im == nil {
				matrixCell(&cells, "", fmt.Sprintf("%s was not in run %d", name, run.ID), badge{Status: "none", Symbol: "·"})
				continue
			}
			b := statusBadge(im.Status, im.Validated)
			matrixCell(&cells, s.imageRunHref(run.ID, name),
				fmt.Sprintf("%s, run %d (%s): %s", name, run.ID, run.Started.UTC().Format("2006-01-02"), b.Status), b)
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
	Error      string
	Tail       string
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
		Ref: im.Ref, Digest: im.Digest, Short: shortDigest(im.Digest), Tags: im.Tags,
		Parent: im.Parent, Error: im.Error, Tail: strings.Join(im.Tail, "\n"),
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
	run, notes, err := s.runWithNotes(id)
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	title := fmt.Sprintf("Run %d", run.ID)
	d := runData{
		frame: s.frame(title, link{"", title}), Run: run, Badge: newBadge(string(run.Status)),
		Commit: store.ShortCommit(run.Commit), Duration: run.Duration(s.now()),
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
	for _, n := range notes {
		d.Notes = append(d.Notes, noteView{notification: n, Badge: newBadge(string(n.Status))})
	}
	if run.Status == store.Running {
		d.Refresh = homeRefreshEvery
	}
	s.render(w, r, http.StatusOK, "run", d)
}

type imageRunData struct {
	frame
	Run      *store.Run
	RunBadge badge
	Commit   string
	Image    imageView
	Jenkins  *jenkinsView // the run's, which tested this image with the others
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
	Duration time.Duration
	Digest   string
	Short    string
	Error    string
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
	runs, version, err := s.db.Summaries(0)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	h := historyOf(runs, name, s.now())
	if len(h.History) == 0 {
		s.notFound(w, r)
		return
	}
	d := imageData{frame: s.frame(name, link{"", name}), Name: name}
	view := func(e *imageEntry) entryView {
		return entryView{
			RunID: e.RunID, RunHref: s.runHref(e.RunID), Href: s.imageRunHref(e.RunID, name),
			When: e.run.Started, Tag: e.Tag, Commit: store.ShortCommit(e.Commit), Subject: e.run.Subject,
			Badge: e.badge, Duration: time.Duration(e.DurationSeconds * float64(time.Second)),
			Digest: e.Digest, Short: shortDigest(e.Digest), Error: e.Error,
		}
	}
	entries := make([]entryView, len(h.History))
	for i := range h.History {
		entries[i] = view(&h.History[i])
	}
	d.Rows = historyRows(entries)
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
	d.size = len(d.Rows) + len(d.Chart.Bars)
	if !h.clocked {
		w.Header().Set("ETag", s.etag(version, "image page "+name))
	}
	s.render(w, r, http.StatusOK, "image", d)
}

// durationChart draws entries (newest first) as bars, oldest on the left.
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
			Title: fmt.Sprintf("run %d, %s: %s in %s", e.RunID, e.When.UTC().Format("2006-01-02"), e.Badge.Status, fmtDuration(e.Duration)),
		})
	}
	c.Bars = chartBars(bars)
	c.Label = fmt.Sprintf("Durations of %s over the last %d runs, oldest on the left; the longest took %s.", name, n, fmtDuration(c.Max))
	return c
}
