package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// discordStorm follows Discord's execute-webhook API and, while its storm
// lasts, refuses a seeded share of the messages: 429 with retry_after (in
// the body, Retry-After and X-RateLimit-Reset-After, as Discord sends
// them) or a 5xx. It counts what it accepted, and the tries that came
// before the wait it asked for was over.
type discordStorm struct {
	mu        sync.Mutex
	rng       *rand.Rand
	storm     bool
	rate      float64
	accepted  []string // the bodies accepted, in order
	attempts  int
	limited   int // 429s
	errors    int // 5xx
	notBefore map[[32]byte]time.Time
	early     int // tries of a message before its retry_after was over
}

const webhookPath = "/api/webhooks/42/storm-token"

func (d *discordStorm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts++
	if r.Method != http.MethodPost || r.URL.Path != webhookPath {
		http.Error(w, `{"message": "Unknown Webhook", "code": 10015}`, http.StatusNotFound)
		return
	}
	key := sha256.Sum256(body)
	now := time.Now()
	// 50 ms of slack for the clocks of two processes.
	if nb, ok := d.notBefore[key]; ok && now.Add(50*time.Millisecond).Before(nb) {
		d.early++
	}
	if d.storm && d.rng.Float64() < d.rate {
		if d.rng.IntN(2) == 0 {
			d.limited++
			wait := 0.5 + float64(d.rng.IntN(25))/10 // 0.5 to 2.9 s
			d.notBefore[key] = now.Add(time.Duration(wait * float64(time.Second)))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", strconv.Itoa(int(wait+0.999)))
			w.Header().Set("X-RateLimit-Reset-After", strconv.FormatFloat(wait, 'f', 3, 64))
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"message": "You are being rate limited.", "retry_after": %.3f, "global": false}`, wait)
			return
		}
		d.errors++
		codes := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
		http.Error(w, "upstream connect error", codes[d.rng.IntN(len(codes))])
		return
	}
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		http.Error(w, `{"message": "Cannot send an empty message", "code": 50006}`, http.StatusBadRequest)
		return
	}
	d.accepted = append(d.accepted, string(body))
	if r.URL.Query().Get("wait") == "true" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id": "1", "channel_id": "2", "content": "", "embeds": []}`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (d *discordStorm) set(storm bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.storm = storm
}

// smtpServer is aiosmtpd writing what it accepts to a maildir, started and
// stopped by its PID on a fixed port.
type smtpServer struct {
	addr    string
	maildir string
	cmd     *exec.Cmd
	done    chan struct{}
}

const python = "/usr/bin/python3"

func (s *smtpServer) start() error {
	cmd := exec.Command(python, "-m", "aiosmtpd", "-n", "-l", s.addr, "-c", "aiosmtpd.handlers.Mailbox", s.maildir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	ok := waitFor(context.Background(), 20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if !ok {
		s.stop()
		return fmt.Errorf("aiosmtpd did not listen on %s", s.addr)
	}
	return nil
}

func (s *smtpServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// subjects are the Subject lines of the mail received.
func (s *smtpServer) subjects() []string {
	var subjects []string
	files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		m, err := mail.ReadMessage(fh)
		if err == nil {
			subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
			if err != nil {
				subj = m.Header.Get("Subject")
			}
			subjects = append(subjects, subj)
		}
		fh.Close()
	}
	return subjects
}

// notifyStorm: a daemon runs every few seconds and tells Discord and email
// about every run while Discord answers storms of 429 and 5xx and the SMTP
// server is down; the daemon is killed and restarted, then restarted
// again. Promise: every run's summary reaches both, none is given up,
// duplicates are at most one per restart and notifier, and no try comes
// before the retry_after Discord asked for.
func notifyStorm(ctx context.Context, e *env) (string, []string) {
	if err := exec.Command(python, "-c", "import aiosmtpd").Run(); err != nil {
		return "", []string{"needs " + python + " with aiosmtpd (apt-get install python3-aiosmtpd)"}
	}
	discord := &discordStorm{rng: e.rng(3), rate: 0.7, storm: true, notBefore: map[[32]byte]time.Time{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", []string{err.Error()}
	}
	hookSrv := &http.Server{Handler: discord, ReadHeaderTimeout: 10 * time.Second}
	go hookSrv.Serve(l)
	defer hookSrv.Close()

	smtpAddr, _ := testenv.FreeAddr()
	listen, _ := testenv.FreeAddr()
	smtp := &smtpServer{addr: smtpAddr, maildir: filepath.Join(e.dir, "storm-mail")}
	defer smtp.stop()
	_, smtpPort, _ := net.SplitHostPort(smtpAddr)

	files := stackFiles()
	delete(files, "docker/Dockerfile.base")
	delete(files, "docker/Dockerfile.cpu")
	config := func(cron string) string {
		sched := ""
		if cron != "" {
			sched = fmt.Sprintf("[schedule]\ncron = %q\nshutdown_grace = \"5s\"\n", cron)
		}
		return fmt.Sprintf(`[staging]
registry = %q
namespace = "chaos-storm"

%s
[http]
listen = %q

[notify]
give_up_after = "1h"

[notify.discord]
webhook_url_file = "hook"
on = ["always"]

[notify.email]
host = "127.0.0.1"
port = %s
tls = "none"
from = "nightshift <nightshift@chaos.test>"
to = ["ci@chaos.test"]
on = ["always"]

[[image]]
name = "docs"
dockerfile = "docker/Dockerfile.docs"
`, e.registry.Addr, sched, listen, smtpPort)
	}
	files["nightshift.toml"] = config("*/3 * * * * *")
	files["hook"] = "http://" + l.Addr().String() + webhookPath + "\n"
	cfg, err := e.writeStack("storm", files)
	if err != nil {
		return "", []string{err.Error()}
	}

	var broken []string
	perPhase := 3 * e.rounds
	rng := e.rng(33)
	finished := func() int {
		n := 0
		for _, r := range apiRunList(listen) {
			if r.Finished != nil {
				n++
			}
		}
		return n
	}
	waitRuns := func(n int) bool {
		return waitFor(ctx, time.Duration(n)*45*time.Second, func() bool { return finished() >= n })
	}

	// Phase 1: storm, SMTP down; then the daemon is killed.
	d, out, err := e.startDaemon(ctx, cfg)
	if err != nil {
		return "", []string{err.Error()}
	}
	if !waitRuns(perPhase) {
		broken = append(broken, "phase 1: the daemon finished too few runs: "+tailOf(out.String()))
	}
	// At a seeded moment: during the next run, or between runs.
	time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
	d.kill()
	restarts := 1

	// Phase 2: restarted into the storm; the SMTP server comes back.
	d, out, err = e.startDaemon(ctx, cfg)
	if err != nil {
		return "", []string{err.Error()}
	}
	if !waitRuns(2 * perPhase) {
		broken = append(broken, "phase 2: the daemon finished too few runs: "+tailOf(out.String()))
	}
	if err := smtp.start(); err != nil {
		broken = append(broken, err.Error())
	}
	if !waitRuns(3 * perPhase) {
		broken = append(broken, "phase 2: the daemon finished too few runs: "+tailOf(out.String()))
	}
	d.stop()
	restarts++

	// Phase 3: no more runs, the storm over; everything must go out.
	discord.set(false)
	os.WriteFile(cfg, []byte(config("")), 0o644)
	d, out, err = e.startDaemon(ctx, cfg)
	if err != nil {
		return "", []string{err.Error()}
	}
	drained := waitFor(ctx, 5*time.Minute, func() bool { return metric(listen, "nightshift_outbox_pending") == 0 })
	if !drained {
		broken = append(broken, fmt.Sprintf("the outbox still holds %v message(s) 5 minutes after the storm", metric(listen, "nightshift_outbox_pending")))
	}
	d.stop()
	e.logf("daemon output:\n%s", out.String())

	db, err := store.Open(filepath.Join(filepath.Dir(cfg), "nightshift.db"), 5*time.Second)
	if err != nil {
		return "", append(broken, "the database does not open: "+err.Error())
	}
	defer db.Close()
	runs, err := db.Runs(0)
	if err != nil {
		return "", append(broken, err.Error())
	}
	discord.mu.Lock()
	accepted := append([]string(nil), discord.accepted...)
	attempts, limited, errs, early := discord.attempts, discord.limited, discord.errors, discord.early
	discord.mu.Unlock()
	subjects := smtp.subjects()

	var messages, sent, gaveUp, dupDiscord, dupMail, lost int
	for _, r := range runs {
		msgs, err := db.Messages(r.ID)
		if err != nil {
			broken = append(broken, err.Error())
			continue
		}
		for _, m := range msgs {
			messages++
			switch m.Status {
			case store.Sent:
				sent++
			case store.GaveUp:
				gaveUp++
				broken = append(broken, fmt.Sprintf("run %d's %s message was given up: %s", r.ID, m.Notifier, m.LastError))
			}
		}
		if r.Tag == "" { // a run that never started has no tag to look for
			continue
		}
		nd, nm := countContaining(accepted, r.Tag), countContaining(subjects, r.Tag)
		if nd == 0 || nm == 0 {
			lost++
			broken = append(broken, fmt.Sprintf("run %d (%s, %s): %d Discord message(s), %d mail(s)", r.ID, r.Status, r.Tag, nd, nm))
		}
		dupDiscord += max(nd-1, 0)
		dupMail += max(nm-1, 0)
	}
	if dupDiscord > restarts || dupMail > restarts {
		broken = append(broken, fmt.Sprintf("%d Discord and %d mail duplicates for %d restarts", dupDiscord, dupMail, restarts))
	}
	if early > 0 {
		broken = append(broken, fmt.Sprintf("%d Discord tries came before the retry_after it asked for", early))
	}
	if limited == 0 || errs == 0 {
		broken = append(broken, "the storm refused nothing: the scenario proved nothing")
	}
	figures := fmt.Sprintf("%d runs, %d messages: %d sent, %d given up, %d lost; Discord: %d tries, %d answered 429, %d 5xx, %d early; %d mails; duplicates %d Discord + %d mail for %d restarts (1 kill -9)",
		len(runs), messages, sent, gaveUp, lost, attempts, limited, errs, early, len(subjects), dupDiscord, dupMail, restarts)
	return figures, broken
}

func countContaining(texts []string, s string) int {
	n := 0
	for _, t := range texts {
		if strings.Contains(t, s) {
			n++
		}
	}
	return n
}

// apiRunList reads the daemon's runs, nil while it does not answer.
func apiRunList(addr string) []store.Run {
	resp, err := http.Get("http://" + addr + "/api/v1/runs?limit=1000")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var runs []store.Run
	if json.NewDecoder(resp.Body).Decode(&runs) != nil {
		return nil
	}
	return runs
}

// metric reads one unlabelled gauge of the daemon's /metrics; -1 when it
// cannot.
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// tailOf is the last lines of a process's output.
func tailOf(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
