package passes

import (
	"fmt"
	"slices"
	"strings"

	"github.com/llmc-dev/llmc/ir"
)

// requireConst skips the pass unless the cache is static and every shape
// in the graph is constant.
func (c *Context) requireConst(g *ir.Graph) bool {
	if !c.requireStatic() {
		return false
	}
	if len(g.UsedSyms()) > 0 {
		c.Skip("shapes are symbolic")
		return false
	}
	return true
}

// singleUse reports whether v is used exactly once and is not an output.
func singleUse(uses map[*ir.Value]int, v *ir.Value) bool { return uses[v] == 1 }

// fuseAttention matches
//
//	attn_scores(q, $k) → [softcap] → causal_mask(·, pos) → softmax → attn_values(·, $v)
//
// with single-use intermediates and replaces it by one attention op, which
// backends run as one kernel with an online softmax over the unmasked
// prefix of the cache only.
func fuseAttention(c *Context, g *ir.Graph) error {
	if !c.requireConst(g) {
		return nil
	}
	uses := g.Uses()
	drop := map[*ir.Node]bool{}
	for _, n := range g.Nodes {
		if n.Op != ir.OpAttnValues {
			continue
		}
		chain, attrs, ok := matchAttention(n, uses)
		if !ok {
			continue
		}
		scores, mask := chain[0], chain[len(chain)-3]
		// n becomes the fused op; its result keeps its consumers.
		n.Op, n.Attrs = ir.OpAttention, attrs
		n.Args = []*ir.Value{scores.Args[0], scores.Args[1], n.Args[1], mask.Args[1]}
		for _, m := range chain[:len(chain)-1] {
			drop[m] = true
		}
		c.Changed(1)
	}
	g.RemoveNodes(func(n *ir.Node) bool { return drop[n] })
	if len(drop) == 0 && c.stat.Changes == 0 {
		c.Note("no attention pattern found")
	}
	return nil
}

// matchAttention walks back from attn_values and returns the chain of
// nodes, scores first, and the fused op's attributes.
func matchAttention(values *ir.Node, uses map[*ir.Value]int) ([]*ir.Node, ir.Attrs, bool) {
	def := func(v *ir.Value, op ir.Op) *ir.Node {
		if v.Kind != ir.KindNode || v.Def.Op != op || !singleUse(uses, v) {
			return nil
		}
		return v.Def
	}
	softmax := def(values.Args[0], ir.OpSoftmax)
	if softmax == nil {
		return nil, nil, false
	}
	mask := def(softmax.Args[0], ir.OpCausalMask)
	if mask == nil {
		return nil, nil, false
	}
	attrs := ir.Attrs{}
	chain := []*ir.Node{mask, softmax, values}
	src := mask.Args[0]
	if capNode := def(src, ir.OpSoftcap); capNode != nil {
		attrs["softcap"] = capNode.FloatAttr("cap")
		chain = append([]*ir.Node{capNode}, chain...)
		src = capNode.Args[0]
	}
	scores := def(src, ir.OpAttnScores)
	if scores == nil {
		return nil, nil, false
	}
	chain = append([]*ir.Node{scores}, chain...)
	attrs["scale"] = scores.FloatAttr("scale")
	if w := mask.IntAttr("window"); w > 0 {
		attrs["window"] = w
	}
	return chain, attrs, true
}

// fuseLinears replaces linears that read the same input with one linear
// over their weights stacked (a weight the runtime builds at load time)
// followed by column slices. Decode then streams one weight matrix instead
// of three (q/k/v) or two (gate/up).
func fuseLinears(c *Context, g *ir.Graph) error {
	if !c.requireConst(g) {
		return nil
	}
	groups := map[*ir.Value][]*ir.Node{}
	var order []*ir.Value
	for _, n := range g.Nodes {
		if n.Op != ir.OpLinear || n.Args[1].Derive != nil {
			continue
		}
		x := n.Args[0]
		if _, ok := groups[x]; !ok {
			order = append(order, x)
		}
		groups[x] = append(groups[x], n)
	}
	for _, x := range order {
		group := compatibleLinears(groups[x])
		if len(group) < 2 {
			continue
		}
		if err := stackLinears(c, g, group); err != nil {
			return err
		}
	}
	return nil
}

// compatibleLinears keeps the linears of a group that can share a matmul
// with the first: same weight dtype and input size, all with or all
// without bias.
func compatibleLinears(ns []*ir.Node) []*ir.Node {
	if len(ns) < 2 {
		return nil
	}
	first := ns[0]
	var out []*ir.Node
	for _, n := range ns {
		w, fw := n.Args[1].Type, first.Args[1].Type
		if w.DType == fw.DType && w.Shape[1] == fw.Shape[1] && len(n.Args) == len(first.Args) {
			out = append(out, n)
		}
	}
	return out
}

func stackLinears(c *Context, g *ir.Graph, group []*ir.Node) error {
	var names, weights, biases []*ir.Value
	for _, n := range group {
		names = append(names, n.Result)
		weights = append(weights, n.Args[1])
		if len(n.Args) == 3 {
			biases = append(biases, n.Args[2])
		}
	}
	base := stackedName(names)
	w, err := g.DerivedWeight(uniqueWeight(g, base+".weight"), "concat", weights...)
	if err != nil {
		return err
	}
	args := []*ir.Value{group[0].Args[0], w}
	if len(biases) > 0 {
		b, err := g.DerivedWeight(uniqueWeight(g, base+".bias"), "concat", biases...)
		if err != nil {
			return err
		}
		args = append(args, b)
	}
	// The stacked linear takes the place of the first; slices follow it.
	fused := &ir.Node{Op: ir.OpLinear, Args: args}
	fused.Result = &ir.Value{Name: g.UniqueName(base), Kind: ir.KindNode, Def: fused}
	t, err := ir.OpLinear.Info().Infer(fused)
	if err != nil {
		return err
	}
	fused.Result.Type = t
	var slices_ []*ir.Node
	start := 0
	for _, n := range group {
		cols := n.Result.Type.Shape[1].N
		s := &ir.Node{Op: ir.OpSlice, Args: []*ir.Value{fused.Result}, Attrs: ir.Attrs{"start": start, "len": cols}}
		s.Result = n.Result // consumers keep their value
		n.Result.Def = s
		slices_ = append(slices_, s)
		start += cols
	}
	inGroup := map[*ir.Node]bool{}
	for _, n := range group {
		inGroup[n] = true
	}
	var nodes []*ir.Node
	for _, n := range g.Nodes {
		switch {
		case n == group[0]:
			nodes = append(nodes, fused)
			nodes = append(nodes, slices_...)
		case inGroup[n]:
		default:
			nodes = append(nodes, n)
		}
	}
	g.Nodes = nodes
	g.Reindex()
	c.Changed(1)
	var parts []string
	for _, v := range names {
		parts = append(parts, v.Ref())
	}
	c.Note("%s = %s", fused.Result.Ref(), strings.Join(parts, " + "))
	return nil
}

// stackedName names a stacked linear after its parts: l0.q, l0.k, l0.v
// become l0.qkv; l0.gate, l0.up become l0.gate_up.
func stackedName(vs []*ir.Value) string {
	prefix := vs[0].Name
	for _, v := range vs[1:] {
		for !strings.HasPrefix(v.Name, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if i := strings.LastIndexByte(prefix, '.'); i >= 0 {
		prefix = prefix[:i+1]
	} else {
		prefix = ""
	}
	var parts []string
	short := true
	for _, v := range vs {
		p := strings.TrimPrefix(v.Name, prefix)
		parts = append(parts, p)
		short = short && len(p) == 1
	}
	if short {
		return prefix + strings.Join(parts, "")
	}
	return prefix + strings.Join(parts, "_")
}

func uniqueWeight(g *ir.Graph, name string) string {
	if _, taken := g.Lookup("@" + name); !taken {
		return name
	}
	for i := 1; ; i++ {
		n := fmt.Sprintf("%s.%d", name, i)
		if _, taken := g.Lookup("@" + n); !taken {
			return n
		}
	}
}

// kernelAnchors are the ops fuse-kernels forms kernels around, in the
// order it does: matmuls first, so that they take their norm prologue
// before norms anchor kernels of their own. Each has a KernelKind in the
// op table; which ops join a kernel as its epilogue is the table's
// Epilogue fact.
var kernelAnchors = []ir.Op{ir.OpLinear, ir.OpAttention, ir.OpEmbedding, ir.OpRMSNorm}

// fuseKernels forms kernels around matmuls first (absorbing a preceding
// RMSNorm, and any reshape view, as a prologue), then around attention,
// embedding and standalone norms, each absorbing its elementwise
// consumers as an epilogue. A kernel yields at most one value.
func fuseKernels(c *Context, g *ir.Graph) error {
	if !c.requireConst(g) {
		return nil
	}
	for _, anchorOp := range kernelAnchors {
		for i := 0; i < len(g.Nodes); i++ {
			n := g.Nodes[i]
			if n.Op != anchorOp {
				continue
			}
			k, err := formRegion(g, n, anchorOp == ir.OpLinear)
			if err != nil {
				return err
			}
			if k != nil {
				c.Changed(1)
				i = -1 // the node list changed: scan again (kernels are not anchors)
			}
		}
	}
	return nil
}

// formRegion grows a region around anchor and replaces it by a kernel.
func formRegion(g *ir.Graph, anchor *ir.Node, prologue bool) (*ir.Node, error) {
	index := map[*ir.Node]int{}
	for i, n := range g.Nodes {
		index[n] = i
	}
	users := g.Users()
	isOutput := map[*ir.Value]bool{}
	for _, o := range g.Outputs {
		isOutput[o] = true
	}
	in := map[*ir.Node]bool{anchor: true}
	region := []*ir.Node{anchor}

	// Prologue: the norm (through reshape views) whose only use is this
	// matmul.
	if prologue {
		x := anchor.Args[0]
		for x.Kind == ir.KindNode && len(users[x]) == 1 && !isOutput[x] &&
			(x.Def.Op == ir.OpReshape || x.Def.Op == ir.OpRMSNorm) {
			region = append(region, x.Def)
			in[x.Def] = true
			if x.Def.Op == ir.OpRMSNorm {
				break
			}
			x = x.Def.Args[0]
		}
	}
	anchorAt := index[anchor]
	available := func(v *ir.Value) bool {
		if v.Kind != ir.KindNode {
			return true
		}
		return in[v.Def] || index[v.Def] < anchorAt
	}
	// Epilogue: consumers that need nothing computed after the anchor
	// outside the region.
	for grew := true; grew; {
		grew = false
		for _, n := range slices.Clone(region) {
			if n.Result == nil {
				continue
			}
			for _, u := range users[n.Result] {
				if in[u] || !u.Op.Info().Epilogue {
					continue
				}
				ok := true
				for _, a := range u.Args {
					ok = ok && available(a)
				}
				if ok {
					in[u] = true
					region = append(region, u)
					grew = true
				}
			}
		}
	}
	slices.SortFunc(region, func(a, b *ir.Node) int { return index[a] - index[b] })

	// Trim from the end until the region yields at most one value and can
	// run where its last node stands.
	for len(region) > 1 {
		if escapes(region, in, users, isOutput) <= 1 && movable(g, region, in, index) {
			break
		}
		last := region[len(region)-1]
		if last == anchor {
			break
		}
		delete(in, last)
		region = region[:len(region)-1]
	}
	if escapes(region, in, users, isOutput) > 1 || !movable(g, region, in, index) {
		return nil, nil
	}
	var out *ir.Value
	for _, n := range region {
		if n.Result != nil && escapesOne(n.Result, in, users, isOutput) {
			out = n.Result
		}
	}
	// The kernel's result takes the yielded value's name; inside, the
	// value is renamed.
	var k *ir.Node
	if out != nil {
		name := out.Name
		g.Rename(out, name+".r")
		k = ir.NewKernel(anchor.Op.Info().KernelKind, name, region, out)
		for _, n := range g.Nodes {
			if !in[n] {
				for i, a := range n.Args {
					if a == out {
						n.Args[i] = k.Result
					}
				}
				if n.Body != nil {
					n.Body.ReplaceUses(out, k.Result)
				}
			}
		}
		for i, o := range g.Outputs {
			if o == out {
				g.Outputs[i] = k.Result
			}
		}
	} else {
		k = ir.NewKernel(anchor.Op.Info().KernelKind, "", region, nil)
	}
	lastAt := index[region[len(region)-1]]
	var nodes []*ir.Node
	for i, n := range g.Nodes {
		if i == lastAt {
			nodes = append(nodes, k)
		}
		if !in[n] {
			nodes = append(nodes, n)
		}
	}
	g.Nodes = nodes
	g.Reindex()
	return k, nil
}

func escapesOne(v *ir.Value, in map[*ir.Node]bool, users map[*ir.Value][]*ir.Node, isOutput map[*ir.Value]bool) bool {
	if isOutput[v] {
		return true
	}
	for _, u := range users[v] {
		if !in[u] {
			return true
		}
	}
	return false
}

func escapes(region []*ir.Node, in map[*ir.Node]bool, users map[*ir.Value][]*ir.Node, isOutput map[*ir.Value]bool) int {
	n := 0
	for _, m := range region {
		if m.Result != nil && escapesOne(m.Result, in, users, isOutput) {
			n++
		}
	}
	return n
}

// movable reports whether the region can run as one kernel at the place of
// its last node: no node in between uses a region value or touches a state
// the region touches.
func movable(g *ir.Graph, region []*ir.Node, in map[*ir.Node]bool, index map[*ir.Node]int) bool {
	first, last := index[region[0]], index[region[len(region)-1]]
	produced := map[*ir.Value]bool{}
	states := map[*ir.Value]bool{}
	for _, n := range region {
		if n.Result != nil {
			produced[n.Result] = true
		}
		for _, a := range n.Args {
			if a.Kind == ir.KindState {
				states[a] = true
			}
		}
	}
	for i := first + 1; i < last; i++ {
		n := g.Nodes[i]
		if in[n] {
			continue
		}
		for _, a := range n.Args {
			if produced[a] || states[a] {
				return false
			}
		}
	}
	return true
}

// formKernels wraps each remaining computing top-level node (reshape views
// aside) in a kernel of its own.
func formKernels(c *Context, g *ir.Graph) error {
	if !c.requireConst(g) {
		return nil
	}
	for i, n := range g.Nodes {
		if n.Op == ir.OpKernel || n.Op == ir.OpReshape {
			continue
		}
		var k *ir.Node
		if n.Result != nil {
			out := n.Result
			name := out.Name
			g.Rename(out, name+".r")
			k = ir.NewKernel(n.Op.String(), name, []*ir.Node{n}, out)
			g.ReplaceUses(out, k.Result)
			// ReplaceUses also rewrote the body's own yield; restore it.
			k.Body.Outputs[0] = out
		} else {
			k = ir.NewKernel(n.Op.String(), "", []*ir.Node{n}, nil)
		}
		g.Nodes[i] = k
		c.Changed(1)
	}
	g.Reindex()
	return nil
}
