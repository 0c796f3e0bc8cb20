package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/moby/client"
)

// LabelOwner marks every container nightshift makes with the process that
// made it: "<host>/<pid>/<process start>", so that a later nightshift on
// the same host removes what a killed one left (RemoveOrphans) and never
// what a living one uses.
const LabelOwner = "io.nightshift.owner"

// owner is this process's LabelOwner value.
var owner = ownerOf(os.Getpid())

func ownerOf(pid int) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, pid, processStart(pid))
}

// processStart is when process pid started, in clock ticks since boot
// (the 22nd field of /proc/<pid>/stat): with the pid, it names one
// process, even after the pid is reused. "" when there is no such process.
func processStart(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	const starttime = 22 - 3 // fields counted from the state, the 3rd
	if len(fields) <= starttime {
		return ""
	}
	return fields[starttime]
}

// orphaned reports whether a container labelled o was made by a process
// of this host that no longer runs. A container of another host is not
// this one's to judge.
func orphaned(o string) bool {
	host, rest, ok := strings.Cut(o, "/")
	if me, _ := os.Hostname(); !ok || host != me {
		return false
	}
	pidText, start, ok := strings.Cut(rest, "/")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil {
		return false
	}
	return start != "" && processStart(pid) != start
}

// Containers returns the containers (stopped ones too) that carry label,
// by ID, with the label's value.
func (e *Engine) Containers(ctx context.Context, label string) (map[string]string, error) {
	res, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", label)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", classify(err))
	}
	ids := make(map[string]string, len(res.Items))
	for _, c := range res.Items {
		ids[c.ID] = c.Labels[label]
	}
	return ids, nil
}

// RemoveOrphans removes the containers that a nightshift of this host made
// and that no running nightshift owns (it was killed, or its engine went
// away mid-run), and returns how many it removed.
func (e *Engine) RemoveOrphans(ctx context.Context) (int, error) {
	ids, err := e.Containers(ctx, LabelOwner)
	if err != nil {
		return 0, err
	}
	removed := 0
	for id, o := range ids {
		if !orphaned(o) {
			continue
		}
		if err := e.RemoveContainer(ctx, id); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
