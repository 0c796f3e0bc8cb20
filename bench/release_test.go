package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"nightshift/config"
	"nightshift/internal/testenv"
	"nightshift/promote"
	"nightshift/registry"
	"nightshift/store"
)

// writeReleaseStack writes the 10-image graph with layers of real size:
// each root adds 160 MiB of random bytes, each child 16 MiB, so that an
// image carries 160 to 208 MiB, about the 212 MB image the design's
// numbers were measured with (CI images often carry more). promotes names
// the [promote] namespaces of extra config files, promote-<n>.toml, that
// share the store.
func writeReleaseStack(b *testing.B, namespace string, promotes ...string) string {
	b.Helper()
	dir := b.TempDir()
	bb, err := os.ReadFile(testenv.Busybox)
	must(b, err)
	must(b, os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755))
	staging := fmt.Sprintf("[staging]\nregistry = %q\nnamespace = %q\n\n[build]\njobs = %d\n", env.registry.Addr, namespace, len(graph))
	var images strings.Builder
	for _, im := range graph {
		df, size := fmt.Sprintf("ARG BASE_IMAGE=%s\nFROM ${BASE_IMAGE}\n", im.parent), 16<<20
		if im.parent == "" {
			df, size = "FROM scratch\nCOPY busybox /bin/busybox\n", 160<<20
		}
		df += fmt.Sprintf("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox head -c %d /dev/urandom > /%s\"]\n", size, im.name)
		must(b, os.WriteFile(filepath.Join(dir, "Dockerfile."+im.name), []byte(df), 0o644))
		fmt.Fprintf(&images, "\n[[image]]\nname = %q\ndockerfile = \"Dockerfile.%s\"\ncontext = \".\"\n", im.name, im.name)
	}
	must(b, os.WriteFile(filepath.Join(dir, "nightshift.toml"), []byte(staging+images.String()), 0o644))
	for _, ns := range promotes {
		must(b, os.WriteFile(filepath.Join(dir, ns+".toml"), []byte(staging+fmt.Sprintf("\n[promote]\nnamespace = %q\n", ns)+images.String()), 0o644))
	}
	_, err = testenv.CommitAll(dir, "release stack")
	must(b, err)
	return filepath.Join(dir, "nightshift.toml")
}

// BenchmarkPromote compares `nightshift promote` of a 10-image stack to
// another namespace with what people do without it: docker pull, docker
// tag and docker push of each image, one after another, on an engine that
// does not have the images (a release job's machine), and for reference on
// the engine that built them (its pulls find everything there).
func BenchmarkPromote(b *testing.B) {
	requireEnv(b)
	const rounds = 3
	var namespaces []string
	for i := range rounds {
		namespaces = append(namespaces, fmt.Sprintf("release-%d", i))
	}
	cfg := writeReleaseStack(b, "promote-src", namespaces...)
	_, rec := nightly(b, cfg)
	src := env.registry.Addr + "/promote-src/"

	var promoteTime, cold, warm time.Duration
	for range b.N {
		for i, ns := range namespaces {
			// nightshift: the binary, config to record; --force because the
			// stack has no tests (the gate costs a store read).
			start := time.Now()
			cmd := exec.Command(env.bin, "promote", "-c", filepath.Join(filepath.Dir(cfg), ns+".toml"), "--from", rec.Tag, "--to", "stable", "--force")
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.docker.Addr)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("nightshift promote: %v\n%s", err, out)
			}
			promoteTime += time.Since(start)
			for _, im := range graph {
				if got, err := crane.Digest(env.registry.Addr+"/"+ns+"/"+im.name+":stable", crane.Insecure); err != nil || got != rec.Image(im.name).Digest {
					b.Fatalf("%s/%s:stable = %s, %v; want %s", ns, im.name, got, err, rec.Image(im.name).Digest)
				}
			}

			// The baseline on an engine without the images.
			forget(b, src)
			cold += pullTagPush(b, src, rec.Tag, fmt.Sprintf("%s/cold-%d/", env.registry.Addr, i))
			// And on one that has them all.
			warm += pullTagPush(b, src, rec.Tag, fmt.Sprintf("%s/warm-%d/", env.registry.Addr, i))
		}
	}
	n := float64(b.N * rounds)
	b.ReportMetric(cold.Seconds()/promoteTime.Seconds(), "docker-cold/nightshift")
	b.ReportMetric(warm.Seconds()/promoteTime.Seconds(), "docker-warm/nightshift")
	counts := promoteCounted(b, rec.Tag)
	fmt.Printf("\npromote of 10 images (160-208 MiB each, %d times) to another namespace of the same registry:\n", b.N*rounds)
	fmt.Printf("  nightshift promote %.3fs vs docker pull+tag+push of each on an engine without them %.2fs: %.1fx faster (goal >= 20x)\n",
		promoteTime.Seconds()/n, cold.Seconds()/n, cold.Seconds()/promoteTime.Seconds())
	fmt.Printf("  (on the engine that built them, where pull finds everything: %.2fs, %.1fx)\n", warm.Seconds()/n, warm.Seconds()/promoteTime.Seconds())
	fmt.Printf("  one promotion's requests (in process): %s\n", counts)
}

// forget removes every image of the engine under prefix, so that the next
// pull of one downloads it.
func forget(b *testing.B, prefix string) {
	b.Helper()
	out, err := exec.Command("docker", "-H", env.docker.Addr, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").Output()
	must(b, err)
	var refs []string
	for _, r := range strings.Fields(string(out)) {
		if strings.HasPrefix(r, prefix) || strings.Contains(r, "/cold-") || strings.Contains(r, "/warm-") {
			refs = append(refs, r)
		}
	}
	if len(refs) > 0 {
		docker(b, ".", append([]string{"image", "rm", "-f"}, refs...)...)
	}
}

// pullTagPush is the baseline: each image pulled from staging, tagged and
// pushed to dst, one after another.
func pullTagPush(b *testing.B, src, tag, dst string) time.Duration {
	b.Helper()
	start := time.Now()
	for _, im := range graph {
		from, to := src+im.name+":"+tag, dst+im.name+":stable"
		docker(b, ".", "pull", "-q", from)
		docker(b, ".", "tag", from, to)
		docker(b, ".", "push", "-q", to)
	}
	return time.Since(start)
}

// requestCounter counts requests by what they do to blobs.
type requestCounter struct {
	mounts, uploads, heads, other atomic.Int64
	bytes                         atomic.Int64
}

func (c *requestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" && r.URL.Query().Get("from") != "":
		c.mounts.Add(1)
	case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(r.URL.Path, "/blobs/uploads/"):
		c.uploads.Add(1)
		c.bytes.Add(max(r.ContentLength, 0))
	case r.Method == http.MethodHead:
		c.heads.Add(1)
	default:
		c.other.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *requestCounter) String() string {
	return fmt.Sprintf("%d blob mounts, %d blob uploads (%d bytes), %d HEADs, %d other (manifests, pings)",
		c.mounts.Load(), c.uploads.Load(), c.bytes.Load(), c.heads.Load(), c.other.Load())
}

// promoteCounted promotes the run tagged tag once more, to a namespace of
// its own, through package promote with a counting transport.
func promoteCounted(b *testing.B, tag string) *requestCounter {
	b.Helper()
	dir := b.TempDir()
	db, err := store.Open(filepath.Join(dir, "copy.db"), time.Second)
	must(b, err)
	defer db.Close()
	r := &store.Run{Tag: tag, Status: store.Succeeded, Kind: store.KindNightly}
	for _, im := range graph {
		d, err := crane.Digest(env.registry.Addr+"/promote-src/"+im.name+":"+tag, crane.Insecure)
		must(b, err)
		r.Images = append(r.Images, store.ImageResult{Name: im.name, Status: store.Succeeded, Digest: d})
	}
	must(b, db.CreateRun(r))
	counter := &requestCounter{}
	reg, err := registry.New(env.registry.Addr, registry.WithTransport(counter))
	must(b, err)
	cfg := &config.Config{Staging: config.Staging{Registry: env.registry.Addr, Namespace: "promote-src"},
		Promote: config.Promote{Registry: env.registry.Addr, Namespace: "release-counted", Name: config.DefaultPromoteName}}
	res, err := promote.New(cfg, db, registry.Pair{Source: reg, Target: reg}).Promote(context.Background(),
		promote.Request{From: tag, To: []string{"stable"}, Force: true})
	must(b, err)
	if res.Failed() {
		b.Fatalf("promotion failed: %+v", res)
	}
	return counter
}

// BenchmarkPrune measures `nightshift prune` of 1,000 tags (100 nightly
// runs of 10 images, keep_last = 10: 900 tags deleted, 90 runs marked
// pruned) against a loop of `crane digest` + `crane delete` per tag, as a
// script would prune (without the processes' start-up: in process).
func BenchmarkPrune(b *testing.B) {
	requireEnv(b)
	const runs, images, keep = 100, 10, 10
	var ours, loop time.Duration
	for i := range b.N {
		dir := b.TempDir()
		ns := fmt.Sprintf("prune-%d", i)
		tags := fillPrune(b, dir, ns, runs, images)
		cfg := filepath.Join(dir, "nightshift.toml")
		must(b, os.WriteFile(cfg, []byte(fmt.Sprintf("[source]\nrepo = %q\n[staging]\nregistry = %q\nnamespace = %q\n[retention]\nkeep_last = %d\n[[image]]\nname = \"image00\"\ndockerfile = \"Dockerfile\"\n",
			writeStackDir(b), env.registry.Addr, ns, keep)), 0o644))
		start := time.Now()
		cmd := exec.Command(env.bin, "prune", "-c", cfg)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("nightshift prune: %v\n%s", err, out.String())
		}
		ours += time.Since(start)
		if !strings.Contains(out.String(), fmt.Sprintf("%d tags deleted", (runs-keep)*images)) {
			b.Fatalf("nightshift prune did not delete %d tags:\n%s", (runs-keep)*images, lastLines(out.String(), 5))
		}

		// The loop, over the same tags in a namespace of its own.
		loopNS := ns + "-loop"
		fillPrune(b, b.TempDir(), loopNS, runs, images)
		start = time.Now()
		for _, t := range tags[:(runs-keep)*images] {
			ref, err := name.NewTag(env.registry.Addr+"/"+loopNS+"/"+t, name.Insecure)
			must(b, err)
			d, err := crane.Digest(ref.String(), crane.Insecure)
			must(b, err)
			must(b, crane.Delete(ref.Context().Digest(d).String(), crane.Insecure))
		}
		loop += time.Since(start)
	}
	b.ReportMetric(loop.Seconds()/ours.Seconds(), "crane-loop/nightshift")
	n := float64(b.N)
	fmt.Printf("\nprune of 1,000 tags (%d runs x %d images, keep_last %d: %d deleted, %d runs marked pruned):\n", runs, images, keep, (runs-keep)*images, runs-keep)
	fmt.Printf("  nightshift prune %.2fs (listing, a HEAD per tag, a DELETE per digest, records and logs) vs crane digest + crane delete per deleted tag %.2fs: %.1fx faster\n",
		ours.Seconds()/n, loop.Seconds()/n, loop.Seconds()/ours.Seconds())
}

// fillPrune records runs nightly runs of images images in dir's store,
// each image a distinct small image pushed under the run's tag to
// namespace, and latest on the newest; it returns "image:tag" of each
// pushed tag, oldest run first.
func fillPrune(b *testing.B, dir, namespace string, runs, images int) []string {
	b.Helper()
	db, err := store.Open(filepath.Join(dir, "nightshift.db"), time.Second)
	must(b, err)
	defer db.Close()
	start := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	type push struct {
		ref string
		i   int
	}
	var refs []string
	digests := make([]string, runs*images)
	work := make(chan push)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 16 {
		wg.Go(func() {
			for p := range work {
				img, err := random.Image(256, 1)
				if err == nil {
					var r name.Reference
					if r, err = name.ParseReference(p.ref, name.Insecure); err == nil {
						err = remote.Write(r, img)
					}
				}
				if err == nil {
					var h fmt.Stringer
					h, err = img.Digest()
					if err == nil {
						digests[p.i] = h.String()
					}
				}
				if err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for run := range runs {
		tag := start.AddDate(0, 0, run).Format("2006-01-02-15-04-05") + "-1a2b3c4d"
		for im := range images {
			t := fmt.Sprintf("image%02d:%s", im, tag)
			refs = append(refs, t)
			work <- push{env.registry.Addr + "/" + namespace + "/" + t, run*images + im}
		}
	}
	close(work)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	for run := range runs {
		began := start.AddDate(0, 0, run)
		end := began.Add(time.Hour)
		r := &store.Run{Tag: began.Format("2006-01-02-15-04-05") + "-1a2b3c4d", Kind: store.KindNightly, Status: store.Succeeded,
			Started: began, Finished: &end}
		for im := range images {
			r.Images = append(r.Images, store.ImageResult{Name: fmt.Sprintf("image%02d", im), Status: store.Succeeded, Digest: digests[run*images+im]})
		}
		must(b, db.CreateRun(r))
		must(b, os.MkdirAll(filepath.Join(dir, "logs", fmt.Sprint(r.ID)), 0o755))
	}
	for im := range images {
		must(b, crane.Tag(fmt.Sprintf("%s/%s/image%02d@%s", env.registry.Addr, namespace, im, digests[(runs-1)*images+im]), "latest", crane.Insecure))
	}
	return refs
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
