package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// killNine: `nightshift run` is killed with SIGKILL at a seeded moment of
// a run (pinning the source, building, pushing, tagging, testing inside the
// images, delivering the summary), round after round, each next run
// starting on what the killed one left; then `nightshift daemon`, running
// a schedule every two seconds, is killed the same way. Promises: the database always
// opens; no run stays running after the next start; every interrupted run
// is notified exactly once (a duplicate at most once per kill); the run
// after the last kill succeeds; no container and no temporary file of
// nightshift is left after it.
func killNine(ctx context.Context, e *env) (string, []string) {
	discord := &discordStorm{rng: e.rng(4), notBefore: map[[32]byte]time.Time{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", []string{err.Error()}
	}
	hookSrv := &http.Server{Handler: discord, ReadHeaderTimeout: 10 * time.Second}
	go hookSrv.Serve(l)
	defer hookSrv.Close()

	files := stackFiles()
	files["tests/common.yaml"] = `schemaVersion: 2.0.0
commandTests:
  - name: busybox answers
    command: sh
    args: ["-c", "sleep 1; echo ok"]
    expectedOutput: ["ok"]
`
	files["hook"] = "http://" + l.Addr().String() + webhookPath + "\n"
	files["nightshift.toml"] = fmt.Sprintf(`[staging]
registry = %q
namespace = "chaos-kill"

[build]
jobs = 2

[validate]
tests = ["tests/common.yaml"]

[http]
public_url = "http://chaos.test"

[notify]
flush_timeout = "10s"

[notify.discord]
webhook_url_file = "hook"
on = ["always"]
%s`, e.registry.Addr, stackImages)
	cfg, err := e.writeStack("kill", files)
	if err != nil {
		return "", []string{err.Error()}
	}
	dbPath := filepath.Join(filepath.Dir(cfg), "nightshift.db")
	tmpBefore := entries(e.tmp())
	before, _, _, err := e.leftovers(e.docker.Addr, nil)
	if err != nil {
		return "", []string{"reading the engine: " + err.Error()}
	}

	var broken []string
	// A clean run first: how long a run takes, where the kills are drawn.
	start := time.Now()
	if res := e.nightshift(ctx, 10*time.Minute, nil, "run", "-c", cfg, "--progress", "lines"); res.code != exitOK {
		return "", []string{fmt.Sprintf("the first, clean run exited %d: %s", res.code, tailOf(res.output))}
	}
	span := time.Since(start)
	rng := e.rng(4)
	kills := 6 * e.rounds
	moments := map[string]int{}
	opened := 0
	for i := range kills {
		at := time.Duration(rng.Int64N(int64(span)))
		cmd := e.command(ctx, nil, "run", "-c", cfg, "--progress", "lines")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return "", append(broken, err.Error())
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			moments["after exit"]++
			opened++
			e.logf("round %d: the run exited (%v) before its kill at %s:\n%s", i+1, err, at, out.String())
			continue
		case <-time.After(at):
		}
		cmd.Process.Kill() // by its PID, as a crash would
		<-exited
		e.logf("round %d: killed at %s:\n%s", i+1, at.Round(time.Millisecond), out.String())

		runs, err := latestRun(dbPath)
		if err != nil {
			broken = append(broken, fmt.Sprintf("round %d: after the kill, %v", i+1, err))
			continue
		}
		opened++
		moments[moment(runs, i+2)]++
	}

	// The daemon, killed the same way: its schedule starts a run every two
	// seconds, and each start recovers what the kill before left.
	listen, err := testenv.FreeAddr()
	if err != nil {
		return "", append(broken, err.Error())
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		return "", append(broken, err.Error())
	}
	scheduled := strings.Replace(string(text), "[http]\n",
		fmt.Sprintf("[schedule]\ncron = \"*/2 * * * * *\"\n\n[http]\nlisten = %q\n", listen), 1)
	if err := os.WriteFile(cfg, []byte(scheduled), 0o644); err != nil {
		return "", append(broken, err.Error())
	}
	daemonKills := 3 * e.rounds
	for i := range daemonKills {
		d, out, err := e.startDaemon(ctx, cfg)
		if err != nil {
			broken = append(broken, fmt.Sprintf("daemon round %d: %v", i+1, err))
			break
		}
		at := time.Second + time.Duration(rng.Int64N(int64(span+2*time.Second)))
		select {
		case <-time.After(at):
		case <-ctx.Done():
		}
		d.kill() // by its PID, as a crash would
		e.logf("daemon round %d: killed at %s:\n%s", i+1, at.Round(time.Millisecond), out.String())
		runs, err := latestRun(dbPath)
		if err != nil {
			broken = append(broken, fmt.Sprintf("daemon round %d: after the kill, %v", i+1, err))
			continue
		}
		opened++
		at2 := "before its record"
		if len(runs) > 0 {
			at2 = moment(runs, int(runs[0].ID))
		}
		moments["daemon "+at2]++
	}
	kills += daemonKills

	// The run after the last kill.
	res := e.nightshift(ctx, 10*time.Minute, nil, "run", "-c", cfg, "--progress", "lines")
	if res.code != exitOK {
		broken = append(broken, fmt.Sprintf("the run after the last kill exited %d: %s", res.code, tailOf(res.output)))
	}
	db, err := store.Open(dbPath, 5*time.Second)
	if err != nil {
		return "", append(broken, "the database does not open: "+err.Error())
	}
	runs, err := db.Runs(0)
	db.Close()
	if err != nil {
		return "", append(broken, err.Error())
	}
	discord.mu.Lock()
	accepted := append([]string(nil), discord.accepted...)
	discord.mu.Unlock()
	sent := runLinks(accepted)
	statuses := map[store.Status]int{}
	interrupted, notifiedOnce, duplicates := 0, 0, 0
	for _, r := range runs {
		statuses[r.Status]++
		n := sent[r.ID]
		switch r.Status {
		case store.Running, store.Queued:
			broken = append(broken, fmt.Sprintf("run %d is still %s after the next start", r.ID, r.Status))
		case store.Interrupted:
			interrupted++
			if n == 1 {
				notifiedOnce++
			}
		}
		if n == 0 {
			broken = append(broken, fmt.Sprintf("run %d (%s) was never notified", r.ID, r.Status))
		}
		duplicates += max(n-1, 0)
	}
	if duplicates > kills {
		broken = append(broken, fmt.Sprintf("%d duplicate messages for %d kills", duplicates, kills))
	}

	_, tests, steps, err := e.leftovers(e.docker.Addr, before)
	if err != nil {
		broken = append(broken, "reading the engine: "+err.Error())
	}
	if tests > 0 {
		broken = append(broken, fmt.Sprintf("%d container(s) of nightshift (tests, info commands) left on the engine after the next run", tests))
	}
	var leftover []string
	for _, f := range entries(e.tmp()) {
		if !slices.Contains(tmpBefore, f) {
			leftover = append(leftover, f)
		}
	}
	if len(leftover) > 0 {
		broken = append(broken, fmt.Sprintf("%d temporary file(s) left in TMPDIR: %s", len(leftover), strings.Join(first(leftover, 3), ", ")))
	}
	figures := fmt.Sprintf("%d kills (%s), %d runs (%s), %d interrupted and %d of them notified exactly once, %d duplicates, database opened %d of %d times, next run exit %d, %d containers of nightshift, %d build-step containers and %d temp files left",
		kills, counts(moments), len(runs), counts(statusCounts(statuses)), interrupted, notifiedOnce, duplicates, opened, kills, res.code, tests, steps, len(leftover))
	return figures, broken
}

// latestRun opens the database at path, as the next start would, and
// reads its newest run.
func latestRun(path string) ([]store.Run, error) {
	db, err := store.Open(path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("the database does not open: %w", err)
	}
	defer db.Close()
	runs, err := db.Runs(1)
	if err != nil {
		return nil, fmt.Errorf("the database does not read: %w", err)
	}
	return runs, nil
}

// moment names what the run killed was doing, from its record.
func moment(latest []store.Run, want int) string {
	if len(latest) == 0 || latest[0].ID != uint64(want) {
		return "before its record"
	}
	r := latest[0]
	if r.Status.Done() {
		return "after its end"
	}
	stage := "start"
	var last time.Time
	for _, im := range r.Images {
		for _, s := range im.Stages {
			if s.Finished == nil && !s.Started.Before(last) {
				stage, last = s.Name, s.Started
			}
		}
	}
	return "at " + stage
}

var runLink = regexp.MustCompile(`http://chaos\.test/runs/(\d+)"`)

// runLinks counts, per run id, the messages whose link is that run's page.
func runLinks(payloads []string) map[uint64]int {
	n := map[uint64]int{}
	for _, p := range payloads {
		seen := map[uint64]bool{}
		for _, m := range runLink.FindAllStringSubmatch(p, -1) {
			id, _ := strconv.ParseUint(m[1], 10, 64)
			if !seen[id] {
				seen[id] = true
				n[id]++
			}
		}
	}
	return n
}

func entries(dir string) []string {
	des, _ := os.ReadDir(dir)
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func counts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func statusCounts(m map[store.Status]int) map[string]int {
	s := map[string]int{}
	for k, v := range m {
		s[string(k)] = v
	}
	return s
}
