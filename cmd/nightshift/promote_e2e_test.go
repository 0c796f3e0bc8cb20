package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// A stack of three images whose tests pass for base and ci_good and fail
// for bad; promotions go to the namespace release, repositories named
// rel-<name with dashes>. inplace.toml is the same stack promoted in place.
func promoteStack(namespace string) map[string]string {
	images := `
[validate]
tests = ["tests/common.yaml"]

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "ci_good"
dockerfile = "docker/Dockerfile.good"

[[image]]
name = "bad"
dockerfile = "docker/Dockerfile.bad"
tests = ["tests/bad.yaml"]
`
	staging := fmt.Sprintf("[staging]\nregistry = \"%%REGISTRY%%\"\nnamespace = %q\n", namespace)
	return map[string]string{
		"docker/Dockerfile.base": base,
		"docker/Dockerfile.good": "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo good > /etc/ci/good\n",
		"docker/Dockerfile.bad":  "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo bad > /etc/ci/bad\n",
		"tests/common.yaml":      "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: busybox\n    path: /bin/busybox\n    shouldExist: true\n",
		"tests/bad.yaml":         "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: numpy\n    path: /usr/lib/numpy\n    shouldExist: true\n",
		"nightshift.toml": staging + `
[promote]
namespace = "` + namespace + `-release"
name = 'rel-{{ replace .Name "_" "-" }}'
` + images,
		"inplace.toml": staging + images,
	}
}

// engineActivity lists the image pulls, pushes and tags the engine did
// since since that name a repository under prefix.
func engineActivity(t *testing.T, since time.Time, prefix string) []string {
	t.Helper()
	out, err := exec.Command("docker", "-H", e2e.docker.Addr, "events", "--filter", "type=image",
		"--since", fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()), "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
		"--format", "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker events: %v\n%s", err, out)
	}
	var hits []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, prefix) && (strings.HasPrefix(l, "pull ") || strings.HasPrefix(l, "push ") || strings.HasPrefix(l, "tag ")) {
			hits = append(hits, l)
		}
	}
	return hits
}

// engineImages lists the engine's image refs under prefix.
func engineImages(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("docker", "-H", e2e.docker.Addr, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker image ls: %v\n%s", err, out)
	}
	var refs []string
	for _, r := range strings.Fields(string(out)) {
		if strings.HasPrefix(r, prefix) {
			refs = append(refs, r)
		}
	}
	return refs
}

// tagsOf lists the tags of a repository in the test registry; none when
// it does not exist.
func tagsOf(t *testing.T, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r)
	if err != nil {
		return nil
	}
	slices.Sort(tags)
	return tags
}

func showRun(t *testing.T, cfg string, id uint64) store.Run {
	t.Helper()
	res := nightshift(t, nil, "show", "-c", cfg, "--json", strconv.FormatUint(id, 10))
	if res.code != 0 {
		t.Fatalf("show %d exited %d: %s", id, res.code, res.stderr)
	}
	var r store.Run
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("show --json: %v\n%s", err, res.stdout)
	}
	return r
}

// Promotion across namespaces and in place, against the real engine and
// registry: a dry run changes nothing; the image whose tests failed is
// refused and the rest promoted, each target on the night's digest; --force
// promotes the refused one and the record says so; nothing goes through
// the engine.
func TestPromote(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, promoteStack("promote-e2e"))
	dir := filepath.Dir(cfg)
	inplace := filepath.Join(dir, "inplace.toml")
	staging := e2e.registry.Addr + "/promote-e2e/"
	release := e2e.registry.Addr + "/promote-e2e-release/"

	res := nightshift(t, nil, "run", "-c", cfg, "--progress", "lines", "--json", filepath.Join(dir, "run.json"))
	if res.code != exitFailed {
		t.Fatalf("run exited %d, want 1 (bad fails its test)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var rec store.Run
	readJSON(t, filepath.Join(dir, "run.json"), &rec)
	for name, validated := range map[string]bool{"base": true, "ci_good": true, "bad": false} {
		if im := rec.Image(name); im == nil || im.Digest == "" || im.Validated() != validated {
			t.Fatalf("%s in the run: %+v, want pushed and validated=%v", name, im, validated)
		}
	}
	start := time.Now()
	to := []string{"--to", "stable", "--to", "{{ .Year }}.{{ .Quarter }}-stable"}
	now := time.Now().UTC()
	quarter := fmt.Sprintf("%d.%d-stable", now.Year(), (int(now.Month())-1)/3+1)

	// A dry run says what it would do and does nothing.
	res = nightshift(t, nil, append([]string{"promote", "-c", cfg, "--from", rec.Tag, "--dry-run"}, to...)...)
	if res.code != exitFailed {
		t.Fatalf("promote --dry-run exited %d, want 1 (bad is refused)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	out := strings.Join(strings.Fields(res.stdout), " ") // columns aligned any way
	for _, want := range []string{
		"base would copy " + staging + "base@" + rec.Image("base").Digest + " to " + release + "rel-base:stable (blobs mounted from staging, none sent), then tag " + quarter,
		"ci_good would copy " + staging + "ci_good@",
		"bad refused not validated in night " + strconv.FormatUint(rec.ID, 10) + ": its validation failed (--force promotes it anyway)",
		"nothing changes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, res.stdout)
		}
	}
	if tags := tagsOf(t, release+"rel-base"); len(tags) > 0 {
		t.Errorf("after a dry run, rel-base has tags %v", tags)
	}
	if r := showRun(t, cfg, rec.ID); len(r.Promotions) > 0 {
		t.Errorf("a dry run recorded %+v", r.Promotions)
	}

	// Across namespaces: base and ci_good promoted, bad refused.
	res = nightshift(t, nil, append([]string{"promote", "-c", cfg, "--from", rec.Tag, "--by", "release-bot"}, to...)...)
	if res.code != exitFailed {
		t.Fatalf("promote exited %d, want 1 (bad is refused)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "promoted 2 of 3 images; recorded with run") {
		t.Errorf("promote output:\n%s", res.stdout)
	}
	for name, repo := range map[string]string{"base": "rel-base", "ci_good": "rel-ci-good"} {
		want := rec.Image(name).Digest
		for _, tag := range []string{"stable", quarter} {
			if got := digest(t, release+repo+":"+tag); got != want {
				t.Errorf("%s%s:%s = %s, want %s (the night's)", release, repo, tag, got, want)
			}
		}
	}
	if tags := tagsOf(t, release+"rel-bad"); len(tags) > 0 {
		t.Errorf("the refused image was promoted: rel-bad has %v", tags)
	}
	r := showRun(t, cfg, rec.ID)
	if len(r.Promotions) != 1 {
		t.Fatalf("promotions %+v, want one", r.Promotions)
	}
	p := r.Promotions[0]
	if p.By != "release-bot" || p.Forced || !slices.Equal(p.Tags, []string{"stable", quarter}) || len(p.Images) != 2 ||
		len(p.Refused) != 1 || p.Refused[0].Name != "bad" {
		t.Errorf("promotion %+v", p)
	}
	if im := p.Images[0]; im.Name != "base" || im.Digest != rec.Image("base").Digest || im.Ref != release+"rel-base:stable" || !im.Validated {
		t.Errorf("promoted base %+v", im)
	}
	show := nightshift(t, nil, "show", "-c", cfg, strconv.FormatUint(rec.ID, 10))
	if !strings.Contains(show.stdout, "by release-bot to stable, "+quarter) || !strings.Contains(show.stdout, release+"rel-ci-good:stable, "+release+"rel-ci-good:"+quarter) {
		t.Errorf("show lacks the promotion:\n%s", show.stdout)
	}

	// --force promotes what the night refused, and says so.
	res = nightshift(t, nil, "promote", "-c", cfg, "--from", rec.Tag, "--to", "stable", "--image", "bad", "--force")
	if res.code != exitOK {
		t.Fatalf("promote --force exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if got := digest(t, release+"rel-bad:stable"); got != rec.Image("bad").Digest {
		t.Errorf("rel-bad:stable = %s, want %s", got, rec.Image("bad").Digest)
	}
	r = showRun(t, cfg, rec.ID)
	if len(r.Promotions) != 2 || !r.Promotions[1].Forced || r.Promotions[1].Images[0].Validated {
		t.Errorf("the forced promotion is recorded as %+v", r.Promotions)
	}

	// In place: manifest tags in staging; never over latest.
	res = nightshift(t, nil, "promote", "-c", inplace, "--from", rec.Tag, "--to", "stable", "--image", "base,ci_good")
	if res.code != exitOK {
		t.Fatalf("promote in place exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, name := range []string{"base", "ci_good"} {
		if got := digest(t, staging+name+":stable"); got != rec.Image(name).Digest {
			t.Errorf("%s:stable = %s, want %s", name, got, rec.Image(name).Digest)
		}
	}
	if res := nightshift(t, nil, "promote", "-c", inplace, "--from", rec.Tag, "--to", "latest"); res.code != exitUsage {
		t.Errorf("promote in place to latest exited %d, want 2\n%s", res.code, res.stderr)
	}
	if res := nightshift(t, nil, "promote", "-c", cfg, "--from", "1999-01-01-00-00-00-deadbeef", "--to", "stable"); res.code != exitUsage {
		t.Errorf("promote of an unknown tag exited %d, want 2\n%s", res.code, res.stderr)
	}

	// Nothing of this went through the engine.
	for _, prefix := range []string{release, staging} {
		if acts := engineActivity(t, start, prefix); len(acts) > 0 {
			t.Errorf("the engine pulled, pushed or tagged during the promotions: %v", acts)
		}
	}
	if refs := engineImages(t, release); len(refs) > 0 {
		t.Errorf("the engine has release images: %v", refs)
	}
}

// pruneStack is a base and a child, tested so that they validate, with
// keep_last = 2, pushed to namespace in the registry at %REGISTRY%.
func pruneStack(namespace string) map[string]string {
	return map[string]string{
		"docker/Dockerfile.base": base,
		"docker/Dockerfile.cpu":  "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo cpu > /etc/ci/cpu\n",
		"tests/common.yaml":      "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: busybox\n    path: /bin/busybox\n    shouldExist: true\n",
		"nightshift.toml": fmt.Sprintf(`
[staging]
registry = "%%REGISTRY%%"
namespace = %q

[validate]
tests = ["tests/common.yaml"]

[retention]
keep_last = 2

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "cpu"
dockerfile = "docker/Dockerfile.cpu"
`, namespace),
	}
}

// nightlies runs n nightly runs of cfg and returns their records.
func nightlies(t *testing.T, cfg string, n int) []store.Run {
	t.Helper()
	var runs []store.Run
	for i := range n {
		if i > 0 {
			// A run's tag is its start to the second, and a BuildKit run of
			// this stack takes less: the next starts in a second of its own.
			time.Sleep(time.Until(runs[i-1].Started.Truncate(time.Second).Add(time.Second)))
		}
		out := filepath.Join(filepath.Dir(cfg), fmt.Sprintf("run%d.json", i))
		res := nightshift(t, nil, "run", "-c", cfg, "--progress", "lines", "--json", out)
		if res.code != exitOK {
			t.Fatalf("run %d exited %d\n%s\n%s", i, res.code, res.stdout, res.stderr)
		}
		var r store.Run
		readJSON(t, out, &r)
		runs = append(runs, r)
	}
	return runs
}

// Retention against the real registry: of four nights with keep_last = 2,
// the promoted night 2 keeps its tags, night 1 loses them but for the
// digest a tag made by hand shares, which stays (and is listed unknown);
// latest stays; a dry run first changes nothing; the pruned night's logs
// go and its record stays, marked pruned.
func TestPrune(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	cfg := stack(t, pruneStack("prune-e2e"))
	dir := filepath.Dir(cfg)
	repo := e2e.registry.Addr + "/prune-e2e/"
	runs := nightlies(t, cfg, 4)
	if res := nightshift(t, nil, "promote", "-c", cfg, "--from", runs[1].Tag, "--to", "stable"); res.code != exitOK {
		t.Fatalf("promote exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	// By hand, a tag on night 1's base: deleting that digest would delete it.
	if err := remote.Tag(mustRef(t, repo+"base:by-hand").(name.Tag), mustDescriptor(t, repo+"base:"+runs[0].Tag)); err != nil {
		t.Fatal(err)
	}
	before := map[string][]string{"base": tagsOf(t, repo+"base"), "cpu": tagsOf(t, repo+"cpu")}

	res := nightshift(t, nil, "prune", "-c", cfg, "--dry-run")
	if res.code != exitOK {
		t.Fatalf("prune --dry-run exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if out := strings.Join(strings.Fields(res.stdout), " "); !strings.Contains(out, "would delete cpu:"+runs[0].Tag) || !strings.Contains(out, "nothing changed (dry run)") {
		t.Errorf("dry run output:\n%s", res.stdout)
	}
	for image, tags := range before {
		if got := tagsOf(t, repo+image); !slices.Equal(got, tags) {
			t.Errorf("after a dry run %s has %v, had %v", image, got, tags)
		}
	}

	res = nightshift(t, nil, "prune", "-c", cfg)
	if res.code != exitOK {
		t.Fatalf("prune exited %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	out := strings.Join(strings.Fields(res.stdout), " ") // columns aligned any way
	for _, want := range []string{
		"4 nightly runs recorded; keeping the last 2; 2 beyond",
		"deleted cpu:" + runs[0].Tag + " " + runs[0].Image("cpu").Digest,
		"kept base:" + runs[0].Tag + " its digest is also by-hand's, which is kept",
		"kept base:" + runs[1].Tag + " run " + strconv.FormatUint(runs[1].ID, 10) + " was promoted",
		"unknown base:by-hand no recorded run made it: left alone",
		"pruned runs " + strconv.FormatUint(runs[0].ID, 10) + ": logs deleted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prune output lacks %q:\n%s", want, res.stdout)
		}
	}
	night1 := runs[0].Tag
	for image, want := range map[string][]string{
		"base": {night1, night1 + "-validated", runs[1].Tag, runs[1].Tag + "-validated", runs[2].Tag, runs[2].Tag + "-validated",
			runs[3].Tag, runs[3].Tag + "-validated", "by-hand", "latest", "stable"},
		"cpu": {runs[1].Tag, runs[1].Tag + "-validated", runs[2].Tag, runs[2].Tag + "-validated",
			runs[3].Tag, runs[3].Tag + "-validated", "latest", "stable"},
	} {
		slices.Sort(want)
		if got := tagsOf(t, repo+image); !slices.Equal(got, want) {
			t.Errorf("%s keeps %v, want %v", image, got, want)
		}
	}
	if got := digest(t, repo+"cpu:latest"); got != runs[3].Image("cpu").Digest {
		t.Errorf("cpu:latest = %s, want the newest night's %s", got, runs[3].Image("cpu").Digest)
	}
	r := showRun(t, cfg, runs[0].ID)
	if r.Pruned == nil || r.Image("base").Log != "" || r.Image("base").Digest == "" {
		t.Errorf("night 1 after pruning: pruned %v, log %q; want pruned, no log, the rest of the record kept", r.Pruned, r.Image("base").Log)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", strconv.FormatUint(runs[0].ID, 10))); !os.IsNotExist(err) {
		t.Errorf("night 1's logs: %v, want them gone", err)
	}
	for _, kept := range runs[1:] {
		if r := showRun(t, cfg, kept.ID); r.Pruned != nil {
			t.Errorf("run %d marked pruned", kept.ID)
		}
		if _, err := os.Stat(filepath.Join(dir, "logs", strconv.FormatUint(kept.ID, 10))); err != nil {
			t.Errorf("run %d's logs: %v", kept.ID, err)
		}
	}
}

func mustDescriptor(t *testing.T, ref string) *remote.Descriptor {
	t.Helper()
	d, err := remote.Get(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A registry that refuses deletes (distribution as shipped) is reported
// once with what to change, and nothing is pruned.
func TestPruneRefused(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	reg, err := testenv.StartRegistryWithoutDelete(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	files := pruneStack("refuses")
	files["nightshift.toml"] = strings.ReplaceAll(files["nightshift.toml"], "%REGISTRY%", reg.Addr)
	cfg := stack(t, files)
	runs := nightlies(t, cfg, 3)
	before := tagsOf(t, reg.Addr+"/refuses/base")

	res := nightshift(t, nil, "prune", "-c", cfg)
	if res.code != exitFailed {
		t.Fatalf("prune exited %d, want 1\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if n := strings.Count(res.stderr, "refuses to delete"); n != 1 || !strings.Contains(res.stderr, "storage: delete: enabled: true") ||
		!strings.Contains(res.stderr, "UNSUPPORTED") {
		t.Errorf("the refusal is reported %d times, or without what to change:\n%s", n, res.stderr)
	}
	if got := tagsOf(t, reg.Addr+"/refuses/base"); !slices.Equal(got, before) {
		t.Errorf("tags after a refusal %v, before %v", got, before)
	}
	if r := showRun(t, cfg, runs[0].ID); r.Pruned != nil {
		t.Errorf("run %d marked pruned after a refusal", runs[0].ID)
	}
}
