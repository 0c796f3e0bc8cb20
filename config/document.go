package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"
)

// document is what one walk over the TOML syntax tree learns: the line of
// every key, and the values whose type does not fit Config. The decoder stops
// at the first such value, so they are checked here, reported together and
// blanked out before decoding.
type document struct {
	data     []byte
	newlines []int            // offsets of '\n', to turn offsets into lines
	lines    keyLines         // dotted key -> line of the key or header
	arrays   map[string][]int // "image" -> lines of its [[image]] headers
	problems []Problem        // File is filled in by the loader
	blank    []span           // byte ranges to erase before decoding
	dropped  map[string]bool  // keys whose values were erased
	// unknown keys by the offset of the key-value holding them: the
	// decoder reports keys in inline tables without the keys around them.
	unknown map[int]string
}

type span struct{ from, to int }

var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[Duration]()
)

// walk reads data, which must already be known to be valid TOML.
func walk(data []byte) (*document, error) {
	d := &document{
		data:    data,
		lines:   keyLines{},
		arrays:  map[string][]int{},
		dropped: map[string]bool{},
		unknown: map[int]string{},
	}
	for i, c := range data {
		if c == '\n' {
			d.newlines = append(d.newlines, i)
		}
	}

	var p unstable.Parser
	p.Reset(data)
	tableType, tableKey := configType, ""
	badFrom := -1 // start of a table section whose header does not fit
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, first := keyOf(e)
			line := d.line(first)
			if badFrom >= 0 {
				d.blank = append(d.blank, span{badFrom, d.lineStart(line)})
				badFrom = -1
			}
			tableKey = d.dotted(parts, line)
			tableType = d.header(e.Kind, parts, tableKey, line)
			switch {
			case tableType == nil && d.dropped[tableKey]:
				badFrom = d.lineStart(line)
			case tableType != nil && e.Kind == unstable.ArrayTable:
				path := strings.Join(parts, ".")
				d.arrays[path] = append(d.arrays[path], line)
				tableKey = d.dotted(parts, line) // now with this element's index
			}
			d.lines[tableKey] = line
		case unstable.KeyValue:
			if tableType == nil {
				continue // unknown or erased table; its keys are reported as a whole
			}
			parts, first := keyOf(e)
			key, msg := d.check(tableType, tableKey, parts, first, e.Value())
			if msg != "" {
				d.problems = append(d.problems, Problem{Line: d.lines.line(key), Key: key, Msg: msg})
				d.blank = append(d.blank, span{int(e.Raw.Offset), int(e.Raw.Offset + e.Raw.Length)})
				d.dropped[join(tableKey, parts[0])] = true
			}
		}
	}
	if badFrom >= 0 {
		d.blank = append(d.blank, span{badFrom, len(data)})
	}
	return d, p.Error()
}

// header checks that a [table] or [[array]] header names something that
// holds a table, and returns the type of that table: nil when the header is
// unknown (strict decoding reports it) or does not fit (reported here).
func (d *document) header(kind unstable.Kind, parts []string, key string, line int) reflect.Type {
	t := configType
	for i, part := range parts {
		if isTableArray(t) {
			t = t.Elem()
		}
		if !isTable(t) {
			d.misfit(d.dotted(parts[:i], line), line, t, "a table")
			d.dropped[key] = true
			return nil
		}
		if t = child(t, part); t == nil {
			return nil
		}
	}
	switch {
	case kind == unstable.ArrayTable && !isTableArray(t):
		d.misfit(key, line, t, "an array of tables")
	case kind == unstable.Table && isTableArray(t):
		d.problems = append(d.problems, Problem{Line: line, Key: key,
			Msg: fmt.Sprintf("expected an array of tables: write [[%s]]", strings.Join(parts, "."))})
	case kind == unstable.Table && !isTable(t):
		d.misfit(key, line, t, "a table")
	default:
		if isTableArray(t) {
			return t.Elem()
		}
		return t
	}
	d.dropped[key] = true
	return nil
}

func (d *document) misfit(key string, line int, want reflect.Type, got string) {
	d.problems = append(d.problems, Problem{Line: line, Key: key,
		Msg: fmt.Sprintf("expected %s, got %s", describe(want), got)})
}

// check follows the key parts from a value of type t at key and checks that
// the value fits what they lead to. It records the line of every key it
// passes and returns the key and message of the first misfit.
func (d *document) check(t reflect.Type, key string, parts []string, first *unstable.Node, v *unstable.Node) (string, string) {
	line := d.line(first)
	for _, part := range parts {
		if !isTable(t) {
			return key, fmt.Sprintf("expected %s, got a table", describe(t))
		}
		key = join(key, part)
		d.lines[key] = line
		if t = child(t, part); t == nil {
			d.unknown[int(first.Raw.Offset)] = key
			return "", ""
		}
	}
	return d.value(t, key, v)
}

// value checks that the value node v fits type t.
func (d *document) value(t reflect.Type, key string, v *unstable.Node) (string, string) {
	misfit := func() (string, string) {
		return key, fmt.Sprintf("expected %s, got %s", describe(t), kindName(v.Kind))
	}
	switch {
	case t == durationType:
		if v.Kind != unstable.String {
			return misfit()
		}
		if _, err := time.ParseDuration(string(v.Data)); err != nil {
			return key, fmt.Sprintf("%q is not a duration: write a number and a unit, e.g. \"90m\" or \"2h\"", v.Data)
		}
	case t.Kind() == reflect.String:
		if v.Kind != unstable.String {
			return misfit()
		}
	case t.Kind() == reflect.Int:
		if v.Kind != unstable.Integer {
			return misfit()
		}
	case t.Kind() == reflect.Slice:
		if v.Kind != unstable.Array {
			return misfit()
		}
		it := v.Children()
		for i := 1; it.Next(); i++ {
			elem := it.Node()
			if elem.Kind == unstable.Comment {
				continue
			}
			ekey := key
			if isTableArray(t) {
				ekey = fmt.Sprintf("%s[%d]", key, i)
				d.lines[ekey] = d.line(elem)
			}
			k, msg := d.value(t.Elem(), ekey, elem)
			switch {
			case msg != "" && isTableArray(t):
				return k, msg
			case msg != "":
				return key, fmt.Sprintf("expected %s, got %s in it", describe(t), kindName(elem.Kind))
			}
		}
	case isTable(t):
		if v.Kind != unstable.InlineTable {
			return misfit()
		}
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			parts, first := keyOf(kv)
			if k, msg := d.check(t, key, parts, first, kv.Value()); msg != "" {
				return k, msg
			}
		}
	}
	return "", ""
}

// erased returns a copy of data with the misfit values blanked out. Newlines
// stay, so that lines reported by the decoder still match the file.
func (d *document) erased() []byte {
	out := append([]byte(nil), d.data...)
	for _, s := range d.blank {
		for i := s.from; i < s.to; i++ {
			if out[i] != '\n' && out[i] != '\r' {
				out[i] = ' '
			}
		}
	}
	return out
}

// dotted joins key parts, numbering the elements of arrays of tables from 1
// in document order: the element a key belongs to is the last [[header]]
// of that array at or before the key's line.
func (d *document) dotted(parts []string, line int) string {
	var b strings.Builder
	for i, part := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
		headers := d.arrays[strings.Join(parts[:i+1], ".")]
		if n := sort.SearchInts(headers, line+1); n > 0 {
			fmt.Fprintf(&b, "[%d]", n)
		}
	}
	return b.String()
}

// line returns the 1-based line on which node n starts, or 0 when the node
// has no place (an empty array).
func (d *document) line(n *unstable.Node) int {
	for n != nil && n.Raw.Length == 0 {
		n = n.Child() // arrays have no range of their own; their elements do
	}
	if n == nil {
		return 0
	}
	return d.lineOf(int(n.Raw.Offset))
}

func (d *document) lineOf(offset int) int {
	return sort.SearchInts(d.newlines, offset) + 1
}

// unknownKey returns the dotted key of an unknown key reported by the
// decoder at line and column.
func (d *document) unknownKey(parts []string, line, column int) string {
	if key, ok := d.unknown[d.lineStart(line)+column-1]; ok {
		return key
	}
	return d.dotted(parts, line)
}

func (d *document) lineStart(line int) int {
	switch {
	case line <= 1:
		return 0
	case line-2 >= len(d.newlines):
		return len(d.data)
	}
	return d.newlines[line-2] + 1
}

// keyLines maps a dotted key ("image[2].depends_on", "image[2]",
// "staging") to the line where it is written.
type keyLines map[string]int

// line returns the line of key, or of the closest enclosing key or header
// when key itself is not written (a default, a missing required key).
func (kl keyLines) line(key string) int {
	for ; key != ""; key = parent(key) {
		if l, ok := kl[key]; ok {
			return l
		}
	}
	return 0
}

// keyOf returns the parts of the key of a KeyValue, Table or ArrayTable
// node, and the node of its first part.
func keyOf(n *unstable.Node) ([]string, *unstable.Node) {
	var parts []string
	var first *unstable.Node
	it := n.Key()
	for it.Next() {
		if first == nil {
			first = it.Node()
		}
		parts = append(parts, string(it.Node().Data))
	}
	return parts, first
}

func join(key, part string) string {
	if key == "" {
		return part
	}
	return key + "." + part
}

// child returns the type that key part leads to from table type t, or nil
// when t has no such key.
func child(t reflect.Type, part string) reflect.Type {
	if t.Kind() == reflect.Map {
		return t.Elem()
	}
	var folded reflect.Type // like the decoder, fall back to any case
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == part:
			return f.Type
		case folded == nil && strings.EqualFold(name, part):
			folded = f.Type
		}
	}
	return folded
}

func isTable(t reflect.Type) bool {
	return t != durationType && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map)
}

func isTableArray(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && isTable(t.Elem())
}

// describe says in TOML terms what a value of type t is written as.
func describe(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration string such as "90m" or "2h"`
	case isTableArray(t):
		return "an array of tables"
	case t.Kind() == reflect.Slice:
		return "an array of " + plural(t.Elem())
	case t.Kind() == reflect.Map:
		return "a table of " + plural(t.Elem())
	case t.Kind() == reflect.Struct:
		return "a table"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Int:
		return "an integer"
	}
	return t.String()
}

func plural(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Int:
		return "integers"
	}
	return "values"
}

func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	}
	return "a date or time"
}
