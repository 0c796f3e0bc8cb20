// Package bench measures nightshift's speed goals against their baselines
// on a real Docker Engine and registry, and prints each ratio with the
// baseline it was measured against. Run with `make bench`.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/engine"
	"nightshift/internal/testenv"
	"nightshift/rebuild"
	"nightshift/registry"
	"nightshift/store"
)

var env struct {
	bin      string
	docker   *testenv.Process
	registry *testenv.Process
	err      error
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		return m.Run() // `go test ./...` without -bench: nothing here to set up for
	}
	if missing := testenv.Missing(); len(missing) > 0 {
		env.err = fmt.Errorf("benchmarks need %v", missing)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "ns-bench-")
	if err != nil {
		env.err = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	env.bin = filepath.Join(dir, "nightshift")
	if out, err := exec.Command("go", "build", "-o", env.bin, "../cmd/nightshift").CombinedOutput(); err != nil {
		env.err = fmt.Errorf("go build: %v\n%s", err, out)
		return m.Run()
	}
	if env.docker, env.err = testenv.StartDockerd(filepath.Join(dir, "d")); env.err == nil {
		defer env.docker.Stop()
		if env.registry, env.err = testenv.StartRegistry(filepath.Join(dir, "r")); env.err == nil {
			defer env.registry.Stop()
		}
	}
	return m.Run()
}

func requireEnv(b *testing.B) {
	b.Helper()
	testenv.Require(b)
	if env.err != nil {
		b.Fatal(env.err)
	}
}

// graph is a 10-image stack shaped like a compiler project's CI images:
// name -> parent ("" for a root) and the seconds its RUN step sleeps.
var graph = []struct {
	name, parent string
	sleep        int
}{
	{"base", "", 1}, {"cpu", "base", 2}, {"gpu", "cpu", 2}, {"gpu_cuda12", "gpu", 1},
	{"hexagon", "cpu", 1}, {"lint", "base", 1}, {"arm", "base", 2},
	{"docs", "", 3}, {"wasm", "", 1}, {"wasm_test", "wasm", 1},
}

// writeStack writes the graph as a git repository with a nightshift.toml
// for namespace and jobs, and returns the config path.
func writeStack(b *testing.B, namespace string, jobs int) string {
	b.Helper()
	return writeStackWith(b, namespace, jobs, "", nil)
}

// writeStackWith is writeStack with more of the config (builders) and
// each image's runs_on labels.
func writeStackWith(b *testing.B, namespace string, jobs int, extra string, runsOn map[string]string) string {
	b.Helper()
	dir := b.TempDir()
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		b.Fatal(err)
	}
	must(b, os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755))
	var toml strings.Builder
	fmt.Fprintf(&toml, "[staging]\nregistry = %q\nnamespace = %q\n\n[build]\njobs = %d\n%s", env.registry.Addr, namespace, jobs, extra)
	for _, im := range graph {
		var df string
		if im.parent == "" {
			df = "FROM scratch\nCOPY busybox /bin/busybox\n"
		} else {
			df = fmt.Sprintf("ARG BASE_IMAGE=%s\nFROM ${BASE_IMAGE}\n", im.parent)
		}
		df += fmt.Sprintf("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"sleep %d && echo %s > /%s\"]\n", im.sleep, im.name, im.name)
		must(b, os.WriteFile(filepath.Join(dir, "Dockerfile."+im.name), []byte(df), 0o644))
		fmt.Fprintf(&toml, "\n[[image]]\nname = %q\ndockerfile = \"Dockerfile.%s\"\ncontext = \".\"\n", im.name, im.name)
		if label := runsOn[im.name]; label != "" {
			fmt.Fprintf(&toml, "runs_on = [%q]\n", label)
		}
	}
	must(b, os.WriteFile(filepath.Join(dir, "nightshift.toml"), []byte(toml.String()), 0o644))
	if _, err := testenv.CommitAll(dir, "bench stack"); err != nil {
		b.Fatal(err)
	}
	return filepath.Join(dir, "nightshift.toml")
}

// nightly runs `nightshift run` and returns its wall time and record.
func nightly(b *testing.B, cfg string) (time.Duration, *store.Run) {
	b.Helper()
	out := filepath.Join(b.TempDir(), "run.json")
	cmd := exec.Command(env.bin, "run", "-c", cfg, "--json", out, "--progress", "lines")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.docker.Addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("nightshift run: %v\n%s", err, stderr.String())
	}
	wall := time.Since(start)
	data, err := os.ReadFile(out)
	must(b, err)
	var rec store.Run
	must(b, json.Unmarshal(data, &rec))
	return wall, &rec
}

// criticalPath is the longest parent chain by each image's recorded time:
// no schedule can finish the run sooner. An image's children may start once
// it is verified in the registry, so an ancestor counts until then and only
// the last image of a chain counts whole (its latest tag included).
func criticalPath(rec *store.Run) time.Duration {
	untilChildren := map[string]time.Duration{}
	var longest time.Duration
	for _, im := range graph { // parents come first in graph
		res := rec.Image(im.name)
		before := untilChildren[im.parent]
		longest = max(longest, before+res.Duration(time.Time{}))
		untilChildren[im.name] = before + res.Duration(time.Time{})
		for _, st := range res.Stages {
			if st.Name == rebuild.StageVerify && st.Finished != nil && res.Started != nil {
				untilChildren[im.name] = before + st.Finished.Sub(*res.Started)
			}
		}
	}
	return longest
}

// BenchmarkNightly compares a nightly run of the 10-image graph with its
// critical path (enough slots) and with a per-image sequential loop of
// `docker build` + `docker push` (2 slots), and measures nightshift's own
// overhead: wall time minus the engine's build and push time.
func BenchmarkNightly(b *testing.B) {
	requireEnv(b)
	// A first run warms what every later one shares (the engine's state,
	// busybox's blob in the registry), so that no measured run pays alone.
	nightly(b, writeStack(b, "warm", len(graph)))
	for range b.N {
		// One slot: each image's time built alone gives the critical path, a
		// lower bound measured apart from the parallel run it judges.
		one, oneRec := nightly(b, writeStack(b, "one", 1))
		cp := criticalPath(oneRec)
		wide, wideRec := nightly(b, writeStack(b, "wide", len(graph)))
		wideCP := criticalPath(wideRec)
		two, _ := nightly(b, writeStack(b, "two", 2))
		seq := sequential(b, writeStack(b, "seq", 1))

		// Overhead: the time during which the engine was neither building
		// nor pushing (the union of those stages' intervals): what nightshift
		// itself spends on config, git, planning, records, verifying and
		// tagging, and between stages. Inside the run it is measured on the
		// record's own clock, the wall clock that stamped the stages (the
		// bench's monotonic clock may drift from it by more than the
		// overhead); before and after the run, on the bench's.
		span := oneRec.Finished.Sub(oneRec.Started)
		// The packages stage is the engine's too: info commands in
		// containers, after the push, while the next image builds.
		engineTime := busy(oneRec, rebuild.StageBuild, rebuild.StagePush, rebuild.StagePackages)
		overhead := span - engineTime + max(0, one-span)

		b.ReportMetric(wide.Seconds()/cp.Seconds(), "wall/critical-path")
		b.ReportMetric(wide.Seconds()/wideCP.Seconds(), "wall/own-critical-path")
		b.ReportMetric(seq.Seconds()/two.Seconds(), "sequential/nightshift")
		b.ReportMetric(100*overhead.Seconds()/one.Seconds(), "overhead-%")
		fmt.Printf("\nnightly of 10 images (sleeps %ds in all):\n", sumSleeps())
		fmt.Printf("  jobs=10: wall %.2fs vs critical path of images built alone %.2fs: ratio %.3f (goal <= 1.05)\n", wide.Seconds(), cp.Seconds(), wide.Seconds()/cp.Seconds())
		fmt.Printf("           wall %.2fs vs critical path of this run's own image times %.2fs: ratio %.3f (the schedule alone; 10 builds share 2 cores)\n", wide.Seconds(), wideCP.Seconds(), wide.Seconds()/wideCP.Seconds())
		fmt.Printf("  jobs=2:  wall %.2fs vs sequential docker build+push loop %.2fs: %.2fx faster (goal >= 2x)\n", two.Seconds(), seq.Seconds(), seq.Seconds()/two.Seconds())
		fmt.Printf("  jobs=1:  wall %.2fs, engine build+push+packages %.2fs, nightshift's own %.3fs = %.2f%% (goal < 2%%)\n", one.Seconds(), engineTime.Seconds(), overhead.Seconds(), 100*overhead.Seconds()/one.Seconds())
	}
}

// BenchmarkBuilderPool runs the 10-image graph on three engines of this
// machine, arm and the GPU images placed by label and the rest where a
// slot is free, and compares its wall time with the critical path of its
// own image times: with slots enough, placement should add next to
// nothing.
func BenchmarkBuilderPool(b *testing.B) {
	requireEnv(b)
	dir, err := os.MkdirTemp("", "nsp-") // short: the sockets' paths
	must(b, err)
	defer os.RemoveAll(dir)
	var extra strings.Builder
	for i, labels := range []string{`["amd64"]`, `["arm64"]`, `["amd64", "gpu"]`} {
		addr := env.docker.Addr
		if i > 0 {
			p, err := testenv.StartDockerd(filepath.Join(dir, fmt.Sprint(i)))
			must(b, err)
			defer p.Stop()
			addr = p.Addr
		}
		fmt.Fprintf(&extra, "\n[[builder]]\nname = \"b%d\"\nhost = %q\nlabels = %s\njobs = 4\n", i, addr, labels)
	}
	runsOn := map[string]string{"arm": "arm64", "gpu": "gpu", "gpu_cuda12": "gpu"}
	nightly(b, writeStackWith(b, "pool-warm", len(graph), extra.String(), runsOn))
	for range b.N {
		wall, rec := nightly(b, writeStackWith(b, "pool", len(graph), extra.String(), runsOn))
		cp := criticalPath(rec)
		placed := map[string][]string{}
		for _, im := range rec.Images {
			placed[im.Builder] = append(placed[im.Builder], im.Name)
		}
		b.ReportMetric(wall.Seconds()/cp.Seconds(), "wall/critical-path")
		fmt.Printf("\nnightly of 10 images on 3 builders (b0 %v, b1 %v, b2 %v):\n", placed["b0"], placed["b1"], placed["b2"])
		fmt.Printf("  wall %.2fs vs critical path of its own image times %.2fs: ratio %.3f (goal <= 1.10)\n", wall.Seconds(), cp.Seconds(), wall.Seconds()/cp.Seconds())
	}
}

// busy is the length of the union of the intervals of the named stages.
func busy(rec *store.Run, stages ...string) time.Duration {
	type span struct{ from, to time.Time }
	var spans []span
	for _, im := range rec.Images {
		for _, st := range im.Stages {
			if slices.Contains(stages, st.Name) && st.Finished != nil {
				spans = append(spans, span{st.Started, *st.Finished})
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	var total time.Duration
	var cur span
	for i, sp := range spans {
		switch {
		case i == 0:
			cur = sp
		case sp.from.After(cur.to):
			total += cur.to.Sub(cur.from)
			cur = sp
		case sp.to.After(cur.to):
			cur.to = sp.to
		}
	}
	if len(spans) > 0 {
		total += cur.to.Sub(cur.from)
	}
	return total
}

func sumSleeps() int {
	s := 0
	for _, im := range graph {
		s += im.sleep
	}
	return s
}

// sequential is the baseline: a per-image Jenkins stage, one after another,
// each `docker build --no-cache --pull` then `docker push` of both tags.
func sequential(b *testing.B, cfg string) time.Duration {
	b.Helper()
	dir := filepath.Dir(cfg)
	repo := env.registry.Addr + "/seq"
	start := time.Now()
	for _, im := range graph {
		tag := repo + "/" + im.name + ":nightly"
		args := []string{"build", "--no-cache", "--pull", "-q", "-f", "Dockerfile." + im.name, "-t", tag}
		if im.parent != "" {
			args = append(args, "--build-arg", "BASE_IMAGE="+repo+"/"+im.parent+":nightly")
		}
		docker(b, dir, append(args, ".")...)
		docker(b, dir, "push", tag)
		docker(b, dir, "tag", tag, repo+"/"+im.name+":latest")
		docker(b, dir, "push", repo+"/"+im.name+":latest")
	}
	return time.Since(start)
}

func docker(b *testing.B, dir string, args ...string) {
	b.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Dir = dir
	// The classic builder, as nightshift uses through the Engine API.
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.docker.Addr, "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("docker %v: %v\n%s", args, err, out)
	}
}

// countingTransport counts the requests through it by kind.
type countingTransport struct {
	pings, manifests, blobs atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case r.URL.Path == "/v2/":
		c.pings.Add(1)
	case strings.Contains(r.URL.Path, "/manifests/"):
		c.manifests.Add(1)
	default:
		c.blobs.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// BenchmarkPushBothTags compares nightshift's push of an image under both
// tags (one engine push of the immutable tag, then `latest` as a remote
// manifest tag) with one plain `docker push` of the same image, each to a
// cold repository.
func BenchmarkPushBothTags(b *testing.B) {
	requireEnv(b)
	ctx := context.Background()
	dir := b.TempDir()
	bb, err := os.ReadFile(testenv.Busybox)
	must(b, err)
	must(b, os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755))
	// 64 MiB of incompressible data: the push moves real bytes.
	must(b, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\n"+
		"RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox head -c 67108864 /dev/urandom > /blob\"]\n"), 0o644))
	os.Setenv("DOCKER_HOST", env.docker.Addr)
	eng, err := engine.Connect(ctx, 10*time.Second)
	must(b, err)
	defer eng.Close()
	counter := &countingTransport{}
	reg, err := registry.New(env.registry.Addr, registry.WithTransport(counter))
	must(b, err)
	auth, err := reg.EngineAuth()
	must(b, err)

	var plain, both, tagging time.Duration
	var pings, manifests, blobs int64
	// Several pushes a side, alternating which goes first, so one slow
	// moment of a shared machine does not decide the ratio.
	const pushes = 8
	b.ResetTimer()
	for i := range b.N * pushes {
		cold := func(kind string) string {
			return fmt.Sprintf("%s/push-%s-%d-%d/image:t", env.registry.Addr, kind, time.Now().UnixNano(), i)
		}
		// Each push gets an image of its own (fresh random bytes): no blob of
		// it is in the registry yet, so both sides really upload.
		plainRef, bothRef := cold("plain"), cold("both")
		docker(b, dir, "build", "-q", "--no-cache", "-t", plainRef, ".")
		docker(b, dir, "build", "-q", "--no-cache", "-t", bothRef, ".")
		pushPlain := func() {
			start := time.Now()
			docker(b, dir, "push", plainRef)
			plain += time.Since(start)
		}
		pushBoth := func() {
			start := time.Now()
			// What the runner does: push, verify, tag latest, verify it.
			digest, err := eng.Push(ctx, bothRef, auth, &bytes.Buffer{})
			must(b, err)
			if got, err := reg.Digest(ctx, bothRef); err != nil || got != digest {
				b.Fatalf("%s = %s, %v; want %s", bothRef, got, err, digest)
			}
			p0, m0, b0 := counter.pings.Load(), counter.manifests.Load(), counter.blobs.Load()
			tagStart := time.Now()
			must(b, reg.Tag(ctx, bothRef, "latest"))
			tagging += time.Since(tagStart)
			pings += counter.pings.Load() - p0
			manifests += counter.manifests.Load() - m0
			blobs += counter.blobs.Load() - b0
			latest := bothRef[:strings.LastIndex(bothRef, ":")] + ":latest"
			if got, err := reg.Digest(ctx, latest); err != nil || got != digest {
				b.Fatalf("latest = %s, %v; want %s", got, err, digest)
			}
			both += time.Since(start)
		}
		if i%2 == 0 {
			pushPlain()
			pushBoth()
		} else {
			pushBoth()
			pushPlain()
		}
	}
	n := float64(b.N * pushes)
	ratio := both.Seconds() / plain.Seconds()
	b.ReportMetric(ratio, "both-tags/plain-push")
	fmt.Printf("\npush of a 64 MiB image to a cold repository (%d times a side):\n", b.N*pushes)
	fmt.Printf("  nightshift (engine push, digest check, remote latest tag, digest check) %.3fs vs plain docker push %.3fs: ratio %.3f (goal <= 1.05)\n",
		both.Seconds()/n, plain.Seconds()/n, ratio)
	fmt.Printf("  the latest tag took %.1fms: %.0f manifest requests (GET + PUT), %.0f blob requests, %.0f handshake requests (/v2/ ping) per image\n",
		1000*tagging.Seconds()/n, float64(manifests)/n, float64(blobs)/n, float64(pings)/n)
}

// BenchmarkPlan measures loading the config and planning a run of the
// 10-image graph, the work nightshift does before the first build.
func BenchmarkPlan(b *testing.B) {
	requireEnv(b)
	cfgPath := writeStack(b, "plan", 2)
	b.ResetTimer()
	for range b.N {
		cfg, err := config.Load(cfgPath)
		must(b, err)
		g, ps := rebuild.NewGraph(cfg.File, cfg.Source.Repo, cfg.Staging.Registry+"/"+cfg.Staging.Namespace, cfg.Images)
		must(b, ps.Err())
		_, err = rebuild.NewPlan(cfg, g, cfg.Source.Repo, rebuild.Commit{Hash: "0123456789abcdef", Short: "01234567"}, time.Now(), nil)
		must(b, err)
	}
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDaemonIdle measures the resident memory of an idle daemon whose
// store holds a year of nightlies (365 runs x 30 images), after it has
// served its dashboard once, and again after it answered the API's list of
// every run once.
// idleFor is how long the daemon idles before its memory is read.
const idleFor = 10 * time.Second

func BenchmarkDaemonIdle(b *testing.B) {
	requireEnv(b)
	dir := b.TempDir()
	fillYear(b, filepath.Join(dir, "nightshift.db"))
	listen, err := testenv.FreeAddr()
	must(b, err)
	cfg := filepath.Join(dir, "nightshift.toml")
	must(b, os.WriteFile(cfg, []byte(fmt.Sprintf("[source]\nrepo = %q\n[staging]\nregistry = %q\nnamespace = \"idle\"\n[http]\nlisten = %q\n[[image]]\nname = \"base\"\ndockerfile = \"Dockerfile\"\n",
		writeStackDir(b), env.registry.Addr, listen)), 0o644))
	for range b.N {
		cmd := exec.Command(env.bin, "daemon", "-c", cfg)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.docker.Addr)
		must(b, cmd.Start())
		var resp *http.Response
		for i := 0; i < 100; i++ {
			if resp, err = http.Get("http://" + listen + "/"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		must(b, err)
		resp.Body.Close()
		time.Sleep(idleFor) // idle: no run, no request
		kb := memory(b, cmd.Process.Pid)
		// The API's answer of every run (9 MB of JSON) is copied from the
		// store and kept nowhere: garbage once sent.
		resp, err = http.Get("http://" + listen + "/api/v1/runs?limit=365")
		must(b, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(idleFor)
		api := memory(b, cmd.Process.Pid)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		b.ReportMetric(kb["VmRSS"]/1024, "RSS-MB")
		b.ReportMetric(api["VmRSS"]/1024, "RSS-after-api-MB")
		fmt.Printf("\nidle daemon with 365 runs x 30 images, after serving the dashboard once: RSS %.1f MB (goal < 40 MB):"+
			" %.1f MB heap and stacks, %.1f MB mapped files (the binary's code, the database)\n",
			kb["VmRSS"]/1024, kb["RssAnon"]/1024, kb["RssFile"]/1024)
		fmt.Printf("and after answering GET /api/v1/runs?limit=365 once (not kept): RSS %.1f MB (%.1f MB heap and stacks)\n",
			api["VmRSS"]/1024, api["RssAnon"]/1024)
	}
}

// memory reads the resident set sizes of process pid, in kB.
func memory(b *testing.B, pid int) map[string]float64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(b, err)
	kb := map[string]float64{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(k, "Rss") || k == "VmRSS" {
			var n float64
			fmt.Sscanf(v, "%f", &n)
			kb[k] = n
		}
	}
	return kb
}

// writeStackDir is a one-image source tree for a daemon that never builds.
func writeStackDir(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	must(b, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	if _, err := testenv.CommitAll(dir, "idle"); err != nil {
		b.Fatal(err)
	}
	return dir
}

// fillYear records 365 finished nightly runs of 30 images.
func fillYear(b *testing.B, path string) {
	b.Helper()
	db, err := store.Open(path, time.Second)
	must(b, err)
	defer db.Close()
	start := time.Date(2025, 11, 23, 2, 0, 0, 0, time.UTC)
	for night := range 365 {
		began := start.AddDate(0, 0, night)
		r := &store.Run{Tag: began.Format("2006-01-02-15-04-05") + "-1a2b3c4d", Commit: strings.Repeat("1a2b3c4d", 5),
			Status: store.Running, Started: began, Trigger: "schedule"}
		for i := range 30 {
			r.Planned = append(r.Planned, fmt.Sprintf("ci_image_%02d", i))
		}
		must(b, db.CreateRun(r))
		end := began.Add(time.Hour)
		_, err := db.FinishRun(r.ID, func(run *store.Run) error {
			for i, name := range run.Planned {
				st, fin := began.Add(time.Duration(i)*time.Minute), began.Add(time.Duration(i+1)*time.Minute)
				im := store.ImageResult{Name: name, Status: store.Succeeded, Ref: "reg/ns/" + name + ":" + run.Tag,
					Digest: "sha256:" + strings.Repeat("ab", 32), Started: &st, Finished: &fin, Tags: []string{run.Tag, "latest"}}
				if (night+i)%17 == 0 {
					im.Status, im.Error, im.Tail = store.Failed, "build: exit code 1", []string{"E: Unable to locate package", "exit code 1"}
				}
				for _, stage := range []string{"build", "push", "verify", "tag"} {
					im.Stages = append(im.Stages, store.Stage{Name: stage, Status: store.Succeeded, Started: st, Finished: &fin})
				}
				run.Images = append(run.Images, im)
			}
			run.Status, run.Finished = store.Succeeded, &end
			return nil
		}, nil)
		must(b, err)
	}
}
