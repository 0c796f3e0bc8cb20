// Package registry is nightshift's client of the staging registry: digests,
// remote tags (a manifest PUT, no layer moves) and credentials, over
// go-containerregistry, with transient errors retried within a budget.
package registry

import (
	"maps"
	"slices"

	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	dockerconfig "github.com/docker/cli/cli/config"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	mobyregistry "github.com/moby/moby/api/types/registry"

	"nightshift/retry"
)

// Client talks to one registry.
type Client struct {
	host   string
	auth   authn.Authenticator
	nameOp []name.Option
	budget time.Duration
	next   http.RoundTripper
	// dockerConfig is the directory of Docker's config.json; "" is the
	// default ($DOCKER_CONFIG, else ~/.docker).
	dockerConfig string
	rt           *retryTransport // next, with retries: every request goes through it
	// One puller and one pusher for the client's life: they keep a
	// transport (ping, token) per repository instead of redoing the
	// handshake for every request.
	puller *remote.Puller
	pusher *remote.Pusher
	// deleters holds the HTTP client of deletes per repository (see
	// deleter): repository string -> *http.Client.
	deleters sync.Map
	// handshake guards shaken and direct, which remotes settles once.
	handshake sync.Mutex
	shaken    bool
	direct    direct
}

// Option configures a Client.
type Option func(*Client)

// WithBasicAuth authenticates with a username and password instead of
// Docker's config.json and credential helpers.
func WithBasicAuth(username, password string) Option {
	return func(c *Client) {
		c.auth = authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	}
}

// WithRetryBudget bounds how long one operation retries transient errors.
func WithRetryBudget(d time.Duration) Option { return func(c *Client) { c.budget = d } }

// WithDockerConfig reads Docker's configuration (config.json, credential
// helpers) from dir instead of $DOCKER_CONFIG or ~/.docker.
func WithDockerConfig(dir string) Option { return func(c *Client) { c.dockerConfig = dir } }

// WithTransport replaces the HTTP transport under the retrying one (tests).
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) { c.next = rt }
}

// New returns a client of the registry at host ("host[:port]"). Loopback
// registries are spoken to in plain HTTP.
func New(host string, opts ...Option) (*Client, error) {
	c := &Client{host: host, budget: 5 * time.Minute, next: defaultTransport()}
	for _, o := range opts {
		o(c)
	}
	if IsLoopback(host) {
		c.nameOp = append(c.nameOp, name.Insecure)
	}
	reg, err := name.NewRegistry(host, c.nameOp...)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", host, err)
	}
	if c.auth == nil {
		if c.auth, err = authn.DefaultKeychain.Resolve(reg); err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", host, err)
		}
	}
	// One owner of retries: ours, which honours Retry-After and a budget.
	c.rt = &retryTransport{next: c.next, policy: retry.Policy{Base: backoffBase, Max: backoffMax, Budget: c.budget}}
	ropts := []remote.Option{
		remote.WithTransport(c.rt),
		remote.WithAuth(c.auth),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
	if c.puller, err = remote.NewPuller(ropts...); err != nil {
		return nil, err
	}
	if c.pusher, err = remote.NewPusher(ropts...); err != nil {
		return nil, err
	}
	return c, nil
}

// Backoff bounds of the registry's requests: a registry's 5xx or reset is
// often gone within a second; a 429 says how long itself.
const (
	backoffBase = 250 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// Ping checks that the registry answers its API base, /v2/, trying again
// after a passing failure until ctx ends or the retry budget is spent. A
// 401 counts as an answer: it means the registry is there and wants
// credentials.
func (c *Client) Ping(ctx context.Context) error {
	reg, err := name.NewRegistry(c.host, c.nameOp...)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+c.host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("registry %s: %w", c.host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("registry %s: GET /v2/ answered %s", c.host, resp.Status)
	}
	return nil
}

// CheckPush checks that these credentials may push to repo (a repository
// path under the registry) by starting an upload and cancelling it: wrong
// credentials are found before hours of builds, not after them. Its
// requests are tried again after passing failures, each within the retry
// budget.
func (c *Client) CheckPush(ctx context.Context, repo string) error {
	r, err := name.NewRepository(c.host+"/"+repo, c.nameOp...)
	if err != nil {
		return err
	}
	// go-containerregistry's check takes no context: its requests get ours.
	if err := remote.CheckPushPermission(r.Tag("nightshift-check"), fixedKeychain{c.auth}, withContext{ctx, c.rt}); err != nil {
		return fmt.Errorf("cannot push to %s: %w", r, err)
	}
	return nil
}

// withContext sends every request under ctx, for callers that take no
// context of their own.
type withContext struct {
	ctx  context.Context
	next http.RoundTripper
}

func (t withContext) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(req.WithContext(t.ctx))
}

// fixedKeychain gives the client's own credentials for any registry.
type fixedKeychain struct{ auth authn.Authenticator }

func (k fixedKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// Digest returns the manifest digest ref points at in the registry.
func (c *Client) Digest(ctx context.Context, ref string) (string, error) {
	r, err := name.ParseReference(ref, c.nameOp...)
	if err != nil {
		return "", err
	}
	puller := c.remotes(ctx).puller
	desc, err := puller.Head(ctx, r)
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", ref, err)
	}
	return desc.Digest.String(), nil
}

// Tag makes tag point at the manifest ref points at, with one manifest GET
// and one PUT: no layer is pulled or pushed.
func (c *Client) Tag(ctx context.Context, ref, tag string) error {
	src, err := name.ParseReference(ref, c.nameOp...)
	if err != nil {
		return err
	}
	r := c.remotes(ctx)
	puller, pusher := r.puller, r.pusher
	desc, err := puller.Get(ctx, src)
	if err != nil {
		return fmt.Errorf("tag %s as %s: %w", ref, tag, err)
	}
	if err := pusher.Put(ctx, src.Context().Tag(tag), desc); err != nil {
		return fmt.Errorf("tag %s as %s: %w", ref, tag, err)
	}
	return nil
}

// EngineAuth returns the credentials for this registry in the form the
// Docker Engine takes them (X-Registry-Auth). Anonymous access is an empty
// credential, not a missing header: older engines refuse a push without one.
func (c *Client) EngineAuth() (string, error) {
	a, err := c.auth.Authorization()
	if err != nil {
		return "", fmt.Errorf("credentials for %s: %w", c.host, err)
	}
	b, err := json.Marshal(mobyregistry.AuthConfig{
		Username: a.Username, Password: a.Password, Auth: a.Auth,
		ServerAddress: c.host, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	})
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// IsLoopback reports whether host[:port] names this machine.
func IsLoopback(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func defaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 2 * time.Minute
	return t
}

// BuildAuths returns the credentials a build may pull with, as
// X-Registry-Auth values: those of every registry Docker's config.json
// (and its credential helpers) knows, as docker build sends them, and this
// registry's own, which win for its host. A base image from a registry
// that wants a login, or counts anonymous pulls, is pulled as the host's
// docker would.
func (c *Client) BuildAuths() ([]string, error) {
	cf, err := dockerconfig.Load(c.dockerConfig)
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	creds, err := cf.GetAllCredentials()
	if err != nil {
		return nil, fmt.Errorf("docker credentials: %w", err)
	}
	auths := make([]string, 0, len(creds)+1)
	for _, host := range slices.Sorted(maps.Keys(creds)) {
		if host == c.host {
			continue
		}
		a := creds[host]
		b, err := json.Marshal(mobyregistry.AuthConfig{
			Username: a.Username, Password: a.Password, Auth: a.Auth,
			ServerAddress: host, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
		})
		if err != nil {
			return nil, err
		}
		auths = append(auths, base64.URLEncoding.EncodeToString(b))
	}
	own, err := c.EngineAuth()
	if err != nil {
		return nil, err
	}
	return append(auths, own), nil
}
