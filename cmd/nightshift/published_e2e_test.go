package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nightshift/internal/testenv"
)

// notebookStack is shaped like a notebook-image project: each child names
// its parent where the project publishes it, through ARG defaults
// (REGISTRY/OWNER), so that the Dockerfiles build on their own without
// nightshift. %PUBLISHED% is the registry the project publishes to.
func notebookStack(published string) map[string]string {
	from := func(parent string) string {
		return "ARG REGISTRY=" + published + "\nARG OWNER=jupyter\nARG BASE_IMAGE=$REGISTRY/$OWNER/" + parent + "\nFROM $BASE_IMAGE\n"
	}
	return map[string]string{
		"docker/foundation/Dockerfile": base + "ARG FLAVOUR\nRUN echo \"$FLAVOUR\" > /etc/ci/flavour\n",
		"docker/minimal/Dockerfile":    from("docker-stacks-foundation") + "RUN echo minimal > /etc/ci/minimal\n",
		"docker/scipy/Dockerfile":      from("minimal-notebook") + "RUN echo scipy > /etc/ci/scipy\n",
	}
}

// notebookImages is the [[image]] part of a configuration of the stack;
// flavour tells the builds of one configuration from another's.
func notebookImages(flavour string) string {
	return `
[[image]]
name = "docker-stacks-foundation"
dockerfile = "docker/foundation/Dockerfile"
context = "docker"
build_args = { FLAVOUR = "` + flavour + `" }

[[image]]
name = "minimal-notebook"
dockerfile = "docker/minimal/Dockerfile"

[[image]]
name = "scipy-notebook"
dockerfile = "docker/scipy/Dockerfile"
`
}

// inProcess runs nightshift's main in this process, as the binary would.
func inProcess(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, log: slog.New(slog.DiscardHandler)}
	code := c.main(context.Background(), args)
	return result{code, out.String(), errb.String()}
}

// planRow is one image of `nightshift plan`'s table.
type planRow struct {
	parent, ref string
	args        []string
}

func planRows(t *testing.T, stdout string) map[string]planRow {
	t.Helper()
	rows := map[string]planRow{}
	header := false
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "#":
			header = true
		case header && len(f) >= 6:
			rows[f[1]] = planRow{parent: f[2], ref: f[3], args: f[5:]}
		}
	}
	return rows
}

// With a staging registry of its own, a stack whose children name their
// published parents is planned as independent images, each building on the
// published parent, and config check and plan say so; with [staging]
// published, the children depend on their parents and build on this
// run's.
func TestPublishedParentsPlan(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Require(t)
	}
	t.Parallel()
	dir := t.TempDir()
	files := notebookStack("quay.io")
	staging := `
[staging]
registry = "staging.example.org:5000"
namespace = "jupyter-nightly"
`
	files["nightshift.toml"] = staging + notebookImages("nightly")
	files["published.toml"] = staging + `published = ["quay.io/jupyter"]` + "\n" + notebookImages("nightly")
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testenv.CommitAll(dir, "notebook stack"); err != nil {
		t.Fatalf("git: %v", err)
	}
	unpublished, published := filepath.Join(dir, "nightshift.toml"), filepath.Join(dir, "published.toml")

	warnings := []string{
		"nightshift: 2 warning(s) in the configuration:",
		unpublished + ":12: image[2].dockerfile: docker/minimal/Dockerfile:4: minimal-notebook FROM quay.io/jupyter/docker-stacks-foundation would build on the published docker-stacks-foundation, not this run's; add [staging] published or depends_on",
		unpublished + ":16: image[3].dockerfile: docker/scipy/Dockerfile:4: scipy-notebook FROM quay.io/jupyter/minimal-notebook would build on the published minimal-notebook, not this run's; add [staging] published or depends_on",
	}
	res := inProcess(t, "config", "check", "-c", unpublished)
	if res.code != exitOK || res.stderr != strings.Join(warnings, "\n  ")+"\n" {
		t.Errorf("config check without published: exit %d, stderr:\n%s\nwant exit 0 and:\n%s", res.code, res.stderr, strings.Join(warnings, "\n  "))
	}
	res = inProcess(t, "plan", "-c", unpublished)
	if res.code != exitOK || !strings.Contains(res.stderr, warnings[1]) {
		t.Errorf("plan without published: exit %d, stderr:\n%s\nwant exit 0 and the warnings", res.code, res.stderr)
	}
	for name, row := range planRows(t, res.stdout) {
		if row.parent != "-" || strings.Contains(strings.Join(row.args, " "), "BASE_IMAGE") {
			t.Errorf("plan without published: %s has parent %s, args %q; want none (the bug this warns about)", name, row.parent, row.args)
		}
	}

	res = inProcess(t, "config", "check", "-c", published)
	if res.code != exitOK || res.stderr != "" {
		t.Errorf("config check with published: exit %d, stderr:\n%s\nwant exit 0 and no warning", res.code, res.stderr)
	}
	res = inProcess(t, "plan", "-c", published)
	if res.code != exitOK || res.stderr != "" {
		t.Fatalf("plan with published: exit %d, stderr:\n%s", res.code, res.stderr)
	}
	rows := planRows(t, res.stdout)
	if len(rows) != 3 {
		t.Fatalf("plan with published: %d images, want 3:\n%s", len(rows), res.stdout)
	}
	for child, parent := range map[string]string{"minimal-notebook": "docker-stacks-foundation", "scipy-notebook": "minimal-notebook"} {
		row := rows[child]
		want := "BASE_IMAGE=" + rows[parent].ref
		if row.parent != parent || !strings.HasPrefix(rows[parent].ref, "staging.example.org:5000/jupyter-nightly/"+parent+":") ||
			len(row.args) != 1 || row.args[0] != want {
			t.Errorf("plan with published: %s has parent %s, args %q; want parent %s and %s\n%s", child, row.parent, row.args, parent, want, res.stdout)
		}
	}
}

// Built through the engine: a project's release publishes the stack to one
// namespace; the nightly, with a staging namespace of its own, builds every
// child on this run's parent with [staging] published, and on the
// published parent without it.
func TestPublishedParentsBuild(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	files := notebookStack("%REGISTRY%")
	config := func(namespace, store, flavour, extra string) string {
		return `
[staging]
registry = "%REGISTRY%"
namespace = "` + namespace + `"
` + extra + `
[store]
path = "../` + store + `.db"
logs = "../` + store + `-logs"
` + notebookImages(flavour)
	}
	// The project's own release: staging is where it publishes, so the
	// ARG defaults name this run's images already.
	files["release.toml"] = config("jupyter", "release", "release", "")
	files["nightly.toml"] = config("jupyter-nightly", "nightly", "nightly", `published = ["%REGISTRY%/jupyter"]`)
	files["unpublished.toml"] = config("jupyter-unpublished", "unpublished", "unpublished", "")
	dir := filepath.Dir(stack(t, files))

	layers := map[string][]string{} // "<namespace>/<image>" -> layers
	for _, run := range []struct{ config, namespace string }{
		{"release.toml", "jupyter"}, {"nightly.toml", "jupyter-nightly"}, {"unpublished.toml", "jupyter-unpublished"},
	} {
		res := nightshift(t, nil, "run", "-c", filepath.Join(dir, run.config), "--progress", "lines")
		if res.code != exitOK {
			t.Fatalf("run %s: exit %d\n%s\n%s", run.config, res.code, res.stdout, res.stderr)
		}
		for _, image := range []string{"docker-stacks-foundation", "minimal-notebook", "scipy-notebook"} {
			layers[run.namespace+"/"+image] = layerDigests(t, e2e.registry.Addr+"/"+run.namespace+"/"+image+":latest")
		}
	}
	builtOn := func(child, parent string) bool { return extends(layers[child], layers[parent]) }
	for _, tc := range []struct {
		child, parent string
		want          bool
	}{
		{"jupyter/minimal-notebook", "jupyter/docker-stacks-foundation", true},
		{"jupyter/scipy-notebook", "jupyter/minimal-notebook", true},
		// With published: this run's parents, never the release's.
		{"jupyter-nightly/minimal-notebook", "jupyter-nightly/docker-stacks-foundation", true},
		{"jupyter-nightly/scipy-notebook", "jupyter-nightly/minimal-notebook", true},
		{"jupyter-nightly/minimal-notebook", "jupyter/docker-stacks-foundation", false},
		{"jupyter-nightly/scipy-notebook", "jupyter/minimal-notebook", false},
		// Without: the published parents, as the warning says.
		{"jupyter-unpublished/minimal-notebook", "jupyter/docker-stacks-foundation", true},
		{"jupyter-unpublished/minimal-notebook", "jupyter-unpublished/docker-stacks-foundation", false},
	} {
		if got := builtOn(tc.child, tc.parent); got != tc.want {
			t.Errorf("%s built on %s: %v, want %v\n%s: %v\n%s: %v", tc.child, tc.parent, got, tc.want, tc.child, layers[tc.child], tc.parent, layers[tc.parent])
		}
	}
}
