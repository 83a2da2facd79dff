package ir

import "fmt"

// Helpers for passes that rewrite graphs in place.

// ReplaceUses makes every use of old (as an argument, in kernel bodies
// too, or as an output) a use of new.
func (g *Graph) ReplaceUses(old, new *Value) {
	var visit func(b *Graph)
	visit = func(b *Graph) {
		for _, n := range b.Nodes {
			for i, a := range n.Args {
				if a == old {
					n.Args[i] = new
				}
			}
			if n.Body != nil {
				visit(n.Body)
			}
		}
		for i, o := range b.Outputs {
			if o == old {
				b.Outputs[i] = new
			}
		}
	}
	visit(g)
}

// Users maps each value to the top-level nodes that use it, directly or
// inside their kernel body, in program order.
func (g *Graph) Users() map[*Value][]*Node {
	users := map[*Value][]*Node{}
	for _, n := range g.Nodes {
		seen := map[*Value]bool{}
		var visit func(m *Node)
		visit = func(m *Node) {
			for _, a := range m.Args {
				if !seen[a] {
					seen[a] = true
					users[a] = append(users[a], n)
				}
			}
			if m.Body != nil {
				for _, b := range m.Body.Nodes {
					visit(b)
				}
			}
		}
		visit(n)
	}
	return users
}

// SubstShape returns s with symbols replaced by constants from env; other
// symbols stay.
func SubstShape(s Shape, env map[string]int) Shape {
	out := s.Clone()
	for i, d := range out {
		if n, ok := env[d.Sym]; ok && !d.IsConst() {
			out[i] = C(n)
		}
	}
	return out
}

// Retype recomputes every node's result type from its arguments, in
// program order (kernel bodies first), after a pass changed the types of
// inputs or states. Reshapes keep their declared shape, with symbols
// substituted from env.
func (g *Graph) Retype(env map[string]int) error {
	for _, n := range g.Nodes {
		if n.Body != nil {
			if err := n.Body.Retype(env); err != nil {
				return err
			}
		}
		if n.Op == OpReshape {
			n.Result.Type.Shape = SubstShape(n.Result.Type.Shape, env)
		}
		t, err := n.Op.Info().Infer(n)
		if err != nil {
			return fmt.Errorf("%s: %w", n.LongString(), err)
		}
		if n.Result != nil {
			n.Result.Type = t
		}
	}
	return nil
}

// RemoveNodes drops the top-level nodes for which drop returns true.
func (g *Graph) RemoveNodes(drop func(*Node) bool) int {
	kept := g.Nodes[:0]
	removed := 0
	for _, n := range g.Nodes {
		if drop(n) {
			removed++
			continue
		}
		kept = append(kept, n)
	}
	clear(g.Nodes[len(kept):])
	g.Nodes = kept
	if removed > 0 {
		g.Reindex()
	}
	return removed
}

// UsedSyms returns the symbols that appear in some type of g.
func (g *Graph) UsedSyms() map[string]bool {
	used := map[string]bool{}
	mark := func(t Type) {
		for _, d := range t.Shape {
			if !d.IsConst() {
				used[d.Sym] = true
			}
		}
	}
	for _, v := range g.Inputs {
		mark(v.Type)
	}
	for _, v := range g.Weights {
		mark(v.Type)
	}
	for _, v := range g.States {
		mark(v.Type)
	}
	g.Walk(func(n *Node) {
		if n.Result != nil {
			mark(n.Result.Type)
		}
	})
	return used
}

// Rename gives v a new unique name.
func (g *Graph) Rename(v *Value, name string) {
	g.index()
	delete(g.names, v.Ref())
	v.Name = g.UniqueName(name)
	g.names[v.Ref()] = v
}
