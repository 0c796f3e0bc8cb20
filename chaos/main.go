// Command chaos beats on nightshift with faults and prints figures: each
// scenario runs the real binary against a private Docker Engine and
// registry, injects its faults from a seed, checks nightshift's promises
// against what the registry, the store and the notifiers really hold, and
// prints one line of figures. It exits 1 when a figure breaks a promise.
//
//	make chaos                       # every scenario, CHAOS_ROUNDS=1
//	CHAOS_ROUNDS=3 make chaos
//	CHAOS_SEED=42 CHAOS_ONLY=flaky make chaos
//
// CHAOS_SEED replays a scenario's faults (the order requests arrive in
// still varies), CHAOS_ROUNDS scales the rounds, CHAOS_ONLY picks scenarios
// by name (comma-separated), CHAOS_TIMEOUT bounds the whole (default 14m),
// CHAOS_FAULT_RATE sets the flaky registry's
// share of failed requests (default 0.2). The details of every round go to
// the log file named at the start.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nightshift/internal/testenv"
)

// scenario is one kind of beating; run returns its figures and the
// promises they broke.
type scenario struct {
	name string
	run  func(ctx context.Context, e *env) (figures string, broken []string)
}

func scenarios() []scenario {
	return []scenario{
		{"flaky-registry", flakyRegistry},
		{"bad-input", badInput},
		{"notify-storm", notifyStorm},
		{"kill-9", killNine},
		{"engine-gone", engineGone},
		{"disk-full", diskFull},
	}
}

func main() {
	os.Exit(run())
}

func run() int {
	bin := flag.String("bin", "", "the nightshift binary (default: built from ./cmd/nightshift)")
	flag.Parse()
	seed := rand.Uint64() % 1_000_000
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_SEED: %v\n", err)
			return 2
		}
	}
	rounds := 1
	if s := os.Getenv("CHAOS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_ROUNDS=%q: want a positive number\n", s)
			return 2
		}
		rounds = n
	}
	var only []string
	if s := os.Getenv("CHAOS_ONLY"); s != "" {
		only = strings.Split(s, ",")
		for _, n := range only {
			if !slices.ContainsFunc(scenarios(), func(s scenario) bool { return s.name == n }) {
				fmt.Fprintf(os.Stderr, "chaos: CHAOS_ONLY: no scenario %q\n", n)
				return 2
			}
		}
	}
	if _, err := os.Stat(corpusDir); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: run it from the repository's root (make chaos):", err)
		return 2
	}
	if missing := testenv.Missing(); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "chaos: needs %s (apt-get install docker.io docker-registry busybox-static git)\n", strings.Join(missing, ", "))
		return 2
	}

	dir, err := os.MkdirTemp("", "ns-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	defer func() {
		// What a killed engine's restarts left mounted would keep the
		// directory from going.
		unmountUnder(dir)
		os.RemoveAll(dir)
	}()
	logPath := filepath.Join(os.TempDir(), fmt.Sprintf("nightshift-chaos-%d.log", seed))
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	defer logFile.Close()
	fmt.Printf("chaos: seed %d, %d round(s); details in %s\n", seed, rounds, logPath)

	e := &env{dir: dir, seed: seed, rounds: rounds, log: logFile, bin: *bin}
	if err := e.start(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	defer e.stop()

	// The whole harness is bounded: what is still running then is killed
	// and its scenario reports what it saw.
	limit := 14 * time.Minute
	if s := os.Getenv("CHAOS_TIMEOUT"); s != "" {
		if limit, err = time.ParseDuration(s); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_TIMEOUT: %v\n", err)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	failed := 0
	for _, s := range scenarios() {
		if only != nil && !slices.Contains(only, s.name) {
			continue
		}
		fmt.Fprintf(e.log, "\n===== %s (seed %d)\n", s.name, seed)
		start := time.Now()
		figures, broken := s.run(ctx, e)
		verdict := "ok"
		if len(broken) > 0 {
			failed++
			verdict = "BROKEN: " + strings.Join(broken, "; ")
			fmt.Fprintf(e.log, "broken promises:\n  %s\n", strings.Join(broken, "\n  "))
		}
		fmt.Printf("chaos %s seed=%d %s in %s: %s\n", s.name, seed, figures, time.Since(start).Round(time.Second), verdict)
	}
	if failed > 0 {
		fmt.Printf("chaos: %d scenario(s) broke a promise (CHAOS_SEED=%d replays them; details in %s)\n", failed, seed, logPath)
		return 1
	}
	return 0
}

// env is what every scenario runs against: a private engine and registry,
// the nightshift binary, the seed and a log for details.
type env struct {
	dir      string
	bin      string
	seed     uint64
	rounds   int
	log      io.Writer
	docker   *testenv.Process
	registry *testenv.Process
}

func (e *env) start() error {
	if e.bin == "" {
		e.bin = filepath.Join(e.dir, "nightshift")
		if out, err := exec.Command("go", "build", "-o", e.bin, "./cmd/nightshift").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	var err error
	if e.docker, err = testenv.StartDockerd(filepath.Join(e.dir, "d")); err != nil {
		return err
	}
	e.registry, err = testenv.StartRegistry(filepath.Join(e.dir, "registry"))
	return err
}

func (e *env) stop() {
	e.docker.Stop()
	e.registry.Stop()
}

// logf writes a detail to the log.
func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, format+"\n", args...)
}

// rng is a scenario's own random source, drawn from the seed.
func (e *env) rng(salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(e.seed, salt))
}

// unmountUnder detaches every mount at or under dir, the deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}
