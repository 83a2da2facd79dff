package passes

import (
	"fmt"
	"slices"

	"github.com/llmc-dev/llmc/ir"
)

// Alignment of every buffer in the arena, in bytes: a cache line, and a
// multiple of any vector width the backends use.
const Alignment = 64

func bufferSize(t ir.Type) int {
	n := 4 // activations are f32
	for _, d := range t.Shape {
		n *= d.N
	}
	return (n + Alignment - 1) / Alignment * Alignment
}

// buffer is one kernel result that needs memory.
type buffer struct {
	node       *ir.Node
	size       int
	start, end int // live from its kernel's index to its last use's
	offset     int
}

type bufferPlan struct {
	buffers []*buffer
	arena   int
	planned bool // every buffer has an offset
}

// liveBuffers computes the buffers of g's kernel results and their live
// ranges; reshape views extend the life of the buffer they view. Outputs
// live to the end.
func liveBuffers(g *ir.Graph) (*bufferPlan, error) {
	root := map[*ir.Value]*buffer{}
	plan := &bufferPlan{planned: true}
	for i, n := range g.Nodes {
		switch {
		case n.Result == nil:
		case n.Op == ir.OpReshape:
			if b, ok := root[n.Args[0]]; ok {
				root[n.Result] = b
			}
		case n.Op == ir.OpKernel:
			if !n.Result.Type.Shape.IsConst() {
				return nil, fmt.Errorf("%s has a symbolic shape", n.Result.Ref())
			}
			b := &buffer{node: n, size: bufferSize(n.Result.Type), start: i, end: i, offset: n.IntAttr("offset")}
			if b.offset < 0 {
				plan.planned = false
			}
			root[n.Result] = b
			plan.buffers = append(plan.buffers, b)
		default:
			return nil, fmt.Errorf("%s is outside any kernel", n.LongString())
		}
	}
	for i, n := range g.Nodes {
		for _, a := range captures(n) {
			if b, ok := root[a]; ok {
				b.end = max(b.end, i)
			}
		}
	}
	for _, o := range g.Outputs {
		if b, ok := root[o]; ok {
			b.end = len(g.Nodes)
		}
	}
	for _, b := range plan.buffers {
		plan.arena = max(plan.arena, b.offset+b.size)
	}
	return plan, nil
}

// captures lists the values a top-level node reads.
func captures(n *ir.Node) []*ir.Value {
	if n.Op == ir.OpKernel {
		return n.Body.Captures()
	}
	return n.Args
}

func overlap(a, b *buffer) bool {
	return a.start <= b.end && b.start <= a.end
}

// planMemory places every kernel result in one arena: largest buffers
// first, each at the lowest aligned offset that collides with no buffer
// whose live range overlaps its own.
func planMemory(c *Context, g *ir.Graph) error {
	if !c.requireConst(g) {
		return nil
	}
	for _, n := range g.Nodes {
		if n.Op != ir.OpKernel && n.Op != ir.OpReshape && n.Result != nil {
			c.Skip(fmt.Sprintf("%s is outside any kernel (is form-kernels disabled?)", n.Result.Ref()))
			return nil
		}
	}
	plan, err := liveBuffers(g)
	if err != nil {
		return err
	}
	order := slices.Clone(plan.buffers)
	slices.SortStableFunc(order, func(a, b *buffer) int { return b.size - a.size })
	var placed []*buffer
	total, arena := 0, 0
	for _, b := range order {
		var busy []*buffer
		for _, p := range placed {
			if overlap(p, b) {
				busy = append(busy, p)
			}
		}
		slices.SortFunc(busy, func(x, y *buffer) int { return x.offset - y.offset })
		off := 0
		for _, p := range busy {
			if off+b.size <= p.offset {
				break
			}
			off = max(off, p.offset+p.size)
		}
		b.offset = off
		placed = append(placed, b)
		total += b.size
		arena = max(arena, off+b.size)
	}
	for _, b := range plan.buffers {
		b.node.Attrs["offset"] = b.offset
	}
	c.Changed(len(plan.buffers))
	c.Note("arena %d bytes for %d buffers of %d bytes in all", arena, len(plan.buffers), total)
	return nil
}

// checkPlanned verifies a memory plan: aligned offsets, and no two buffers
// that are live at the same time share bytes.
func checkPlanned(c *Context, g *ir.Graph) error {
	if !c.requireConst(g) {
		return nil
	}
	plan, err := liveBuffers(g)
	if err != nil {
		c.Skip(err.Error())
		return nil
	}
	if !plan.planned {
		// No offset at all: nothing was planned. Some but not all: a
		// plan that misses buffers is wrong, not absent.
		var missing *buffer
		placed := 0
		for _, b := range plan.buffers {
			if b.offset >= 0 {
				placed++
			} else if missing == nil {
				missing = b
			}
		}
		if placed == 0 {
			c.Skip("no memory plan")
			return nil
		}
		return fmt.Errorf("%s has no offset: the plan places %d of %d buffers", missing.node.Result.Ref(), placed, len(plan.buffers))
	}
	for i, a := range plan.buffers {
		if a.offset%Alignment != 0 {
			return fmt.Errorf("%s: offset %d is not %d-byte aligned", a.node.Result.Ref(), a.offset, Alignment)
		}
		for _, b := range plan.buffers[i+1:] {
			if overlap(a, b) && a.offset < b.offset+b.size && b.offset < a.offset+a.size {
				return fmt.Errorf("%s [%d, %d) and %s [%d, %d) are live at the same time and overlap",
					a.node.Result.Ref(), a.offset, a.offset+a.size, b.node.Result.Ref(), b.offset, b.offset+b.size)
			}
		}
	}
	return nil
}
