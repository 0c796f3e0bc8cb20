package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Copy makes dst, a tag in to's registry, point at the manifest that src
// points at in c's registry, as crane.Copy does: the manifest is read from
// src and written to dst with every blob it needs. A blob the target
// repository has is not sent; one in src's repository of the same registry
// is mounted from it (POST ?mount=&from=), so that within a registry no
// layer moves. Only between registries are missing blobs streamed, from
// registry to registry, never through an engine. It returns the digest
// copied. to may be c.
func (c *Client) Copy(ctx context.Context, src string, to *Client, dst string) (string, error) {
	s, err := name.ParseReference(src, c.nameOp...)
	if err != nil {
		return "", err
	}
	d, err := name.NewTag(dst, to.nameOp...)
	if err != nil {
		return "", err
	}
	puller := c.remotes(ctx).puller
	pusher := to.remotes(ctx).pusher
	desc, err := puller.Get(ctx, s)
	if err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	var t remote.Taggable = desc
	switch {
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
		t = mountableImage{img, s}
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
		t = mountableIndex{idx, s}
	}
	if err := pusher.Push(ctx, d, t); err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return desc.Digest.String(), nil
}

// mountableImage is a remote image whose config blob is mountable too:
// go-containerregistry mounts the layers of a remote image but sends its
// config through the client.
type mountableImage struct {
	v1.Image
	from name.Reference
}

func (m mountableImage) ConfigLayer() (v1.Layer, error) {
	l, err := partial.ConfigLayer(m.Image)
	if err != nil {
		return nil, err
	}
	return &remote.MountableLayer{Layer: l, Reference: m.from}, nil
}

// mountableIndex is a remote index whose images are mountableImages.
type mountableIndex struct {
	index
	from name.Reference
}

// index is v1.ImageIndex under another name, so that mountableIndex may
// embed it and still have a method called ImageIndex.
type index = v1.ImageIndex

func (m mountableIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.index.Image(h)
	if err != nil {
		return nil, err
	}
	return mountableImage{img, m.from}, nil
}

func (m mountableIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := m.index.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return mountableIndex{idx, m.from}, nil
}

// Layer is the remote index's child that is neither image nor index (an
// artifact's blob), which go-containerregistry copies as a layer.
func (m mountableIndex) Layer(h v1.Hash) (v1.Layer, error) {
	wl, ok := m.index.(interface {
		Layer(v1.Hash) (v1.Layer, error)
	})
	if !ok {
		return nil, fmt.Errorf("index %s: child %s is neither an image nor an index", m.from, h)
	}
	return wl.Layer(h)
}

// Tags lists the tags of repo ("host[:port]/path"); a repository the
// registry does not know has none.
func (c *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	r, err := name.NewRepository(repo, c.nameOp...)
	if err != nil {
		return nil, err
	}
	puller := c.remotes(ctx).puller
	tags, err := puller.List(ctx, r)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	return tags, nil
}

// ErrDeleteRefused means the registry does not delete manifests: 405, or
// the registry error code UNSUPPORTED (distribution without
// storage.delete.enabled).
var ErrDeleteRefused = errors.New("the registry refuses to delete manifests")

// Delete deletes the manifest digest from repo ("host[:port]/path"), and
// with it every tag that points at it: the registry API deletes by digest
// only. A manifest already gone is no error. A registry that refuses
// deletes gets an error wrapping ErrDeleteRefused.
func (c *Client) Delete(ctx context.Context, repo, digest string) error {
	r, err := name.NewRepository(repo, c.nameOp...)
	if err != nil {
		return err
	}
	ref := r.Digest(digest)
	client, err := c.deleter(ctx, r)
	if err != nil {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", r.Scheme(), r.RegistryStr(), r.RepositoryStr(), digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	defer resp.Body.Close()
	err = transport.CheckError(resp, http.StatusOK, http.StatusAccepted)
	switch {
	case err == nil, isStatus(err, http.StatusNotFound):
		return nil
	case refused(err):
		return fmt.Errorf("delete %s: %w: %w", ref, ErrDeleteRefused, err)
	}
	return fmt.Errorf("delete %s: %w", ref, err)
}

// deleter is the HTTP client that deletes in repository r, with a token
// scoped for deletes where the registry uses tokens; one per repository
// for the client's life, so that deleting a thousand manifests does not
// redo the handshake a thousand times.
func (c *Client) deleter(ctx context.Context, r name.Repository) (*http.Client, error) {
	if v, ok := c.deleters.Load(r.String()); ok {
		return v.(*http.Client), nil
	}
	if tr := c.remotes(ctx).transport; tr != nil {
		return &http.Client{Transport: tr}, nil
	}
	tr, err := transport.NewWithContext(ctx, r.Registry, c.auth, c.rt, []string{r.Scope(transport.DeleteScope)})
	if err != nil {
		return nil, err
	}
	v, _ := c.deleters.LoadOrStore(r.String(), &http.Client{Transport: tr})
	return v.(*http.Client), nil
}

// refused reports whether err is a registry's refusal to delete at all.
func refused(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusMethodNotAllowed {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.UnsupportedErrorCode {
			return true
		}
	}
	return false
}

// isStatus reports whether err is a registry's answer with status code.
func isStatus(err error, code int) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == code
}

// Host is the registry's host[:port].
func (c *Client) Host() string { return c.host }

// Pair is a promotion's two registries: images are read in Source and
// written, tagged and checked in Target, the same client when the two are
// one registry.
type Pair struct{ Source, Target *Client }

// Copy copies src, in Source, to dst, a tag in Target (see Client.Copy).
func (p Pair) Copy(ctx context.Context, src, dst string) (string, error) {
	return p.Source.Copy(ctx, src, p.Target, dst)
}

// Tag tags in Target (see Client.Tag).
func (p Pair) Tag(ctx context.Context, ref, tag string) error { return p.Target.Tag(ctx, ref, tag) }

// Digest reads a digest in Target (see Client.Digest).
func (p Pair) Digest(ctx context.Context, ref string) (string, error) {
	return p.Target.Digest(ctx, ref)
}
