package passes

import (
	"fmt"

	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/wformat"
)

// Symbol names used by the frontend's graphs.
const (
	symSeq = "seq"
	symCtx = "ctx"
)

// staticKV gives every cache state a constant number of rows (max-seq) and
// turns appends into in-place writes at %pos. Entry points that take more
// than one token get a %len input: the chunk may be padded, and only the
// first len rows are written and the logits of row len-1 returned.
func staticKV(c *Context, g *ir.Graph) error {
	if !c.requireStatic() {
		return nil
	}
	pos, ok := g.Lookup("%pos")
	if !ok {
		return fmt.Errorf("the graph has no %%pos input")
	}
	var length *ir.Value
	if c.Entry.Seq > 1 {
		var err error
		if length, err = g.Input("len", ir.T(ir.I32)); err != nil {
			return err
		}
	}
	for _, s := range g.States {
		if d := s.Type.Shape[0]; !d.IsConst() {
			s.Type.Shape[0] = ir.C(c.Opts.MaxSeq)
			c.Changed(1)
		} else if d.N != c.Opts.MaxSeq {
			return fmt.Errorf("state %s already has %d rows, not max-seq %d", s.Ref(), d.N, c.Opts.MaxSeq)
		}
	}
	for _, n := range g.Nodes {
		switch {
		case n.Op == ir.OpKVAppend:
			n.Op = ir.OpKVWrite
			n.Args = append(n.Args, pos)
			if length != nil {
				n.Args = append(n.Args, length)
			}
			c.Changed(1)
		case n.Op == ir.OpLast && length != nil && len(n.Args) == 1 && n.IntAttr("runs") == 0:
			n.Args = append(n.Args, length)
			c.Changed(1)
		}
	}
	if f := c.Opts.KVFormat; f != wformat.F32 {
		c.Note("cache: %d states of %d rows, stored as %s", len(g.States), c.Opts.MaxSeq, f)
	} else {
		c.Note("cache: %d states of %d rows", len(g.States), c.Opts.MaxSeq)
	}
	return g.Retype(nil)
}

// specializeShapes binds seq to the entry point's token count. With the
// cache static, ctx is gone already, so every shape becomes constant.
func specializeShapes(c *Context, g *ir.Graph) error {
	if !c.requireStatic() {
		return nil
	}
	if c.Entry.Seq <= 0 {
		return fmt.Errorf("entry point %s has no token count to specialise for", c.Entry.Name)
	}
	env := map[string]int{symSeq: c.Entry.Seq}
	for _, in := range g.Inputs {
		in.Type.Shape = ir.SubstShape(in.Type.Shape, env)
	}
	if err := g.Retype(env); err != nil {
		return err
	}
	used := g.UsedSyms()
	var kept []string
	for _, s := range g.Syms {
		if used[s] {
			kept = append(kept, s)
		} else {
			c.Changed(1)
		}
	}
	g.Syms = kept
	c.Note("seq = %d", c.Entry.Seq)
	return nil
}

// checkStatic fails if any symbolic dimension is left.
func checkStatic(c *Context, g *ir.Graph) error {
	if !c.requireStatic() {
		return nil
	}
	var bad []string
	check := func(what string, t ir.Type) {
		if !t.Shape.IsConst() && len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("%s: %s", what, t))
		}
	}
	for _, v := range g.Inputs {
		check(v.Ref(), v.Type)
	}
	for _, v := range g.States {
		check(v.Ref(), v.Type)
	}
	g.Walk(func(n *ir.Node) {
		if n.Result != nil {
			check(n.Result.Ref(), n.Result.Type)
		}
	})
	if len(bad) > 0 || len(g.Syms) > 0 {
		return fmt.Errorf("symbolic dimensions remain after specialisation: %v (symbols %v)", bad, g.Syms)
	}
	return nil
}

// windowKV shrinks the caches that only sliding-window attention reads.
// A query at position p needs keys p-W+1..p, and one call writes up to
// MaxTokens positions before its queries read, so W + MaxTokens - 1 rows
// used as a ring (position j in row j mod rows) always hold what is read.
func windowKV(c *Context, g *ir.Graph) error {
	if !c.requireConst(g) {
		return nil
	}
	tokens := max(c.Opts.MaxTokens, 1)
	if !c.Entry.Batch {
		tokens = max(tokens, c.Entry.Seq)
	}
	users := map[*ir.Value][]*ir.Node{}
	g.Walk(func(n *ir.Node) {
		for _, a := range n.Args {
			if a.Kind == ir.KindState {
				users[a] = append(users[a], n)
			}
		}
	})
	for _, s := range g.States {
		window, ok := 0, true
		for _, n := range users[s] {
			switch n.Op {
			case ir.OpKVWrite:
			case ir.OpAttention:
				w := n.IntAttr("window")
				if w == 0 || (window != 0 && w != window) {
					ok = false
				}
				window = w
			default:
				ok = false
			}
		}
		if !ok || window == 0 {
			continue
		}
		rows := window + tokens - 1
		if rows >= s.Type.Shape[0].N {
			continue
		}
		c.Note("%s: %d → %d rows (window %d + %d tokens per call - 1)", s.Ref(), s.Type.Shape[0].N, rows, window, tokens)
		s.Type.Shape[0] = ir.C(rows)
		for _, n := range users[s] {
			n.Attrs = n.Attrs.Clone()
			if n.Attrs == nil {
				n.Attrs = ir.Attrs{}
			}
			n.Attrs["ring"] = rows
		}
		c.Changed(1)
	}
	return g.Retype(nil)
}
