package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// Step is one step of an image's build history: the instruction that made
// it, and the layer it added, if any.
type Step struct {
	CreatedBy string
	Digest    string // the layer's blob; "" for a step that added none
	Size      int64  // the layer's compressed size
}

// History returns the build history of the image ref names, oldest step
// first, each step with its layer as the manifest lists it. It reads the
// manifest and the config blob only, no layer. An image whose history does
// not account for its layers (one assembled by a tool that writes none) is
// answered with one step per layer, CreatedBy "".
func (c *Client) History(ctx context.Context, ref string) ([]Step, error) {
	r, err := name.ParseReference(ref, c.nameOp...)
	if err != nil {
		return nil, err
	}
	desc, err := c.remotes(ctx).puller.Get(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", ref, err)
	}
	var steps []Step
	layers := m.Layers
	for _, h := range cfg.History {
		s := Step{CreatedBy: h.CreatedBy}
		if !h.EmptyLayer {
			if len(layers) == 0 {
				break // more layered steps than layers: the history is not the image's
			}
			s.Digest, s.Size = layers[0].Digest.String(), layers[0].Size
			layers = layers[1:]
		}
		steps = append(steps, s)
	}
	if len(layers) > 0 || len(steps) < len(cfg.History) {
		steps = steps[:0]
		for _, l := range m.Layers {
			steps = append(steps, Step{Digest: l.Digest.String(), Size: l.Size})
		}
	}
	return steps, nil
}
