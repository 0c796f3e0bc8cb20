package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"nightshift/store"
)

// apiURL is the base URL of the daemon: --url, or [http] listen.
func (c *cli) apiURL(flagURL, listen string) string {
	if flagURL != "" {
		return strings.TrimRight(flagURL, "/")
	}
	return "http://" + listen
}

func (c *cli) trigger(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("trigger", "[flags]", `Asks the running daemon for a run now, through its API (POST /api/v1/runs)
with the bearer token of [http] token_file. While a run is going on the
request is coalesced into one pending run, or rejected, as [schedule]
overlap says. Exit 0 when the run started or was queued, 1 when rejected,
3 when the daemon cannot be reached.
`)
	only := fs.String("only", "", "build only these `images` (comma-separated)")
	reason := fs.String("reason", "cli", "why, for the record")
	url := fs.String("url", "", "the daemon's base `URL` (default: http://<[http] listen>)")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	body, _ := json.Marshal(map[string]any{"only": list(*only), "reason": *reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.apiURL(*url, cfg.HTTP.Listen)+"/api/v1/runs", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift trigger: %v\n", err)
		return exitUsage
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := cfg.HTTP.Token.Reveal(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	var out struct {
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
	}
	status, err := c.call(req, &out)
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "nightshift trigger: %v\n", err)
		return exitUnavailable
	case status == http.StatusAccepted:
		fmt.Fprintf(c.stdout, "run %s\n", out.Outcome)
		return exitOK
	case status == http.StatusConflict:
		fmt.Fprintf(c.stdout, "run %s: %s\n", out.Outcome, out.Error)
		return exitFailed
	}
	fmt.Fprintf(c.stderr, "nightshift trigger: the daemon answered %d: %s\n", status, out.Error)
	if status == http.StatusUnauthorized {
		fmt.Fprintln(c.stderr, "Give the daemon's token in [http] token_file or $NIGHTSHIFT_HTTP_TOKEN.")
	}
	return exitUsage
}

func (c *cli) status(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("status", "[flags]", `Shows, through the running daemon's API, the latest runs and their images.
`)
	url := fs.String("url", "", "the daemon's base `URL` (default: http://<[http] listen>)")
	limit := fs.Int("limit", 3, "show the latest `n` runs")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/runs?limit=%d", c.apiURL(*url, cfg.HTTP.Listen), *limit), nil)
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
		fmt.Fprintf(c.stdout, "run %d  %-11s %s  %s  %s  (%s)\n", r.ID, r.Status, r.Tag, r.Started.Local().Format("2006-01-02 15:04"),
			r.Duration(now).Round(time.Second), countImages(r))
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
