package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

var buildkitd struct {
	once sync.Once
	path string
	err  error
}

// Buildkitd returns a buildkitd binary: the one on PATH, or one built once
// per machine from the module this module's BuildKit client comes from,
// at the same version (Debian packages none). The first build takes a
// minute or two; later ones find it in the user's cache directory.
func Buildkitd() (string, error) {
	buildkitd.once.Do(func() { buildkitd.path, buildkitd.err = findBuildkitd() })
	return buildkitd.path, buildkitd.err
}

func findBuildkitd() (string, error) {
	if path, err := exec.LookPath("buildkitd"); err == nil {
		return path, nil
	}
	out, err := exec.Command("go", "list", "-m", "-json", "github.com/moby/buildkit").Output()
	if err != nil {
		return "", fmt.Errorf("find the buildkit module: %w", err)
	}
	var mod struct{ Version, Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "nightshift-test", "buildkitd-"+mod.Version)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if mod.Dir == "" {
		if out, err := exec.Command("go", "mod", "download", "github.com/moby/buildkit@"+mod.Version).CombinedOutput(); err != nil {
			return "", fmt.Errorf("download buildkit %s: %v\n%s", mod.Version, err, out)
		}
		return findBuildkitd()
	}
	// A copy: `go install pkg@version` refuses a module with exclude
	// directives, and the module cache is read-only.
	src, err := os.MkdirTemp("", "buildkit-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if out, err := exec.Command("cp", "-r", mod.Dir+"/.", src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy buildkit: %v\n%s", err, out)
	}
	exec.Command("chmod", "-R", "u+w", src).Run()
	build := exec.Command("go", "build", "-mod=mod", "-o", bin+".tmp", "./cmd/buildkitd")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build buildkitd %s: %v\n%s", mod.Version, err, out)
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// StartBuildkitd starts a standalone buildkitd (runc worker, host network)
// whose state lives under dir, on a unix socket there, reaching the
// registries of insecure over plain HTTP. Addr is its address.
func StartBuildkitd(dir string, insecure ...string) (*Process, error) {
	bin, err := Buildkitd()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "root"), 0o700); err != nil {
		return nil, err
	}
	config := "[worker.oci]\n  enabled = true\n  gc = false\n[worker.containerd]\n  enabled = false\n"
	for _, host := range insecure {
		config += fmt.Sprintf("[registry.%q]\n  http = true\n", host)
	}
	if err := os.WriteFile(filepath.Join(dir, "buildkitd.toml"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "buildkitd.sock")
	p := &Process{Addr: "unix://" + sock, Dir: dir, Log: filepath.Join(dir, "buildkitd.log")}
	if err := p.start(bin, "--addr", p.Addr, "--root", filepath.Join(dir, "root"),
		"--config", filepath.Join(dir, "buildkitd.toml")); err != nil {
		return nil, err
	}
	ping := func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return err
		}
		return c.Close()
	}
	if err := p.waitReady(time.Minute, ping); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}
