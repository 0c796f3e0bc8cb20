package web

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"nightshift/store"
)

// assets are the dashboard's templates and its one stylesheet, built into
// the binary so that a deployed daemon needs no files beside it.
//
//go:embed templates/*.html static/style.css
var assets embed.FS

// pages holds the parsed templates, one set per page.
type pages struct {
	t       map[string]*template.Template
	css     []byte
	cssETag string
	cssPath string // with the content's hash, so browsers may keep it forever
}

var pageNames = []string{"home", "run", "image_run", "image", "logs", "error"}

func loadPages() (*pages, error) {
	layout, err := template.New("layout").Funcs(template.FuncMap{
		"dur":  fmtDuration,
		"when": fmtTime,
		"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	}).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	p := &pages{t: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.Must(layout.Clone()).ParseFS(assets, "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		p.t[name] = t
	}
	if p.css, err = fs.ReadFile(assets, "static/style.css"); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(p.css)
	v := hex.EncodeToString(sum[:6])
	p.cssETag, p.cssPath = `"`+v+`"`, "/static/style.css?v="+v
	return p, nil
}

// frame is what every page's layout needs.
type frame struct {
	Title   string
	Base    string // prefix of every link
	CSS     string
	Refresh int    // seconds; 0: no automatic refresh
	Crumbs  []link // where this page is, the last one being this page
}

type link struct{ Href, Text string }

func (s *server) frame(title string, crumbs ...link) frame {
	return frame{Title: title, Base: s.base, CSS: s.base + s.pages.cssPath,
		Crumbs: append([]link{{s.base + "/", "Dashboard"}}, crumbs...)}
}

// sized is the data of a page that knows about how long the page is.
type sized interface{ pageSize() int }

// execute renders page name into memory, so that a template error is a
// clean 500 rather than half a page.
func (p *pages) execute(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if d, ok := data.(sized); ok {
		buf.Grow(d.pageSize())
	}
	if err := p.t[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

func (s *server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	b, err := s.pages.execute(name, data)
	if err != nil {
		s.log.Error("render page", "path", r.URL.Path, "err", err)
		http.Error(w, "the page could not be rendered; the daemon's log says more", http.StatusInternalServerError)
		return
	}
	writePage(w, code, b)
}

func writePage(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

type errorData struct {
	frame
	Code    int
	Message string
}

func (s *server) errorPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	title := http.StatusText(code)
	s.render(w, r, code, "error", errorData{frame: s.frame(title, link{"", title}), Code: code, Message: msg})
}

func (s *server) static(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/static/style.css" {
		s.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("ETag", s.pages.cssETag)
	if `"`+r.URL.Query().Get("v")+`"` == s.pages.cssETag {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.pages.css))
}

// badge is a status as people see it: a colour (Class), a symbol and a
// word, so that colour is never the only sign.
type badge struct {
	Status string // built, validated, failed, ...: also the CSS class st-<Status>
	Symbol string
}

var symbols = map[string]string{
	"built": "✓", "validated": "★", "succeeded": "✓", "failed": "✗", "skipped": "–",
	"interrupted": "!", "running": "…", "queued": "○", "pending": "…", "sent": "✓", "given-up": "✗",
}

func newBadge(status string) badge {
	sym, ok := symbols[status]
	if !ok {
		sym, status = "?", cmp.Or(status, "unknown")
	}
	return badge{Status: status, Symbol: sym}
}

// imageBadge tells a validated image from one that was only built.
func imageBadge(im *store.ImageResult) badge { return statusBadge(im.Status, im.Validated()) }

func statusBadge(st store.Status, validated bool) badge {
	switch {
	case st != store.Succeeded:
		return newBadge(string(st))
	case validated:
		return newBadge("validated")
	}
	return newBadge("built")
}

func (s *server) runHref(id uint64) string { return fmt.Sprintf("%s/runs/%d", s.base, id) }

func (s *server) imageRunHref(id uint64, name string) string {
	return fmt.Sprintf("%s/runs/%d/images/%s", s.base, id, url.PathEscape(name))
}

func (s *server) imageHref(name string) string { return s.base + "/images/" + url.PathEscape(name) }

// fmtDuration is a duration as people read it: 1h02m, 4m05s, 12s, 0.4s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "–"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// fmtTime shows times in UTC, the zone tags are made in.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
