package config

import (
	"os"
	"reflect"
	"regexp"
	"testing"
)

// config.example.toml is the reference users copy from: it must load, and
// it must mention every key nightshift accepts.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	const path = "../config.example.toml"
	if _, err := Load(path); err != nil {
		t.Fatalf("config.example.toml does not load:\n%v", err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := f.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]() {
				if !regexp.MustCompile(`(?m)^#?\s*\[\[?` + regexp.QuoteMeta(prefix+key) + `\]\]?`).Match(text) {
					missing = append(missing, "["+prefix+key+"]")
				}
				walk(prefix+key+".", ft)
				continue
			}
			if !regexp.MustCompile(`(?m)^#?\s*` + key + `\s*=`).Match(text) {
				missing = append(missing, prefix+key)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	if len(missing) > 0 {
		t.Errorf("config.example.toml does not document %v", missing)
	}
}
