package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"nightshift/internal/faultproxy"
	"nightshift/store"
)

const (
	// flakyBudget is the stack's staging.retry_budget: short, so that a
	// round may spend it and the failure time can be checked against it.
	flakyBudget = time.Minute
	// maxWait is the longest wait between two tries of any of nightshift's
	// registry clients (the registry client's backoff cap): a retry helper
	// gives up when the next try would start after the budget, so a
	// failure comes at the earliest this long before the budget ends.
	maxWait = 30 * time.Second
	// stormRate is the share of failed requests in every second round.
	stormRate = 0.6
)

// builderPull tells the engine's reads of a manifest (and its /v2/ pings)
// from the rest: a child's build pulls its parent through the registry,
// inside the engine, and a build is not retried for that, so those are
// spared. The engine's BuildKit reads with its resolver, which says it is
// containerd's, blobs included. Every push, and every request of
// nightshift's own, meets faults.
func builderPull(r *http.Request) bool {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	return read && (strings.HasPrefix(r.UserAgent(), "containerd/") || strings.HasPrefix(r.UserAgent(), "docker/") &&
		(r.URL.Path == "/v2/" || strings.Contains(r.URL.Path, "/manifests/")))
}

// flakyRegistry: nightshift runs through a proxy failing a share of the
// registry's requests (5xx, 429 with Retry-After, connections dropped
// before and after forwarding, answers reset mid-body, slow bodies).
// Promises, checked in the registry itself: every image reported succeeded
// has both tags on its recorded digest with every blob present; no tag of
// the namespace points at a manifest with a missing blob; no image failed
// while its retry budget was unspent.
func flakyRegistry(ctx context.Context, e *env) (string, []string) {
	rate := 0.2
	if s := os.Getenv("CHAOS_FAULT_RATE"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", []string{"CHAOS_FAULT_RATE: " + err.Error()}
		}
		rate = r
	}
	proxy, err := faultproxy.Start(e.registry.Addr, faultproxy.WithSeed(e.seed), faultproxy.WithRate(rate),
		faultproxy.WithSpare(builderPull), faultproxy.WithRetryAfter(time.Second), faultproxy.WithSlow(2*time.Second),
		faultproxy.WithLogger(slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		return "", []string{err.Error()}
	}
	defer proxy.Close()

	const namespace = "chaos-flaky"
	files := stackFiles()
	files["nightshift.toml"] = fmt.Sprintf("[staging]\nregistry = %q\nnamespace = %q\nretry_budget = %q\n\n[build]\njobs = 2\n%s",
		proxy.Addr(), namespace, flakyBudget, stackImages)
	cfg, err := e.writeStack("flaky", files)
	if err != nil {
		return "", []string{err.Error()}
	}
	reg := e.registryClient()
	rounds := 2 * e.rounds
	var broken []string
	var succeeded, failed, skipped, runsOK int
	var earliest, latest time.Duration // the soonest and the latest an image failed
	for i := range rounds {
		// Every second round is a storm: most pushes then spend their
		// budget, and the failure times are checked against it.
		roundRate := rate
		if i%2 == 1 {
			roundRate = stormRate
		}
		proxy.SetRate(roundRate)
		e.logf("round %d: fault rate %v", i+1, roundRate)
		jsonPath := filepath.Join(filepath.Dir(cfg), fmt.Sprintf("run-%d.json", i+1))
		res := e.nightshift(ctx, 15*time.Minute, nil, "run", "-c", cfg, "--json", jsonPath, "--progress", "lines")
		rec, err := readRun(jsonPath)
		if err != nil {
			broken = append(broken, fmt.Sprintf("round %d: exit %d and no record: %v", i+1, res.code, err))
			continue
		}
		if res.code == exitOK {
			runsOK++
		} else if res.code != exitFailed {
			broken = append(broken, fmt.Sprintf("round %d: exit %d, want 0 or 1", i+1, res.code))
		}
		for _, im := range rec.Images {
			switch im.Status {
			case store.Succeeded:
				succeeded++
				broken = append(broken, checkPushed(reg, namespace, rec.Tag, im)...)
			case store.Failed:
				failed++
				stage, spent := failedStage(&im)
				if earliest == 0 || spent < earliest {
					earliest = spent
				}
				latest = max(latest, spent)
				e.logf("round %d: %s failed at %s after %s: %s", i+1, im.Name, stage, spent.Round(time.Millisecond), im.Error)
				if im.Error == "" {
					broken = append(broken, fmt.Sprintf("round %d: %s failed without a reason", i+1, im.Name))
				}
				if stage == "" || stage == "build" {
					broken = append(broken, fmt.Sprintf("round %d: %s failed at %q (%s), not at a registry stage", i+1, im.Name, stage, im.Error))
				} else if spent < flakyBudget-maxWait {
					broken = append(broken, fmt.Sprintf("round %d: %s failed at %s after %s, its retry budget of %s unspent (%s)",
						i+1, im.Name, stage, spent.Round(time.Millisecond), flakyBudget, im.Error))
				}
			case store.Skipped:
				skipped++
			default:
				broken = append(broken, fmt.Sprintf("round %d: %s ended %s", i+1, im.Name, im.Status))
			}
		}
	}
	checked, dangling, err := reg.danglingTags(namespace)
	if err != nil {
		broken = append(broken, "reading the registry: "+err.Error())
	}
	broken = append(broken, dangling...)
	stats := proxy.Stats()
	if stats.Injected() == 0 {
		broken = append(broken, "the proxy injected no fault: the scenario proved nothing")
	}
	figures := fmt.Sprintf("rate=%v (%v in every second round) budget=%s: %d runs (%d all succeeded), %d images pushed and verified, %d failed after spending the budget (after %s to %s: a try may start until the budget ends), %d skipped, %d tags checked (%d dangling); proxy: %v",
		rate, stormRate, flakyBudget, rounds, runsOK, succeeded, failed, earliest.Round(time.Second), latest.Round(time.Second), skipped, checked, len(dangling), stats)
	return figures, broken
}

// checkPushed checks a succeeded image in the registry: its run tag and
// latest on its recorded digest, every blob there.
func checkPushed(reg *registryClient, namespace, tag string, im store.ImageResult) []string {
	var broken []string
	repo := namespace + "/" + im.Name
	for _, t := range []string{tag, "latest"} {
		got, err := reg.digest(repo, t)
		if err != nil {
			return append(broken, err.Error())
		}
		// Checked right after the run: latest is still this run's.
		if got != im.Digest {
			broken = append(broken, fmt.Sprintf("%s reported succeeded at %s, but %s:%s is %q in the registry", im.Name, im.Digest, repo, t, got))
		}
		if got == "" {
			broken = append(broken, fmt.Sprintf("%s reported succeeded, but %s:%s is missing", im.Name, repo, t))
			continue
		}
		missing, err := reg.missingBlobs(repo, t)
		if err != nil {
			return append(broken, err.Error())
		}
		if len(missing) > 0 {
			broken = append(broken, fmt.Sprintf("%s:%s reported succeeded, its manifest misses %s", repo, t, strings.Join(missing, ", ")))
		}
	}
	return broken
}

// failedStage names the stage an image failed at and how long it took.
func failedStage(im *store.ImageResult) (string, time.Duration) {
	for _, s := range im.Stages {
		if s.Status == store.Failed {
			end := s.Started
			if s.Finished != nil {
				end = *s.Finished
			}
			return s.Name, end.Sub(s.Started)
		}
	}
	return "", 0
}
