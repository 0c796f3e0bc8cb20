package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Promotion is one `nightshift promote` of a nightly run's images to
// release tags.
type Promotion struct {
	When time.Time `json:"when"`
	By   string    `json:"by"`   // who promoted: a user name, or --by
	Tags []string  `json:"tags"` // the target tags, rendered
	// Forced says that --force was given: images the night did not
	// validate were promoted too (PromotedImage.Validated says which).
	Forced bool            `json:"forced"`
	Images []PromotedImage `json:"images"`
	// Refused lists the images asked for that were not promoted, and why.
	Refused []RefusedImage `json:"refused,omitempty"`
}

// PromotedImage is one image of a promotion.
type PromotedImage struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	// Ref is the image's target ref with the promotion's first tag; its
	// refs with the other tags are Repository's too (see Promotion.Refs).
	Ref        string `json:"ref"`
	Repository string `json:"repository"`
	// Validated says whether the night validated it; false only in a
	// forced promotion.
	Validated bool `json:"validated"`
}

// RefusedImage is an image a promotion left out.
type RefusedImage struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Refs returns the image's target refs, one per tag of p.
func (p *Promotion) Refs(im PromotedImage) []string {
	refs := make([]string, len(p.Tags))
	for i, t := range p.Tags {
		refs[i] = im.Repository + ":" + t
	}
	return refs
}

// Release is where one release tag points: the latest promotion to it.
type Release struct {
	Ref    string    `json:"ref"` // the target ref, repository and tag
	Image  string    `json:"image"`
	Run    uint64    `json:"run"` // the nightly run promoted
	Tag    string    `json:"tag"` // that run's tag
	Digest string    `json:"digest"`
	When   time.Time `json:"when"`
	By     string    `json:"by"`
	Forced bool      `json:"forced,omitempty"` // promoted without being validated
}

var bucketReleases = []byte("releases") // target ref -> Release, the latest promotion to it

// NightlyTagged returns the newest nightly run recorded with tag.
func (db *DB) NightlyTagged(tag string) (*Run, error) {
	var r *Run
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id, err := nightTagged(tx, tag, ^uint64(0))
		if err != nil {
			return err
		}
		if id == 0 {
			return fmt.Errorf("no nightly run with tag %q: %w", tag, ErrNotFound)
		}
		r, err = getRun(tx, id)
		return err
	})
	return r, err
}

// Promote records p with run id, where each of its refs points now, and
// queues msgs, in one transaction.
func (db *DB) Promote(id uint64, p Promotion, msgs ...Message) (*Run, error) {
	var out *Run
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		r, err := getRun(tx, id)
		if err != nil {
			return err
		}
		r.Promotions = append(r.Promotions, p)
		if err := putRun(tx, r); err != nil {
			return err
		}
		b := tx.Bucket(bucketReleases)
		for _, im := range p.Images {
			for _, ref := range p.Refs(im) {
				v, err := json.Marshal(Release{Ref: ref, Image: im.Name, Run: id, Tag: r.Tag, Digest: im.Digest,
					When: p.When, By: p.By, Forced: !im.Validated})
				if err != nil {
					return err
				}
				if err := b.Put([]byte(ref), v); err != nil {
					return err
				}
			}
		}
		out = r
		return queue(tx, p.When, msgs)
	})
	return out, err
}

// Releases returns where the release tags of image point, by ref; every
// image's when image is "".
func (db *DB) Releases(image string) ([]Release, error) {
	var out []Release
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReleases).ForEach(func(k, v []byte) error {
			var rel Release
			if err := json.Unmarshal(v, &rel); err != nil {
				return fmt.Errorf("release %s: %w", k, err)
			}
			if image == "" || rel.Image == image {
				out = append(out, rel)
			}
			return nil
		})
	})
	return out, err
}

// Promoted reports whether any promotion is recorded with r.
func (r *Run) Promoted() bool { return len(r.Promotions) > 0 }

// MarkPruned records the runs ids as pruned at when: their logs deleted
// (each image's Log is cleared), their tags gone from staging. Their
// records stay. One transaction.
func (db *DB) MarkPruned(ids []uint64, when time.Time) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
			r, err := getRun(tx, id)
			if err != nil {
				return err
			}
			if r.Pruned != nil {
				continue
			}
			r.Pruned = &when
			for i := range r.Images {
				r.Images[i].Log = ""
			}
			if err := putRun(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}
