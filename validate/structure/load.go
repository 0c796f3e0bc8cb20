package structure

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"nightshift/problem"
)

// Load reads a test file in container-structure-test's schema 2.0.0, YAML
// or JSON (a name ending in ".json"). Missing names, commands and paths,
// invalid regular expressions and, in YAML, unknown keys are errors
// (a problem.List), found before any test runs. As container-structure-test
// does, a JSON file's unknown keys are ignored.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data)
}

func parse(name string, data []byte) (*File, error) {
	if strings.HasSuffix(name, ".json") {
		data = jsonForYAML(data)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, problem.List{syntaxProblem(name, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, problem.List{{File: name, Msg: fmt.Sprintf("empty test file: it needs at least schemaVersion: %q", SchemaVersion)}}
	}
	d := &decoder{file: name, ignoreUnknown: strings.HasSuffix(name, ".json")}
	f := d.root(doc.Content[0])
	f.Path = name
	if len(d.problems) > 0 {
		return nil, d.problems
	}
	return f, nil
}

// jsonForYAML rewrites JSON's one escape YAML lacks, "\/", as "/", so that
// the YAML parser reads any JSON file (with its lines kept).
func jsonForYAML(data []byte) []byte {
	out := make([]byte, 0, len(data))
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(data):
			if data[i+1] != '/' {
				out = append(out, c)
			}
			i++
			c = data[i]
		}
		out = append(out, c)
	}
	return out
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxProblem(file string, err error) problem.Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return problem.Problem{File: file, Line: line, Msg: m[2]}
	}
	return problem.Problem{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// decoder walks the YAML tree by hand: it knows every key of the schema,
// so that an unknown one and every invalid value is reported with its line.
type decoder struct {
	file     string
	problems problem.List
	// ignoreUnknown skips unknown keys, matches known ones in any case and
	// lets a key given twice take its later value, as container-structure-
	// test's JSON decoding (encoding/json) does; its YAML decoding is strict.
	ignoreUnknown bool
}

func (d *decoder) problem(n *yaml.Node, key, format string, args ...any) {
	d.problems = append(d.problems, problem.Problem{File: d.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// fields maps each key a mapping may hold to its decoder.
type fields map[string]func(n *yaml.Node, key string)

// mapping decodes the mapping n with fs and returns the key nodes it saw.
func (d *decoder) mapping(n *yaml.Node, key string, fs fields) map[string]*yaml.Node {
	n = resolve(n)
	seen := map[string]*yaml.Node{}
	if isNull(n) {
		return seen
	}
	if n.Kind != yaml.MappingNode {
		d.problem(n, key, "expected a mapping, got %s", kind(n))
		return seen
	}
	// name is the key of fs that the key at i stands for: the key itself,
	// or in JSON, like Go's encoding/json that the tool decodes JSON with,
	// the known key it equals in any case ("CommandTests" is commandTests).
	name := func(i int) string {
		k := n.Content[i].Value
		if _, ok := fs[k]; ok || !d.ignoreUnknown {
			return k
		}
		for known := range fs {
			if strings.EqualFold(known, k) {
				return known
			}
		}
		return k
	}
	last := map[string]int{} // in JSON a key given twice takes its later value
	for i := 0; i+1 < len(n.Content); i += 2 {
		last[name(i)] = i
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v, name := n.Content[i], n.Content[i+1], name(i)
		sub := join(key, name)
		decode, ok := fs[name]
		switch {
		case !ok && d.ignoreUnknown:
		case !ok:
			d.problem(k, sub, "unknown key (known here: %s)", strings.Join(slices.Sorted(maps.Keys(fs)), ", "))
		case d.ignoreUnknown && last[name] != i:
		case seen[name] != nil:
			d.problem(k, sub, "given twice (also on line %d)", seen[name].Line)
		default:
			seen[name] = k
			decode(v, sub)
		}
	}
	return seen
}

// required reports key as missing or empty, at its line if it was given
// and at the mapping's otherwise; not again if its value was found wrong.
func (d *decoder) required(m *yaml.Node, seen map[string]*yaml.Node, parent, key string) {
	full := join(parent, key)
	for _, p := range d.problems {
		if p.Key == full {
			return
		}
	}
	at := m
	if k := seen[key]; k != nil {
		at = k
	}
	d.problem(at, full, "required")
}

// each decodes every item of the sequence n.
func (d *decoder) each(n *yaml.Node, key string, item func(n *yaml.Node, key string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(n, key, "expected a list, got %s", kind(n))
		return
	}
	for i, c := range n.Content {
		item(c, fmt.Sprintf("%s[%d]", key, i+1))
	}
}

// str decodes any scalar as its text, as container-structure-test's YAML
// library does for string fields (so `value: 17` is "17").
func (d *decoder) str(n *yaml.Node, key string) string {
	n = resolve(n)
	switch {
	case isNull(n):
		return ""
	case n.Kind != yaml.ScalarNode:
		d.problem(n, key, "expected a string, got %s", kind(n))
		return ""
	}
	return n.Value
}

func (d *decoder) strs(n *yaml.Node, key string) []string {
	var out []string
	d.each(n, key, func(n *yaml.Node, key string) { out = append(out, d.str(n, key)) })
	return out
}

// strList is strs that tells an absent or null list (nil) from an empty
// one.
func (d *decoder) strList(n *yaml.Node, key string) *[]string {
	if isNull(resolve(n)) {
		return nil
	}
	out := d.strs(n, key)
	if out == nil {
		out = []string{}
	}
	return &out
}

func (d *decoder) patterns(n *yaml.Node, key string) []string {
	var out []string
	d.each(n, key, func(n *yaml.Node, key string) {
		s := d.str(n, key)
		if _, err := regexp.Compile(s); err != nil {
			d.problem(n, key, "invalid regular expression: %v", err)
		}
		out = append(out, s)
	})
	return out
}

// boolean accepts YAML 1.1's forms too (yes, no, on, off), as
// container-structure-test does.
func (d *decoder) boolean(n *yaml.Node, key string) bool {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON":
			return true
		case "false", "False", "FALSE", "n", "N", "no", "No", "NO", "off", "Off", "OFF":
			return false
		}
	}
	d.problem(n, key, "expected true or false, got %s", kind(n))
	return false
}

func (d *decoder) integer(n *yaml.Node, key string) int {
	n = resolve(n)
	var i int
	if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
		d.problem(n, key, "expected an integer, got %s", kind(n))
	}
	return i
}

// keyValues decodes a list of {key, value, isRegex}; value is required
// when needValue, and must be a valid regular expression when isRegex.
func (d *decoder) keyValues(n *yaml.Node, key string, needValue bool) []KeyValue {
	var out []KeyValue
	d.each(n, key, func(n *yaml.Node, key string) {
		var kv KeyValue
		seen := d.mapping(n, key, fields{
			"key":     func(n *yaml.Node, key string) { kv.Key = d.str(n, key) },
			"value":   func(n *yaml.Node, key string) { kv.Value = d.str(n, key) },
			"isRegex": func(n *yaml.Node, key string) { kv.IsRegex = d.boolean(n, key) },
		})
		if kv.Key == "" {
			d.required(n, seen, key, "key")
		}
		if needValue && kv.Value == "" {
			d.required(n, seen, key, "value")
		}
		if kv.IsRegex {
			if _, err := regexp.Compile(kv.Value); err != nil {
				d.problem(n, join(key, "value"), "invalid regular expression: %v", err)
			}
		}
		out = append(out, kv)
	})
	return out
}

func (d *decoder) root(n *yaml.Node) *File {
	f := &File{}
	seen := d.mapping(n, "", fields{
		"schemaVersion": func(n *yaml.Node, key string) { f.SchemaVersion = d.str(n, key) },
		"globalEnvVars": func(n *yaml.Node, key string) { f.GlobalEnvVars = d.keyValues(n, key, false) },
		"commandTests": func(n *yaml.Node, key string) {
			d.each(n, key, func(n *yaml.Node, key string) { f.CommandTests = append(f.CommandTests, d.commandTest(n, key)) })
		},
		"fileExistenceTests": func(n *yaml.Node, key string) {
			d.each(n, key, func(n *yaml.Node, key string) {
				f.FileExistenceTests = append(f.FileExistenceTests, d.existenceTest(n, key))
			})
		},
		"fileContentTests": func(n *yaml.Node, key string) {
			d.each(n, key, func(n *yaml.Node, key string) { f.FileContentTests = append(f.FileContentTests, d.contentTest(n, key)) })
		},
		"metadataTest": func(n *yaml.Node, key string) { f.MetadataTest = d.metadataTest(n, key) },
		"licenseTests": func(n *yaml.Node, key string) {
			d.each(n, key, func(n *yaml.Node, key string) { f.LicenseTests = append(f.LicenseTests, d.licenseTest(n, key)) })
		},
		"containerRunOptions": func(n *yaml.Node, key string) { f.RunOptions = d.runOptions(n, key) },
	})
	switch {
	case f.SchemaVersion == "":
		d.required(n, seen, "", "schemaVersion")
	case f.SchemaVersion != SchemaVersion:
		d.problem(seen["schemaVersion"], "schemaVersion", "%q is not supported: nightshift reads schema %q", f.SchemaVersion, SchemaVersion)
	}
	return f
}

func (d *decoder) commandTest(n *yaml.Node, key string) CommandTest {
	var t CommandTest
	commands := func(n *yaml.Node, key string) [][]string {
		var out [][]string
		d.each(n, key, func(n *yaml.Node, key string) {
			c := d.strs(n, key)
			if len(c) == 0 {
				d.problem(n, key, "empty command: give it as a list, e.g. [\"sh\", \"-c\", \"...\"]")
			}
			out = append(out, c)
		})
		return out
	}
	seen := d.mapping(n, key, fields{
		"name":           func(n *yaml.Node, key string) { t.Name = d.str(n, key) },
		"setup":          func(n *yaml.Node, key string) { t.Setup = commands(n, key) },
		"teardown":       func(n *yaml.Node, key string) { t.Teardown = commands(n, key) },
		"envVars":        func(n *yaml.Node, key string) { t.EnvVars = d.keyValues(n, key, true) },
		"exitCode":       func(n *yaml.Node, key string) { t.ExitCode = d.integer(n, key) },
		"command":        func(n *yaml.Node, key string) { t.Command = d.str(n, key) },
		"args":           func(n *yaml.Node, key string) { t.Args = d.strs(n, key) },
		"expectedOutput": func(n *yaml.Node, key string) { t.ExpectedOutput = d.patterns(n, key) },
		"excludedOutput": func(n *yaml.Node, key string) { t.ExcludedOutput = d.patterns(n, key) },
		"expectedError":  func(n *yaml.Node, key string) { t.ExpectedError = d.patterns(n, key) },
		"excludedError":  func(n *yaml.Node, key string) { t.ExcludedError = d.patterns(n, key) },
		"network":        func(n *yaml.Node, key string) { t.Network = d.boolean(n, key) },
		"timeout": func(n *yaml.Node, key string) {
			s := d.str(n, key)
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				d.problem(n, key, "expected a positive duration such as \"90s\" or \"5m\", got %q", s)
			}
			t.Timeout = v
		},
	})
	if t.Name == "" {
		d.required(n, seen, key, "name")
	}
	if t.Command == "" {
		d.required(n, seen, key, "command")
	}
	return t
}

func (d *decoder) existenceTest(n *yaml.Node, key string) FileExistenceTest {
	t := FileExistenceTest{ShouldExist: true, UID: Unset, GID: Unset}
	owner := func(n *yaml.Node, key string) int {
		id := d.integer(n, key)
		if id < Unset {
			d.problem(n, key, "expected a numeric ID (or -1 for any), got %d", id)
		}
		return id
	}
	seen := d.mapping(n, key, fields{
		"name":        func(n *yaml.Node, key string) { t.Name = d.str(n, key) },
		"path":        func(n *yaml.Node, key string) { t.Path = d.str(n, key) },
		"shouldExist": func(n *yaml.Node, key string) { t.ShouldExist = d.boolean(n, key) },
		"uid":         func(n *yaml.Node, key string) { t.UID = owner(n, key) },
		"gid":         func(n *yaml.Node, key string) { t.GID = owner(n, key) },
		// Any string, as container-structure-test takes it: one not in
		// Go's form fails at run time, with a hint (checkExistence).
		"permissions": func(n *yaml.Node, key string) { t.Permissions = d.str(n, key) },
		"isExecutableBy": func(n *yaml.Node, key string) {
			t.IsExecutableBy = d.str(n, key)
			switch t.IsExecutableBy {
			case "", "any", "owner", "group", "other":
			default:
				d.problem(n, key, "%q: expected any, owner, group or other", t.IsExecutableBy)
			}
		},
	})
	if t.Name == "" {
		d.required(n, seen, key, "name")
	}
	if t.Path == "" {
		d.required(n, seen, key, "path")
	}
	return t
}

func (d *decoder) contentTest(n *yaml.Node, key string) FileContentTest {
	var t FileContentTest
	seen := d.mapping(n, key, fields{
		"name":             func(n *yaml.Node, key string) { t.Name = d.str(n, key) },
		"path":             func(n *yaml.Node, key string) { t.Path = d.str(n, key) },
		"expectedContents": func(n *yaml.Node, key string) { t.ExpectedContents = d.patterns(n, key) },
		"excludedContents": func(n *yaml.Node, key string) { t.ExcludedContents = d.patterns(n, key) },
	})
	if t.Name == "" {
		d.required(n, seen, key, "name")
	}
	if t.Path == "" {
		d.required(n, seen, key, "path")
	}
	return t
}

func (d *decoder) metadataTest(n *yaml.Node, key string) MetadataTest {
	var t MetadataTest
	nonEmpty := func(what string) func(n *yaml.Node, key string) []string {
		return func(n *yaml.Node, key string) []string {
			var out []string
			d.each(n, key, func(n *yaml.Node, key string) {
				s := d.str(n, key)
				if s == "" {
					d.problem(n, key, "empty %s", what)
				}
				out = append(out, s)
			})
			return out
		}
	}
	ports, volumes := nonEmpty("port"), nonEmpty("volume")
	env := func(n *yaml.Node, key string) { t.EnvVars = d.keyValues(n, key, false) }
	unbound := func(n *yaml.Node, key string) { t.UnboundEnvVars = d.keyValues(n, key, false) }
	// "env" and "unboundEnv" are container-structure-test's keys; the
	// spellings of commandTests and globalEnvVars are taken too.
	seen := d.mapping(n, key, fields{
		"env":              env,
		"envVars":          env,
		"unboundEnv":       unbound,
		"unboundEnvVars":   unbound,
		"labels":           func(n *yaml.Node, key string) { t.Labels = d.keyValues(n, key, false) },
		"entrypoint":       func(n *yaml.Node, key string) { t.Entrypoint = d.strList(n, key) },
		"cmd":              func(n *yaml.Node, key string) { t.Cmd = d.strList(n, key) },
		"workdir":          func(n *yaml.Node, key string) { t.Workdir = d.str(n, key) },
		"user":             func(n *yaml.Node, key string) { t.User = d.str(n, key) },
		"exposedPorts":     func(n *yaml.Node, key string) { t.ExposedPorts = ports(n, key) },
		"unexposedPorts":   func(n *yaml.Node, key string) { t.UnexposedPorts = ports(n, key) },
		"volumes":          func(n *yaml.Node, key string) { t.Volumes = volumes(n, key) },
		"unmountedVolumes": func(n *yaml.Node, key string) { t.UnmountedVolumes = volumes(n, key) },
	})
	for _, pair := range [][2]string{{"env", "envVars"}, {"unboundEnv", "unboundEnvVars"}} {
		if a, b := seen[pair[0]], seen[pair[1]]; a != nil && b != nil {
			d.problem(b, join(key, pair[1]), "the same list as %s (line %d): give one of them", pair[0], a.Line)
		}
	}
	return t
}

func (d *decoder) licenseTest(n *yaml.Node, key string) LicenseTest {
	var t LicenseTest
	d.mapping(n, key, fields{
		"debian": func(n *yaml.Node, key string) { t.Debian = d.boolean(n, key) },
		"files":  func(n *yaml.Node, key string) { t.Files = d.strs(n, key) },
	})
	return t
}

func (d *decoder) runOptions(n *yaml.Node, key string) RunOptions {
	var o RunOptions
	d.mapping(n, key, fields{
		"user":         func(n *yaml.Node, key string) { o.User = d.str(n, key) },
		"privileged":   func(n *yaml.Node, key string) { o.Privileged = d.boolean(n, key) },
		"allocateTty":  func(n *yaml.Node, key string) { o.AllocateTTY = d.boolean(n, key) },
		"envVars":      func(n *yaml.Node, key string) { o.EnvVars = d.strs(n, key) },
		"envFile":      func(n *yaml.Node, key string) { o.EnvFile = d.str(n, key) },
		"capabilities": func(n *yaml.Node, key string) { o.Capabilities = d.strs(n, key) },
		"bindMounts":   func(n *yaml.Node, key string) { o.BindMounts = d.strs(n, key) },
	})
	return o
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}
