// Package config loads and validates nightshift's TOML configuration.
package config

import (
	"regexp"
	"time"
)

// DefaultTagFormat renders the immutable tag of a run: the UTC run start and
// the short commit hash, e.g. 2026-11-23-02-00-00-1a2b3c4d.
const DefaultTagFormat = "{{ .Timestamp }}-{{ .Short }}"

// Config is a loaded, defaulted and validated configuration. Relative paths
// in the file are already resolved against the file's directory, except the
// image paths, which are relative to the source repository root.
type Config struct {
	File string `toml:"-"` // path as given by the user, used in messages
	Dir  string `toml:"-"` // absolute directory of File

	Source   Source   `toml:"source"`
	Staging  Staging  `toml:"staging"`
	Build    Build    `toml:"build"`
	Store    Store    `toml:"store"`
	Notify   Notify   `toml:"notify"`
	HTTP     HTTP     `toml:"http"`
	Schedule Schedule `toml:"schedule"`
	Validate Validate `toml:"validate"`
	Promote  Promote  `toml:"promote"`
	// Retention is how long nightly runs keep their staging tags and logs.
	Retention Retention `toml:"retention"`
	Ensure    Ensure    `toml:"ensure"`
	Changes   Changes   `toml:"changes"`
	// Packages says how the images' packages are listed once pushed.
	Packages Packages `toml:"packages"`
	Images   []Image  `toml:"image"`
	// Nodes are the build hosts ([[builder]]); none: the engine at
	// $DOCKER_HOST builds everything.
	Nodes []Node `toml:"builder"`

	// lines locates keys for problems found after loading (CheckTree).
	lines keyLines
}

// Source says where the code that the images build from comes from.
type Source struct {
	// Repo is a local checkout used as it is, or a git URL (anything with
	// "://", or scp-like "user@host:path") fetched into Workdir at Ref.
	Repo string `toml:"repo"`
	Ref  string `toml:"ref"`
	// Workdir holds the clone of a URL source. Default: "work" beside the
	// config file.
	Workdir string `toml:"workdir"`
}

// Staging is the registry namespace that nightly images are pushed to.
type Staging struct {
	Registry  string `toml:"registry"`
	Namespace string `toml:"namespace"`
	// TagFormat is a text/template rendering the immutable tag; see
	// DefaultTagFormat and the README for the fields.
	TagFormat string `toml:"tag_format"`
	// Username and PasswordFile authenticate to Registry. Without them,
	// Docker's config.json and its credential helpers are used. The
	// password may also come from $NIGHTSHIFT_STAGING_PASSWORD.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// Password is read from PasswordFile or the environment, never from
	// the config file itself.
	Password Secret `toml:"-"`
	// RetryBudget bounds how long transient registry errors are retried.
	RetryBudget Duration `toml:"retry_budget"`
	// Latest says when an image's "latest" tag moves: LatestBuilt (once
	// pushed) or LatestValidated (once validated).
	Latest string `toml:"latest"`
	// Published lists the repositories under which the stack's images are
	// published ("quay.io/jupyter"): a FROM that names one of the stack's
	// images under one of them builds on this run's image instead.
	Published []string `toml:"published"`
}

// Build controls how images are built.
type Build struct {
	Jobs int `toml:"jobs"` // images built at once
	// Timeout bounds one image's build; an image may override it.
	Timeout Duration `toml:"timeout"`
	// Retries is how many more times a build is tried from scratch after
	// failing for a passing reason: its failing step's output matches one
	// of RetryOn.
	Retries int `toml:"retries"`
	// RetryOn are regular expressions of passing failures (a mirror that
	// did not answer); RetryPatterns are them compiled.
	RetryOn       []string         `toml:"retry_on"`
	RetryPatterns []*regexp.Regexp `toml:"-"`
	// Reschedule moves a build whose builder stopped answering during it
	// to another builder with the image's labels, once.
	Reschedule bool `toml:"reschedule"`
	// Builder is what images build with unless they say otherwise:
	// BuilderBuildKit (the default) or BuilderLegacy.
	Builder string `toml:"builder"`
}

// Store says where run records and build logs are kept.
type Store struct {
	Path string `toml:"path"`
	Logs string `toml:"logs"`
}

// Image is one CI image of the stack.
type Image struct {
	Name       string `toml:"name"`
	Dockerfile string `toml:"dockerfile"` // relative to the source repo root
	Context    string `toml:"context"`    // relative to the source repo root
	// DependsOn names images of the stack this one builds on, beyond those
	// its FROM lines name.
	DependsOn []string `toml:"depends_on"`
	// BuildArgs are text/templates with the run's fields (.Tag, .Commit,
	// .Short, ...).
	BuildArgs map[string]string `toml:"build_args"`
	Target    string            `toml:"target"` // build stage, optional
	Timeout   Duration          `toml:"timeout"`
	// Tests are container-structure-test files for this image alone,
	// relative to the source repository root.
	Tests []string `toml:"tests"`
	// Inputs are globs of further files the image is built from (scripts
	// its build reaches outside its context, say), relative to the source
	// repository root: a change to one rebuilds the image
	// (run --changed-since) and changes its content tag (ensure).
	Inputs []string `toml:"inputs"`
	// RunsOn are labels a [[builder]] must have all of to build the image.
	RunsOn []string `toml:"runs_on"`
	// Packages are info commands for this image alone, added to (or, by
	// name, replacing) [packages] commands.
	Packages []PackageCommand `toml:"packages"`
	// Builder is BuilderBuildKit or BuilderLegacy; default: build.builder.
	Builder string `toml:"builder"`
	// Secrets are the build's secrets by id (RUN --mount=type=secret,id=<id>),
	// each "file:<path>" or "env:<NAME>"; BuildSecrets are them parsed.
	Secrets      map[string]string      `toml:"secrets"`
	BuildSecrets map[string]BuildSecret `toml:"-"`

	Line int `toml:"-"` // line of this image's [[image]] header
}

// Duration is a time.Duration written as a string in TOML ("90m", "2h").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Secret holds a credential. It prints as "[redacted]" so that it cannot
// leak through logs, errors or records by accident.
type Secret string

// String redacts the credential for %v and %s.
func (Secret) String() string { return "[redacted]" }

// GoString redacts the credential for %#v.
func (Secret) GoString() string { return "[redacted]" }

// Reveal returns the credential itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// MarshalText keeps a Secret out of any JSON, TOML or text encoding.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }
