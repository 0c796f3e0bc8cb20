package structure

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"nightshift/problem"
)

// Load reads a test file as container-structure-test v1.22 reads it: YAML
// (a name ending in ".yaml" or ".yml") or JSON (".json"), in its schema
// "2.0.0" or "1.0.0". What it refuses, Load refuses, and more: missing
// names, commands and paths, invalid regular expressions and the other
// cases the README lists are problems too (a problem.List), found before
// any test runs. As the tool does, unknown keys are problems in YAML and
// ignored in JSON.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data)
}

func parse(name string, data []byte) (*File, error) {
	d := &decoder{file: name}
	var doc *yaml.Node
	switch {
	case strings.HasSuffix(name, ".json"):
		d.json = true
		root, line, err := jsonTree(data)
		if err != nil {
			return nil, problem.List{{File: name, Line: line, Msg: "invalid JSON: " + err.Error()}}
		}
		if root != nil {
			doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
		}
	case strings.HasSuffix(name, ".yaml"), strings.HasSuffix(name, ".yml"):
		doc = &yaml.Node{}
		if err := yaml.Unmarshal(data, doc); err != nil {
			return nil, problem.List{syntaxProblem(name, err)}
		}
	default:
		return nil, problem.List{{File: name, Msg: `not a test file: container-structure-test reads only names ending in ".yaml", ".yml" (YAML) or ".json" (JSON)`}}
	}
	if doc == nil || doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, problem.List{{File: name, Msg: fmt.Sprintf("empty test file: it needs at least schemaVersion: %q", SchemaVersion)}}
	}
	f := d.root(doc.Content[0])
	f.Path = name
	if len(d.problems) > 0 {
		return nil, d.problems
	}
	return f, nil
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

// decoder walks the node tree by hand: it knows every key of the schema,
// so that an unknown one and every invalid value is reported with its
// line. It reads each value as the library container-structure-test
// decodes that format with: gopkg.in/yaml.v2 (strict) or encoding/json.
type decoder struct {
	file     string
	problems problem.List
	// json applies encoding/json's rules: unknown keys are skipped, known
	// ones match in any case, a key given twice takes its later value, a
	// scalar must be of its field's JSON type, and nothing has a default
	// (but what existenceTest says of a file existence test).
	json bool
	// v1 is the file's schema "1.0.0".
	v1 bool
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
	switch {
	case isNull(n):
	case n.Kind != yaml.MappingNode:
		d.problem(n, key, "expected a mapping, got %s", kind(n))
	default:
		d.pairs(n, key, fs, seen)
	}
	return seen
}

// pairs decodes the pairs of the mapping n in order, as yaml.v2 does: a
// merge key ("<<: *defaults") decodes the mapping it names in its place,
// so that a key after it overrides what it sets, and one before it is
// overridden (where YAML's spec would keep the latter).
func (d *decoder) pairs(n *yaml.Node, key string, fs fields, seen map[string]*yaml.Node) {
	// name is the key of fs that the key k stands for: k itself, or in
	// JSON, as encoding/json matches, the known key it equals in any case
	// ("CommandTests" is commandTests).
	name := func(k string) string {
		if _, ok := fs[k]; ok || !d.json {
			return k
		}
		for known := range fs {
			if strings.EqualFold(known, k) {
				return known
			}
		}
		return k
	}
	given := map[string]*yaml.Node{} // keys of this mapping itself
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.json && k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			d.merge(v, key, fs, seen)
			continue
		}
		name := name(k.Value)
		sub := join(key, name)
		decode, ok := fs[name]
		switch {
		case !ok && d.json:
		case !ok:
			d.problem(k, sub, "unknown key (known here: %s)", strings.Join(slices.Sorted(maps.Keys(fs)), ", "))
		case !d.json && given[name] != nil:
			d.problem(k, sub, "given twice (also on line %d)", given[name].Line)
		default:
			given[name], seen[name] = k, k
			decode(v, sub)
		}
	}
}

// merge decodes the value of a merge key: a mapping, or a list of them of
// which, as in yaml.v2, an earlier one wins over a later one.
func (d *decoder) merge(v *yaml.Node, key string, fs fields, seen map[string]*yaml.Node) {
	v = resolve(v)
	maps := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		maps = slices.Clone(v.Content)
		slices.Reverse(maps)
	}
	for _, m := range maps {
		if m := resolve(m); m.Kind == yaml.MappingNode {
			d.pairs(m, key, fs, seen)
			continue
		}
		d.problem(m, join(key, "<<"), "a merge key takes a mapping (*name of an anchored one) or a list of them, got %s", kind(resolve(m)))
	}
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

// str decodes a string. In YAML any scalar is read as its text, as
// yaml.v2 reads it into a string (so `value: 17` is "17"); in JSON it must
// be a string. Null is "".
func (d *decoder) str(n *yaml.Node, key string) string {
	n = resolve(n)
	switch {
	case isNull(n):
		return ""
	case n.Kind != yaml.ScalarNode || d.json && n.Tag != "!!str":
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

// yaml11Bool is what yaml.v2 reads as a boolean: YAML 1.1's words.
var yaml11Bool = map[string]bool{
	"true": true, "True": true, "TRUE": true, "y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"false": false, "False": false, "FALSE": false, "n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// boolean decodes a boolean: in YAML a plain (or !!bool) scalar of YAML
// 1.1's words (yes, no, on, off too), in JSON true or false. A quoted
// "false" is refused, as the tool refuses it, never read as either.
// Null is false.
func (d *decoder) boolean(n *yaml.Node, key string) bool {
	n = resolve(n)
	if isNull(n) {
		return false
	}
	if n.Kind == yaml.ScalarNode {
		v, word := yaml11Bool[n.Value]
		switch {
		case d.json && n.Tag == "!!bool":
			return n.Value == "true"
		case d.json:
		case word && (tagged(n) && n.ShortTag() == "!!bool" || !tagged(n) && !quoted(n)):
			return v
		}
		if word && quoted(n) && !tagged(n) {
			d.problem(n, key, "expected true or false, got the string %q: write it without quotes", n.Value)
			return false
		}
	}
	d.problem(n, key, "expected true or false, got %s", kind(n))
	return false
}

// integer decodes a whole number. In YAML, as yaml.v2 reads an int, any
// plain (or !!int) number: 0x1F, 0o17, 1_000, 1.0; but not 1.5, which
// yaml.v2 would cut to 1, nor a quoted "1". In JSON an integer as written
// (not 1.0). Null is 0.
func (d *decoder) integer(n *yaml.Node, key string) int {
	n = resolve(n)
	var i int
	var err error
	switch {
	case isNull(n):
		return 0
	case n.Kind != yaml.ScalarNode:
		err = errors.New("not a scalar")
	case d.json && n.Tag != "!!int":
		err = errors.New("not an integer")
	case d.json:
		i, err = strconv.Atoi(n.Value)
	default:
		var f float64
		if err = n.Decode(&i); err == nil && n.ShortTag() == "!!float" && (n.Decode(&f) != nil || f != math.Trunc(f)) {
			err = errors.New("a fraction")
		}
	}
	if err != nil {
		d.problem(n, key, "expected a whole number, got %s", kind(n))
	}
	return i
}

// keyValues decodes a list of {key, value, isRegex}; key is required when
// needKey, value when needValue, and value must be a valid regular
// expression when isRegex.
func (d *decoder) keyValues(n *yaml.Node, key string, needKey, needValue bool) []KeyValue {
	var out []KeyValue
	d.each(n, key, func(n *yaml.Node, key string) {
		var kv KeyValue
		seen := d.mapping(n, key, fields{
			"key":     func(n *yaml.Node, key string) { kv.Key = d.str(n, key) },
			"value":   func(n *yaml.Node, key string) { kv.Value = d.str(n, key) },
			"isRegex": func(n *yaml.Node, key string) { kv.IsRegex = d.boolean(n, key) },
		})
		if needKey && kv.Key == "" {
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
	// The values of the top-level keys are kept, in order, and decoded once
	// the schema version is known: it says which keys there are.
	type value struct {
		name string
		v    *yaml.Node
	}
	var values []value
	top := fields{}
	for _, name := range []string{"schemaVersion", "globalEnvVars", "commandTests", "fileExistenceTests", "fileContentTests", "metadataTest", "licenseTests", "containerRunOptions"} {
		top[name] = func(v *yaml.Node, _ string) { values = append(values, value{name, v}) }
	}
	seen := d.mapping(n, "", top)
	for _, v := range values {
		if v.name == "schemaVersion" {
			f.SchemaVersion = d.str(v.v, v.name)
		}
	}
	d.v1 = f.SchemaVersion == schemaV1

	// Lists are replaced and structs decoded into, as both libraries do
	// with a key given twice (in JSON, or through merge keys).
	fs := fields{
		"schemaVersion": func(*yaml.Node, string) {},
		"globalEnvVars": func(n *yaml.Node, key string) { f.GlobalEnvVars = d.keyValues(n, key, true, false) },
		"commandTests": func(n *yaml.Node, key string) {
			f.CommandTests = nil
			d.each(n, key, func(n *yaml.Node, key string) { f.CommandTests = append(f.CommandTests, d.commandTest(n, key)) })
		},
		"fileExistenceTests": func(n *yaml.Node, key string) {
			f.FileExistenceTests = nil
			d.each(n, key, func(n *yaml.Node, key string) {
				f.FileExistenceTests = append(f.FileExistenceTests, d.existenceTest(n, key))
			})
		},
		"fileContentTests": func(n *yaml.Node, key string) {
			f.FileContentTests = nil
			d.each(n, key, func(n *yaml.Node, key string) { f.FileContentTests = append(f.FileContentTests, d.contentTest(n, key)) })
		},
		"licenseTests": func(n *yaml.Node, key string) {
			f.LicenseTests = nil
			d.each(n, key, func(n *yaml.Node, key string) { f.LicenseTests = append(f.LicenseTests, d.licenseTest(n, key)) })
		},
	}
	if !d.v1 {
		fs["metadataTest"] = func(n *yaml.Node, key string) { d.metadataTest(n, key, &f.MetadataTest) }
		fs["containerRunOptions"] = func(n *yaml.Node, key string) { d.runOptions(n, key, &f.RunOptions) }
	}
	for _, v := range values {
		switch decode, ok := fs[v.name]; {
		case ok:
			decode(v.v, v.name)
		case !d.json: // a key of schema 2.0.0 only
			d.problem(seen[v.name], v.name, "unknown key in schema %q (known here: %s)", schemaV1, strings.Join(slices.Sorted(maps.Keys(fs)), ", "))
		}
	}

	switch f.SchemaVersion {
	case SchemaVersion, schemaV1:
	case "":
		d.required(n, seen, "", "schemaVersion")
	default:
		d.problem(seen["schemaVersion"], "schemaVersion", "%q is not a schema container-structure-test knows: %q, or the older %q", f.SchemaVersion, SchemaVersion, schemaV1)
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
	fs := fields{
		"name":           func(n *yaml.Node, key string) { t.Name = d.str(n, key) },
		"setup":          func(n *yaml.Node, key string) { t.Setup = commands(n, key) },
		"teardown":       func(n *yaml.Node, key string) { t.Teardown = commands(n, key) },
		"envVars":        func(n *yaml.Node, key string) { t.EnvVars = d.keyValues(n, key, true, true) },
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
	}
	if d.v1 {
		// Schema 1.0.0: the command is a list, program and arguments.
		fs["args"] = func(n *yaml.Node, key string) {
			d.problem(n, key, "schema 1.0.0 has no args: its command is one list, e.g. command: [\"echo\", \"x\"]")
		}
		if d.json {
			delete(fs, "args") // ignored, as any unknown key
		}
		fs["command"] = func(n *yaml.Node, key string) {
			t.Command, t.Args = "", nil
			if c := d.strs(n, key); len(c) > 0 {
				t.Command, t.Args = c[0], c[1:]
			}
		}
	}
	seen := d.mapping(n, key, fs)
	if t.Name == "" {
		d.required(n, seen, key, "name")
	}
	if t.Command == "" {
		d.required(n, seen, key, "command")
	}
	return t
}

func (d *decoder) existenceTest(n *yaml.Node, key string) FileExistenceTest {
	// In YAML the tool's defaults: the file should exist, owners are not
	// checked. encoding/json knows no defaults: see the README for what
	// nightshift makes of a JSON test without them.
	t := FileExistenceTest{ShouldExist: true, UID: Unset, GID: Unset}
	owner := func(n *yaml.Node, key string) int {
		if d.json && isNull(resolve(n)) {
			return Unset
		}
		return d.integer(n, key)
	}
	shouldExist := false // given, and not null
	fs := fields{
		"name": func(n *yaml.Node, key string) { t.Name = d.str(n, key) },
		"path": func(n *yaml.Node, key string) { t.Path = d.str(n, key) },
		"shouldExist": func(n *yaml.Node, key string) {
			shouldExist = !isNull(resolve(n))
			t.ShouldExist = d.boolean(n, key)
		},
		// Any string, as container-structure-test takes it: one not in
		// Go's form fails at run time, with a hint (checkExistence).
		"permissions": func(n *yaml.Node, key string) { t.Permissions = d.str(n, key) },
		"uid":         func(n *yaml.Node, key string) { t.UID = owner(n, key) },
		"gid":         func(n *yaml.Node, key string) { t.GID = owner(n, key) },
		"isExecutableBy": func(n *yaml.Node, key string) {
			t.IsExecutableBy = d.str(n, key)
			switch t.IsExecutableBy {
			case "", "any", "owner", "group", "other":
			default:
				d.problem(n, key, "%q: expected any, owner, group or other", t.IsExecutableBy)
			}
		},
	}
	if d.v1 {
		delete(fs, "uid")
		delete(fs, "gid")
		delete(fs, "isExecutableBy")
	}
	seen := d.mapping(n, key, fs)
	if t.Name == "" {
		d.required(n, seen, key, "name")
	}
	if t.Path == "" {
		d.required(n, seen, key, "path")
	}
	if d.json && !shouldExist {
		at := n
		if k := seen["shouldExist"]; k != nil {
			at = k
		}
		d.problem(at, join(key, "shouldExist"), "required in a JSON file, true or false: container-structure-test reads a JSON test without it as false, and a YAML one as true")
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

// metadataTest decodes into t. Empty keys, ports and volumes are not
// problems here: as in the tool, they fail the test (checkMetadata).
func (d *decoder) metadataTest(n *yaml.Node, key string, t *MetadataTest) {
	env := func(n *yaml.Node, key string) { t.EnvVars = d.keyValues(n, key, false, false) }
	unbound := func(n *yaml.Node, key string) { t.UnboundEnvVars = d.keyValues(n, key, false, false) }
	// "env" and "unboundEnv" are the names these had before
	// container-structure-test v1.13; nightshift takes them too.
	seen := d.mapping(n, key, fields{
		"env":              env,
		"envVars":          env,
		"unboundEnv":       unbound,
		"unboundEnvVars":   unbound,
		"labels":           func(n *yaml.Node, key string) { t.Labels = d.keyValues(n, key, false, false) },
		"entrypoint":       func(n *yaml.Node, key string) { t.Entrypoint = d.strList(n, key) },
		"cmd":              func(n *yaml.Node, key string) { t.Cmd = d.strList(n, key) },
		"workdir":          func(n *yaml.Node, key string) { t.Workdir = d.str(n, key) },
		"user":             func(n *yaml.Node, key string) { t.User = d.str(n, key) },
		"exposedPorts":     func(n *yaml.Node, key string) { t.ExposedPorts = d.strs(n, key) },
		"unexposedPorts":   func(n *yaml.Node, key string) { t.UnexposedPorts = d.strs(n, key) },
		"volumes":          func(n *yaml.Node, key string) { t.Volumes = d.strs(n, key) },
		"unmountedVolumes": func(n *yaml.Node, key string) { t.UnmountedVolumes = d.strs(n, key) },
	})
	for _, pair := range [][2]string{{"env", "envVars"}, {"unboundEnv", "unboundEnvVars"}} {
		if a, b := seen[pair[0]], seen[pair[1]]; a != nil && b != nil {
			d.problem(b, join(key, pair[1]), "the same list as %s (line %d): give one of them", pair[0], a.Line)
		}
	}
}

func (d *decoder) licenseTest(n *yaml.Node, key string) LicenseTest {
	var t LicenseTest
	d.mapping(n, key, fields{
		"debian": func(n *yaml.Node, key string) { t.Debian = d.boolean(n, key) },
		"files":  func(n *yaml.Node, key string) { t.Files = d.strs(n, key) },
	})
	return t
}

// runOptions decodes into o.
func (d *decoder) runOptions(n *yaml.Node, key string, o *RunOptions) {
	// In JSON the tool's key for allocateTty is its Go field's name, TTY.
	tty := "allocateTty"
	if d.json {
		tty = "tty"
	}
	d.mapping(n, key, fields{
		"user":         func(n *yaml.Node, key string) { o.User = d.str(n, key) },
		"privileged":   func(n *yaml.Node, key string) { o.Privileged = d.boolean(n, key) },
		tty:            func(n *yaml.Node, key string) { o.AllocateTTY = d.boolean(n, key) },
		"envVars":      func(n *yaml.Node, key string) { o.EnvVars = d.strs(n, key) },
		"envFile":      func(n *yaml.Node, key string) { o.EnvFile = d.str(n, key) },
		"capabilities": func(n *yaml.Node, key string) { o.Capabilities = d.strs(n, key) },
		"bindMounts":   func(n *yaml.Node, key string) { o.BindMounts = d.strs(n, key) },
	})
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

// tagged reports whether the scalar n has an explicit tag (!!bool "true").
func tagged(n *yaml.Node) bool { return n.Style&yaml.TaggedStyle != 0 }

// quoted reports whether the scalar n was written in quotes or as a block.
func quoted(n *yaml.Node) bool {
	return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
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
		switch {
		case quoted(n):
			return fmt.Sprintf("the string %q", n.Value)
		case n.ShortTag() == "!!str":
			return fmt.Sprintf("%q", n.Value)
		}
		return n.Value // a number or a boolean, as written
	}
	return "something else"
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}
