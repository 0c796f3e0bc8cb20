package engine

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A container's owner is judged by its host, pid and the process's start:
// a living owner (this test) is no orphan, a dead one is, and another
// host's container is not this host's to judge.
func TestOrphaned(t *testing.T) {
	t.Parallel()
	if orphaned(owner) {
		t.Errorf("this process's own containers (%s) are taken for orphans", owner)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dead := ownerOf(cmd.Process.Pid)
	if orphaned(dead) {
		t.Errorf("a running owner (%s) is taken for gone", dead)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !orphaned(dead) {
		t.Errorf("a killed owner (%s) is not taken for gone", dead)
	}
	host, rest, _ := strings.Cut(dead, "/")
	if orphaned("not-" + host + "/" + rest) {
		t.Error("another host's container is judged here")
	}
	if me, _ := os.Hostname(); host != me {
		t.Errorf("owner %s names host %q, want %q", dead, host, me)
	}
	for _, bad := range []string{"", "garbage", me() + "/x/1", me() + "/12"} {
		if orphaned(bad) {
			t.Errorf("a label nightshift did not write (%q) is judged an orphan", bad)
		}
	}
}

func me() string { h, _ := os.Hostname(); return h }
