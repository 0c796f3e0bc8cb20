package structure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// jsonTree parses a JSON test file as encoding/json reads it (the way
// container-structure-test reads a ".json" file: its escapes, its
// replacement of invalid UTF-8, nothing but JSON) into the node tree the
// decoder walks, each node with its line. Strings are "!!str", numbers
// "!!int" or "!!float" as written, so that the decoder can refuse what
// encoding/json refuses.
func jsonTree(data []byte) (root *yaml.Node, line int, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, 0, nil
	}
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data)), line: 1}
	p.dec.UseNumber()
	if root, err = p.value(); err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		_, line, err = p.next()
		switch err {
		case io.EOF:
			return root, 0, nil
		case nil:
			return nil, line, errors.New("more after the top-level value")
		}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return nil, p.lineAt(int(se.Offset)), err
	}
	return nil, p.lineAt(len(data)), err // the input ended inside a value
}

type jsonParser struct {
	data []byte
	dec  *json.Decoder
	// line is the line of offset seen, so that counting goes on from there.
	seen, line int
}

// lineAt returns the line of byte offset off, at or after the last one asked.
func (p *jsonParser) lineAt(off int) int {
	off = min(off, len(p.data))
	if off > p.seen {
		p.line += bytes.Count(p.data[p.seen:off], []byte("\n"))
		p.seen = off
	}
	return p.line
}

// next returns the next token and its line.
func (p *jsonParser) next() (json.Token, int, error) {
	off := int(p.dec.InputOffset())
	for off < len(p.data) && strings.IndexByte(" \t\r\n,:", p.data[off]) >= 0 {
		off++
	}
	line := p.lineAt(off)
	tok, err := p.dec.Token()
	return tok, line, err
}

func (p *jsonParser) value() (*yaml.Node, error) {
	tok, line, err := p.next()
	if err != nil {
		return nil, err
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Line: line}
	switch v := tok.(type) {
	case json.Delim:
		n.Kind, n.Tag, n.Style = yaml.SequenceNode, "!!seq", yaml.FlowStyle
		if v == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
		}
		for p.dec.More() {
			if n.Kind == yaml.MappingNode {
				k, line, err := p.next()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: k.(string), Line: line})
			}
			c, err := p.value()
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if _, err := p.dec.Token(); err != nil { // the closing ] or }
			return nil, err
		}
	case string:
		n.Tag, n.Style, n.Value = "!!str", yaml.DoubleQuotedStyle, v
	case json.Number:
		n.Tag, n.Value = "!!int", v.String()
		if strings.ContainsAny(n.Value, ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Tag, n.Value = "!!bool", fmt.Sprint(v)
	case nil:
		n.Tag, n.Value = "!!null", "null"
	}
	return n, nil
}
