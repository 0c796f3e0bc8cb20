package packages

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"nightshift/store"
)

// Mismatch is a package of one source installed at different versions in
// different images.
type Mismatch struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	// Versions maps each version to the images that have it, sorted.
	Versions map[string][]string `json:"versions"`
}

// Images returns every image involved in m, sorted.
func (m *Mismatch) Images() []string {
	var all []string
	for _, ims := range m.Versions {
		all = append(all, ims...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// Consistency finds the packages that images of contents have at different
// versions, by source and name. Only whole lists count, and a package only
// some images have is no mismatch.
func Consistency(contents []store.Contents) []Mismatch {
	type key struct{ source, name string }
	found := map[key]map[string][]string{}
	for _, c := range contents {
		for _, l := range c.Lists {
			if !comparable(l) {
				continue
			}
			for name, version := range versions(l.Packages) {
				k := key{l.Source, name}
				if found[k] == nil {
					found[k] = map[string][]string{}
				}
				found[k][version] = append(found[k][version], c.Image)
			}
		}
	}
	mismatches := []Mismatch{}
	for k, vs := range found {
		if len(vs) < 2 {
			continue
		}
		for _, ims := range vs {
			slices.Sort(ims)
		}
		mismatches = append(mismatches, Mismatch{Name: k.name, Source: k.source, Versions: vs})
	}
	slices.SortFunc(mismatches, func(a, b Mismatch) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Name, b.Name))
	})
	return mismatches
}

// Within keeps the contents of the images in group.
func Within(contents []store.Contents, group []string) []store.Contents {
	var in []store.Contents
	for _, c := range contents {
		if slices.Contains(group, c.Image) {
			in = append(in, c)
		}
	}
	return in
}

// RunConsistency is Consistency over the images of run (a validation run:
// of its night).
func RunConsistency(db *store.DB, run uint64) ([]Mismatch, error) {
	run, err := Night(db, run)
	if err != nil {
		return nil, err
	}
	all, err := db.RunContents(run)
	if err != nil {
		return nil, err
	}
	return Consistency(all), nil
}

// String says m in a line: "pip numpy: 1.26.0 in ci_cpu, ci_lint; 1.25.2 in ci_gpu".
func (m *Mismatch) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: ", m.Source, m.Name)
	for i, v := range m.VersionList() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s in %s", v, strings.Join(m.Versions[v], ", "))
	}
	return b.String()
}

// VersionList is m's versions, sorted.
func (m *Mismatch) VersionList() []string { return slices.Sorted(maps.Keys(m.Versions)) }
