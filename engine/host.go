package engine

import (
	"fmt"
	"net/url"

	"github.com/docker/cli/cli/connhelper"
	"github.com/moby/moby/client"
)

// Host names an engine as DOCKER_HOST does: unix:///path, tcp://host:port
// (with TLS files, as DOCKER_CERT_PATH holds them) or ssh://user@host,
// which runs `docker system dial-stdio` there, as the docker CLI does.
type Host struct {
	URL string
	// CA, Cert and Key are PEM files for a tcp:// engine that wants TLS;
	// all three or none.
	CA, Cert, Key string
}

// NewAt returns a client of the engine at h without reaching it yet.
func NewAt(h Host) (*Engine, error) {
	u, err := url.Parse(h.URL)
	if err != nil {
		return nil, fmt.Errorf("docker engine %s: %w", h.URL, err)
	}
	opts := []client.Opt{}
	switch u.Scheme {
	case "ssh":
		helper, err := connhelper.GetConnectionHelper(h.URL)
		if err != nil {
			return nil, fmt.Errorf("docker engine %s: %w", h.URL, err)
		}
		opts = append(opts, client.WithHost(helper.Host), client.WithDialContext(helper.Dialer))
	default:
		opts = append(opts, client.WithHost(h.URL))
		if h.CA != "" || h.Cert != "" || h.Key != "" {
			opts = append(opts, client.WithTLSClientConfig(h.CA, h.Cert, h.Key))
		}
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine %s: %w", h.URL, err)
	}
	return &Engine{c: c}, nil
}
