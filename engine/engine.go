// Package engine drives a Docker Engine through its official Go client:
// builds from a context directory, pushes and pulls, with their output
// streamed to a writer as it comes, and runs test containers.
package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/go-archive"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/moby/patternmatcher/ignorefile"

	"nightshift/retry"
)

// Engine is a connection to one Docker Engine.
type Engine struct {
	c *client.Client
}

// Connect reaches the engine named by DOCKER_HOST (or the default socket)
// and checks that it answers within timeout.
func Connect(ctx context.Context, timeout time.Duration) (*Engine, error) {
	e, err := New()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := e.Ping(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close releases the connection.
func (e *Engine) Close() error { return e.c.Close() }

// BuildSpec says what to build.
type BuildSpec struct {
	Context    string // directory sent to the engine
	Dockerfile string // path of the Dockerfile; it may lie outside Context
	// DockerfileContent, when set, is built instead of the file's content.
	DockerfileContent []byte
	Tags              []string
	Args              map[string]string
	Target            string
	// NoCache and Pull make the build from scratch: no layer cache, and
	// every base image pulled afresh.
	NoCache bool
	Pull    bool
	// RegistryAuths are the credentials the build may pull with: the
	// X-Registry-Auth value (as Push takes it) of each registry it knows
	// credentials for. A child's build pulls its parent from the staging
	// registry, and a base image may come from a registry that wants a
	// login (or counts anonymous pulls), as with docker build.
	RegistryAuths []string
	// BuildKit builds with the engine's BuildKit and its Dockerfile
	// frontend instead of the classic builder.
	BuildKit bool
	// Secrets are the build's secrets by id (RUN --mount=type=secret,id=...):
	// BuildKit builds only.
	Secrets map[string]Secret
}

// Build builds spec, writing the build's output to log as it arrives, and
// returns the image ID. A BuildKit build that fails is a *BuildError.
func (e *Engine) Build(ctx context.Context, spec BuildSpec, log io.Writer) (string, error) {
	if spec.BuildKit {
		return e.buildKit(ctx, spec, log)
	}
	if len(spec.Secrets) > 0 {
		return "", errors.New("the classic builder has no build secrets: build with BuildKit")
	}
	buildCtx, dockerfile, err := contextTar(spec)
	if err != nil {
		return "", err
	}
	defer buildCtx.Close()

	args := make(map[string]*string, len(spec.Args))
	for k, v := range spec.Args {
		args[k] = &v
	}
	auths, err := buildAuths(spec.RegistryAuths)
	if err != nil {
		return "", err
	}
	res, err := e.c.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{
		AuthConfigs: auths,
		Tags:        spec.Tags,
		Dockerfile:  dockerfile,
		BuildArgs:   args,
		Target:      spec.Target,
		NoCache:     spec.NoCache,
		PullParent:  spec.Pull,
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return "", err
	}
	defer res.Body.Close()

	var id string
	err = readStream(res.Body, log, func(aux json.RawMessage) {
		var a struct{ ID string }
		if json.Unmarshal(aux, &a) == nil && a.ID != "" {
			id = a.ID
		}
	})
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", errors.New("the engine reported success but no image ID")
	}
	return id, nil
}

// buildAuths turns X-Registry-Auth values into the credentials a build
// takes, keyed by registry host; none means anonymous pulls.
func buildAuths(encoded []string) (map[string]registry.AuthConfig, error) {
	if len(encoded) == 0 {
		return nil, nil
	}
	auths := make(map[string]registry.AuthConfig, len(encoded))
	for _, e := range encoded {
		b, err := base64.URLEncoding.DecodeString(e)
		if err != nil {
			return nil, fmt.Errorf("registry credentials: %w", err)
		}
		var a registry.AuthConfig
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, fmt.Errorf("registry credentials: %w", err)
		}
		if a.ServerAddress == "" {
			return nil, errors.New("registry credentials name no registry")
		}
		auths[a.ServerAddress] = a
	}
	return auths, nil
}

// Push pushes ref through the engine (the engine uploads only the layers the
// registry lacks) and returns the manifest digest the registry accepted.
// auth is the engine's X-Registry-Auth value, "" for anonymous. Its errors
// say whether they are transient (retry.Transient): a *RegistryError for a
// failure the engine reported, and the client's own errors by their type.
func (e *Engine) Push(ctx context.Context, ref, auth string, log io.Writer) (string, error) {
	res, err := e.c.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, &callError{err})
	}
	defer res.Close()
	var digest string
	err = readStream(res, log, func(aux json.RawMessage) {
		var a struct{ Digest string }
		if json.Unmarshal(aux, &a) == nil && a.Digest != "" {
			digest = a.Digest
		}
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, transferError(err))
	}
	if digest == "" {
		return "", fmt.Errorf("%s: the engine reported no digest", ref)
	}
	return digest, nil
}

// Pull pulls ref (by digest, preferably) through the engine, writing its
// statuses to log. auth is the engine's X-Registry-Auth value. Its errors
// are typed as Push's are.
func (e *Engine) Pull(ctx context.Context, ref, auth string, log io.Writer) error {
	res, err := e.c.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("%s: %w", ref, &callError{err})
	}
	defer res.Close()
	if err := readStream(res, log, func(json.RawMessage) {}); err != nil {
		return fmt.Errorf("%s: %w", ref, transferError(err))
	}
	return nil
}

// readStream copies the engine's JSON message stream to log as plain text
// and returns the first error message in it as a *streamError.
func readStream(r io.Reader, log io.Writer, aux func(json.RawMessage)) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading engine output: %w", err)
		}
		switch {
		case m.Error != nil:
			fmt.Fprintln(log, m.Error.Message)
			return &streamError{strings.TrimSpace(m.Error.Message)}
		case m.Aux != nil:
			aux(*m.Aux)
		case m.Stream != "":
			io.WriteString(log, m.Stream)
		case m.Status != "" && m.Progress == nil:
			// Per-layer progress bars are noise in a log file; statuses are not.
			if m.ID != "" {
				fmt.Fprintf(log, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintln(log, m.Status)
			}
		}
	}
}

// streamError is a failure the engine reported in its output stream: text
// only. For a build it is the build's failure; a push or pull makes it a
// *RegistryError.
type streamError struct{ msg string }

func (e *streamError) Error() string { return e.msg }

// RegistryError is a push or pull failure the engine reported in its
// output stream. Code is the registry's error code found in the message
// (distribution's error codes, upper case as the registry sends them:
// "DENIED", "TOOMANYREQUESTS", "NAME_UNKNOWN"), "" when it has none.
type RegistryError struct {
	Code    string
	Message string
}

func (e *RegistryError) Error() string { return e.Message }

// Transient says whether the push or pull may pass if tried again.
// TOOMANYREQUESTS and UNAVAILABLE ask to come back later; any other code is
// the registry's answer (a denial, a bad name or manifest) and stays so. A
// failure without a code is the engine losing the registry on the way (EOF,
// a reset, an unexpected HTTP status such as a proxy's 502): transient.
// That is the default moby's own layer upload and download use: its
// retryOnError (daemon/internal/distribution/errors.go) retries every error
// it does not know to be permanent, and knows them by their codes.
func (e *RegistryError) Transient() bool {
	switch e.Code {
	case "", "TOOMANYREQUESTS", "UNAVAILABLE":
		return true
	}
	return false
}

// transferError makes a push's or pull's stream failure a *RegistryError;
// other errors (reading the stream) pass as they are, typed by Go.
func transferError(err error) error {
	var se *streamError
	if !errors.As(err, &se) {
		return err
	}
	return &RegistryError{Code: registryCode(se.msg), Message: se.msg}
}

// registryCode finds the registry's error code in msg, the text of an error
// the engine passed on. The engine's stream carries no structured code, so
// the text is read, in the one shape distribution's errcode writes it:
// "<code>: <message>", the code an identifier in lower case with "_" as a
// space ("denied", "toomanyrequests", "name unknown"), at the start of the
// message, of a line (an "errors:" list, whose first code decides, as in
// moby), or after a ": " (a "<ref>: " prefix or a sentence before it).
// Only the registry API's own codes count; a message's other words and
// digits decide nothing.
func registryCode(msg string) string {
	for msg != "" {
		colon := strings.Index(msg, ": ")
		if colon > 0 {
			if code := errcodeID(msg[:colon]); code != "" {
				return code
			}
		}
		// Where a code may start next: after the first ": " or new line.
		next, skip := colon, len(": ")
		if nl := strings.IndexByte(msg, '\n'); nl >= 0 && (next < 0 || nl < next) {
			next, skip = nl, 1
		}
		if next < 0 {
			break
		}
		msg = msg[next+skip:]
	}
	return ""
}

// errcodeID returns word as the registry API's error code it spells, ""
// if it spells none (the OCI distribution spec's codes and the Docker
// registry's).
func errcodeID(word string) string {
	if word != strings.ToLower(word) {
		return ""
	}
	code := strings.ToUpper(strings.ReplaceAll(word, " ", "_"))
	switch code {
	case "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
		"MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED",
		"NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "TAG_INVALID", "PAGINATION_NUMBER_INVALID",
		"RANGE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "UNKNOWN",
		"TOOMANYREQUESTS", "UNAVAILABLE":
		return code
	}
	return ""
}

// callError is a failure of a call to the engine's API itself, before the
// engine did anything. It is transient when the client says the engine is
// unavailable, overloaded, failed inside or timed out (the errdefs types it
// gives HTTP 503, 429, 500 and deadlines), when the connection to the
// engine failed (it answered when the run began: it is restarting), and
// for Go's passing network errors (retry.Transient).
type callError struct{ err error }

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

func (e *callError) Transient() bool {
	return cerrdefs.IsUnavailable(e.err) || cerrdefs.IsResourceExhausted(e.err) ||
		cerrdefs.IsInternal(e.err) || cerrdefs.IsDeadlineExceeded(e.err) ||
		client.IsErrConnectionFailed(e.err) || retry.Transient(e.err)
}

// contextTar tars spec.Context as the docker CLI does, honouring
// .dockerignore, and returns it with the Dockerfile's name inside it. A
// Dockerfile from outside the context, or with replaced content, is added
// under a random name that .dockerignore then hides from COPY.
func contextTar(spec BuildSpec) (io.ReadCloser, string, error) {
	excludes, err := ReadIgnore(spec.Context)
	if err != nil {
		return nil, "", err
	}
	rel, err := filepath.Rel(spec.Context, spec.Dockerfile)
	inside := err == nil && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != ".."
	if inside && spec.DockerfileContent == nil {
		// The engine needs the Dockerfile even if .dockerignore excludes it,
		// by name or by a pattern: an exception last wins, as the docker CLI
		// adds it.
		excludes = append(excludes, "!"+filepath.ToSlash(rel))
		tr, err := archive.TarWithOptions(spec.Context, &archive.TarOptions{ExcludePatterns: excludes})
		if err != nil {
			return nil, "", fmt.Errorf("build context %s: %w", spec.Context, err)
		}
		return tr, filepath.ToSlash(rel), nil
	}

	content := spec.DockerfileContent
	if content == nil {
		if content, err = os.ReadFile(spec.Dockerfile); err != nil {
			return nil, "", err
		}
	}
	name := ".nightshift-dockerfile-" + randomHex(8)
	tr, err := archive.TarWithOptions(spec.Context, &archive.TarOptions{ExcludePatterns: excludes})
	if err != nil {
		return nil, "", fmt.Errorf("build context %s: %w", spec.Context, err)
	}
	now := time.Now()
	file := func(data []byte) archive.TarModifierFunc {
		return func(_ string, h *tar.Header, _ io.Reader) (*tar.Header, []byte, error) {
			if h == nil {
				h = &tar.Header{Typeflag: tar.TypeReg, Mode: 0o600, ModTime: now}
			}
			h.Size = int64(len(data))
			return h, data, nil
		}
	}
	ignore := func(_ string, h *tar.Header, r io.Reader) (*tar.Header, []byte, error) {
		var old []byte
		if r != nil {
			old, _ = io.ReadAll(r)
		}
		data := append(bytes.TrimRight(old, "\n"), []byte("\n"+name+"\n.dockerignore\n")...)
		return file(data)(name, h, nil)
	}
	return archive.ReplaceFileTarWrapper(tr, map[string]archive.TarModifierFunc{
		name:            file(content),
		".dockerignore": ignore,
	}), name, nil
}

// ReadIgnore reads the patterns of the .dockerignore of the build context
// at dir, as the docker CLI reads them; none when there is no such file.
func ReadIgnore(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return patterns, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
