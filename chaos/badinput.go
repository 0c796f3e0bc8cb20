package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"nightshift/internal/testenv"
)

// The corpus of broken configurations, one file each; every file names at
// its end, in "# want: " lines, what the error must say (file:line: key).
// Test files, Dockerfiles and the rest of the stack they refer to are in
// testdata/stack.
const (
	corpusDir = "chaos/testdata/configs"
	stackDir  = "chaos/testdata/stack"
	// secret is the inline password of a corpus config: no answer may
	// repeat it.
	secret = "hunter2-inline"
)

var wantLine = regexp.MustCompile(`(?m)^# want: (.+)$`)

// badInput: every configuration of the corpus (and the malformed test
// files and Dockerfiles it names) is refused by `config check` and by
// `run` with exit 2 and a message naming file, line and key, with nothing
// built or pushed; hostile requests to a running daemon are answered with
// the documented 4xx status, start nothing, and the daemon goes on serving.
func badInput(ctx context.Context, e *env) (string, []string) {
	var broken []string
	reg := e.registryClient()
	before, err := reg.snapshot()
	if err != nil {
		return "", []string{"reading the registry: " + err.Error()}
	}
	imagesBefore, err := e.engineImages()
	if err != nil {
		return "", []string{"reading the engine: " + err.Error()}
	}
	dir := filepath.Join(e.dir, "bad")
	if err := os.CopyFS(dir, os.DirFS(stackDir)); err != nil {
		return "", []string{err.Error()}
	}
	files := stackFilesOf(dir)
	cfgStack, err := e.writeStack("bad", files)
	if err != nil {
		return "", []string{err.Error()}
	}
	configs, _ := filepath.Glob(filepath.Join(corpusDir, "*.toml"))
	rejected := 0
	for _, c := range configs {
		name := strings.TrimSuffix(filepath.Base(c), ".toml")
		b, err := os.ReadFile(c)
		if err != nil {
			broken = append(broken, err.Error())
			continue
		}
		wants := wantLine.FindAllStringSubmatch(string(b), -1)
		if len(wants) == 0 {
			broken = append(broken, name+": the corpus file has no \"# want:\" line")
			continue
		}
		text := strings.ReplaceAll(string(b), "%REGISTRY%", e.registry.Addr)
		if err := os.WriteFile(cfgStack, []byte(text), 0o644); err != nil {
			return "", []string{err.Error()}
		}
		ok := true
		for _, verb := range [][]string{{"config", "check"}, {"run", "--progress", "lines"}} {
			res := e.nightshift(ctx, 2*time.Minute, nil, append(verb, "-c", cfgStack)...)
			what := name + ": " + strings.Join(verb[:1], " ")
			if res.code != exitUsage {
				broken = append(broken, fmt.Sprintf("%s exited %d, want %d", what, res.code, exitUsage))
				ok = false
			}
			for _, w := range wants {
				if !strings.Contains(res.output, w[1]) {
					broken = append(broken, fmt.Sprintf("%s does not say %q", what, w[1]))
					ok = false
				}
			}
			if strings.Contains(res.output, secret) {
				broken = append(broken, what+" repeats the inline password")
				ok = false
			}
		}
		if ok {
			rejected++
		}
	}

	api, apiBroken := hostileAPI(ctx, e, filepath.Dir(cfgStack))
	broken = append(broken, apiBroken...)

	after, err := reg.snapshot()
	if err != nil {
		broken = append(broken, "reading the registry: "+err.Error())
	}
	for ref, d := range after {
		if before[ref] != d {
			broken = append(broken, fmt.Sprintf("%s was pushed (%s)", ref, d))
		}
	}
	imagesAfter, err := e.engineImages()
	if err != nil {
		broken = append(broken, "reading the engine: "+err.Error())
	}
	built := 0
	for _, id := range imagesAfter {
		if !slices.Contains(imagesBefore, id) {
			built++
		}
	}
	if built > 0 {
		broken = append(broken, fmt.Sprintf("%d image(s) were built", built))
	}
	figures := fmt.Sprintf("%d of %d broken configs rejected (exit 2, file:line: key) by config check and run; %s; %d pushed, %d built",
		rejected, len(configs), api, len(after)-len(before), built)
	return figures, broken
}

// stackFilesOf reads every file under dir as a map for writeStack.
func stackFilesOf(dir string) map[string]string {
	files := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(b)
		return err
	})
	return files
}

// hostile is one request a daemon must refuse.
type hostile struct {
	what    string
	method  string
	path    string
	token   string // "" for none
	body    string
	size    int   // a body of this many bytes instead, when > 0
	allowed []int // the statuses that refuse it as documented
}

// hostileAPI starts a daemon on the stack in dir and sends it hostile
// requests, raw, so that no client cleans their paths first.
func hostileAPI(ctx context.Context, e *env, dir string) (string, []string) {
	listen, err := testenv.FreeAddr()
	if err != nil {
		return "", []string{err.Error()}
	}
	const token = "chaos-token-0123456789abcdef"
	os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("TOPSECRET-FILE\n"), 0o600)
	cfg := filepath.Join(dir, "daemon.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[staging]
registry = %q
namespace = "chaos-bad"

[http]
listen = %q
token_file = "token"

[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"
`, e.registry.Addr, listen)), 0o644)
	d, out, err := e.startDaemon(ctx, cfg)
	if err != nil {
		return "", []string{err.Error()}
	}
	defer d.stop()
	if !waitFor(ctx, 30*time.Second, func() bool { return status(listen, "GET", "/healthz", "", "", 0) == http.StatusOK }) {
		return "", []string{"the daemon did not answer /healthz within 30s: " + out.String()}
	}
	runsBefore := countRuns(listen)

	bad := []hostile{
		{"log path traversal", "GET", "/api/v1/runs/1/images/../../../../etc/passwd/log", "", "", 0, []int{404}},
		{"log path traversal, encoded", "GET", "/api/v1/runs/1/images/..%2f..%2f..%2fsecret.txt/log", "", "", 0, []int{400, 404}},
		{"log of a dotted name", "GET", "/api/v1/runs/1/images/..%2e/log", "", "", 0, []int{400, 404}},
		{"manifest path traversal", "GET", "/runs/1/images/../../secret.txt/manifest.md", "", "", 0, []int{404}},
		{"manifest path traversal, encoded", "GET", "/runs/1/images/..%2F..%2Fsecret.txt/manifest.md", "", "", 0, []int{400, 404}},
		{"logs page traversal", "GET", "/runs/1/images/%2e%2e%2f%2e%2e%2fsecret.txt/logs", "", "", 0, []int{400, 404}},
		{"run id not a number", "GET", "/api/v1/runs/abc", "", "", 0, []int{400, 404}},
		{"run id overflowing", "GET", "/api/v1/runs/99999999999999999999999", "", "", 0, []int{400, 404}},
		{"trigger without a token", "POST", "/api/v1/runs", "", `{}`, 0, []int{401}},
		{"trigger with a wrong token", "POST", "/api/v1/runs", "wrong-token-0123456789", `{}`, 0, []int{401}},
		{"trigger with a prefix of the token", "POST", "/api/v1/runs", token[:16], `{}`, 0, []int{401}},
		{"trigger with bad JSON", "POST", "/api/v1/runs", token, `{"only": [`, 0, []int{400}},
		{"trigger with a wrong type", "POST", "/api/v1/runs", token, `{"only": "base"}`, 0, []int{400}},
		{"trigger with an unknown field", "POST", "/api/v1/runs", token, `{"only": ["base"], "force": true}`, 0, []int{400}},
		{"trigger of a traversing image name", "POST", "/api/v1/runs", token, `{"only": ["../../etc"]}`, 0, []int{400}},
		{"trigger with a huge body", "POST", "/api/v1/runs", token, "", 16 << 20, []int{400, 413}},
		{"cancel with a wrong token", "POST", "/api/v1/runs/1/cancel", "wrong-token-0123456789", "", 0, []int{401}},
		{"cancel of no run", "POST", "/api/v1/runs/424242/cancel", token, "", 0, []int{404, 409}},
		{"delete the runs", "DELETE", "/api/v1/runs", token, "", 0, []int{405}},
		{"a huge path", "GET", "/images/" + strings.Repeat("a", 64<<10), "", "", 0, []int{400, 404, 414, 431}},
	}
	var broken []string
	refused := 0
	for _, h := range bad {
		code, body := request(listen, h.method, h.path, h.token, h.body, h.size)
		e.logf("%s: %s %.80s -> %d %.200q", h.what, h.method, h.path, code, body)
		switch {
		case !slices.Contains(h.allowed, code):
			broken = append(broken, fmt.Sprintf("%s (%s %.60s): status %d, want one of %v", h.what, h.method, h.path, code, h.allowed))
		case strings.Contains(body, "TOPSECRET") || strings.Contains(body, "root:x:0") || strings.Contains(body, token):
			broken = append(broken, fmt.Sprintf("%s: the answer leaks a file or the token", h.what))
		default:
			refused++
		}
		if status(listen, "GET", "/healthz", "", "", 0) != http.StatusOK {
			broken = append(broken, fmt.Sprintf("the daemon stopped serving after %s", h.what))
			break
		}
	}
	if n := countRuns(listen); n != runsBefore {
		broken = append(broken, fmt.Sprintf("hostile requests made %d run(s)", n-runsBefore))
	}
	if strings.Contains(out.String(), token) {
		broken = append(broken, "the daemon logged the token")
	}
	return fmt.Sprintf("%d of %d hostile API requests refused with the documented status, daemon still serving", refused, len(bad)), broken
}

// request sends one raw HTTP/1.1 request and returns the status and the
// start of the body; 0 when no answer came.
func request(addr, method, path, token, body string, size int) (int, string) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	length := len(body)
	if size > 0 {
		length = size
	}
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, addr)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if method == "POST" {
		head += fmt.Sprintf("Content-Type: application/json\r\nContent-Length: %d\r\n", length)
	}
	go func() {
		io.WriteString(conn, head+"\r\n"+body)
		if size > 0 {
			io.WriteString(conn, `{"reason": "`)
			io.Copy(conn, io.LimitReader(zeros{}, int64(size)))
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// zeros reads as an endless run of 'a'.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func status(addr, method, path, token, body string, size int) int {
	code, _ := request(addr, method, path, token, body, size)
	return code
}

// countRuns is how many runs the daemon's API lists; -1 if it does not
// answer.
func countRuns(addr string) int {
	resp, err := http.Get("http://" + addr + "/api/v1/runs")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var runs []json.RawMessage
	if json.NewDecoder(resp.Body).Decode(&runs) != nil {
		return -1
	}
	return len(runs)
}

// daemon is a running `nightshift daemon`.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startDaemon starts `nightshift daemon -c cfg`, its output into out.
func (e *env) startDaemon(ctx context.Context, cfg string) (*daemon, *syncBuffer, error) {
	out := &syncBuffer{}
	cmd := e.command(context.WithoutCancel(ctx), nil, "daemon", "-c", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	return d, out, nil
}

// stop ends the daemon with SIGTERM, then SIGKILL after 30 s.
func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.kill()
	}
}

// kill ends the daemon at once, by its PID.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.done
}
