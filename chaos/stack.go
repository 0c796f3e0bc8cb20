package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"nightshift/internal/testenv"
	"nightshift/store"
)

// Exit codes of nightshift, as documented.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnavailable = 3
)

const busyboxBase = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc/ci && echo base > /etc/ci/base
`

// stackFiles is a small stack: a parent, a child through ARG BASE_IMAGE
// and an independent image.
func stackFiles() map[string]string {
	return map[string]string{
		"docker/Dockerfile.base": busyboxBase,
		"docker/Dockerfile.cpu":  "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nRUN echo cpu > /etc/ci/cpu\n",
		"docker/Dockerfile.docs": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo docs > /README\n",
	}
}

const stackImages = `
[[image]]
name = "base"
dockerfile = "docker/Dockerfile.base"

[[image]]
name = "cpu"
dockerfile = "docker/Dockerfile.cpu"

[[image]]
name = "docs"
dockerfile = "docker/Dockerfile.docs"
`

// writeStack writes files into a fresh git repository under the env's
// directory (with docker/busybox), commits them and returns the path of
// its nightshift.toml.
func (e *env) writeStack(name string, files map[string]string) (string, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(filepath.Join(dir, "docker"), 0o755); err != nil {
		return "", err
	}
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "docker", "busybox"), bb, 0o755); err != nil {
		return "", err
	}
	if _, err := testenv.CommitFiles(dir, "chaos stack", files); err != nil {
		return "", fmt.Errorf("git: %w", err)
	}
	return filepath.Join(dir, "nightshift.toml"), nil
}

// result is how one nightshift process ended.
type result struct {
	code   int // -1 when killed by a signal
	output string
}

// nightshift runs the binary with the env's engine, within limit.
func (e *env) nightshift(ctx context.Context, limit time.Duration, extraEnv []string, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := e.command(ctx, extraEnv, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	e.logf("$ nightshift %s\n%s(exit %d)", strings.Join(args, " "), out.String(), exitCode(err))
	return result{exitCode(err), out.String()}
}

func (e *env) command(ctx context.Context, extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_HOST="+e.docker.Addr, "TMPDIR="+e.tmp()), extraEnv...)
	// Its own process group, so that a kill reaches nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// tmp is the TMPDIR of every nightshift the harness starts, so that what
// a run leaves behind there can be counted.
func (e *env) tmp() string {
	d := filepath.Join(e.dir, "tmp")
	os.MkdirAll(d, 0o700)
	return d
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -2
}

// readRun reads the record written by run --json.
func readRun(path string) (*store.Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r store.Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// registryClient reads the real registry, never through a proxy.
type registryClient struct {
	addr string
	http *http.Client
}

func (e *env) registryClient() *registryClient {
	return &registryClient{addr: e.registry.Addr, http: &http.Client{Timeout: 30 * time.Second}}
}

const manifestTypes = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json"

// digest is the digest repo:tag resolves to, "" when there is none.
func (c *registryClient) digest(repo, ref string) (string, error) {
	req, _ := http.NewRequest(http.MethodHead, "http://"+c.addr+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", manifestTypes)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("Docker-Content-Digest"), nil
	case http.StatusNotFound:
		return "", nil
	}
	return "", fmt.Errorf("HEAD %s:%s: %s", repo, ref, resp.Status)
}

// missingBlobs returns the blobs repo:ref's manifest (and, for an index,
// its manifests) names that the registry does not have.
func (c *registryClient) missingBlobs(repo, ref string) ([]string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.addr+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", manifestTypes)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET manifest %s:%s: %s", repo, ref, resp.Status)
	}
	var m struct {
		Config    struct{ Digest string }
		Layers    []struct{ Digest string }
		Manifests []struct{ Digest string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest %s:%s: %w", repo, ref, err)
	}
	var missing []string
	for _, sub := range m.Manifests {
		more, err := c.missingBlobs(repo, sub.Digest)
		if err != nil {
			return nil, err
		}
		missing = append(missing, more...)
	}
	blobs := []string{}
	if m.Config.Digest != "" {
		blobs = append(blobs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	for _, b := range blobs {
		resp, err := c.http.Head("http://" + c.addr + "/v2/" + repo + "/blobs/" + b)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			missing = append(missing, repo+"@"+b)
		}
	}
	return missing, nil
}

// getJSON decodes the answer to GET path of the registry into v.
func (c *registryClient) getJSON(path string, v any) error {
	resp, err := c.http.Get("http://" + c.addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// catalog lists the registry's repositories.
func (c *registryClient) catalog() ([]string, error) {
	var cat struct{ Repositories []string }
	err := c.getJSON("/v2/_catalog?n=1000", &cat)
	return cat.Repositories, err
}

// tags lists repo's tags. A repository whose pushes all failed before
// their manifest holds blobs and no tag: the registry answers 404.
func (c *registryClient) tags(repo string) ([]string, error) {
	resp, err := c.http.Get("http://" + c.addr + "/v2/" + repo + "/tags/list")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("GET tags of %s: %s", repo, resp.Status)
	}
	var t struct{ Tags []string }
	err = json.NewDecoder(resp.Body).Decode(&t)
	return t.Tags, err
}

// snapshot is every repository:tag@digest the registry holds, one a line.
func (c *registryClient) snapshot() (map[string]string, error) {
	repos, err := c.catalog()
	if err != nil {
		return nil, err
	}
	all := map[string]string{}
	for _, r := range repos {
		tags, err := c.tags(r)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			d, err := c.digest(r, t)
			if err != nil {
				return nil, err
			}
			all[r+":"+t] = d
		}
	}
	return all, nil
}

// danglingTags checks every tag under namespace: none may point at a
// manifest with a missing blob.
func (c *registryClient) danglingTags(namespace string) (checked int, broken []string, err error) {
	repos, err := c.catalog()
	if err != nil {
		return 0, nil, err
	}
	for _, r := range repos {
		if !strings.HasPrefix(r, namespace+"/") {
			continue
		}
		tags, err := c.tags(r)
		if err != nil {
			return checked, broken, err
		}
		for _, t := range tags {
			checked++
			missing, err := c.missingBlobs(r, t)
			if err != nil {
				return checked, broken, err
			}
			if len(missing) > 0 {
				broken = append(broken, fmt.Sprintf("%s:%s points at a manifest missing %s", r, t, strings.Join(missing, ", ")))
			}
		}
	}
	return checked, broken, nil
}

// waitFor polls cond every 100 ms until it holds or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// syncBuffer is a bytes.Buffer a process and the harness share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// engineClient talks to the engine at addr (unix://path) over its socket.
func engineClient(addr string) *http.Client {
	sock := strings.TrimPrefix(addr, "unix://")
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
}

// engineImages lists the ids of the env's engine's images.
func (e *env) engineImages() ([]string, error) {
	var images []struct {
		ID string `json:"Id"`
	}
	if err := e.engineJSON("/images/json?all=1", &images); err != nil {
		return nil, err
	}
	var ids []string
	for _, im := range images {
		ids = append(ids, im.ID)
	}
	return ids, nil
}

// engineJSON decodes the env's engine's answer to GET path into v.
func (e *env) engineJSON(path string, v any) error { return engineJSONAt(e.docker.Addr, path, v) }

// engineJSONAt decodes the answer of the engine at addr to GET path into v.
func engineJSONAt(addr, path string, v any) error {
	resp, err := engineClient(addr).Get("http://engine" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("engine GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// leftovers are the containers on the engine at addr that are not in
// before: those made from an image of the registry (by its ref: a test or
// an info command of nightshift's) and the others (made from an image id:
// a build step the engine ran).
func (e *env) leftovers(addr string, before []string) (ids []string, ofNightshift, buildSteps int, err error) {
	var containers []struct {
		ID    string `json:"Id"`
		Names []string
		Image string
		State string
	}
	if err := engineJSONAt(addr, "/containers/json?all=1", &containers); err != nil {
		return nil, 0, 0, err
	}
	for _, c := range containers {
		ids = append(ids, c.ID)
		if slices.Contains(before, c.ID) {
			continue
		}
		e.logf("left on the engine: %.12s %v %s %s", c.ID, c.Names, c.Image, c.State)
		if strings.HasPrefix(c.Image, e.registry.Addr+"/") {
			ofNightshift++
		} else {
			buildSteps++
		}
	}
	return ids, ofNightshift, buildSteps, nil
}
