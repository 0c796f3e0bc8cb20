// Package packages lists what is installed in the images of a run (their
// layers and the output of info commands run inside them), and compares
// the lists: night to night (Diff) and image to image (Consistency).
package packages

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"nightshift/config"
	"nightshift/store"
)

// Parse reads an info command's output in format: one package a line,
// blank lines and "#" comments skipped. A line the format cannot read is
// an error naming it; the packages read before it are returned too.
func Parse(format string, out []byte) ([]store.Package, error) {
	var pkgs []store.Package
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		raw := strings.TrimRight(sc.Text(), "\r")
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if format == config.FormatDpkg {
			line = strings.TrimLeft(raw, " ") // the tab before an empty version counts
		}
		p, ok := parseLine(format, line)
		if !ok {
			return sorted(pkgs), fmt.Errorf("line %d, %q, is not %s output", n, cut(line, 80), formatWhat(format))
		}
		if p.Name != "" {
			pkgs = append(pkgs, p)
		}
	}
	if err := sc.Err(); err != nil {
		return sorted(pkgs), err
	}
	return sorted(pkgs), nil
}

func parseLine(format, line string) (store.Package, bool) {
	switch format {
	case config.FormatDpkg:
		// dpkg-query -W: "name[:arch]<TAB>version"; a package known to
		// dpkg but not installed has no version and is no package here.
		name, version, ok := strings.Cut(line, "\t")
		version = strings.TrimSpace(version)
		if !ok || name == "" || strings.ContainsAny(name, " ") {
			return store.Package{}, false
		}
		if version == "" {
			return store.Package{}, true
		}
		return store.Package{Name: name, Version: version}, true
	case config.FormatPip:
		// "name==version", or "name @ url" for a direct reference; pip
		// freeze's editable installs ("-e ...") name no version.
		if strings.HasPrefix(line, "-e ") {
			return store.Package{Name: strings.TrimSpace(line[3:]), Version: "editable"}, true
		}
		if name, version, ok := strings.Cut(line, "=="); ok {
			return store.Package{Name: normalizePip(name), Version: strings.TrimSpace(version)}, true
		}
		if name, url, ok := strings.Cut(line, " @ "); ok {
			return store.Package{Name: normalizePip(name), Version: strings.TrimSpace(url)}, true
		}
		return store.Package{}, false
	case config.FormatConda:
		// "name=version=build": the build string is left out, so that
		// images whose builds differ only by Python compare equal.
		parts := strings.Split(line, "=")
		if len(parts) < 2 || parts[0] == "" {
			return store.Package{}, false
		}
		return store.Package{Name: parts[0], Version: parts[1]}, true
	case config.FormatLines:
		name, version, _ := strings.Cut(line, " ")
		return store.Package{Name: name, Version: strings.TrimSpace(version)}, true
	}
	return store.Package{}, false
}

// normalizePip names a Python distribution as PEP 503 does: lowercase,
// with runs of "-", "_" and "." as one "-", so that "PyYAML" and "pyyaml"
// are one package.
func normalizePip(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	return strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' }), "-")
}

func sorted(pkgs []store.Package) []store.Package {
	slices.SortFunc(pkgs, func(a, b store.Package) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	return slices.Compact(pkgs)
}

func formatWhat(format string) string {
	switch format {
	case config.FormatDpkg:
		return `dpkg-query -W ("name<TAB>version")`
	case config.FormatPip:
		return `pip freeze ("name==version")`
	case config.FormatConda:
		return `conda list --export ("name=version=build")`
	}
	return format
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
