package store

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Found by make chaos: a database created on a disk with less room than
// bbolt's first four pages was left half-written (4096 bytes), and every
// later Open failed with "file size too small", space back or not. A
// failed create now leaves no file, so the next Open starts afresh. The
// small disk is a tmpfs, which takes root to mount.
func TestOpenOnFullDiskLeavesNoHalfFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8k"); err != nil {
		t.Skipf("needs a small tmpfs (root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "nightshift.db")
	if db, err := Open(path, time.Second); err == nil {
		db.Close()
		t.Fatal("Open on an 8 KiB disk succeeded; the test proves nothing")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed create left %s behind (%v)", path, err)
	}

	// Room again: the database is made and opens.
	syscall.Unmount(dir, syscall.MNT_DETACH)
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatalf("Open with room again: %v", err)
	}
	db.Close()
}
