package passes

import (
	"fmt"
	"strings"

	"github.com/llmc-dev/llmc/ir"
)

// simplify removes reshapes that change nothing, folds chains of reshapes
// and drops 'last' on a one-row tensor.
func simplify(c *Context, g *ir.Graph) error {
	for _, n := range g.Nodes {
		if n.Op == ir.OpReshape {
			if src := n.Args[0]; src.Kind == ir.KindNode && src.Def.Op == ir.OpReshape {
				n.Args[0] = src.Def.Args[0] // reshape(reshape(x)) = reshape(x)
				c.Changed(1)
			}
		}
	}
	drop := map[*ir.Node]bool{}
	for _, n := range g.Nodes {
		switch {
		case n.Op == ir.OpReshape && n.Result.Type.Equal(n.Args[0].Type):
		case n.Op == ir.OpLast && len(n.Args) == 1 && n.Args[0].Type.Shape[0] == ir.C(1):
		default:
			continue
		}
		g.ReplaceUses(n.Result, n.Args[0])
		drop[n] = true
	}
	c.Changed(len(drop))
	g.RemoveNodes(func(n *ir.Node) bool { return drop[n] })
	return nil
}

// dce removes effect-free nodes whose results nothing uses, then weights
// nothing references.
func dce(c *Context, g *ir.Graph) error {
	for {
		uses := g.Uses()
		removed := g.RemoveNodes(func(n *ir.Node) bool {
			return !n.HasEffect() && n.Result != nil && uses[n.Result] == 0
		})
		if removed == 0 {
			break
		}
		c.Changed(removed)
	}
	uses := g.Uses()
	for _, w := range g.Weights {
		if w.Derive != nil && uses[w] > 0 {
			for _, a := range w.Derive.Args {
				uses[a]++
			}
		}
	}
	var kept []*ir.Value
	for _, w := range g.Weights {
		if uses[w] > 0 {
			kept = append(kept, w)
		} else {
			c.Changed(1)
		}
	}
	if len(kept) != len(g.Weights) {
		g.Weights = kept
		g.Reindex()
	}
	return nil
}

// cse merges top-level nodes that apply the same op with the same
// attributes to the same arguments. Nodes with effects or that read state
// (whose value depends on writes in between) are left alone.
func cse(c *Context, g *ir.Graph) error {
	seen := map[string]*ir.Value{}
	drop := map[*ir.Node]bool{}
	for _, n := range g.Nodes {
		if n.Result == nil || n.HasEffect() || n.Op == ir.OpKernel || readsState(n) {
			continue
		}
		var key strings.Builder
		fmt.Fprintf(&key, "%s|%s|%s", n.Op, n.Attrs.Format(), n.Result.Type)
		for _, a := range n.Args {
			fmt.Fprintf(&key, "|%p", a)
		}
		if prev, ok := seen[key.String()]; ok {
			g.ReplaceUses(n.Result, prev)
			drop[n] = true
			continue
		}
		seen[key.String()] = n.Result
	}
	c.Changed(len(drop))
	g.RemoveNodes(func(n *ir.Node) bool { return drop[n] })
	return nil
}

func readsState(n *ir.Node) bool {
	for _, a := range n.Args {
		if a.Kind == ir.KindState {
			return true
		}
	}
	return false
}
