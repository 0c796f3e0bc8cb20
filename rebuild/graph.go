package rebuild

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"nightshift/config"
	"nightshift/cycle"
)

// baseImageArg is the build arg through which nightshift hands an image the
// freshly built parent it builds on.
const baseImageArg = "BASE_IMAGE"

// The sample run that build args are rendered for to read FROM lines.
const (
	sampleCommit = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
	sampleTag    = "2026-11-23-02-00-00-1a2b3c4d"
)

func sampleStart() time.Time { return time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC) }

// A Node is one image of the stack and the stack images it builds on.
type Node struct {
	Image   config.Image
	Parents []string // names of stack images this one builds on, sorted, unique
	// Base is the stack image the final (or target) stage builds on, "" if
	// it builds on an outside image and has no parents. When that stage
	// names no stack image (say FROM ${BASE_IMAGE} with no default) but
	// there are parents, Base is the first depends_on entry or, without
	// one, the first stack image a FROM names. nightshift passes Base as
	// BASE_IMAGE.
	Base string
}

// A Graph is the images of a stack, linked from each image to those that
// build on it.
type Graph struct {
	names    []string            // config order
	pos      map[string]int      // index in the config's images
	nodes    map[string]*Node    // by name
	children map[string][]string // config order
	order    []string
	// stack maps the repositories of the stack's images in the staging
	// namespace and under each published repository, by Name, to the image.
	stack    map[string]string
	warnings config.Problems
}

// A GraphOption changes how NewGraph reads the stack.
type GraphOption func(*graphOptions)

type graphOptions struct {
	published []string
}

// Published names the repositories the stack's images are published under
// (staging.published, e.g. "quay.io/jupyter"): a FROM that names
// <repository>/<image of the stack> is that image, as if it named its
// staging ref.
func Published(repos ...string) GraphOption {
	return func(o *graphOptions) { o.published = append(o.published, repos...) }
}

// NewGraph reads each image's Dockerfile at filepath.Join(root, img.Dockerfile), substituting the
// image's BuildArgs over ARG defaults (rendered for a sample run: which image a FROM names must
// not depend on the run, only its tag may), and links images: parent->child for each depends_on
// entry and for each FROM (any stage) whose image names another stack image (see stackName):
// by its bare name ("ci_base", "ci_base:tag"), by its staging ref
// ("<stagingRepo>/ci_base[:tag][@digest]"), by its ref under a Published repository, or by any
// repository whose last part is a depends_on entry. BASE_IMAGE in BuildArgs is ignored, since
// nightshift sets it at build time.
//
// file is the config file path for the problems, which are: an unreadable or
// malformed Dockerfile, a dependency cycle, an image FROM-ing itself and a
// FROM that substitutes to nothing. Unknown and duplicate image names are
// left to config.Load to report. The graph is usable, if incomplete, even
// when there are problems. What is likely a mistake but builds is in
// Warnings.
func NewGraph(file, root, stagingRepo string, images []config.Image, opts ...GraphOption) (*Graph, config.Problems) {
	var o graphOptions
	for _, opt := range opts {
		opt(&o)
	}
	g := &Graph{
		pos:      map[string]int{},
		nodes:    map[string]*Node{},
		children: map[string][]string{},
		stack:    map[string]string{},
	}
	for i, img := range images {
		if _, dup := g.nodes[img.Name]; !dup {
			g.names = append(g.names, img.Name)
			g.pos[img.Name] = i
			g.nodes[img.Name] = &Node{Image: img}
		}
	}
	// Entries that do not parse are config.Load's to report.
	for _, prefix := range append([]string{strings.TrimSuffix(stagingRepo, "/")}, o.published...) {
		for _, image := range g.names {
			if repo, err := config.ImageRepository(prefix, image); err == nil {
				g.stack[repo.Name()] = image
			}
		}
	}
	l := &linker{file: file, root: root, g: g, stages: map[string][]Stage{}}
	for _, name := range g.names {
		l.link(g.nodes[name])
	}
	l.warnPublished()
	for _, name := range g.names {
		for _, p := range g.nodes[name].Parents {
			g.children[p] = append(g.children[p], name)
		}
	}
	l.findCycles()
	g.order = g.sort()
	l.problems.Sort()
	g.warnings = l.warnings
	return g, l.problems
}

// Warnings returns what in the Dockerfiles builds but is likely not what
// was meant, located as problems are: a FROM that names a repository of an
// image of the stack's name that is neither the staging namespace nor
// published, so that it would build on an image from elsewhere rather than
// this run's. Warnings do not stop a run.
func (g *Graph) Warnings() config.Problems { return slices.Clone(g.warnings) }

// Node returns the image called name.
func (g *Graph) Node(name string) (*Node, bool) {
	n, ok := g.nodes[name]
	return n, ok
}

// Order returns every image in a dependency order (parents before children; ties in config order).
// Images in a dependency cycle come last, in config order.
func (g *Graph) Order() []string { return slices.Clone(g.order) }

// Children returns the images that build directly on name, in config order.
func (g *Graph) Children(name string) []string { return slices.Clone(g.children[name]) }

// Descendants returns every image that depends on name, directly or not, in Order.
func (g *Graph) Descendants(name string) []string {
	found := map[string]bool{}
	queue := []string{name}
	for len(queue) > 0 {
		for _, c := range g.children[queue[0]] {
			if !found[c] {
				found[c] = true
				queue = append(queue, c)
			}
		}
		queue = queue[1:]
	}
	delete(found, name) // only possible through a cycle
	return g.inOrder(found)
}

// Select returns the names to build for `--only only` (in Order); with withDeps also every ancestor
// of them. Unknown names are an error listing the known names.
func (g *Graph) Select(only []string, withDeps bool) ([]string, error) {
	var unknown []string
	for _, name := range only {
		if _, ok := g.nodes[name]; !ok {
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown image %s; the images are %s",
			strings.Join(unknown, ", "), strings.Join(g.names, ", "))
	}
	chosen := map[string]bool{}
	for _, name := range only {
		if withDeps {
			g.addAncestors(name, chosen)
		}
		chosen[name] = true
	}
	return g.inOrder(chosen), nil
}

// Ancestors returns every image name builds on, directly or not, in Order.
func (g *Graph) Ancestors(name string) []string {
	found := map[string]bool{}
	if _, ok := g.nodes[name]; ok {
		g.addAncestors(name, found)
	}
	delete(found, name) // only possible through a cycle
	return g.inOrder(found)
}

func (g *Graph) addAncestors(name string, into map[string]bool) {
	for _, p := range g.nodes[name].Parents {
		if !into[p] {
			into[p] = true
			g.addAncestors(p, into)
		}
	}
}

// CriticalPath returns the longest chain of images by the given cost per image, and its total cost (used by a benchmark).
// cost is called once per image. Ties go to the chain that ends first in Order.
func (g *Graph) CriticalPath(cost func(name string) time.Duration) ([]string, time.Duration) {
	total := map[string]time.Duration{} // of the costliest chain ending at an image
	prev := map[string]string{}
	var end string
	for _, name := range g.order {
		var before time.Duration
		for _, p := range g.nodes[name].Parents {
			// A parent not yet seen is in a cycle with name; a chain
			// through it would have no end.
			if t, ok := total[p]; ok && (prev[name] == "" || t > before) {
				prev[name], before = p, t
			}
		}
		total[name] = before + cost(name)
		if end == "" || total[name] > total[end] {
			end = name
		}
	}
	if end == "" {
		return nil, 0
	}
	var chain []string
	for n := end; n != ""; n = prev[n] {
		chain = append(chain, n)
	}
	slices.Reverse(chain)
	return chain, total[end]
}

// inOrder returns the names in set, in Order.
func (g *Graph) inOrder(set map[string]bool) []string {
	var names []string
	for _, name := range g.order {
		if set[name] {
			names = append(names, name)
		}
	}
	return names
}

// sort places each image after its parents, taking the earliest image in
// config order whenever several could go next, so that the order is stable
// from one night to the next.
func (g *Graph) sort() []string {
	placed := map[string]bool{}
	order := make([]string, 0, len(g.names))
	for len(order) < len(g.names) {
		next := slices.IndexFunc(g.names, func(name string) bool {
			return !placed[name] && !slices.ContainsFunc(g.nodes[name].Parents, func(p string) bool { return !placed[p] })
		})
		if next < 0 {
			break // the rest is in or after a cycle
		}
		placed[g.names[next]] = true
		order = append(order, g.names[next])
	}
	for _, name := range g.names {
		if !placed[name] {
			order = append(order, name)
		}
	}
	return order
}

// stackName returns the stack image that image, the image of a FROM of
// node n, names, or "" when it names an outside image (or no valid
// reference, which the build will report). A stack image is named by its
// bare name with any tag or digest ("ci_base:tag"), by its repository in the
// staging namespace or under a published repository, or by any repository
// whose last part n lists in depends_on (quay.io/jupyter/minimal-notebook
// with depends_on = ["minimal-notebook"]).
func (g *Graph) stackName(n *Node, image string) string {
	repo, bare, ok := parseImage(image)
	if !ok {
		return ""
	}
	last := path.Base(repo.RepositoryStr())
	if _, ok := g.nodes[last]; ok && bare {
		return last
	}
	if name, ok := g.stack[repo.Name()]; ok {
		return name
	}
	if slices.Contains(n.Image.DependsOn, last) && g.nodes[last] != nil {
		return last
	}
	return ""
}

// parseImage parses a FROM's image reference. bare reports a reference
// with neither registry nor path ("ci_base:tag"), which names a stack image
// before any image of Docker Hub.
func parseImage(image string) (repo name.Repository, bare, ok bool) {
	written, err := name.ParseReference(image, name.WithDefaultRegistry(""))
	if err != nil {
		return name.Repository{}, false, false
	}
	bare = written.Context().RegistryStr() == "" && !strings.Contains(written.Context().RepositoryStr(), "/")
	ref, err := name.ParseReference(image)
	if err != nil {
		return name.Repository{}, false, false
	}
	return ref.Context(), bare, true
}

// linker fills in the nodes of a graph from their Dockerfiles and collects
// the problems it finds on the way.
type linker struct {
	file, root string
	g          *Graph
	stages     map[string][]Stage // by image, as read; nil when unreadable
	problems   config.Problems
	warnings   config.Problems
}

func (l *linker) problem(n *Node, key, format string, a ...any) {
	l.problems = append(l.problems, l.at(n, key, format, a...))
}

func (l *linker) warn(n *Node, key, format string, a ...any) {
	l.warnings = append(l.warnings, l.at(n, key, format, a...))
}

func (l *linker) at(n *Node, key, format string, a ...any) config.Problem {
	return config.Problem{
		File: l.file,
		Line: n.Image.Line,
		Key:  fmt.Sprintf("image[%d].%s", l.g.pos[n.Image.Name]+1, key),
		Msg:  fmt.Sprintf(format, a...),
	}
}

func (l *linker) link(n *Node) {
	img := n.Image
	var parents []string // depends_on first, so that parents[0] is the first of them
	for _, dep := range img.DependsOn {
		switch {
		case dep == img.Name:
			l.problem(n, "depends_on", "dependency cycle: %s -> %s", dep, dep)
		case l.g.nodes[dep] != nil:
			parents = append(parents, dep)
		}
	}
	var firstDep string
	if len(parents) > 0 {
		firstDep = parents[0]
	}
	stages := l.readStages(n, firstDep)
	l.stages[img.Name] = stages
	parents = append(parents, l.fromParents(n, stages)...)
	n.Parents = withoutRepeats(parents)
	slices.Sort(n.Parents)
	// Base is only what the built stage rests on: a depends_on that orders
	// an image on an outside base must not take over its BASE_IMAGE.
	n.Base = l.base(n, stages)
}

// readStages reads the image's Dockerfile, or returns nil after reporting
// why it cannot. firstDep is the image's first depends_on, "" if none.
func (l *linker) readStages(n *Node, firstDep string) []Stage {
	img := n.Image
	data, err := os.ReadFile(filepath.Join(l.root, img.Dockerfile))
	if err != nil {
		l.problem(n, "dockerfile", "cannot read the Dockerfile: %v", err)
		return nil
	}
	args := make(map[string]string, len(img.BuildArgs))
	run := config.NewTemplateData(sampleStart(), sampleCommit)
	run.Tag, run.Name = sampleTag, img.Name
	for k, v := range img.BuildArgs {
		if k == baseImageArg {
			continue
		}
		// A template that does not render is config.Load's to report.
		if r, err := config.RenderArg(v, run); err == nil {
			v = r
		}
		args[k] = v
	}
	stages, err := ReadStages(bytes.NewReader(data), args)
	var empty *EmptyImageError
	if errors.As(err, &empty) && firstDep != "" {
		// At build time BASE_IMAGE will name the first depends_on; read
		// the FROM lines as they will be then.
		args[baseImageArg] = firstDep
		stages, err = ReadStages(bytes.NewReader(data), args)
	}
	var parseErr *ParseError
	switch {
	case errors.As(err, &empty):
		l.problem(n, "dockerfile", "%s", emptyFromMsg(empty, img.Dockerfile, firstDep != ""))
	case errors.As(err, &parseErr):
		l.problem(n, "dockerfile", "%s:%d: %s", img.Dockerfile, parseErr.Line, parseErr.Msg)
	case err != nil:
		l.problem(n, "dockerfile", "%s: %v", img.Dockerfile, err)
	case len(stages) == 0:
		// The engine would refuse it only once the run had begun.
		l.problem(n, "dockerfile", "%s: no FROM line: a Dockerfile builds on an image (FROM scratch for none)", img.Dockerfile)
	}
	return stages
}

func emptyFromMsg(e *EmptyImageError, dockerfile string, hasDeps bool) string {
	what := fmt.Sprintf("%s:%d: FROM %s is empty", dockerfile, e.Line, e.Raw)
	switch {
	case len(e.Args) == 0:
		return what + ": name the image it builds on"
	case hasDeps && slices.Contains(e.Args, baseImageArg):
		// nightshift's BASE_IMAGE did not reach the FROM line.
		return what + ": declare ARG BASE_IMAGE before the first FROM so that nightshift can set it to the parent image"
	case hasDeps:
		return fmt.Sprintf("%s: give ARG %s a default", what, strings.Join(e.Args, ", "))
	}
	return fmt.Sprintf("%s: give ARG %s a default naming the parent image, or set depends_on",
		what, strings.Join(e.Args, ", "))
}

// fromParents returns the stack images the FROM lines name, in order,
// reporting any that names the image itself.
func (l *linker) fromParents(n *Node, stages []Stage) []string {
	var parents []string
	refs := stageRefs(stages)
	for i, st := range stages {
		if refs[i] >= 0 {
			continue
		}
		switch name := l.g.stackName(n, st.Image); name {
		case "":
		case n.Image.Name:
			if _, bare, _ := parseImage(st.Image); !bare {
				l.problem(n, "dockerfile", "%s:%d: FROM %s is this image itself, which it cannot build on",
					n.Image.Dockerfile, st.Line, st.Image)
				break
			}
			l.problem(n, "dockerfile", "%s:%d: FROM %s is this image itself, which it cannot build on; "+
				"if an outside image of the same name is meant, write its full reference (e.g. docker.io/library/%s)",
				n.Image.Dockerfile, st.Line, st.Image, st.Image)
		default:
			parents = append(parents, name)
		}
	}
	return parents
}

// base returns the stack image the built stage rests on, "" for an outside
// image or when that is unknown.
func (l *linker) base(n *Node, stages []Stage) string {
	if stages == nil {
		return "" // the Dockerfile's problem is reported already
	}
	ref, err := Base(stages, n.Image.Target)
	if err != nil {
		key := "dockerfile"
		if n.Image.Target != "" {
			key = "target"
		}
		l.problem(n, key, "%s: %v", n.Image.Dockerfile, err)
		return ""
	}
	if name := l.g.stackName(n, ref); name != n.Image.Name {
		return name
	}
	return "" // building on itself is reported already
}

// warnPublished warns of each FROM that names an outside repository whose
// last part is the name of another image of the stack
// (quay.io/jupyter/minimal-notebook when minimal-notebook is one and
// quay.io/jupyter is not published), since the image would then build on an
// image from elsewhere rather than this run's. A repository that the image
// of that name itself builds on is its upstream, not its publication: no
// warning.
func (l *linker) warnPublished() {
	for _, name := range l.g.names {
		n, stages := l.g.nodes[name], l.stages[name]
		for i, ref := range stageRefs(stages) {
			st := stages[i]
			if ref >= 0 || l.g.stackName(n, st.Image) != "" {
				continue
			}
			repo, _, ok := parseImage(st.Image)
			other := path.Base(repo.RepositoryStr())
			if !ok || other == name || l.g.nodes[other] == nil || l.upstream(other, repo) {
				continue
			}
			l.warn(n, "dockerfile", "%s:%d: %s FROM %s would build on the published %s, not this run's; add [staging] published or depends_on",
				n.Image.Dockerfile, st.Line, name, st.Image, other)
		}
	}
	l.warnings.Sort()
}

// upstream reports whether image builds on repo, an outside repository.
func (l *linker) upstream(image string, repo name.Repository) bool {
	stages := l.stages[image]
	for i, ref := range stageRefs(stages) {
		if r, _, ok := parseImage(stages[i].Image); ref < 0 && ok && r.Name() == repo.Name() {
			return true
		}
	}
	return false
}

// findCycles reports each dependency cycle once, starting from its image
// that comes first in the config.
func (l *linker) findCycles() {
	parents := func(name string) []string { return l.g.nodes[name].Parents }
	for _, loop := range cycle.Find(l.g.names, parents) {
		// Name the key that makes the cycle's first step: the image's
		// depends_on, or the FROM lines of its Dockerfile.
		n, key := l.g.nodes[loop[0]], "depends_on"
		if !slices.Contains(n.Image.DependsOn, loop[1]) {
			key = "dockerfile"
		}
		l.problem(n, key, "dependency cycle: %s", strings.Join(loop, " -> "))
	}
}
