package engine

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The Dockerfile reaches the engine even when .dockerignore excludes it by
// a pattern, as the docker CLI sends it; what else it excludes stays out.
func TestContextTarKeepsTheDockerfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Dockerfile.ci": "FROM scratch\n",
		".dockerignore": "Dockerfile.*\nsecret\n",
		"secret":        "s3cret\n",
		"kept":          "kept\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc, dockerfile, err := contextTar(BuildSpec{Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile.ci")})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if dockerfile != "Dockerfile.ci" || !slices.Contains(names, "Dockerfile.ci") || !slices.Contains(names, "kept") || slices.Contains(names, "secret") {
		t.Errorf("context %q with Dockerfile %q; want Dockerfile.ci and kept, not secret", names, dockerfile)
	}
}
