package validate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nightshift/config"
	"nightshift/rebuild"
	"nightshift/store"
)

// writeRepo writes files into a fresh source tree.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoadSuite(t *testing.T) {
	t.Parallel()
	root := writeRepo(t, map[string]string{
		"Dockerfile.base":  "FROM scratch\n",
		"Dockerfile.cpu":   "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\n",
		"Dockerfile.docs":  "FROM scratch\n",
		"tests/all.yaml":   "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: sh\n    path: /bin/sh\n",
		"tests/base.yaml":  "schemaVersion: 2.0.0\ncommandTests:\n  - name: no command\n    args: [x]\n",
		"tests/cpu.yaml":   "schemaVersion: 2.0.0\nfileContentTests:\n  - name: x\n    path: /x\n    expectedContents: ['(']\n",
		"tests/docs.yaml":  "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: readme\n    path: /README\n",
		"nightshift.toml":  "",
		"tests/spare.yaml": "",
	})
	cfg := &config.Config{
		File:     "nightshift.toml",
		Validate: config.Validate{Tests: []string{"tests/all.yaml"}, Ancestors: true},
		Images: []config.Image{
			{Name: "base", Dockerfile: "Dockerfile.base", Context: ".", Tests: []string{"tests/base.yaml"}},
			{Name: "cpu", Dockerfile: "Dockerfile.cpu", Context: ".", Tests: []string{"tests/cpu.yaml"}},
			{Name: "docs", Dockerfile: "Dockerfile.docs", Context: "."},
		},
	}
	g, ps := rebuild.NewGraph(cfg.File, root, "reg/ns", cfg.Images)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	suite, ps := Load(cfg, g, root)
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	// Each broken file is reported once, though two images run it, and
	// named by its path in the repository.
	want := []string{"tests/base.yaml:3: commandTests[1].command: ", "tests/cpu.yaml:5: fileContentTests[1].expectedContents"}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant ones starting with:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) || strings.Contains(got[i], root) {
			t.Errorf("problem %q, want it to start with %q and not name the checkout's directory", got[i], want[i])
		}
	}
	if !slices.Equal(suite.byName["cpu"], []string{"tests/all.yaml", "tests/base.yaml", "tests/cpu.yaml"}) || !slices.Equal(suite.byName["docs"], []string{"tests/all.yaml"}) {
		t.Errorf("test files by image = %v", suite.byName)
	}
}

// An image without tests is skipped, and no engine is asked anything.
func TestTesterWithoutTests(t *testing.T) {
	t.Parallel()
	tester := &Tester{Suite: &Suite{byName: map[string][]string{}}}
	var log strings.Builder
	v := tester.Test(context.Background(), &rebuild.Step{Name: "docs"}, "reg/ns/docs:t", &log)
	if v.Status != store.Skipped || len(v.Tests) != 0 || !strings.Contains(log.String(), "no tests for docs") {
		t.Errorf("validation = %+v, log %q; want skipped", v, log.String())
	}
}
