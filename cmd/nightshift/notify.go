package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"nightshift/config"
	"nightshift/notify"
	"nightshift/notify/discord"
	"nightshift/notify/email"
	"nightshift/pipeline"
	"nightshift/store"
)

// notifiers builds the notifiers the configuration names, and their policies.
func notifiers(cfg *config.Config) (map[string]notify.Notifier, []notify.Route, error) {
	ns := map[string]notify.Notifier{}
	var routes []notify.Route
	if d := cfg.Notify.Discord; d.Enabled {
		n, err := discord.New(discord.Config{WebhookURL: d.WebhookURL.Reveal(), Username: d.Username, Mentions: d.Mentions})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: notify.discord: %w", cfg.File, err)
		}
		ns[n.Name()] = n
		routes = append(routes, notify.Route{Notifier: n.Name(), On: d.On})
	}
	if e := cfg.Notify.Email; e.Enabled {
		n, err := email.New(email.Config{Host: e.Host, Port: e.Port, TLS: e.TLS, Username: e.Username,
			Password: e.Password.Reveal(), From: e.From, To: e.To})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: notify.email: %w", cfg.File, err)
		}
		ns[n.Name()] = n
		routes = append(routes, notify.Route{Notifier: n.Name(), On: e.On})
	}
	return ns, routes, nil
}

func stagingRepo(cfg *config.Config) string {
	return cfg.Staging.Registry + "/" + cfg.Staging.Namespace
}

// flush delivers what is pending, waiting at most the configured time, and
// says what is left for later.
func (c *cli) flush(ctx context.Context, p *pipeline.Pipeline) {
	left, err := p.Flush(ctx, false)
	switch {
	case err != nil:
		c.log.Error("delivering notifications", "err", err)
	case left > 0:
		fmt.Fprintf(c.stderr, "nightshift: %d notification(s) not delivered yet; the next nightshift to start sends them (or: nightshift notify flush)\n", left)
	}
}

func (c *cli) notifyCmd(ctx context.Context, args []string) int {
	if len(args) == 0 || (args[0] != "test" && args[0] != "flush") {
		fmt.Fprintln(c.stderr, "nightshift notify: say 'test' (send a sample summary to every notifier) or 'flush' (deliver pending messages now)")
		return exitUsage
	}
	if args[0] == "flush" {
		return c.notifyFlush(ctx, args[1:])
	}
	fs, cfgPath := c.flags("notify test", "[flags]", `Sends a sample summary (a made-up failing run) straight to every configured
notifier, not through the outbox, and reports each one's result. The sample
pings nobody: [notify.discord] mentions are left out of it. Exit 0 when every
notifier accepted it, 1 otherwise.
`)
	if ok, code := parse(fs, args[1:]); !ok {
		return code
	}
	cfg, code := c.loadConfig(*cfgPath)
	if cfg == nil {
		return code
	}
	ns, _, err := notifiers(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitUsage
	}
	if len(ns) == 0 {
		fmt.Fprintf(c.stderr, "nightshift: %s configures no notifier: add [notify.discord] or [notify.email]\n", cfg.File)
		return exitUsage
	}
	sample := sampleSummary(cfg, time.Now().UTC())
	code = exitOK
	for _, name := range slices.Sorted(maps.Keys(ns)) {
		sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		retry, err := ns[name].Notify(sendCtx, sample)
		cancel()
		switch {
		case err == nil && name == "discord" && len(cfg.Notify.Discord.Mentions) > 0:
			fmt.Fprintf(c.stdout, "%s: sent (mentions suppressed for the test: %d configured, pinged only by real failures)\n", name, len(cfg.Notify.Discord.Mentions))
		case err == nil:
			fmt.Fprintf(c.stdout, "%s: sent\n", name)
		case retry:
			fmt.Fprintf(c.stdout, "%s: failed, may pass on a retry: %v\n", name, err)
			code = exitFailed
		default:
			fmt.Fprintf(c.stdout, "%s: refused: %v\n", name, err)
			code = exitFailed
		}
	}
	return code
}

func (c *cli) notifyFlush(ctx context.Context, args []string) int {
	fs, cfgPath := c.flags("notify flush", "[flags]", `Delivers the notifications still pending in the outbox now, retrying within
[notify] flush_timeout, and says how many are left. Exit 0 when none is left.
`)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	s, code := c.openSetup(*cfgPath, c.log)
	if s == nil {
		return code
	}
	defer s.close()
	c.recover(s.p) // their news goes out too
	left, err := s.p.Flush(ctx, true)
	if err != nil {
		fmt.Fprintf(c.stderr, "nightshift: %v\n", err)
		return exitUnavailable
	}
	fmt.Fprintf(c.stdout, "%d notification(s) still pending\n", left)
	if left > 0 {
		return exitFailed
	}
	return exitOK
}

// sampleSummary is a made-up failing run, to show what a summary looks
// like; it pings nobody.
func sampleSummary(cfg *config.Config, now time.Time) notify.Summary {
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	repo := stagingRepo(cfg)
	tag := "notify-test"
	run := store.Run{
		ID: 0, Tag: tag, Commit: "0000000000000000000000000000000000000000",
		Subject: "nightshift notify test: a sample summary, no images were built",
		Status:  store.Failed, Trigger: "notify test", Started: now, Finished: at(3 * time.Minute),
		Planned: []string{"ci_base", "ci_cpu", "ci_gpu"},
		Images: []store.ImageResult{
			{Name: "ci_base", Status: store.Succeeded, Ref: repo + "/ci_base:" + tag,
				Digest: "sha256:" + fmt.Sprintf("%064d", 0), Started: at(0), Finished: at(time.Minute)},
			{Name: "ci_cpu", Status: store.Failed, Ref: repo + "/ci_cpu:" + tag, Parent: "ci_base",
				Started: at(time.Minute), Finished: at(3 * time.Minute),
				Error: "build: The command '/bin/sh -c apt-get install -y llvm-17' returned a non-zero code: 100",
				Tail:  []string{"Reading package lists...", "E: Unable to locate package llvm-17"}},
			{Name: "ci_gpu", Status: store.Skipped, Parent: "ci_cpu", Error: "parent ci_cpu failed"},
		},
	}
	return notify.Summary{Event: notify.EventFailure, Run: run, Previous: store.Succeeded, Repo: repo, PublicURL: cfg.HTTP.PublicURL, Sample: true}
}
