package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"nightshift/config"
	"nightshift/store"
)

// daemonClient is what a client of the daemon's API knows: where the
// daemon is, the token to write with, and for summaries the staging
// repository and the dashboard's public URL ("" when unknown).
type daemonClient struct {
	base, token, repo, public string
}

// newDaemonClient reads what a client needs from the configuration at
// path: the daemon at flagURL, or at [http] listen; the token of tokenFile,
// or [http] token_file, or $NIGHTSHIFT_HTTP_TOKEN. With flagURL, a missing
// configuration is no error (a Jenkins agent, a committer's machine).
func (c *cli) newDaemonClient(cmd, path, flagURL, tokenFile string) (*daemonClient, int) {
	d := &daemonClient{base: strings.TrimRight(flagURL, "/"), token: os.Getenv(config.EnvHTTPToken)}
	if _, err := os.Stat(path); flagURL == "" || !errors.Is(err, os.ErrNotExist) {
		cfg, code := c.clientConfig(path)
		if cfg == nil {
			return nil, code
		}
		d.base = cmp.Or(d.base, "http://"+cfg.HTTP.Listen)
		d.token = cfg.HTTP.Token.Reveal()
		d.repo, d.public = cfg.Staging.Registry+"/"+cfg.Staging.Namespace, cfg.HTTP.PublicURL
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if d.token = strings.TrimSpace(string(b)); err != nil || d.token == "" {
			fmt.Fprintf(c.stderr, "nightshift %s: --token-file: cannot read a token from %s: %v\n", cmd, tokenFile, cmp.Or(err, errors.New("it is empty")))
			return nil, exitUsage
		}
	}
	return d, exitOK
}

// clientConfig loads the configuration of a client of the daemon's API. It
// never needs the daemon's named tokens: a tokens_file that only the
// daemon may read is not the client's problem.
func (c *cli) clientConfig(path string) (*config.Config, int) {
	return c.loadConfigExcept(path, func(p config.Problem) bool { return p.Key == "http.tokens_file" })
}

func (c *cli) trigger(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("trigger", "[flags]", `Asks the running daemon for a run now, through its API (POST /api/v1/runs),
and prints the run's id and URL. While a run is going on the request is
coalesced into one pending run (queued, with an id at once), or rejected, as
[schedule] overlap says. A trigger coalesced into a pending run gets that
run's id: it is the run that carries out the request.

The bearer token comes from --token-file, else [http] token_file, else
$NIGHTSHIFT_HTTP_TOKEN; with one of [http] tokens_file, the run records
that token's name as who triggered it. The daemon's tokens_file itself is
not read here (only the daemon needs it). With --url, the configuration
file may be absent (a Jenkins agent, a committer's machine).

With --wait, it follows the run by its id until it ends, prints its summary,
and exits as 'nightshift run' would: 0 when every image succeeded, 1 when
the run failed (some image, or it could not start) or was interrupted; so a
Jenkins job can run the daemon's run and report it.

Exit 0 when the run started or was queued (with --wait: succeeded), 1 when
rejected (with --wait: or the run did not succeed), 2 on a usage,
configuration or token error, 3 when the daemon cannot be reached.
`)
	only := fs.String("only", "", "build only these `images` (comma-separated)")
	reason := fs.String("reason", "cli", "why, for the record")
	url := fs.String("url", "", "the daemon's base `URL` (default: http://<[http] listen>)")
	tokenFile := fs.String("token-file", "", "read the API token from `file` (your own, of the daemon's [http] tokens_file)")
	wait := fs.Bool("wait", false, "follow the run until it ends, print its summary and exit with its exit code")
	poll := fs.Duration("poll", 2*time.Second, "with --wait: how often to ask the daemon how the run is going")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if *poll <= 0 {
		fmt.Fprintln(c.stderr, "nightshift trigger: --poll must be positive")
		return exitUsage
	}
	d, code := c.newDaemonClient("trigger", *cfgPath, *url, *tokenFile)
	if d == nil {
		return code
	}
	body, _ := json.Marshal(map[string]any{"only": list(*only), "reason": *reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/api/v1/runs", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift trigger: %v\n", err)
		return exitUsage
	}
	req.Header.Set("Content-Type", "application/json")
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	var out struct {
		ID      uint64 `json:"id"`
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
	}
	status, err := c.call(req, &out)
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "nightshift trigger: %v\n", err)
		return exitUnavailable
	case status == http.StatusAccepted && out.ID != 0:
		// Followed by id at our own base: the answer's url carries the
		// prefix of public_url, which only a client behind the proxy uses.
		fmt.Fprintf(c.stdout, "run %d %s: %s\n", out.ID, out.Outcome, runURL(d.base, out.ID))
		if d.public != "" {
			fmt.Fprintf(c.stdout, "  %s/runs/%d\n", d.public, out.ID)
		}
		if !*wait {
			return exitOK
		}
		return c.follow(ctx, d, out.ID, *poll)
	case status == http.StatusAccepted && !*wait:
		fmt.Fprintf(c.stdout, "run %s\n", out.Outcome) // an older daemon, which names no run
		return exitOK
	case status == http.StatusAccepted:
		fmt.Fprintf(c.stderr, "nightshift trigger: the daemon accepted the run (%s) but named no run to follow: is it an older nightshift?\n", out.Outcome)
		return exitUnavailable
	case status == http.StatusConflict:
		fmt.Fprintf(c.stdout, "run %s: %s\n", out.Outcome, out.Error)
		return exitFailed
	}
	fmt.Fprintf(c.stderr, "nightshift trigger: the daemon answered %d: %s\n", status, out.Error)
	if status == http.StatusUnauthorized {
		fmt.Fprintln(c.stderr, "Give a token of the daemon's with --token-file, [http] token_file or $NIGHTSHIFT_HTTP_TOKEN.")
	}
	return exitUsage
}

// runURL is where the API serves run id.
func runURL(base string, id uint64) string { return fmt.Sprintf("%s/api/v1/runs/%d", base, id) }

// lostAfter is how long --wait keeps asking a daemon that does not answer
// (restarting, say) before it gives up.
const lostAfter = 2 * time.Minute

// follow asks the daemon at base about run id every poll until the run
// ends, saying when its status changes, then prints its summary and
// returns its exit code.
func (c *cli) follow(ctx context.Context, d *daemonClient, id uint64, poll time.Duration) int {
	var (
		last   store.Status
		failed time.Time // since when the daemon has not answered; zero while it does
	)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, runURL(d.base, id), nil)
		if err != nil {
			fmt.Fprintf(c.stderr, "nightshift trigger: %v\n", err)
			return exitUsage
		}
		var run store.Run
		status, err := c.call(req, &run)
		switch {
		case ctx.Err() != nil:
			fmt.Fprintf(c.stderr, "nightshift trigger: stopped waiting; run %d goes on in the daemon\n", id)
			return exitFailed
		case status == http.StatusNotFound:
			fmt.Fprintf(c.stderr, "nightshift trigger: the daemon has no run %d (any more)\n", id)
			return exitUnavailable
		case err != nil || status != http.StatusOK:
			if failed.IsZero() {
				failed = time.Now()
				fmt.Fprintf(c.stderr, "nightshift trigger: asking about run %d: %v (HTTP %d); trying again\n", id, err, status)
			}
			if time.Since(failed) > lostAfter {
				fmt.Fprintf(c.stderr, "nightshift trigger: the daemon has not answered for %s; run %d may go on\n", lostAfter, id)
				return exitUnavailable
			}
		default:
			failed = time.Time{}
			if run.Status != last && !run.Status.Done() {
				last = run.Status
				c.progressLine(&run)
			}
			if run.Status.Done() {
				followedSummary(c.stdout, &run, d.repo)
				if run.Status == store.Succeeded {
					return exitOK
				}
				return exitFailed
			}
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// progressLine says where a followed run is, until its summary.
func (c *cli) progressLine(r *store.Run) {
	at := time.Now().Format("15:04:05")
	if r.Status == store.Queued {
		fmt.Fprintf(c.stdout, "%s run %d queued: it starts when the run going on ends\n", at, r.ID)
		return
	}
	fmt.Fprintf(c.stdout, "%s run %d %s: tag %s, commit %.8s, %d image(s)\n", at, r.ID, r.Status, r.Tag, r.Commit, len(r.Planned))
}

// followedSummary is the summary of a run followed through the API: that
// of 'nightshift run', or why it never started. repo is the staging
// repository, "" when unknown: then it is read from the images' refs.
func followedSummary(w io.Writer, r *store.Run, repo string) {
	if len(r.Planned) == 0 && len(r.Images) == 0 {
		fmt.Fprintf(w, "\nrun %d %s: %s\n", r.ID, r.Status, cmp.Or(r.Error, "no image was built"))
		return
	}
	for i := 0; repo == "" && i < len(r.Images); i++ {
		im := &r.Images[i]
		if cut, ok := strings.CutSuffix(im.Ref, "/"+im.Name+":"+r.Tag); ok {
			repo = cut
		}
	}
	summary(w, r, cmp.Or(repo, "the staging registry"))
	if r.Error != "" {
		fmt.Fprintf(w, "  %s\n", r.Error)
	}
}

func (c *cli) status(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("status", "[flags]", `Shows, through the running daemon's API, the latest runs and their images,
and who triggered them. With --url, the configuration file may be absent.
`)
	url := fs.String("url", "", "the daemon's base `URL` (default: http://<[http] listen>)")
	limit := fs.Int("limit", 3, "show the latest `n` runs")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	d, code := c.newDaemonClient("status", *cfgPath, *url, "")
	if d == nil {
		return code
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/runs?limit=%d", d.base, *limit), nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift status: %v\n", err)
		return exitUsage
	}
	var runs []store.Run
	status, err := c.call(req, &runs)
	if err != nil || status != http.StatusOK {
		fmt.Fprintf(c.stderr, "nightshift status: the daemon at %s: %v (HTTP %d)\n", req.URL.Host, err, status)
		return exitUnavailable
	}
	if len(runs) == 0 {
		fmt.Fprintln(c.stdout, "no runs recorded yet")
	}
	now := time.Now()
	for _, r := range runs {
		fmt.Fprintf(c.stdout, "run %d  %-11s %s  %s  %s  (%s)%s\n", r.ID, r.Status, r.Tag, r.Started.Local().Format("2006-01-02 15:04"),
			r.Duration(now).Round(time.Second), countImages(r), triggeredBy(r))
	}
	return exitOK
}

// call does req and decodes its JSON answer into out, whatever the status.
func (c *cli) call(req *http.Request, out any) (int, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if len(data) > 0 && json.Unmarshal(data, out) != nil && resp.StatusCode < 300 {
		return resp.StatusCode, fmt.Errorf("the answer is not JSON: %.200s", data)
	}
	return resp.StatusCode, nil
}
