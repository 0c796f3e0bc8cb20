package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"nightshift/engine"
	"nightshift/internal/testenv"
	"nightshift/validate/structure"
)

// commandTests are 20 quick checks of the kind a CI image's test file
// holds: a tool answers, a file is there, a config says what it should.
var commandTests = [][]string{
	{"echo", "hello"}, {"test", "-f", "/etc/ci/release"}, {"cat", "/etc/ci/release"},
	{"test", "-x", "/bin/busybox"}, {"sh", "-c", "echo $((6*7))"}, {"ls", "/etc/ci"},
	{"cat", "/etc/ci/tools"}, {"grep", "-q", "gcc", "/etc/ci/tools"}, {"test", "-d", "/work"},
	{"wc", "-l", "/etc/ci/tools"}, {"head", "-n1", "/etc/ci/tools"}, {"uname", "-s"},
	{"id", "-u"}, {"pwd"}, {"sh", "-c", "test -z \"$CI_DEBUG\""}, {"basename", "/etc/ci/release"},
	{"env"}, {"stat", "-c", "%a", "/bin/busybox"}, {"sort", "/etc/ci/tools"}, {"true"},
}

// BenchmarkCommandTests runs 20 command tests through nightshift's runner,
// each in a fresh container without network, twice: one test at a time,
// and DefaultParallel at once. The baseline of both ratios is the same 20
// commands as `docker run --rm --network none` one after another, the way
// a CI script without a test runner does.
func BenchmarkCommandTests(b *testing.B) {
	requireEnv(b)
	ctx := context.Background()
	dir := b.TempDir()
	bb, err := os.ReadFile(testenv.Busybox)
	must(b, err)
	must(b, os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755))
	must(b, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(`FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc/ci /work && echo ID=nightshift > /etc/ci/release && printf 'gcc\nclang\ncmake\n' > /etc/ci/tools
WORKDIR /work
`), 0o644))
	const image = "bench-validate:1"
	docker(b, dir, "build", "-q", "-t", image, ".")

	os.Setenv("DOCKER_HOST", env.docker.Addr)
	eng, err := engine.Connect(ctx, 10*time.Second)
	must(b, err)
	defer eng.Close()
	file := &structure.File{Path: "bench.yaml", SchemaVersion: structure.SchemaVersion}
	for i, c := range commandTests {
		file.CommandTests = append(file.CommandTests, structure.CommandTest{Name: fmt.Sprint(i), Command: c[0], Args: c[1:]})
	}

	var parallel, serial, plain time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		results, err := structure.Run(ctx, eng, image, []*structure.File{file}, structure.Options{})
		must(b, err)
		parallel += time.Since(start)
		for _, r := range results {
			if !r.Passed {
				b.Fatalf("test %s: %q\n%s", r.Name, r.Errors, r.Output)
			}
		}

		start = time.Now()
		results, err = structure.Run(ctx, eng, image, []*structure.File{file}, structure.Options{Parallel: 1})
		must(b, err)
		serial += time.Since(start)
		for _, r := range results {
			if !r.Passed {
				b.Fatalf("test %s, one at a time: %q\n%s", r.Name, r.Errors, r.Output)
			}
		}

		start = time.Now()
		for _, c := range commandTests {
			docker(b, dir, append([]string{"run", "--rm", "--network", "none", image}, c...)...)
		}
		plain += time.Since(start)
	}
	n := float64(b.N * len(commandTests))
	perTest := func(d time.Duration) float64 { return d.Seconds() / n }
	serialRatio, parallelRatio := serial.Seconds()/plain.Seconds(), parallel.Seconds()/plain.Seconds()
	b.ReportMetric(perTest(serial), "s/test-serial")
	b.ReportMetric(perTest(parallel), "s/test-parallel")
	b.ReportMetric(perTest(plain), "s/test-plain")
	b.ReportMetric(serialRatio, "serial/plain")
	b.ReportMetric(parallelRatio, "parallel/plain")
	const baseline = "plain `docker run --rm --network none`, one command after another"
	fmt.Printf("\n%d command tests on a busybox image, each in a fresh container without network (goal: ratio <= 1.0):\n", len(commandTests))
	fmt.Printf("  serial:   nightshift, one test at a time, %.3fs a test vs %s, %.3fs a command: ratio %.3f\n",
		perTest(serial), baseline, perTest(plain), serialRatio)
	fmt.Printf("  parallel: nightshift, %d tests at once,   %.3fs a test vs %s, %.3fs a command: ratio %.3f\n",
		structure.DefaultParallel, perTest(parallel), baseline, perTest(plain), parallelRatio)
}
