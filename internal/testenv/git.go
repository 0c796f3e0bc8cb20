package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CommitFiles writes files (path in dir -> content) and commits everything
// in dir with message msg, as CommitAll; it returns the commit hash.
func CommitFiles(dir, msg string, files map[string]string) (string, error) {
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return CommitAll(dir, msg)
}

// CommitAll makes dir a git repository if it is not one, commits everything
// in it with message msg and returns the commit hash.
func CommitAll(dir, msg string) (string, error) {
	steps := [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "--all"},
		{"commit", "--quiet", "--allow-empty", "-m", msg},
		{"rev-parse", "HEAD"},
	}
	if _, err := os.Stat(dir + "/.git"); err == nil {
		steps = steps[1:]
	}
	var out []byte
	for _, args := range steps {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(),
			"GIT_AUTHOR_NAME=nightshift test", "GIT_AUTHOR_EMAIL=test@nightshift.invalid",
			"GIT_COMMITTER_NAME=nightshift test", "GIT_COMMITTER_EMAIL=test@nightshift.invalid")
		var err error
		if out, err = cmd.CombinedOutput(); err != nil {
			return "", &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: out}
		}
	}
	return strings.TrimSpace(string(out)), nil
}
