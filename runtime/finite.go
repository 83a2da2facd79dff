package runtime

import (
	"fmt"
	"strings"

	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/wformat"
)

// nonFinite counts the NaN, +Inf and -Inf elements of xs and finds the
// first of them (-1 when all are finite).
type nonFinite struct {
	nan, posInf, negInf int
	first               int
	size                int
}

func countNonFinite(xs []float32) nonFinite {
	c := nonFinite{first: -1, size: len(xs)}
	for i, x := range xs {
		if x-x == 0 { // false for NaN and ±Inf only
			continue
		}
		switch {
		case x != x:
			c.nan++
		case x > 0:
			c.posInf++
		default:
			c.negInf++
		}
		if c.first < 0 {
			c.first = i
		}
	}
	return c
}

func (c nonFinite) any() bool { return c.nan+c.posInf+c.negInf > 0 }

// String says what is non-finite, such as "NaN (3 of 256), +Inf (1 of 256)".
func (c nonFinite) String() string {
	var parts []string
	for _, k := range []struct {
		what string
		n    int
	}{{"NaN", c.nan}, {"+Inf", c.posInf}, {"-Inf", c.negInf}} {
		if k.n > 0 {
			parts = append(parts, fmt.Sprintf("%s (%d of %d)", k.what, k.n, c.size))
		}
	}
	return strings.Join(parts, ", ")
}

// NonFiniteError says that a forward pass returned logits holding NaN or
// ±Inf, from which no token can be sampled or scored. It is what Generate
// and ScoreSequence return instead of picking a token from such logits.
type NonFiniteError struct {
	// Step is the forward pass: "prefill", "decode step N" (N from 1) or
	// "scoring".
	Step string
	// Pos is the position whose logits these are (counted from the start
	// of the cache); Index is the index of its token in the tokens given
	// to the step (the prompt, the generated tokens, or the scored ids),
	// and Token its id.
	Pos, Index, Token int
	// NaN, PosInf and NegInf count the non-finite logits; First is the
	// first one's token id, Vocab the row's length.
	NaN, PosInf, NegInf, First, Vocab int
}

func (e *NonFiniteError) Error() string {
	c := nonFinite{nan: e.NaN, posInf: e.PosInf, negInf: e.NegInf, size: e.Vocab}
	what := "token"
	switch e.Step {
	case "prefill":
		what = "prompt token"
	case "scoring":
	default:
		what = "generated token"
	}
	return fmt.Sprintf("%s: the logits at position %d, after %s index %d (id %d), hold %s, the first at token id %d: the model computed a non-finite value",
		e.Step, e.Pos, what, e.Index, e.Token, c, e.First)
}

// checkLogits returns a NonFiniteError if row holds NaN or ±Inf: one pass
// over the row.
func checkLogits(row []float32, step string, pos, index, token int) error {
	c := countNonFinite(row)
	if !c.any() {
		return nil
	}
	return &NonFiniteError{Step: step, Pos: pos, Index: index, Token: token,
		NaN: c.nan, PosInf: c.posInf, NegInf: c.negInf, First: c.first, Vocab: len(row)}
}

// NonFiniteOpError names the first op that produced NaN or ±Inf while a
// Program ran with SetDebugNaN, and which of its inputs were already
// non-finite.
type NonFiniteOpError struct {
	Graph string // the entry point
	// Kernel is the fused kernel (its result, "%x") the op is in, if any.
	Kernel string
	Value  string // the op's result, "%x"
	Op     string // the op's name, such as "linear"
	Node   string // the op as one line of IR
	// Pos and Tokens are the positions the step ran: pos .. pos+tokens-1.
	Pos, Tokens int
	What        string // what is non-finite in the result, with counts
	// Inputs lists the arguments that were already non-finite, each with
	// what is non-finite in it; empty when every input was finite.
	Inputs []string
}

func (e *NonFiniteOpError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %s, positions %d..%d: op %s (%s) is the first to produce a non-finite value: its result holds %s",
		e.Graph, e.Pos, e.Pos+e.Tokens-1, e.Value, e.Op, e.What)
	if e.Kernel != "" {
		fmt.Fprintf(&b, "; it is in fused kernel %s", e.Kernel)
	}
	if len(e.Inputs) == 0 {
		b.WriteString("; all its inputs were finite")
	} else {
		fmt.Fprintf(&b, "; inputs already non-finite: %s", strings.Join(e.Inputs, "; "))
	}
	fmt.Fprintf(&b, "\n  %s", e.Node)
	return b.String()
}

// SetDebugNaN turns checking every op's result for NaN and ±Inf on or
// off. With it on, Run stops at the first op whose result is non-finite
// and returns a *NonFiniteOpError naming it. It costs a pass over every
// result, so it is for finding where the numbers go wrong, not for
// production runs.
func (p *Program) SetDebugNaN(on bool) { p.debugNaN = on }

// checkFinite returns a NonFiniteOpError if n's result holds NaN or ±Inf
// (beyond the -Inf a causal mask writes by design).
func (r *run) checkFinite(n *ir.Node) error {
	if n.Result == nil {
		return nil
	}
	c := r.realRows(r.value(n.Result), n.Result)
	if !c.any() {
		return nil
	}
	e := &NonFiniteOpError{Value: n.Result.Ref(), Op: n.Op.String(), Node: n.LongString(),
		Pos: r.pos, Tokens: r.n, What: c.String()}
	if n.Op == ir.OpKernel {
		e.Op = "kernel " + n.StringAttr("name")
	}
	seen := map[*ir.Value]bool{}
	for _, a := range n.Args {
		if seen[a] {
			continue
		}
		seen[a] = true
		if what := r.inputNonFinite(a); what != "" {
			e.Inputs = append(e.Inputs, a.Ref()+" holds "+what)
		}
	}
	return e
}

// realRows counts the non-finite elements of t, the value of v, leaving
// out padding rows (entry points of a fixed length run padded tokens,
// whose rows no one reads) and the -Inf of a causal mask.
func (r *run) realRows(t tensor, v *ir.Value) nonFinite {
	f := t.f
	if seq := len(r.tokens); r.n < seq && len(t.shape) > 0 && t.shape[0] == seq && seq > 0 {
		f = f[:len(f)/seq*r.n]
	}
	c := countNonFinite(f)
	if masked(v) {
		c.negInf = 0
		if !c.any() {
			c.first = -1
		}
	}
	return c
}

// masked reports whether v comes from a causal mask, whose -Inf entries
// are meant (softmax turns them into zeros).
func masked(v *ir.Value) bool {
	for v != nil && v.Kind == ir.KindNode && v.Def != nil {
		switch v.Def.Op {
		case ir.OpCausalMask:
			return true
		case ir.OpKernel:
			if len(v.Def.Body.Outputs) == 0 {
				return false
			}
			v = v.Def.Body.Outputs[0]
		case ir.OpReshape:
			v = v.Def.Args[0]
		default:
			return false
		}
	}
	return false
}

// inputNonFinite says what is non-finite in argument a ("" when it is all
// finite). Weights are checked once per program.
func (r *run) inputNonFinite(a *ir.Value) string {
	switch a.Kind {
	case ir.KindNode:
		if c := r.realRows(r.value(a), a); c.any() {
			return c.String()
		}
	case ir.KindWeight:
		what, ok := r.p.weightNonFinite[a.Name]
		if !ok {
			f := r.p.weights[a.Name]
			if h := r.p.halves[a.Name]; h != nil {
				f = make([]float32, len(h))
				for i, v := range h {
					f[i] = wformat.BF16ToF32(v)
				}
			}
			if c := countNonFinite(f); c.any() {
				shape, _ := a.Type.Shape.Eval(nil)
				what = fmt.Sprintf("%s, the first at %v", c, unravel(c.first, shape))
			}
			r.p.weightNonFinite[a.Name] = what
		}
		return what
	case ir.KindState:
		sb := r.p.states[a.Name]
		if sb == nil {
			return ""
		}
		if c := countNonFinite(sb.data[:min(len(sb.data), sb.rows*sb.rowSize)]); c.any() {
			return fmt.Sprintf("%s in its %d cached positions", c, sb.rows)
		}
	}
	return ""
}

// unravel turns a flat row-major index into one index per dim.
func unravel(i int, shape []int) []int {
	if product(shape) <= i {
		return []int{i}
	}
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
	return idx
}
