package rebuild

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"nightshift/config"
	"nightshift/cycle"
)

// baseImageArg is the build arg through which nightshift hands an image the
// freshly built parent it builds on.
const baseImageArg = "BASE_IMAGE"

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
	staging  string // "<registry>/<namespace>"
}

// NewGraph reads each image's Dockerfile at filepath.Join(root, img.Dockerfile), substituting the
// image's BuildArgs literally (they are templates only rendered at build time) over ARG defaults,
// and links images: parent->child for each depends_on entry and for each FROM (any stage) whose
// image names another stack image, by its bare name ("ci_base", "ci_base:tag") or by its staging
// ref ("<stagingRepo>/ci_base[:tag][@digest]"). BASE_IMAGE in BuildArgs is ignored, since
// nightshift sets it at build time.
//
// file is the config file path for the problems, which are: an unreadable or
// malformed Dockerfile, a dependency cycle, an image FROM-ing itself and a
// FROM that substitutes to nothing. Unknown and duplicate image names are
// left to config.Load to report. The graph is usable, if incomplete, even
// when there are problems.
func NewGraph(file, root, stagingRepo string, images []config.Image) (*Graph, config.Problems) {
	g := &Graph{
		pos:      map[string]int{},
		nodes:    map[string]*Node{},
		children: map[string][]string{},
		staging:  strings.TrimSuffix(stagingRepo, "/"),
	}
	for i, img := range images {
		if _, dup := g.nodes[img.Name]; !dup {
			g.names = append(g.names, img.Name)
			g.pos[img.Name] = i
			g.nodes[img.Name] = &Node{Image: img}
		}
	}
	l := &linker{file: file, root: root, g: g}
	for _, name := range g.names {
		l.link(g.nodes[name])
	}
	for _, name := range g.names {
		for _, p := range g.nodes[name].Parents {
			g.children[p] = append(g.children[p], name)
		}
	}
	l.findCycles()
	g.order = g.sort()
	l.problems.Sort()
	return g, l.problems
}

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

// stackName returns the stack image that the image reference ref names, or
// "" when it names an outside image.
func (g *Graph) stackName(ref string) string {
	if g.staging != "" {
		ref = strings.TrimPrefix(ref, g.staging+"/")
	}
	name := refRepository(ref)
	if _, ok := g.nodes[name]; ok {
		return name
	}
	return ""
}

// refRepository strips the tag and digest from an image reference. A colon
// before the last slash belongs to a registry host's port, not to a tag.
func refRepository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

// linker fills in the nodes of a graph from their Dockerfiles and collects
// the problems it finds on the way.
type linker struct {
	file, root string
	g          *Graph
	problems   config.Problems
}

func (l *linker) problem(n *Node, key, format string, a ...any) {
	l.problems = append(l.problems, config.Problem{
		File: l.file,
		Line: n.Image.Line,
		Key:  fmt.Sprintf("image[%d].%s", l.g.pos[n.Image.Name]+1, key),
		Msg:  fmt.Sprintf(format, a...),
	})
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
	for k, v := range img.BuildArgs {
		if k != baseImageArg {
			args[k] = v
		}
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
		switch name := l.g.stackName(st.Image); name {
		case "":
		case n.Image.Name:
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
	if name := l.g.stackName(ref); name != n.Image.Name {
		return name
	}
	return "" // building on itself is reported already
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
