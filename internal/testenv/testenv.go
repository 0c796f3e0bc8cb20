// Package testenv starts the real components nightshift's end-to-end tests
// and benchmarks need: a private Docker Engine and a registry on loopback,
// each stopped by its PID.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Process is a server started for a test.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	Addr string        // DOCKER_HOST for an engine, host:port for a registry
	Dir  string
	Log  string
}

// Stop ends the process by its PID and waits for it.
func (p *Process) Stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the process at once by its PID (SIGKILL), as a crash or a
// lost host would, and waits for it. For an engine it then ends what the
// engine cannot any more: the containerd shims under its directory and the
// processes of their containers (by PID), and the mounts it left there.
func (p *Process) Kill() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	strays := processesUnder(p.Dir)
	for _, pid := range strays {
		for _, child := range childrenOf(pid) {
			syscall.Kill(child, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	mounts := mountsUnder(p.Dir)
	for i := len(mounts) - 1; i >= 0; i-- { // the deepest first
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// processesUnder returns the processes whose command line names a path
// under dir.
func processesUnder(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// childrenOf returns the processes whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so from the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}

// mountsUnder returns the mount points at or under dir, in mount order.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	return points
}

// Missing names the binaries the end-to-end tests need that this machine
// lacks, so a caller can skip (or, under CI, fail) with a clear reason.
func Missing() []string {
	var missing []string
	for _, bin := range []string{"dockerd", "docker-registry", "git"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := os.Stat(Busybox); err != nil {
		missing = append(missing, Busybox+" (Debian's busybox-static)")
	}
	return missing
}

// Busybox is the static binary test images are made of: there is no base
// image registry here, so test stacks are FROM scratch plus busybox.
const Busybox = "/bin/busybox"

// StartDockerd starts a Docker Engine whose state lives under dir (a short
// path: the socket path must stay under the 108-byte limit) and which creates
// no networks, so that it touches nothing on the host.
func StartDockerd(dir string) (*Process, error) {
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	sock := filepath.Join(dir, "docker.sock")
	p := &Process{Addr: "unix://" + sock, Dir: dir, Log: filepath.Join(dir, "dockerd.log")}
	err := p.start("dockerd",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", p.Addr,
		"--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
		"--userland-proxy=false",
	)
	if err != nil {
		return nil, err
	}
	ping := func(ctx context.Context) error {
		c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/_ping", nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ping: %s", resp.Status)
		}
		return nil
	}
	if err := p.waitReady(60*time.Second, ping); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// StartRegistry starts Debian's docker-registry (CNCF distribution) with a
// config of its own: storage under dir, deletes enabled, loopback only.
func StartRegistry(dir string) (*Process, error) { return startRegistry(dir, "", true) }

// StartRegistryWithoutDelete is StartRegistry as distribution ships:
// deletes disabled, so that it answers them 405 UNSUPPORTED.
func StartRegistryWithoutDelete(dir string) (*Process, error) { return startRegistry(dir, "", false) }

// StartRegistryWithAuth is StartRegistry with HTTP basic auth for one user.
func StartRegistryWithAuth(dir, user, password string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return startRegistry(dir, fmt.Sprintf("auth:\n  htpasswd:\n    realm: nightshift-test\n    path: %s\n", htpasswd), true)
}

func startRegistry(dir, auth string, deletes bool) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: %t
http:
  addr: %s
%s`, filepath.Join(dir, "data"), deletes, addr, auth)
	confPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p := &Process{Addr: addr, Dir: dir, Log: filepath.Join(dir, "registry.log")}
	if err := p.start("docker-registry", "serve", confPath); err != nil {
		return nil, err
	}
	ping := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := p.waitReady(30*time.Second, ping); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// FreeAddr returns a loopback address with a port nobody listens on now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (p *Process) start(bin string, args ...string) error {
	log, err := os.Create(p.Log)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	// Its own process group, so a test's Ctrl-C does not kill it before
	// the test has stopped it cleanly.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	log.Close()
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()
	return nil
}

func (p *Process) waitReady(limit time.Duration, ping func(context.Context) error) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last = ping(ctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited early: %s", p.cmd.Path, tail(p.Log))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.Join(fmt.Errorf("%s not ready after %s: %s", p.cmd.Path, limit, tail(p.Log)), last)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// Require skips tb when the machine lacks what end-to-end tests need, but
// fails it under CI=true: there, a skipped end-to-end test would hide a
// broken install step.
func Require(tb testing.TB) {
	tb.Helper()
	missing := Missing()
	if len(missing) == 0 {
		return
	}
	msg := "end-to-end test needs " + strings.Join(missing, ", ") + " (apt-get install docker.io docker-registry busybox-static git)"
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}
