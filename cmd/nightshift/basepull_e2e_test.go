package main

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"nightshift/internal/testenv"
)

// A base image in a registry that wants a login is pulled with the
// credentials Docker's config.json holds for it, as docker build does;
// without them the build cannot pull it.
func TestBaseImageFromAPrivateRegistry(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	upstream, err := testenv.StartRegistryWithAuth(filepath.Join(t.TempDir(), "upstream"), "puller", "pull-s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(upstream.Stop)
	baseRef := upstream.Addr + "/upstream/busybox:1"
	pushBusybox(t, baseRef, &authn.Basic{Username: "puller", Password: "pull-s3cret"})

	cfg := stack(t, map[string]string{
		"docker/Dockerfile.tools": "FROM " + baseRef + "\nRUN [\"/bin/busybox\", \"mkdir\", \"-p\", \"/etc/ci\"]\n",
		"nightshift.toml": `
[staging]
registry  = "%REGISTRY%"
namespace = "basepull-e2e"

[[image]]
name = "tools"
dockerfile = "docker/Dockerfile.tools"
`,
	})
	dockerConfig := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("puller:pull-s3cret"))
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(`{"auths": {"`+upstream.Addr+`": {"auth": "`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}

	res := nightshift(t, []string{"DOCKER_CONFIG=" + t.TempDir()}, "run", "-c", cfg)
	if res.code != exitFailed {
		t.Fatalf("without credentials for %s: exit %d, want 1 (the base image cannot be pulled)\n%s\n%s", upstream.Addr, res.code, res.stdout, res.stderr)
	}
	res = nightshift(t, []string{"DOCKER_CONFIG=" + dockerConfig}, "run", "-c", cfg)
	if res.code != exitOK {
		t.Fatalf("with config.json's credentials: exit %d, want 0\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stdout+res.stderr, "pull-s3cret") {
		t.Error("the upstream password leaked into the output")
	}
}

// pushBusybox pushes to ref an image of one layer holding the static
// busybox as /bin/busybox.
func pushBusybox(t *testing.T, ref string, auth authn.Authenticator) {
	t.Helper()
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tw.Write(bb); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
}
