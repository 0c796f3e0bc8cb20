package rebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"nightshift/engine"
	"nightshift/store"
)

// Log is one image's log file. It keeps the last lines written since the
// current stage began, so that a failure's record can show them without
// the file.
type Log struct {
	f    *os.File
	mu   sync.Mutex
	tail tailWriter
}

// CreateLog starts the log at path, creating its directory.
func CreateLog(path string) (*Log, error) {
	return openLog(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
}

// AppendLog continues the log at path: the stages after the runner's.
func AppendLog(path string) (*Log, error) {
	return openLog(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY)
}

func openLog(path string, flag int) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	return &Log{f: f, tail: tailWriter{max: tailLines}}, nil
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tail.write(p)
	return l.f.Write(p)
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

// Stages carries out the stages of one image one after another, writing a
// heading for each to the image's log and reporting each as it starts and
// ends. The runner's stages and the pipeline's go through it alike.
type Stages struct {
	Image string
	Log   *Log
	Emit  func(Event)
	Now   func() time.Time
}

// ErrNothingToDo ends a stage that had nothing to do; it is recorded
// skipped.
var ErrNothingToDo = errors.New("nothing to do")

// Run runs the stage name. It returns nil when the stage succeeded or had
// nothing to do, and otherwise the stage's error prefixed with its name,
// for End.
func (st *Stages) Run(ctx context.Context, name string, run func(context.Context) error) error {
	return st.RunWith(ctx, name, run, nil)
}

// RunWith is Run, with finish adding to the stage's end event what the
// stage learnt (the test stage's validation, the build's tries).
func (st *Stages) RunWith(ctx context.Context, name string, run func(context.Context) error, finish func(*Event)) error {
	fmt.Fprintf(st.Log, "==> %s %s at %s\n", name, st.Image, st.Now().UTC().Format(time.RFC3339))
	st.Log.resetTail()
	st.Emit(Event{Image: st.Image, Stage: name, Status: store.Running})
	err := run(ctx)
	done := Event{Image: st.Image, Stage: name, Status: store.Succeeded}
	if finish != nil {
		finish(&done)
	}
	switch {
	case errors.Is(err, ErrNothingToDo):
		done.Status, err = store.Skipped, nil
	case err != nil && ctx.Err() != nil:
		err = &stageError{stage: name, err: fmt.Errorf("%s: %w", name, ctx.Err()), status: store.Interrupted}
		done.Status, done.Err = store.Interrupted, err
	case err != nil:
		tail := st.Log.lines() // the engine's words; ours follow in the file only
		// A BuildKit build's failing step says its own last lines: its
		// stages run at once, and their output mixes in the log.
		var be *engine.BuildError
		if errors.As(err, &be) && be.Step != "" {
			tail = append([]string{"> " + be.Step + ":"}, be.Lines...)
		}
		fmt.Fprintf(st.Log, "==> %s failed: %v\n", name, err)
		err = &stageError{stage: name, err: fmt.Errorf("%s: %w", name, err), status: store.Failed, tail: tail}
		done.Status, done.Err = store.Failed, err
	}
	st.Emit(done)
	return err
}

// End reports the image's end after its stages: failed or interrupted
// with the error of the stage that stopped it (and that stage's last log
// lines), or succeeded. done carries the digest and tags either way. The
// success is not reported: it is returned for the caller, who may go on.
func (st *Stages) End(ctx context.Context, err error, done Event) store.Status {
	done.Image = st.Image
	var se *stageError
	switch {
	case err == nil:
		return store.Succeeded
	case errors.As(err, &se):
		done.Status, done.Err, done.Tail = se.status, se.err, se.tail
	case ctx.Err() != nil:
		done.Status, done.Err = store.Interrupted, err
	default:
		done.Status, done.Err = store.Failed, err
	}
	done.Tags = slices.Clip(done.Tags)
	st.Emit(done)
	return done.Status
}

// stageError is a stage's failure with what the image's end reports.
type stageError struct {
	stage  string
	err    error
	status store.Status
	tail   []string
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// tailWriter keeps the last lines written since the last reset.
type tailWriter struct {
	max     int
	partial []byte
	last    []string
}

func (t *tailWriter) write(p []byte) {
	buf := append(t.partial, p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		t.last = append(t.last, string(buf[:i]))
		if len(t.last) > t.max {
			t.last = t.last[len(t.last)-t.max:]
		}
		buf = buf[i+1:]
	}
	t.partial = append([]byte(nil), buf...)
}

func (t *tailWriter) reset() { t.last, t.partial = nil, nil }

func (t *tailWriter) lines() []string {
	out := slices.Clone(t.last)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	return out[max(0, len(out)-t.max):]
}

func (l *Log) resetTail() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tail.reset()
}

func (l *Log) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tail.lines()
}
