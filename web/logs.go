package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"nightshift/store"
)

// errNoLog means the image has no log file (yet).
var errNoLog = errors.New("no log file")

// openLog opens the log of image name in run id. os.Root keeps the open
// inside the log directory whatever the name holds (.., an absolute path, a
// symbolic link out), on top of the name check every route does.
func (s *server) openLog(id uint64, name string) (*os.File, error) {
	if s.logs == "" {
		return nil, errNoLog
	}
	root, err := os.OpenRoot(s.logs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoLog
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rel := filepath.Join(strconv.FormatUint(id, 10), name+".log")
	f, err := root.Open(rel)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// A link out of the directory, or a file we may not read: to the
			// client it is no log; the operator learns why.
			s.log.Warn("log not served", "file", rel, "err", err)
		}
		return nil, errNoLog
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errNoLog
	}
	return f, nil
}

// imageOf is image name of run id as now recorded, nil if either is unknown.
func (s *server) imageOf(id uint64, name string) (*store.Run, *store.ImageResult, error) {
	run, err := s.run(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return run, run.Image(name), nil
}

// apiLog answers the log of one image as text. A finished image's log is
// served as a file (ranges, HEAD); a running image's is followed: the answer
// stays open and gets each new line until the image's status is final or
// the client goes.
func (s *server) apiLog(w http.ResponseWriter, r *http.Request) {
	id, okID := runID(r)
	name, okName := imageName(r)
	if !okID || !okName {
		s.notFound(w, r)
		return
	}
	tail := 0
	if r.URL.Query().Has("tail") {
		var err error
		if tail, err = queryInt(r, "tail", 0); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	_, im, err := s.imageOf(id, name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if im == nil {
		s.notFound(w, r)
		return
	}
	running := !im.Status.Done()
	f, err := s.openLog(id, name)
	switch {
	case errors.Is(err, errNoLog) && running:
		// The image started but its log is not there yet: follow from nothing.
	case errors.Is(err, errNoLog):
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s in run %d has no log", name, id))
		return
	case err != nil:
		s.internal(w, r, err)
		return
	default:
		defer f.Close()
	}

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", fmt.Sprintf("%d-%s.log", id, name)))
	if !running && tail == 0 {
		st, err := f.Stat()
		if err != nil {
			s.internal(w, r, err)
			return
		}
		http.ServeContent(w, r, "", st.ModTime(), f)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if f != nil && tail > 0 {
		if _, err := seekTail(f, tail); err != nil {
			s.internal(w, r, err)
			return
		}
	}
	if r.Method == http.MethodHead {
		return
	}
	if f != nil {
		io.Copy(w, f)
	}
	if running {
		s.follow(r.Context(), w, f, id, name)
	}
}

// follow copies what is appended to f (opening it when it appears, if f is
// nil) until image name of run id has a final status or ctx ends. The
// status is read before each copy, so what was written before the image
// ended is always sent.
func (s *server) follow(ctx context.Context, w http.ResponseWriter, f *os.File, id uint64, name string) {
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return // this writer cannot stream; the client has what there was
	}
	var opened *os.File // closed here; a file the caller gave is the caller's
	defer func() {
		if opened != nil {
			opened.Close()
		}
	}()
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		run, err := s.db.Run(id)
		done := err != nil // a run that vanished (pruned) ends the stream too
		if err == nil {
			im := run.Image(name)
			done = im == nil || im.Status.Done()
		}
		if f == nil {
			if g, err := s.openLog(id, name); err == nil {
				f, opened = g, g
			}
		}
		if f != nil {
			if n, _ := io.Copy(w, f); n > 0 {
				if rc.Flush() != nil {
					return
				}
			}
		}
		if done {
			return
		}
	}
}

// seekTail positions f at the start of its last n lines (a last line
// without a newline counts) and returns that offset. It reads backwards
// from the end in blocks, so a long log costs only what is sent.
func seekTail(f *os.File, n int) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := st.Size()
	const block = 64 << 10
	buf := make([]byte, block)
	pos := end
	newlines := 0
	first := true
	for pos > 0 {
		size := min(int64(block), pos)
		pos -= size
		b := buf[:size]
		if _, err := f.ReadAt(b, pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if first && len(b) > 0 && b[len(b)-1] == '\n' {
			b = b[:len(b)-1] // the newline that ends the last line starts no line
		}
		first = false
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' {
				continue
			}
			if newlines++; newlines == n {
				off := pos + int64(i) + 1
				_, err := f.Seek(off, io.SeekStart)
				return off, err
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return 0, err
}

// maxPageLog bounds the log a page shows: a browser chokes on more, and the
// raw log link has it all.
const maxPageLog = 16 << 20

// logText reads the log to show on a page: the last n lines, or all of it
// (up to maxPageLog) when n <= 0. truncated says whether the start was left
// out.
func (s *server) logText(id uint64, name string, n int) (text []byte, truncated bool, err error) {
	f, err := s.openLog(id, name)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	off := int64(0)
	if n > 0 {
		if off, err = seekTail(f, n); err != nil {
			return nil, false, err
		}
	}
	if st, err := f.Stat(); err == nil && st.Size()-off > maxPageLog {
		if off, err = f.Seek(st.Size()-maxPageLog, io.SeekStart); err != nil {
			return nil, false, err
		}
	}
	text, err = io.ReadAll(io.LimitReader(f, maxPageLog))
	return bytes.TrimRight(text, "\n"), off > 0, err
}
