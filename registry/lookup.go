package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// manifestTypes are the manifests a lookup accepts, as a pull would: the
// digest answered is the one a pull of the tag gets.
var manifestTypes = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ", ")

// Lookup returns the digest of the manifest ref names, and whether the
// registry has it: a 404 is an answer, not an error. It is one HEAD request
// when the registry lets anyone read, or takes this client's credentials as
// they are (HTTP basic); a registry that wants a token first gets the
// usual handshake. Passing failures are retried as for every request.
func (c *Client) Lookup(ctx context.Context, ref string) (digest string, found bool, err error) {
	r, err := name.ParseReference(ref, c.nameOp...)
	if err != nil {
		return "", false, err
	}
	repo := r.Context()
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/manifests/" + r.Identifier()}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return "", false, err
	}
	req.Header.Set("Accept", manifestTypes)
	if a, err := c.auth.Authorization(); err == nil && a.Username != "" && a.Password != "" {
		req.SetBasicAuth(a.Username, a.Password)
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return "", false, fmt.Errorf("look up %s: %w", ref, err)
	}
	resp.Body.Close()
	switch d := resp.Header.Get("Docker-Content-Digest"); {
	case resp.StatusCode == http.StatusOK && d != "":
		return d, true, nil
	case resp.StatusCode == http.StatusNotFound:
		return "", false, nil
	}
	// A token to fetch, or an answer without its digest: the full client.
	desc, err := c.puller.Head(ctx, r)
	if notFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up %s: %w", ref, err)
	}
	return desc.Digest.String(), true, nil
}

// notFound reports whether err is the registry's answer that what was
// asked for is not there (404).
func notFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
