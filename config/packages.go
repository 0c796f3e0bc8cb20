package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The formats an info command's output may be in.
const (
	FormatDpkg  = "dpkg"  // dpkg-query -W: "name<TAB>version" lines
	FormatPip   = "pip"   // pip list --format=freeze: "name==version" lines
	FormatConda = "conda" // conda list --export: "name=version=build" lines
	FormatLines = "lines" // "name version" lines, or a name alone
)

var packageFormats = []string{FormatDpkg, FormatPip, FormatConda, FormatLines}

// defaultPackagesTimeout bounds one info command in one image.
const defaultPackagesTimeout = 2 * time.Minute

// PackageCommand is an info command: run by the image's /bin/sh, without
// network, once the image is pushed, its output parsed as Format.
type PackageCommand struct {
	Name    string `toml:"name"` // the source its packages are of: "pip", "dpkg", ...
	Command string `toml:"command"`
	Format  string `toml:"format"`
}

// DefaultPackageCommands are the info commands run in every image unless
// [packages] defaults = false: each lists nothing (and is no failure) in an
// image without the command.
func DefaultPackageCommands() []PackageCommand {
	return []PackageCommand{
		{Name: "dpkg", Command: "dpkg-query -W", Format: FormatDpkg},
		{Name: "pip", Command: "pip list --format=freeze", Format: FormatPip},
		{Name: "conda", Command: "conda list --export", Format: FormatConda},
	}
}

// Packages says how the images' packages are listed after they are pushed,
// and which images must agree on them.
type Packages struct {
	// Defaults keeps DefaultPackageCommands (true unless written false).
	Defaults bool `toml:"defaults"`
	// Commands are added to the defaults; one named as a default replaces it.
	Commands []PackageCommand `toml:"commands"`
	// Timeout bounds each command in each image.
	Timeout Duration `toml:"timeout"`
	// Consistent are groups of images whose packages of one source must
	// have one version: a mismatch fails the validation of the images
	// involved.
	Consistent [][]string `toml:"consistent"`
}

// PackageCommands returns the info commands run in image: the defaults
// (unless turned off), [packages] commands and the image's own packages,
// a later one of a name replacing an earlier one in its place.
func (c *Config) PackageCommands(image string) []PackageCommand {
	var cmds []PackageCommand
	add := func(more []PackageCommand) {
		for _, m := range more {
			if i := slices.IndexFunc(cmds, func(p PackageCommand) bool { return p.Name == m.Name }); i >= 0 {
				cmds[i] = m
			} else {
				cmds = append(cmds, m)
			}
		}
	}
	if c.Packages.Defaults {
		add(DefaultPackageCommands())
	}
	add(c.Packages.Commands)
	if img := c.Image(image); img != nil {
		add(img.Packages)
	}
	return cmds
}

// ConsistentGroups returns the [packages] consistent groups image is in.
func (c *Config) ConsistentGroups(image string) [][]string {
	var in [][]string
	for _, g := range c.Packages.Consistent {
		if slices.Contains(g, image) {
			in = append(in, g)
		}
	}
	return in
}

var sourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

func (l *loader) packages(c *Config) {
	p := &c.Packages
	if !l.has("packages.defaults") {
		p.Defaults = true
	}
	if !l.has("packages.timeout") {
		p.Timeout.Duration = defaultPackagesTimeout
	} else if p.Timeout.Duration <= 0 {
		l.problem("packages.timeout", `must be positive: how long one info command may run in one image, e.g. "2m"`)
	}
	l.packageCommands("packages.commands", p.Commands)
	for i, img := range c.Images {
		l.packageCommands(fmt.Sprintf("image[%d].packages", i+1), img.Packages)
	}

	names := map[string]bool{}
	for _, img := range c.Images {
		names[img.Name] = true
	}
	for i, g := range p.Consistent {
		for _, name := range g {
			if !names[name] {
				l.problem("packages.consistent", fmt.Sprintf("group %d names %q, no image of this config (images: %s)", i+1, name, strings.Join(slices.Sorted(maps.Keys(names)), ", ")))
				return
			}
		}
		switch {
		case len(g) < 2:
			l.problem("packages.consistent", fmt.Sprintf("group %d has %d image: a group needs two images or more to agree", i+1, len(g)))
		case len(slices.Compact(slices.Sorted(slices.Values(g)))) != len(g):
			l.problem("packages.consistent", fmt.Sprintf("group %d names an image twice: name each once", i+1))
		}
	}
}

// packageCommands checks the info commands at key (an array of tables).
func (l *loader) packageCommands(key string, cmds []PackageCommand) {
	seen := map[string]bool{}
	for i, cmd := range cmds {
		k := fmt.Sprintf("%s[%d]", key, i+1)
		switch {
		case cmd.Name == "":
			l.problem(k+".name", `required: the source the command lists packages of, e.g. "pip"`)
		case !sourceName.MatchString(cmd.Name):
			l.problem(k+".name", fmt.Sprintf(`%q is not a source name: use lowercase letters, digits, "_", "." and "-"`, cmd.Name))
		case seen[cmd.Name]:
			l.problem(k+".name", fmt.Sprintf("%q is named twice here: give each command its own name (one named as a default replaces it)", cmd.Name))
		}
		seen[cmd.Name] = true
		if strings.TrimSpace(cmd.Command) == "" {
			l.problem(k+".command", `required: the command the image's /bin/sh runs, e.g. "pip list --format=freeze"`)
		}
		if !slices.Contains(packageFormats, cmd.Format) {
			l.problem(k+".format", fmt.Sprintf("%q is not a format: use one of %s", cmd.Format, strings.Join(packageFormats, ", ")))
		}
	}
}
