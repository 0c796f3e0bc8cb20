// Package cycle finds the cycles of a directed graph, such as images that
// build on each other, to report them. It has no dependencies, so that the
// configuration (depends_on) and the image graph (depends_on and FROM
// lines) find them the same way.
package cycle

import "slices"

// Find returns the cycles a depth-first search of a graph closes: the
// search starts from each node of nodes in turn and follows the edges from
// a node to each of next(node), in order. Each cycle is the path around it,
// its first node repeated at the end (a -> b -> a is [a b a]), and is
// returned once, starting with its node that comes first in nodes so that
// the report does not depend on where the search entered it. Every node
// next returns must be in nodes. A graph with no cycle gives nil.
func Find[T comparable](nodes []T, next func(T) []T) [][]T {
	pos := make(map[T]int, len(nodes))
	for i, n := range nodes {
		if _, dup := pos[n]; !dup {
			pos[n] = i
		}
	}
	const (
		unvisited = iota
		onStack
		finished
	)
	state := make(map[T]int, len(nodes))
	var stack []T
	var found [][]T
	var visit func(T)
	visit = func(n T) {
		state[n] = onStack
		stack = append(stack, n)
		for _, m := range next(n) {
			switch state[m] {
			case unvisited:
				visit(m)
			case onStack:
				loop := stack[slices.Index(stack, m):]
				first := 0
				for i, x := range loop {
					if pos[x] < pos[loop[first]] {
						first = i
					}
				}
				c := make([]T, 0, len(loop)+1)
				c = append(append(c, loop[first:]...), loop[:first+1]...)
				// The same cycle again, through a repeated edge.
				if !slices.ContainsFunc(found, func(f []T) bool { return slices.Equal(f, c) }) {
					found = append(found, c)
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = finished
	}
	for _, n := range nodes {
		if state[n] == unvisited {
			visit(n)
		}
	}
	return found
}
