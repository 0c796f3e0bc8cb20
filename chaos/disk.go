package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"nightshift/store"
)

// diskFull: the store and the logs live on a small tmpfs that a filler
// file leaves a seeded few kilobytes of; nightshift runs on it, round
// after round. Promises: a run that cannot write ends with a non-zero exit
// (never reported succeeded unless its record says so, image by image);
// the database opens and passes bbolt's consistency check once space is
// back; no run stays running after the next start; the run with space
// back succeeds.
func diskFull(ctx context.Context, e *env) (string, []string) {
	mnt := filepath.Join(e.dir, "full")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", []string{err.Error()}
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		// Not a broken promise: this machine cannot make a small disk.
		return fmt.Sprintf("skipped: cannot mount a tmpfs here (%v); run as root", err), nil
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)

	files := stackFiles()
	files["nightshift.toml"] = fmt.Sprintf(`[staging]
registry = %q
namespace = "chaos-disk"

[store]
path = %q
logs = %q

[notify]
flush_timeout = "1s"
%s`, e.registry.Addr, filepath.Join(mnt, "nightshift.db"), filepath.Join(mnt, "logs"), stackImages)
	cfg, err := e.writeStack("disk", files)
	if err != nil {
		return "", []string{err.Error()}
	}
	dbPath := filepath.Join(mnt, "nightshift.db")
	filler := filepath.Join(mnt, "filler")
	rng := e.rng(6)
	rounds := 4 * e.rounds
	var broken []string
	var outcomes []string
	checked := 0
	for i := range rounds {
		// 0 to 64 KiB free: the database's next growth, a log, or nothing.
		free := int64(rng.IntN(17)) * 4096
		if err := fill(filler, mnt, free); err != nil {
			return "", append(broken, err.Error())
		}
		jsonPath := filepath.Join(filepath.Dir(cfg), fmt.Sprintf("full-%d.json", i+1))
		res := e.nightshift(ctx, 5*time.Minute, nil, "run", "-c", cfg, "--progress", "lines", "--json", jsonPath)
		outcomes = append(outcomes, fmt.Sprintf("%dK:%d", free/1024, res.code))
		os.Remove(filler)

		if err := boltCheck(dbPath); err != nil {
			broken = append(broken, fmt.Sprintf("round %d (%d KiB free): %v", i+1, free/1024, err))
			continue
		}
		checked++
		if res.code != exitOK {
			continue
		}
		// Reported succeeded: the record must say so, image by image.
		rep, err := readRun(jsonPath)
		if err != nil {
			broken = append(broken, fmt.Sprintf("round %d: exit 0 without the --json record: %v", i+1, err))
			continue
		}
		db, err := store.Open(dbPath, 5*time.Second)
		if err != nil {
			broken = append(broken, fmt.Sprintf("round %d: %v", i+1, err))
			continue
		}
		rec, err := db.Run(rep.ID)
		db.Close()
		switch {
		case err != nil:
			broken = append(broken, fmt.Sprintf("round %d: run %d reported succeeded is not in the store: %v", i+1, rep.ID, err))
		case rec.Status != store.Succeeded:
			broken = append(broken, fmt.Sprintf("round %d: run %d reported succeeded is %s in the store", i+1, rep.ID, rec.Status))
		default:
			for _, im := range rep.Images {
				got := rec.Image(im.Name)
				if got == nil || got.Status != im.Status || got.Digest != im.Digest {
					broken = append(broken, fmt.Sprintf("round %d: %s reported %s %s, recorded %+v", i+1, im.Name, im.Status, im.Digest, got))
				}
			}
		}
	}

	// Space is back: the next run succeeds, and nothing stays running.
	res := e.nightshift(ctx, 5*time.Minute, nil, "run", "-c", cfg, "--progress", "lines")
	if res.code != exitOK {
		broken = append(broken, fmt.Sprintf("the run with space back exited %d: %s", res.code, tailOf(res.output)))
	}
	db, err := store.Open(dbPath, 5*time.Second)
	if err != nil {
		return "", append(broken, "the database does not open: "+err.Error())
	}
	runs, err := db.Runs(0)
	db.Close()
	if err != nil {
		broken = append(broken, err.Error())
	}
	statuses := map[string]int{}
	for _, r := range runs {
		statuses[string(r.Status)]++
		if r.Status == store.Running || r.Status == store.Queued {
			broken = append(broken, fmt.Sprintf("run %d is still %s after the next start", r.ID, r.Status))
		}
	}
	figures := fmt.Sprintf("%d rounds on a 4 MiB tmpfs (free:exit %s), database checked %d of %d times, %d runs recorded (%s), run with space back exit %d",
		rounds, strings.Join(outcomes, " "), checked, rounds, len(runs), counts(statuses), res.code)
	return figures, broken
}

// fill writes path so that the file system at dir has about free bytes
// left.
func fill(path, dir string, free int64) error {
	os.Remove(path)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	avail := int64(st.Bavail) * st.Bsize
	size := avail - free
	if size <= 0 {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for size > 0 {
		n := min(int64(len(buf)), size)
		if _, err := f.Write(buf[:n]); err != nil {
			return fmt.Errorf("filling %s: %w", dir, err)
		}
		size -= n
	}
	return nil
}

// boltCheck opens the database read-only and runs bbolt's consistency
// check over every page.
func boltCheck(path string) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil // never created: nothing to corrupt
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("the database does not open: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("the database is corrupt: %s", strings.Join(first(errs, 3), "; "))
		}
		return nil
	})
}
