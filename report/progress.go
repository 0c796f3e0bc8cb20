package report

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"nightshift/rebuild"
	"nightshift/store"
)

// Lines prints one timestamped line per event: for a pipeline's console,
// where there is no terminal to redraw.
type Lines struct {
	W io.Writer
}

// Observe prints e, a change of run (a pipeline.Update).
func (l *Lines) Observe(run *store.Run, e rebuild.Event) {
	ts := e.Time.UTC().Format("2006-01-02T15:04:05Z")
	if v := e.Validation; v != nil && e.Stage == "" && e.Status == "" {
		line := fmt.Sprintf("%s %-28s %s", ts, e.Image+" validation", v.Status)
		if v.Error != "" {
			line += ": " + v.Error
		}
		fmt.Fprintln(l.W, line)
		return
	}
	what := e.Image
	if e.Stage != "" {
		what += " " + e.Stage
	}
	line := fmt.Sprintf("%s %-28s %s", ts, what, e.Status)
	if im := run.Image(e.Image); im != nil && e.Status.Done() {
		if e.Stage != "" {
			if st := im.Stage(e.Stage); st != nil {
				line += " in " + st.Duration(e.Time).Round(time.Millisecond).String()
			}
		} else if im.Started != nil {
			line += " in " + im.Duration(e.Time).Round(time.Millisecond).String()
		}
	}
	if e.Err != nil {
		line += ": " + e.Err.Error()
	}
	fmt.Fprintln(l.W, line)
	if v := e.Validation; v != nil && e.Stage == rebuild.StageTest {
		for _, t := range v.Tests {
			switch {
			case !t.Passed:
				why := "failed"
				if len(t.Errors) > 0 {
					why = t.Errors[0]
				}
				fmt.Fprintf(l.W, "    | FAIL %s: %s\n", t.Name, why)
			case t.Flaky:
				fmt.Fprintf(l.W, "    | FLAKY %s: passed on attempt %d\n", t.Name, t.Attempts)
			}
		}
	}
	if e.Stage == "" && e.Status == store.Failed {
		for _, t := range e.Tail {
			fmt.Fprintln(l.W, "    | "+t)
		}
	}
}

// Live keeps one line per image on a terminal and redraws it in place.
type Live struct {
	W    io.Writer
	Now  func() time.Time
	mu   sync.Mutex
	run  store.Run
	rows int // lines drawn last time, to move the cursor back over
}

// Observe takes the record as it now stands and redraws (a
// pipeline.Update).
func (l *Live) Observe(run *store.Run, _ rebuild.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.run = *run
	l.run.Images = append([]store.ImageResult(nil), run.Images...)
	l.draw()
}

// Tick redraws elapsed times; call it every so often while a run goes on.
func (l *Live) Tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draw()
}

func (l *Live) draw() {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	var b strings.Builder
	if l.rows > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", l.rows)
	}
	l.rows = 0
	for _, name := range l.run.Planned {
		state, detail := "waiting", ""
		if im := l.run.Image(name); im != nil {
			state = string(im.Status)
			if im.Status == store.Running && len(im.Stages) > 0 {
				state = im.Stages[len(im.Stages)-1].Name
			}
			if im.Started != nil {
				detail = im.Duration(now).Round(100 * time.Millisecond).String()
			}
			if im.Error != "" {
				detail += "  " + im.Error
			}
		}
		fmt.Fprintf(&b, "\x1b[2K  %s %-24s %-11s %s\n", symbol(state), name, state, detail)
		l.rows++
	}
	io.WriteString(l.W, b.String())
}

func symbol(state string) string {
	switch store.Status(state) {
	case store.Succeeded:
		return "\x1b[32m✓\x1b[0m"
	case store.Failed, store.Interrupted:
		return "\x1b[31m✗\x1b[0m"
	case store.Skipped:
		return "\x1b[33m-\x1b[0m"
	}
	if state == "waiting" {
		return " "
	}
	return "\x1b[36m…\x1b[0m"
}
