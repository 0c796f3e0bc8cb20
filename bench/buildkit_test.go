package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nightshift/engine"
	"nightshift/internal/testenv"
	"nightshift/registry"
)

// BenchmarkBuildKit builds and pushes the same images with the engine's
// BuildKit and with its classic builder, from scratch each time, to a cold
// repository: a one-stage image, and one whose two independent stages
// BuildKit runs at once. Docker 20.10's BuildKit has no exporter that
// pushes, so both push through the engine; a standalone buildkitd's image
// exporter pushes directly, and is measured against the classic builder
// and engine push too.
func BenchmarkBuildKit(b *testing.B) {
	requireEnv(b)
	ctx := context.Background()
	dir := b.TempDir()
	bb, err := os.ReadFile(testenv.Busybox)
	must(b, err)
	must(b, os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755))
	const base = "FROM scratch AS base\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
	// Each stage works a second and writes 16 MiB of incompressible data.
	stage := func(name string) string {
		return fmt.Sprintf("FROM base AS %s\nRUN sleep 1 && head -c 16777216 /dev/urandom > /%s\n", name, name)
	}
	dockerfiles := []struct{ name, unit, content string }{
		{"one stage", "buildkit/legacy-one-stage", base + "RUN sleep 1 && head -c 33554432 /dev/urandom > /blob\n"},
		{"two independent stages", "buildkit/legacy-two-stages", base + stage("left") + stage("right") +
			"FROM base\nCOPY --from=left /left /left\nCOPY --from=right /right /right\n"},
	}
	os.Setenv("DOCKER_HOST", env.docker.Addr)
	eng, err := engine.Connect(ctx, 10*time.Second)
	must(b, err)
	defer eng.Close()
	reg, err := registry.New(env.registry.Addr)
	must(b, err)
	bkd, err := testenv.StartBuildkitd(filepath.Join(b.TempDir(), "bk"), env.registry.Addr)
	must(b, err)
	defer bkd.Stop()
	daemon := engine.NewDaemon(bkd.Addr, "", "", "")
	daemon.Insecure = registry.IsLoopback
	auth, err := reg.EngineAuth()
	must(b, err)

	// build and push, from scratch, to a repository of its own.
	buildPush := func(df string, buildKit bool, i int) time.Duration {
		ref := fmt.Sprintf("%s/bk-%t-%d-%d/image:t", env.registry.Addr, buildKit, time.Now().UnixNano(), i)
		start := time.Now()
		var log bytes.Buffer
		if _, err := eng.Build(ctx, engine.BuildSpec{Context: dir, Dockerfile: df, Tags: []string{ref},
			NoCache: true, Pull: true, BuildKit: buildKit}, &log); err != nil {
			b.Fatalf("build (buildkit %t): %v\n%s", buildKit, err, log.String())
		}
		if _, err := eng.Push(ctx, ref, auth, &log); err != nil {
			b.Fatalf("push: %v\n%s", err, log.String())
		}
		return time.Since(start)
	}
	// build on the buildkitd, whose exporter pushes.
	direct := func(df string, i int) time.Duration {
		ref := fmt.Sprintf("%s/bkd-%d-%d/image:t", env.registry.Addr, time.Now().UnixNano(), i)
		start := time.Now()
		var log bytes.Buffer
		if _, err := daemon.Build(ctx, engine.BuildSpec{Context: dir, Dockerfile: df, Tags: []string{ref},
			NoCache: true, Pull: true, BuildKit: true}, &log); err != nil {
			b.Fatalf("buildkitd build: %v\n%s", err, log.String())
		}
		return time.Since(start)
	}

	// Several builds a side, alternating which goes first, so one slow
	// moment of a shared machine does not decide the ratio.
	const builds = 4
	b.ResetTimer()
	fmt.Printf("\nbuild from scratch + push through the engine to a cold repository (%d times a side):\n", b.N*builds)
	for _, d := range dockerfiles {
		df := filepath.Join(dir, "Dockerfile")
		must(b, os.WriteFile(df, []byte(d.content), 0o644))
		var bk, classic, pushed time.Duration
		for i := range b.N * builds {
			if i%2 == 0 {
				bk += buildPush(df, true, i)
				classic += buildPush(df, false, i)
				pushed += direct(df, i)
			} else {
				pushed += direct(df, i)
				classic += buildPush(df, false, i)
				bk += buildPush(df, true, i)
			}
		}
		n := float64(b.N * builds)
		ratio := bk.Seconds() / classic.Seconds()
		b.ReportMetric(ratio, d.unit)
		fmt.Printf("  %s: BuildKit %.3fs vs classic builder %.3fs: ratio %.3f\n", d.name, bk.Seconds()/n, classic.Seconds()/n, ratio)
		fmt.Printf("  %s: buildkitd build + direct push %.3fs vs classic builder + engine push %.3fs: ratio %.3f\n",
			d.name, pushed.Seconds()/n, classic.Seconds()/n, pushed.Seconds()/classic.Seconds())
		b.ReportMetric(pushed.Seconds()/classic.Seconds(), strings.Replace(d.unit, "buildkit/", "buildkitd/", 1))
	}
}
