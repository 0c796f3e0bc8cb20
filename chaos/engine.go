package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// engineBound is how long after its engine went away a run must have
// ended, recorded failed.
const engineBound = 2 * time.Minute

// engineGone: the Docker Engine of a run is stopped (SIGTERM) or killed
// (SIGKILL) at a seeded moment while images build and their tests run.
// Promises: the run ends failed, every image it had not finished failed or
// skipped with a reason, within engineBound; with the engine back the next
// run succeeds; no container of nightshift is left on the engine after it.
func engineGone(ctx context.Context, e *env) (string, []string) {
	dir := filepath.Join(e.dir, "e5")
	engine, err := testenv.StartDockerd(dir)
	if err != nil {
		return "", []string{err.Error()}
	}
	defer func() {
		if engine != nil {
			engine.Stop()
		}
	}()
	hostEnv := func() []string { return []string{"DOCKER_HOST=" + engine.Addr} }

	files := stackFiles()
	files["docker/Dockerfile.cpu"] = "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN sleep 3 && echo cpu > /etc/ci/cpu\n"
	files["tests/common.yaml"] = `schemaVersion: 2.0.0
commandTests:
  - name: busybox answers
    command: sh
    args: ["-c", "sleep 2; echo ok"]
    expectedOutput: ["ok"]
`
	files["nightshift.toml"] = fmt.Sprintf(`[staging]
registry = %q
namespace = "chaos-engine"

[build]
jobs = 2

[validate]
tests = ["tests/common.yaml"]

[notify]
flush_timeout = "1s"
%s`, e.registry.Addr, stackImages)
	cfg, err := e.writeStack("engine", files)
	if err != nil {
		return "", []string{err.Error()}
	}
	var broken []string
	start := time.Now()
	if res := e.nightshift(ctx, 10*time.Minute, hostEnv(), "run", "-c", cfg, "--progress", "lines"); res.code != exitOK {
		return "", []string{fmt.Sprintf("the first, clean run exited %d: %s", res.code, tailOf(res.output))}
	}
	span := time.Since(start)
	rng := e.rng(5)
	rounds := 2 * e.rounds
	var slowest time.Duration
	failedRuns, nextOK := 0, 0
	var how []string
	for i := range rounds {
		jsonPath := filepath.Join(filepath.Dir(cfg), fmt.Sprintf("gone-%d.json", i+1))
		cmd := e.command(ctx, hostEnv(), "run", "-c", cfg, "--progress", "lines", "--json", jsonPath)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return "", append(broken, err.Error())
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		at := span/4 + time.Duration(rng.Int64N(int64(span/2)))
		time.Sleep(at)
		kill := rng.IntN(2) == 0
		gone := time.Now()
		if kill {
			engine.Kill()
			how = append(how, "kill")
		} else {
			engine.Stop()
			how = append(how, "stop")
		}
		var code int
		select {
		case err := <-exited:
			code = exitCode(err)
		case <-time.After(engineBound):
			cmd.Process.Kill()
			code = exitCode(<-exited)
			broken = append(broken, fmt.Sprintf("round %d: the run had not ended %s after its engine went away", i+1, engineBound))
		}
		took := time.Since(gone)
		slowest = max(slowest, took)
		e.logf("round %d: engine %sed at %s; run exited %d %s later:\n%s", i+1, how[i], at.Round(time.Millisecond), code, took.Round(time.Millisecond), out.String())
		rec, err := readRun(jsonPath)
		switch {
		case err != nil:
			broken = append(broken, fmt.Sprintf("round %d: exit %d and no record: %v", i+1, code, err))
		case code == exitFailed && rec.Status == store.Failed:
			failedRuns++
			for _, im := range rec.Images {
				if im.Status != store.Succeeded && im.Error == "" {
					broken = append(broken, fmt.Sprintf("round %d: %s is %s without a reason", i+1, im.Name, im.Status))
				}
				if !im.Status.Done() {
					broken = append(broken, fmt.Sprintf("round %d: %s is still %s", i+1, im.Name, im.Status))
				}
			}
		case code == exitOK && rec.Status == store.Succeeded:
			// Every image had finished what needed the engine.
		default:
			broken = append(broken, fmt.Sprintf("round %d: exit %d, run %s: want exit 1 and failed", i+1, code, rec.Status))
		}

		// The engine comes back; the next run must succeed.
		if engine, err = restartDockerd(dir); err != nil {
			broken = append(broken, "restarting the engine: "+err.Error())
			break
		}
		res := e.nightshift(ctx, 10*time.Minute, hostEnv(), "run", "-c", cfg, "--progress", "lines")
		if res.code == exitOK {
			nextOK++
		} else {
			broken = append(broken, fmt.Sprintf("round %d: the run with the engine back exited %d: %s", i+1, res.code, tailOf(res.output)))
		}
	}
	if engine == nil {
		return fmt.Sprintf("%d rounds (%s), the engine did not come back", rounds, strings.Join(how, ", ")), broken
	}
	_, tests, steps, err := e.leftovers(engine.Addr, nil)
	if err != nil {
		broken = append(broken, "reading the engine: "+err.Error())
	}
	if tests > 0 {
		broken = append(broken, fmt.Sprintf("%d test container(s) of nightshift left on the engine after the next runs", tests))
	}
	figures := fmt.Sprintf("%d rounds (%s), %d runs ended failed with reasons, slowest end %s after the engine went (bound %s), %d of %d next runs succeeded, %d test containers of nightshift and %d build-step containers of the engine left",
		rounds, strings.Join(how, ", "), failedRuns, slowest.Round(100*time.Millisecond), engineBound, nextOK, rounds, tests, steps)
	return figures, broken
}

// restartDockerd starts the engine in dir again; after a kill its
// containerd may need a few seconds to let go of its state.
func restartDockerd(dir string) (*testenv.Process, error) {
	var errs []error
	for range 3 {
		p, err := testenv.StartDockerd(dir)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
		time.Sleep(3 * time.Second)
	}
	return nil, errors.Join(errs...)
}
