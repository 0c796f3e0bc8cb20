package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Contents is what one image of a run is made of, as read once it was
// pushed: its layers and the package lists of its info commands. It is
// kept apart from the run's record (a Debian image lists a thousand
// packages), one value per image, and stays when the run is pruned.
type Contents struct {
	Image  string    `json:"image"`
	Ref    string    `json:"ref"`
	Digest string    `json:"digest"`
	Read   time.Time `json:"read"`
	// Layers are the image's history, oldest first: each step of its
	// build, with the layer it made (none for ENV, CMD and the like).
	Layers []Layer `json:"layers"`
	// Lists are the info commands' package lists, in the configured order.
	Lists []PackageList `json:"lists"`
	// Error says why the layers could not be read; the lists may still be
	// there.
	Error string `json:"error,omitempty"`
}

// Layer is one step of an image's history.
type Layer struct {
	CreatedBy string `json:"created_by"` // the instruction, as the builder recorded it
	// Digest and Size are the layer's blob in the registry; "" and 0 for a
	// step that made no layer.
	Digest string `json:"digest,omitempty"`
	Size   int64  `json:"size"`
}

// PackageList is the parsed output of one info command in one image.
type PackageList struct {
	Source  string `json:"source"` // the command's name: dpkg, pip, conda, ...
	Command string `json:"command"`
	Format  string `json:"format"`
	// Absent says the command is not in the image (its shell answered 127,
	// "command not found"): nothing to list, not a failure.
	Absent bool   `json:"absent,omitempty"`
	Error  string `json:"error,omitempty"` // why the list is missing or incomplete
	// Packages are sorted by name, then version.
	Packages []Package `json:"packages"`
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// PackageDiff is, in brief, how an image's packages changed since the run
// before in which it succeeded: what a summary shows. The whole diff is
// made again from the stored Contents (nightshift diff).
type PackageDiff struct {
	SinceRun uint64 `json:"since_run"`
	Added    int    `json:"added"`
	Removed  int    `json:"removed"`
	Changed  int    `json:"changed"`
	// First are the first changes, added, removed and changed alike, at
	// most a summary's worth.
	First []PackageChange `json:"first,omitempty"`
}

// PackageChange is one package that came, went or changed version: From is
// "" for one added, To "" for one removed.
type PackageChange struct {
	Source string `json:"source"`
	Name   string `json:"name"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// Empty reports whether nothing changed.
func (d *PackageDiff) Empty() bool { return d.Added+d.Removed+d.Changed == 0 }

var bucketContents = []byte("contents") // run id (8 bytes) + image name -> Contents

func contentsKey(run uint64, image string) []byte {
	return append(itob(run), image...)
}

// PutContents stores c as the contents of image c.Image in run, replacing
// what was there.
func (db *DB) PutContents(run uint64, c *Contents) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContents).Put(contentsKey(run, c.Image), v)
	})
}

// Contents returns the contents of image in run; ErrNotFound when none
// were read.
func (db *DB) Contents(run uint64, image string) (*Contents, error) {
	var c *Contents
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketContents).Get(contentsKey(run, image))
		if v == nil {
			return fmt.Errorf("contents of %s in run %d: %w", image, run, ErrNotFound)
		}
		c = new(Contents)
		return json.Unmarshal(v, c)
	})
	return c, err
}

// RunContents returns the contents of every image of run that has them,
// by image name.
func (db *DB) RunContents(run uint64) ([]Contents, error) {
	var all []Contents
	prefix := itob(run)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketContents).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var one Contents
			if err := json.Unmarshal(v, &one); err != nil {
				return fmt.Errorf("contents of %s in run %d: %w", k[len(prefix):], run, err)
			}
			all = append(all, one)
		}
		return nil
	})
	return all, err
}

// String says c in a few words: "pip numpy 1.26.0 -> 1.26.1", "pip +requests
// 2.31.0", "dpkg -libfoo1 1.2".
func (c PackageChange) String() string {
	switch {
	case c.From == "":
		return strings.TrimSpace(c.Source + " +" + c.Name + " " + c.To)
	case c.To == "":
		return strings.TrimSpace(c.Source + " -" + c.Name + " " + c.From)
	}
	return c.Source + " " + c.Name + " " + c.From + " -> " + c.To
}

// Counts says "2 added, 1 removed, 3 changed", leaving out what is zero;
// "no change" when all are.
func (d *PackageDiff) Counts() string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{d.Added, "added"}, {d.Removed, "removed"}, {d.Changed, "changed"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}
