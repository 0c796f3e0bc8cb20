package registry

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// remotes returns the puller and pusher to use. go-containerregistry
// shakes hands with the registry for every repository it meets (GET /v2/,
// over https and http for a loopback registry), because a bearer token is
// scoped to repositories. A registry without tokens (anonymous, or basic
// auth) answers every repository alike, so after one handshake the
// client's requests go straight out: a promotion of ten images makes 40
// handshakes fewer. A registry that wants tokens keeps the handshake per
// repository; so does a client whose handshake failed, which tries again
// next time.
func (c *Client) remotes(ctx context.Context) direct {
	c.handshake.Lock()
	defer c.handshake.Unlock()
	if c.shaken {
		return c.direct
	}
	perRepository := direct{puller: c.puller, pusher: c.pusher}
	reg, err := name.NewRegistry(c.host, c.nameOp...)
	if err != nil {
		return perRepository
	}
	ch, err := transport.Ping(ctx, reg, c.rt)
	if err != nil {
		return perRepository
	}
	if strings.EqualFold(ch.Scheme, "bearer") {
		c.shaken, c.direct = true, perRepository
		return c.direct
	}
	tr, err := transport.NewWithContext(ctx, reg, c.auth, c.rt, nil)
	if err != nil {
		return perRepository
	}
	opts := []remote.Option{remote.WithTransport(tr), remote.WithAuth(c.auth), remote.WithRetryBackoff(remote.Backoff{Steps: 1})}
	puller, perr := remote.NewPuller(opts...)
	pusher, serr := remote.NewPusher(opts...)
	if perr != nil || serr != nil {
		return perRepository
	}
	c.shaken, c.direct = true, direct{puller: puller, pusher: pusher, transport: tr}
	return c.direct
}

// direct is what remotes settles on: the puller and pusher, and when the
// registry has no tokens the transport that needs no further handshake.
type direct struct {
	puller    *remote.Puller
	pusher    *remote.Pusher
	transport http.RoundTripper // nil when each repository needs its own
}
