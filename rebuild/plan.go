package rebuild

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/config"
	"nightshift/engine"
)

// Plan is what one run will do: which images, in which order, under which refs.
type Plan struct {
	Tag    string // immutable tag of this run
	Commit string
	Repo   string // <registry>/<namespace>
	Start  time.Time
	Steps  []Step // in dependency order
	// Since is, for a change-detected plan, the commit changes are
	// counted from; Unchanged are the images it leaves alone, in order.
	Since     string
	Unchanged []Unchanged
}

// Unchanged is an image a change-detected plan does not rebuild, and why.
type Unchanged struct {
	Name   string
	Reason string
}

// Step is one image of a plan.
type Step struct {
	Name   string
	Ref    name.Tag // <repo>/<name>:<run tag>, pushed once
	Latest name.Tag // <repo>/<name>:latest, a remote tag on Ref
	// Base is the stack image this one builds on ("" for none); BaseRef is
	// what BASE_IMAGE is set to: Base's ref of this run, or its latest when
	// Base is not rebuilt in this run.
	Base    string
	BaseRef string
	// Parents are the images of this plan that must succeed first.
	Parents    []string
	Dockerfile string // absolute path
	// DockerfileContent, when not nil, is the Dockerfile with its FROM lines
	// that name stack images pointed at this run's builds of them.
	DockerfileContent []byte
	Context           string // absolute path
	Args              map[string]string
	Target            string
	Timeout           time.Duration
	// RunsOn are the labels a builder must have all of to build it.
	RunsOn []string
	// BuildKit builds with the engine's BuildKit instead of its classic
	// builder; Secrets are the build's secrets, for BuildKit.
	BuildKit bool
	Secrets  map[string]engine.Secret
	// Reason says why a change-detected plan rebuilds the image; "" in a
	// plan of every image.
	Reason string
}

// Tag is the run's immutable tag of the image.
func (s *Step) Tag() string { return s.Ref.TagStr() }

// Pinned is the image's reference by digest, in its repository.
func (s *Step) Pinned(digest string) string { return s.Ref.Context().Digest(digest).String() }

// Validated is the ref of the image's validated tag, <tag>-validated.
func (s *Step) Validated() name.Tag { return s.Ref.Context().Tag(s.Tag() + ValidatedSuffix) }

// refs returns the immutable and the latest ref of image name in repo.
func refs(repo, image, tag string) (ref, latest name.Tag, err error) {
	if ref, err = name.NewTag(repo + "/" + image + ":" + tag); err != nil {
		return ref, latest, err
	}
	return ref, ref.Context().Tag("latest"), nil
}

// Commit identifies the pinned source of a run.
type Commit struct {
	Hash  string
	Short string
}

// A PlanOption changes how NewPlan names and bases images.
type PlanOption func(*planOptions)

type planOptions struct {
	tags   map[string]string
	bases  map[string]string
	runTag string
}

// Tags gives images immutable tags of their own (content tags) instead of
// the run's; the run's tag, used for images Tags does not name and for
// build arg templates' .Tag, is run.
func Tags(run string, tags map[string]string) PlanOption {
	return func(o *planOptions) { o.runTag, o.tags = run, tags }
}

// BuildOn says which ref a stack image that a step builds on stands for
// (by digest, say), whether or not the plan rebuilds it: a child builds on
// bases[parent] instead of the parent's ref of this run or its latest.
func BuildOn(bases map[string]string) PlanOption {
	return func(o *planOptions) { o.bases = bases }
}

// NewPlan plans a run of the images named in names (all of them when names
// is empty; see Graph.Select) from the tree at root, pinned at commit and
// started at start. A child of an image not in the plan builds on that
// image's latest, unless BuildOn says otherwise.
func NewPlan(cfg *config.Config, g *Graph, root string, commit Commit, start time.Time, names []string, opts ...PlanOption) (*Plan, error) {
	var o planOptions
	for _, opt := range opts {
		opt(&o)
	}
	tag := o.runTag
	if tag == "" {
		var err error
		if tag, err = config.RenderTag(cfg.Staging.TagFormat, start, commit.Hash); err != nil {
			return nil, fmt.Errorf("%s: staging.tag_format: %w", cfg.File, err)
		}
	}
	tagOf := func(name string) string { return cmp.Or(o.tags[name], tag) }
	// baseOf is the ref that a child builds on for stack image name.
	baseOf := func(name string, inPlan bool) string {
		switch {
		case o.bases[name] != "":
			return o.bases[name]
		case inPlan:
			return stagingRepo(cfg) + "/" + name + ":" + tagOf(name)
		}
		return stagingRepo(cfg) + "/" + name + ":latest"
	}
	p := &Plan{
		Tag:    tag,
		Commit: commit.Hash,
		Repo:   cfg.Staging.Registry + "/" + cfg.Staging.Namespace,
		Start:  start,
	}
	if len(names) == 0 {
		names = g.Order()
	}
	inPlan := make(map[string]bool, len(names))
	for _, n := range names {
		inPlan[n] = true
	}
	data := config.NewTemplateData(start, commit.Hash)
	for _, name := range names {
		node, ok := g.Node(name)
		if !ok {
			return nil, fmt.Errorf("no image %q in the graph", name)
		}
		img := node.Image
		ref, latest, err := refs(p.Repo, name, tagOf(name))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: image %s: %w", cfg.File, img.Line, name, err)
		}
		s := Step{
			Name:       name,
			Ref:        ref,
			Latest:     latest,
			Base:       node.Base,
			Dockerfile: filepath.Join(root, img.Dockerfile),
			Context:    filepath.Join(root, img.Context),
			Args:       make(map[string]string, len(img.BuildArgs)+1),
			Target:     img.Target,
			RunsOn:     img.RunsOn,
			Timeout:    cfg.Build.Timeout.Duration,
			BuildKit:   img.Builder != config.BuilderLegacy,
		}
		for id, secret := range img.BuildSecrets {
			if s.Secrets == nil {
				s.Secrets = make(map[string]engine.Secret, len(img.BuildSecrets))
			}
			s.Secrets[id] = engine.Secret{File: secret.File, Env: secret.Env}
		}
		if img.Timeout.Duration > 0 {
			s.Timeout = img.Timeout.Duration
		}
		for _, parent := range node.Parents {
			if inPlan[parent] {
				s.Parents = append(s.Parents, parent)
			}
		}
		data.Name, data.Tag = name, tagOf(name)
		for k, v := range img.BuildArgs {
			if s.Args[k], err = config.RenderArg(v, data); err != nil {
				return nil, fmt.Errorf("%s:%d: image %s: build_args.%s: %w", cfg.File, img.Line, name, k, err)
			}
		}
		if s.Base != "" {
			s.BaseRef = baseOf(s.Base, inPlan[s.Base])
			s.Args["BASE_IMAGE"] = s.BaseRef
		}
		// The FROM lines as this run's build args make them: a reference
		// only parses once its templates are rendered.
		fromArgs := map[string]string{}
		maps.Copy(fromArgs, s.Args)
		if s.Base != "" {
			fromArgs["BASE_IMAGE"] = s.Base // as NewGraph read it
		}
		var pinned map[string]string
		if s.DockerfileContent, pinned, err = pinFroms(s.Dockerfile, fromArgs, func(image string) string {
			if name := g.stackName(node, image); name != "" {
				return baseOf(name, inPlan[name])
			}
			return ""
		}); err != nil {
			return nil, fmt.Errorf("%s:%d: image %s: %w", cfg.File, img.Line, name, err)
		}
		maps.Copy(s.Args, pinned)
		p.Steps = append(p.Steps, s)
	}
	return p, nil
}

// stagingRepo is where cfg's staging images live: <registry>/<namespace>.
func stagingRepo(cfg *config.Config) string {
	return cfg.Staging.Registry + "/" + cfg.Staging.Namespace
}

// ExistingPlan plans the validation of images already in the staging
// registry under tag: the images named in names (all when empty), each to
// be pulled from its ref. They have no order among them.
func ExistingPlan(cfg *config.Config, g *Graph, tag, commit string, start time.Time, names []string) (*Plan, error) {
	p := &Plan{Tag: tag, Commit: commit, Repo: cfg.Staging.Registry + "/" + cfg.Staging.Namespace, Start: start}
	if len(names) == 0 {
		names = g.Order()
	}
	for _, name := range names {
		ref, latest, err := refs(p.Repo, name, tag)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", name, err)
		}
		p.Steps = append(p.Steps, Step{Name: name, Ref: ref, Latest: latest})
	}
	return p, nil
}

// pinFroms points every FROM of the Dockerfile at path that names a stack
// image at the ref target gives, so a child builds on this run's parent and
// never on whatever an engine or Docker Hub has under that name. A literal
// FROM ("FROM ci_base", "FROM <staging>/ci_base:latest") is rewritten in the
// returned content (nil when nothing was); a FROM through one ARG
// ("FROM ${PARENT}") gets that ARG in the returned build args.
func pinFroms(path string, args map[string]string, target func(image string) string) ([]byte, map[string]string, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	stages, err := ReadStages(bytes.NewReader(content), args)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	pinned := map[string]string{}
	lines := bytes.Split(content, []byte("\n"))
	changed := false
	refs := stageRefs(stages)
	for i, st := range stages {
		if refs[i] >= 0 || st.Line > len(lines) {
			continue
		}
		ref := target(st.Image)
		if ref == "" {
			continue
		}
		if strings.Contains(st.Raw, "$") {
			m := plainArg.FindStringSubmatch(st.Raw)
			if m == nil {
				return nil, nil, fmt.Errorf("%s:%d: FROM %s names stack image %s through an expression nightshift cannot point at this run's build: write FROM ${ARG} with ARG ARG=<image>", path, st.Line, st.Raw, st.Image)
			}
			pinned[cmp.Or(m[1], m[2])] = ref
			continue
		}
		line := lines[st.Line-1]
		at := bytes.Index(bytes.ToUpper(line), []byte("FROM"))
		if at < 0 {
			continue
		}
		j := bytes.Index(line[at:], []byte(st.Raw))
		if j < 0 {
			return nil, nil, fmt.Errorf("%s:%d: cannot point FROM %s at this run's image: write it on one line, or use ARG BASE_IMAGE", path, st.Line, st.Raw)
		}
		j += at
		lines[st.Line-1] = append(append(append([]byte(nil), line[:j]...), ref...), line[j+len(st.Raw):]...)
		changed = true
	}
	if !changed {
		return nil, pinned, nil
	}
	return bytes.Join(lines, []byte("\n")), pinned, nil
}

// plainArg is a FROM operand that is one ARG and nothing else.
var plainArg = regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$`)

// Step returns the step for name, or nil.
func (p *Plan) Step(name string) *Step {
	for i := range p.Steps {
		if p.Steps[i].Name == name {
			return &p.Steps[i]
		}
	}
	return nil
}
