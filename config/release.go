package config

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"
)

// DefaultPromoteName keeps an image's name as its release repository's.
const DefaultPromoteName = "{{ .Name }}"

// Promote says where `nightshift promote` puts released images:
// <Registry>/<Namespace>/<Name rendered for the image>.
type Promote struct {
	Registry  string `toml:"registry"`  // default: staging.registry
	Namespace string `toml:"namespace"` // default: staging.namespace
	// Name is a template of the target repository's last part; it sees
	// .Name, the image's name, and the functions replace and lower.
	Name string `toml:"name"`
}

// Retention says which nightly runs `nightshift prune` keeps: the newest
// KeepLast, and those that started within KeepDays; with both, a run
// either keeps is kept.
type Retention struct {
	Enabled  bool `toml:"-"` // keep_last or keep_days is set
	KeepLast int  `toml:"keep_last"`
	KeepDays int  `toml:"keep_days"`
}

// ReleaseData is what promote.name and the target tags of `nightshift
// promote --to` see: the image, the promoted run, and the time of the
// promotion (UTC), by which a tag like "{{ .Year }}.{{ .Quarter }}-stable"
// names the quarter the release was made in.
type ReleaseData struct {
	Name    string    // the image's name
	Tag     string    // the promoted run's immutable tag
	Commit  string    // its commit
	Short   string    // the commit, cut as in tags
	When    time.Time // the promotion, for utc
	Year    int
	Quarter int // 1 to 4
	Month   int // 1 to 12
	Day     int
	Date    string // 2006-01-02
}

// NewReleaseData returns the fields of promoting image name of the run
// with tag and commit at when.
func NewReleaseData(when time.Time, name, tag, commit string) ReleaseData {
	utc := when.UTC()
	return ReleaseData{
		Name: name, Tag: tag, Commit: commit, Short: commit[:min(8, len(commit))], When: utc,
		Year: utc.Year(), Quarter: (int(utc.Month())-1)/3 + 1, Month: int(utc.Month()), Day: utc.Day(),
		Date: utc.Format(dateLayout),
	}
}

// RenderReleaseTag renders a target tag of a promotion and checks that it
// is a Docker tag.
func RenderReleaseTag(tmpl string, d ReleaseData) (string, error) {
	tag, err := renderRelease("tag", tmpl, d)
	if err != nil {
		return "", err
	}
	if !dockerTag.MatchString(tag) {
		return "", fmt.Errorf(`renders %q, which is not a valid Docker tag: use at most 128 letters, digits, "_", "." and "-", not starting with "." or "-"`, tag)
	}
	return tag, nil
}

// RenderPromoteName renders promote.name for image name and checks that
// it is a repository path.
func RenderPromoteName(tmpl, name string) (string, error) {
	repo, err := renderRelease("name", tmpl, ReleaseData{Name: name})
	if err != nil {
		return "", err
	}
	if !validNamespace(repo) {
		return "", fmt.Errorf(`renders %q for image %s, which is not a repository path: use lowercase letters and digits, separated by ".", "_", "__" or "-", in components joined by "/"`, repo, name)
	}
	return repo, nil
}

func renderRelease(what, text string, d ReleaseData) (string, error) {
	return execute(what, text, template.FuncMap{
		"utc":     func(layout string) string { return d.When.Format(layout) },
		"replace": func(s, old, new string) string { return strings.ReplaceAll(s, old, new) },
		"lower":   strings.ToLower,
	}, d, "fields: .Name .Tag .Commit .Short .Year .Quarter .Month .Day .Date; functions: utc, replace, lower")
}

func (l *loader) promote(c *Config) {
	p := &c.Promote
	if l.has("promote.registry") {
		if msg := hostProblem(p.Registry, "promote.namespace", "that released images are pushed to"); msg != "" {
			l.problem("promote.registry", msg)
		}
	}
	p.Registry = cmp.Or(p.Registry, c.Staging.Registry)
	if l.has("promote.namespace") && !validNamespace(p.Namespace) {
		l.problem("promote.namespace", fmt.Sprintf(`%q is not a valid repository path: use lowercase letters and digits, separated by ".", "_", "__" or "-", in components joined by "/"`, p.Namespace))
	}
	p.Namespace = cmp.Or(p.Namespace, c.Staging.Namespace)
	p.Name = cmp.Or(p.Name, DefaultPromoteName)
	names := map[string]string{} // rendered -> image
	for _, img := range c.Images {
		if !nameComponent.MatchString(img.Name) || slices.Contains(slices.Collect(maps.Values(names)), img.Name) {
			continue // its own problem
		}
		repo, err := RenderPromoteName(p.Name, img.Name)
		if err != nil {
			l.problem("promote.name", err.Error())
			return
		}
		if other, ok := names[repo]; ok {
			l.problem("promote.name", fmt.Sprintf("renders %q for both %s and %s: each image needs a repository of its own", repo, other, img.Name))
			return
		}
		names[repo] = img.Name
	}
}

func (l *loader) retention(r *Retention) {
	for _, k := range []struct {
		key  string
		v    int
		what string
	}{{"retention.keep_last", r.KeepLast, "runs"}, {"retention.keep_days", r.KeepDays, "days"}} {
		if l.has(k.key) && k.v < 1 {
			l.problem(k.key, fmt.Sprintf("must be at least 1 (got %d): the nightly runs of how many %s to keep; leave it out to not prune by it", k.v, k.what))
		}
	}
	r.Enabled = l.has("retention.keep_last") || l.has("retention.keep_days")
}
