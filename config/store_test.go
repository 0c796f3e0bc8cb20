package config

import (
	"os"
	"path/filepath"
	"testing"
)

// history and show must work when the rest of the config is broken.
func TestLoadStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "nightshift.toml")
	broken := "[staging]\nregistry = \"http://x/y\"\ncolour = 1\n[store]\nlogs = \"var/logs\"\n[[image]]\nname = \"a\"\ndockerfile = \"missing\"\n"
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("Load accepted a broken config")
	}
	s, err := LoadStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path != filepath.Join(dir, "nightshift.db") || s.Logs != filepath.Join(dir, "var/logs") {
		t.Errorf("LoadStore = %+v, want defaults and paths resolved against %s", s, dir)
	}
	if err := os.WriteFile(path, []byte("[store\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadStore(path); err == nil {
		t.Error("LoadStore accepted invalid TOML")
	}
}
