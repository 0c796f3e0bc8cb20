package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"nightshift/cycle"
)

// EnvStagingPassword names the environment variable that may hold the
// staging registry password when staging.password_file is not set.
const EnvStagingPassword = "NIGHTSHIFT_STAGING_PASSWORD"

const (
	defaultRepo        = "."
	defaultRef         = "main"
	defaultWorkdir     = "work"
	defaultJobs        = 2
	defaultTimeout     = 2 * time.Hour
	defaultRetryBudget = 5 * time.Minute
	defaultStorePath   = "nightshift.db"
	defaultLogs        = "logs"
	unknownKeyHint     = "(check the spelling; see config.example.toml)"
)

var (
	// nameComponent is one component of a Docker repository path.
	nameComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	// registryHost is a host name or bracketed IPv6 address, and a port.
	registryHost = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$`)
)

// sampleCommit and sampleStart stand in for a run when templates are
// checked at load time.
const sampleCommit = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"

func sampleStart() time.Time { return time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC) }

// Load reads, defaults and validates the file at path. On any problem it
// returns a nil *Config and a Problems error holding every problem found,
// sorted by line. Relative paths resolve against the file's directory, and a
// local source is checked with CheckTree.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read the config file: %v", err)}}
	}
	return Parse(data, path, filepath.Dir(path))
}

// Inspect is Load for a file that may have problems: it returns what could
// be read along with every problem, so that a caller can check further
// what the problems did not touch (the image graph, say) and report all at
// once. The Config is nil when the file could not be decoded, and must not
// be used to build while there are problems.
func Inspect(path string) (*Config, Problems) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read the config file: %v", err)}}
	}
	return parse(data, path, filepath.Dir(path))
}

// Parse is Load on bytes already read: file is used only in messages, and
// dir is the directory that relative paths resolve against. The staging
// password may come from $NIGHTSHIFT_STAGING_PASSWORD.
func Parse(data []byte, file, dir string) (*Config, error) {
	c, ps := parse(data, file, dir)
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}

func parse(data []byte, file, dir string) (*Config, Problems) {
	l := &loader{file: file}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, Problems{{File: file, Msg: fmt.Sprintf("cannot resolve the config directory: %v", err)}}
	}
	l.dir = abs

	// Editors on Windows may start the file with a byte order mark, which
	// TOML does not allow but which carries no meaning either.
	c := l.decode(bytes.TrimPrefix(data, []byte("\ufeff")))
	if c != nil {
		c.File, c.Dir = file, abs
		repoOK := l.validate(c)
		if repoOK && !c.Source.IsURL() {
			for _, p := range c.CheckTree(c.Source.Repo) {
				if !l.reported(p.Key) && !l.suppressed(p.Key) {
					l.problems = append(l.problems, p)
				}
			}
		}
	}
	l.problems.Sort()
	return c, l.problems
}

// loader gathers the problems of one configuration.
type loader struct {
	file     string
	dir      string // absolute
	doc      *document
	problems Problems
}

func (l *loader) add(line int, key, msg string) {
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Key: key, Msg: msg})
}

// problem reports msg about key at the line of key, or of its table when
// the key is not written. A key whose value was erased for having the wrong
// type is skipped: its one problem is already reported, and whatever
// validation finds in the erased value follows from it.
func (l *loader) problem(key, msg string) {
	if !l.suppressed(key) {
		l.add(l.doc.lines.line(key), key, msg)
	}
}

// suppressed reports whether key, or a table holding it, had its value
// erased for having the wrong type.
func (l *loader) suppressed(key string) bool {
	for k := key; k != ""; k = parent(k) {
		if l.doc.dropped[k] {
			return true
		}
	}
	return false
}

func (l *loader) reported(key string) bool {
	return slices.ContainsFunc(l.problems, func(p Problem) bool { return p.Key == key })
}

// has reports whether key is written in the file, so that an explicit zero
// is checked rather than replaced by the default.
func (l *loader) has(key string) bool {
	_, ok := l.doc.lines[key]
	return ok
}

// path resolves p against the config file's directory.
func (l *loader) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(l.dir, p)
}

// decode reads data into a Config, reporting syntax errors, values of the
// wrong type and unknown keys. It returns nil when the file cannot be read
// far enough to validate.
func (l *loader) decode(data []byte) *Config {
	// Decoding into a generic map first finds what makes the file no TOML
	// at all (syntax, keys defined twice), which the walk does not check.
	var generic map[string]any
	if err := toml.Unmarshal(data, &generic); err != nil {
		l.decodeError(err, nil)
		return nil
	}
	doc, err := walk(data)
	l.doc = doc
	if err != nil {
		l.add(0, "", fmt.Sprintf("invalid TOML: %v", err))
		return nil
	}
	for _, p := range doc.problems {
		l.add(p.Line, p.Key, p.Msg)
	}

	var c Config
	err = toml.NewDecoder(bytes.NewReader(doc.erased())).DisallowUnknownFields().Decode(&c)
	var strict *toml.StrictMissingError
	switch {
	case errors.As(err, &strict):
		for _, e := range strict.Errors {
			line, column := e.Position()
			key := doc.unknownKey(e.Key(), line, column)
			msg := "unknown key " + unknownKeyHint
			switch {
			case key == "staging.password":
				msg = "inline passwords are not accepted: put it in a file named by password_file, or in $" + EnvStagingPassword
			case strings.HasSuffix(e.Error(), "missing table"):
				msg = "unknown table " + unknownKeyHint
			}
			l.add(line, key, msg)
		}
	case err != nil:
		// The walk should have caught every misfit; report what it missed
		// rather than validate a half-decoded Config.
		l.decodeError(err, doc)
		return nil
	}
	c.lines = doc.lines
	return &c
}

func (l *loader) decodeError(err error, doc *document) {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		l.add(0, "", strings.TrimPrefix(err.Error(), "toml: "))
		return
	}
	line, _ := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if doc == nil {
		l.add(line, "", "invalid TOML: "+msg)
		return
	}
	l.add(line, doc.dotted(de.Key(), line), msg)
}

// validate applies defaults and checks c. It reports whether the source is
// a URL or a local directory, that is, whether the tree is worth checking.
func (l *loader) validate(c *Config) bool {
	repoOK := l.source(&c.Source)
	l.staging(&c.Staging)
	l.build(&c.Build)
	l.store(&c.Store)
	l.notify(&c.Notify)
	l.http(&c.HTTP)
	l.schedule(&c.Schedule)
	l.images(c)
	l.builders(c)
	l.validateSection(c)
	l.promote(c)
	l.retention(&c.Retention)
	l.ensureSection(c)
	l.packages(c)
	l.nodes(c)
	return repoOK
}

func (l *loader) source(s *Source) bool {
	s.Repo = cmp.Or(s.Repo, defaultRepo)
	s.Workdir = l.path(cmp.Or(s.Workdir, defaultWorkdir))
	if s.IsURL() {
		s.Ref = cmp.Or(s.Ref, defaultRef)
		// Credentials in the URL would end up in errors, records and
		// notifications. Over http(s) a user name alone may be a token
		// (https://<token>@host/...); over ssh it is the account (git@).
		u, err := url.Parse(s.Repo)
		if err == nil && u.User != nil {
			_, hasPassword := u.User.Password()
			if hasPassword || u.Scheme == "http" || u.Scheme == "https" {
				l.problem("source.repo", "must not hold credentials (a user, password or token): give git its credentials through a credential helper, ~/.netrc or an SSH key")
				return false
			}
		}
		return true
	}
	if s.Ref != "" {
		l.problem("source.ref", "ref applies only to a git URL source; a local checkout is used as it is")
	}
	s.Repo = l.path(s.Repo)
	if fi, err := os.Stat(s.Repo); err != nil || !fi.IsDir() {
		l.problem("source.repo", fmt.Sprintf("%s is not a directory: name a local checkout, or a git URL", s.Repo))
		return false
	}
	return true
}

func (l *loader) staging(s *Staging) {
	const componentRule = `lowercase letters and digits, separated by ".", "_", "__" or "-"`
	if s.Registry == "" {
		l.problem("staging.registry", "required: the registry host[:port] that staging images are pushed to")
	} else if msg := hostProblem(s.Registry, "staging.namespace", "that staging images are pushed to"); msg != "" {
		l.problem("staging.registry", msg)
	}

	switch {
	case s.Namespace == "":
		l.problem("staging.namespace", `required: the repository path under the registry that staging images are pushed to, e.g. "ci/nightly"`)
	case !validNamespace(s.Namespace):
		l.problem("staging.namespace", fmt.Sprintf("%q is not a valid repository path: use %s, in components joined by \"/\"", s.Namespace, componentRule))
	}

	s.TagFormat = cmp.Or(s.TagFormat, DefaultTagFormat)
	if tag, err := RenderTag(s.TagFormat, sampleStart(), sampleCommit); err != nil {
		l.problem("staging.tag_format", err.Error())
	} else {
		// A tag that a later run renders again is pushed over: it would
		// not be immutable, and a run's images could no longer be named.
		// Runs of one commit any whole number of seconds, minutes, hours,
		// days, months or years apart must differ.
		start := sampleStart()
		for _, later := range []struct {
			at   time.Time
			what string
		}{
			{start.Add(time.Second), "a second"}, {start.Add(time.Minute), "a minute"},
			{start.Add(time.Hour), "an hour"}, {start.AddDate(0, 0, 1), "a day"},
			{start.AddDate(0, 1, 0), "a month"}, {start.AddDate(1, 0, 0), "a year"},
		} {
			if again, _ := RenderTag(s.TagFormat, later.at, sampleCommit); again == tag {
				l.problem("staging.tag_format", fmt.Sprintf(`renders %q for runs %s apart: every run needs a tag of its own; include the run's start to the second, e.g. {{ .Timestamp }} or {{ utc "20060102-150405" }}`, tag, later.what))
				break
			}
		}
	}

	if !l.has("staging.retry_budget") {
		s.RetryBudget.Duration = defaultRetryBudget
	} else if s.RetryBudget.Duration < 0 {
		l.problem("staging.retry_budget", `must not be negative: use "0s" to not retry, or e.g. "5m"`)
	}

	l.published(s)
	l.secret(s)
}

// hostProblem says what is wrong with registry, a registry host[:port]
// whose repository path belongs in the key namespaceKey; "" if nothing.
// what says what the registry is for.
func hostProblem(registry, namespaceKey, what string) string {
	hostOnly := "write only the host[:port] " + what
	switch {
	case strings.Contains(registry, "://"):
		scheme, _, _ := strings.Cut(registry, "://")
		return fmt.Sprintf("%q has a scheme: remove %q and %s", registry, scheme+"://", hostOnly)
	case strings.Contains(registry, "/"):
		host, rest, _ := strings.Cut(registry, "/")
		return fmt.Sprintf("%q has a path: write %q here and put %q in %s", registry, host, rest, namespaceKey)
	case !registryHost.MatchString(registry):
		return fmt.Sprintf("%q is not a host[:port]: %s", registry, hostOnly)
	}
	return ""
}

func validNamespace(ns string) bool {
	for c := range strings.SplitSeq(ns, "/") {
		if !nameComponent.MatchString(c) {
			return false
		}
	}
	return true
}

// secret reads the staging password. Messages never quote it: a password
// that shows up in a CI log is a leaked password.
func (l *loader) secret(s *Staging) {
	var unreadable bool
	s.Password, unreadable = l.readSecret("staging.password_file", &s.PasswordFile, EnvStagingPassword, "the staging registry password")
	switch {
	case s.Password != "" && s.Username == "":
		l.problem("staging.username", "a password is given (by password_file or $"+EnvStagingPassword+") but no user name: set staging.username")
	case s.Password == "" && s.Username != "" && !unreadable && !l.reported("staging.password"):
		l.problem("staging.username", "a user name is given but no password: name a file holding it with staging.password_file, or set $"+EnvStagingPassword)
	}
}

// readSecret reads a secret from the file named by the key fileKey (its
// path, *file, is resolved in place) or else from the environment variable
// env. It reports whether a named file could not be used, a problem that is
// then already reported.
func (l *loader) readSecret(fileKey string, file *string, env, what string) (secret Secret, unreadable bool) {
	if *file == "" {
		return Secret(os.Getenv(env)), false
	}
	*file = l.path(*file)
	b, err := os.ReadFile(*file)
	value := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case err != nil:
		l.problem(fileKey, fmt.Sprintf("cannot read %s: %v", what, err))
		return "", true
	case value == "":
		l.problem(fileKey, fmt.Sprintf("%s is empty: put %s in it", *file, what))
		return "", true
	}
	return Secret(value), false
}

func (l *loader) build(b *Build) {
	if !l.has("build.jobs") {
		b.Jobs = defaultJobs
	} else if b.Jobs < 1 {
		l.problem("build.jobs", fmt.Sprintf("must be at least 1, the number of images built at once (got %d)", b.Jobs))
	}
	if !l.has("build.timeout") {
		b.Timeout.Duration = defaultTimeout
	} else if b.Timeout.Duration <= 0 {
		l.problem("build.timeout", `must be positive, e.g. "2h"`)
	}
	if !l.has("build.retries") {
		b.Retries = defaultBuildRetries
	} else if b.Retries < 0 {
		l.problem("build.retries", fmt.Sprintf("must not be negative (got %d): 0 tries each build once", b.Retries))
	}
	if !l.has("build.retry_on") {
		b.RetryOn = DefaultRetryOn()
	}
	b.RetryPatterns = nil
	for i, expr := range b.RetryOn {
		re, err := regexp.Compile(expr)
		if err != nil {
			l.problem("build.retry_on", fmt.Sprintf("pattern %d, %q, is not a regular expression: %v", i+1, expr, err))
			continue
		}
		b.RetryPatterns = append(b.RetryPatterns, re)
	}
}

// defaultBuildRetries is how many more times a build that failed for a
// passing reason is tried.
const defaultBuildRetries = 1

// DefaultRetryOn are the passing failures of the usual package tools (apt,
// pip, conda, curl, wget): a name that did not resolve, a connection
// reset, refused or timed out, a server's 5xx, a mirror caught mid-sync.
func DefaultRetryOn() []string {
	return []string{
		`Temporary failure (resolving|in name resolution)`,
		`Could not resolve (host|proxy)`,
		`[Uu]nable to resolve host address`,
		`Name or service not known`,
		`[Cc]onnection (reset by peer|refused|timed out)`,
		`Read timed out|ReadTimeoutError|NewConnectionError|ProtocolError`,
		`CondaHTTPError: HTTP (5\d\d|000 CONNECTION FAILED)`,
		`returned error: 5\d\d|ERROR 5\d\d|HTTP Error 5\d\d|HTTP/[0-9.]+ 5\d\d`,
		// A base image's pull during the build (the engine's words).
		`unexpected HTTP status: 5\d\d|toomanyrequests`,
		// The same with BuildKit: Docker 20.10's, and containerd's resolver
		// in later ones.
		`failed with status code \[[^]]*\]: (5\d\d|429)|unexpected status from [A-Z]+ request to \S+: (5\d\d|429)`,
		`Hash Sum mismatch`,
	}
}

func (l *loader) store(s *Store) {
	s.Path = l.path(cmp.Or(s.Path, defaultStorePath))
	s.Logs = l.path(cmp.Or(s.Logs, defaultLogs))
}

func (l *loader) images(c *Config) {
	if len(c.Images) == 0 {
		l.problem("image", "required: at least one [[image]] table naming an image to build")
		return
	}
	tag, err := RenderTag(c.Staging.TagFormat, sampleStart(), sampleCommit)
	if err != nil {
		tag = "sample-tag" // the tag format's problem is reported on its own
	}
	first := map[string]int{} // image name -> index of the image that has it
	var names []string
	for i := range c.Images {
		img := &c.Images[i]
		key := fmt.Sprintf("image[%d]", i+1)
		img.Line = c.lines.line(key)

		switch {
		case img.Name == "":
			l.problem(key+".name", `required: the image's repository name under staging.namespace, e.g. "ci_base"`)
		case !nameComponent.MatchString(img.Name):
			l.problem(key+".name", fmt.Sprintf(`%q is not a valid image name: use lowercase letters and digits, separated by ".", "_", "__" or "-"`, img.Name))
		default:
			if j, ok := first[img.Name]; ok {
				l.problem(key+".name", fmt.Sprintf("%q is already the name of image[%d] (line %d): give each image its own name", img.Name, j+1, c.Images[j].Line))
			} else {
				first[img.Name] = i
				names = append(names, img.Name)
			}
		}

		switch {
		case img.Dockerfile == "":
			l.problem(key+".dockerfile", "required: the path of the image's Dockerfile in the source repository")
		case !inRepo(img.Dockerfile):
			l.problem(key+".dockerfile", fmt.Sprintf("%q is not inside the source repository: use a relative path without \"..\"", img.Dockerfile))
		case img.Context == "":
			img.Context = path.Dir(img.Dockerfile)
		}
		if img.Context != "" && !inRepo(img.Context) {
			l.problem(key+".context", fmt.Sprintf("%q is not inside the source repository: use a relative path without \"..\"", img.Context))
		}

		for j, f := range img.Tests {
			if !inRepo(f) {
				l.problem(key+".tests", fmt.Sprintf("test file %d, %q, is not inside the source repository: use a relative path without \"..\"", j+1, f))
			}
		}

		if img.Timeout.Duration < 0 {
			l.problem(key+".timeout", "must not be negative: leave it out to use build.timeout")
		}

		data := NewTemplateData(sampleStart(), sampleCommit)
		data.Tag, data.Name = tag, img.Name
		for _, arg := range slices.Sorted(maps.Keys(img.BuildArgs)) {
			if _, err := RenderArg(img.BuildArgs[arg], data); err != nil {
				l.problem(key+".build_args."+arg, err.Error())
			}
		}
	}
	l.dependencies(c, first, names)
}

// dependencies checks depends_on: every name must be another image of the
// config, and the images must not depend on each other in a cycle.
func (l *loader) dependencies(c *Config, first map[string]int, names []string) {
	edges := make([][]int, len(c.Images))
	for i, img := range c.Images {
		key := fmt.Sprintf("image[%d].depends_on", i+1)
		for _, dep := range img.DependsOn {
			j, ok := first[dep]
			switch {
			case img.Name != "" && dep == img.Name:
				l.problem(key, fmt.Sprintf("%q cannot depend on itself: remove it from depends_on", dep))
			case !ok:
				l.problem(key, fmt.Sprintf("%q names no image of this config (images: %s)", dep, strings.Join(names, ", ")))
			default:
				edges[i] = append(edges[i], j)
			}
		}
	}
	indexes := make([]int, len(c.Images))
	for i := range indexes {
		indexes[i] = i
	}
	for _, loop := range cycle.Find(indexes, func(i int) []int { return edges[i] }) {
		path := make([]string, len(loop))
		for k, i := range loop {
			path[k] = c.Images[i].Name
		}
		l.problem(fmt.Sprintf("image[%d].depends_on", loop[0]+1),
			fmt.Sprintf("depends_on makes a cycle: %s (remove one of these dependencies)", strings.Join(path, " -> ")))
	}
}

// inRepo reports whether p, a slash-separated path, stays inside the
// directory it is relative to.
func inRepo(p string) bool {
	return filepath.IsLocal(filepath.FromSlash(p))
}

// parent strips the last part of a dotted key: "image[2].name" ->
// "image[2]" -> "image" -> "".
func parent(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

// LoadStore reads only the [store] table of the file at path, with its
// defaults: commands that only read records (history, show) work even when
// the rest of the configuration is broken, which is when people need them.
func LoadStore(path string) (Store, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Store{}, Problems{{File: path, Msg: fmt.Sprintf("cannot read the config file: %v", err)}}
	}
	var doc struct {
		Store Store `toml:"store"`
	}
	if err := toml.Unmarshal(bytes.TrimPrefix(data, []byte("\ufeff")), &doc); err != nil {
		l := &loader{file: path}
		l.decodeError(err, nil)
		return Store{}, l.problems
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return Store{}, err
	}
	l := &loader{file: path, dir: abs}
	l.store(&doc.Store)
	return doc.Store, nil
}
