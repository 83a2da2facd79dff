package compiler

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/wformat"
)

// WeightOptions choose the format weights are stored in (--weights).
type WeightOptions struct {
	// Format: f32 widens every weight to float32 when the artifact loads;
	// bf16 keeps bfloat16 checkpoint tensors as they are (the default
	// for a backend that loads them; f32 checkpoints are not narrowed);
	// a block format (q8_0, q4_0, q4_k) quantizes by the policy below. "" is bf16
	// where the backend loads it, else f32.
	Format string
	// KeepEmbeddings keeps the token embedding table in float32 (as
	// stored) instead of quantizing it. By default it is quantized, as
	// llama.cpp's Q8_0 does with token_embd (its Q4_0 mixture too); a model that ties its output
	// projection to the table (stories*) then reads the quantized table
	// for its logits too.
	KeepEmbeddings bool
	// KeepOutput keeps an untied output projection (lm_head) in float32.
	KeepOutput bool
	// FloatDot keeps block-format linears on the float path (each quant widened
	// and multiplied by the float activations) on a target whose IntDot
	// would quantise the activations and sum int8 products (--float-dot).
	FloatDot bool
}

// Tensor classes of the quantize stage's statistics and policy.
const (
	ClassLinear    = "linear"
	ClassEmbedding = "embedding"
	ClassOutput    = "output"
	ClassNorm      = "norm"
)

// QuantStat is what the quantize stage did to one class of tensors.
type QuantStat struct {
	Class     string
	Tensors   int
	Quantized int
	Before    int64 // bytes as the checkpoint stores them
	After     int64 // bytes as the artifact stores them
}

// storedTensor is a quantized checkpoint tensor the write stage stores.
type storedTensor struct {
	desc artifact.StoredTensor
	data []byte
}

// classify names the class of every checkpoint weight the graphs read:
// what reads it (a linear, the embedding lookup, a norm), the output
// projection being the linear that makes the logits.
func classify(graphs []*ir.Graph) map[string]string {
	class := map[string]string{}
	set := func(w *ir.Value, c string) {
		names := []string{w.Name}
		if w.Derive != nil {
			names = names[:0]
			for _, a := range w.Derive.Args {
				names = append(names, a.Name)
			}
		}
		for _, n := range names {
			// The embedding table's class wins over its use as a tied
			// output projection: it is one tensor.
			if old := class[n]; old == ClassEmbedding || old == ClassOutput && c == ClassLinear {
				continue
			}
			class[n] = c
		}
	}
	for _, g := range graphs {
		logits := map[*ir.Value]bool{}
		for _, o := range g.Outputs {
			logits[o] = true
		}
		g.Walk(func(n *ir.Node) {
			for i, a := range n.Args {
				if a.Kind != ir.KindWeight {
					continue
				}
				switch {
				case n.Op == ir.OpEmbedding && i == 0:
					set(a, ClassEmbedding)
				case n.Op == ir.OpLinear && i == 1 && logits[n.Result]:
					set(a, ClassOutput)
				case n.Op == ir.OpLinear && i == 1:
					set(a, ClassLinear)
				default:
					set(a, ClassNorm) // norm gains, biases: small, kept
				}
			}
		})
	}
	return class
}

// hasDType reports whether a weight of the graphs is of type dt.
func hasDType(gs []*ir.Graph, dt ir.DType) bool {
	for _, g := range gs {
		for _, w := range g.Weights {
			if w.Type.DType == dt {
				return true
			}
		}
	}
	return false
}

// quantize is the quantize stage: with a block format (--weights q8_0,
// q4_0, q4_k) it retypes the
// weights the policy picks (linear weights; the embedding table and the
// output projection unless kept) to the block format in every entry
// point's graph, verifying each, and quantizes their checkpoint tensors
// for the write stage to store in the artifact.
func (c *compilation) quantize(ctx context.Context) (string, error) {
	f := c.weights
	class := classify(c.res.Graphs)
	pick := func(name string) bool {
		switch class[name] {
		case ClassLinear:
			return true
		case ClassEmbedding:
			return !c.o.Weights.KeepEmbeddings
		case ClassOutput:
			return !c.o.Weights.KeepOutput
		}
		return false
	}
	// stored is the format the artifact stores a checkpoint tensor in, if
	// any: the policy's tensors in a converted format (--weights q8_0,
	// q4_0, q4_k, f16); without --weights, the policy's float16 tensors
	// of an f16 checkpoint stay float16 (copied into the artifact) on a
	// backend that loads them.
	keepF16 := c.o.Weights.Format == "" && c.target.Loads(ir.F16)
	stored := func(name string, shape []int) (wformat.Format, bool) {
		if len(shape) != 2 || !pick(name) {
			return 0, false
		}
		switch {
		case f.Converted():
			return f, true
		case keepF16 && c.model.WeightDType(name) == ir.F16:
			return wformat.F16, true
		}
		return 0, false
	}
	shapes := map[string][]int{}
	formats := map[string]wformat.Format{}
	for _, g := range c.res.Graphs {
		for _, w := range g.Weights {
			if w.Derive != nil {
				continue
			}
			shapes[w.Name], _ = w.Type.Shape.Eval(nil)
			if sf, ok := stored(w.Name, shapes[w.Name]); ok {
				formats[w.Name] = sf
				w.Type.DType = ir.WeightDType(sf)
			} else if w.Type.DType == ir.F16 {
				// Not stored: an f16 checkpoint tensor is widened to
				// float32 when the artifact loads, as before.
				w.Type.DType = ir.F32
			}
		}
		// A stacked weight is typed as its parts, which were retyped above.
		for _, w := range g.Weights {
			if w.Derive != nil {
				t, err := w.Derive.Type()
				if err != nil {
					return "", fmt.Errorf("quantize: %s: %w", w.Name, err)
				}
				w.Type = t
			}
		}
		if err := ir.Verify(g); err != nil {
			return "", fmt.Errorf("quantize left %s invalid: %w", g.Name, err)
		}
	}
	if len(formats) == 0 {
		switch {
		case c.o.Weights.Format == "":
			return "no --weights q8_0, q4_0, q4_k or f16: weights as the checkpoint stores them", nil
		case f == wformat.BF16 && !hasDType(c.res.Graphs, ir.BF16):
			// Asked for, but bf16 keeps bfloat16 tensors as stored and
			// converts none: say so beyond --stats.
			why := "--weights bf16: the checkpoint holds no bfloat16 tensors, so the weights stay as it stores them (--weights f16 halves float32 ones)"
			progress(c.o.Progress, "%s", why)
			return why, nil
		case !f.Converted():
			return fmt.Sprintf("--weights %s: weights as the checkpoint stores them", f), nil
		}
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	stats := map[string]*QuantStat{}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		cl := class[name]
		if cl == "" {
			continue
		}
		st := stats[cl]
		if st == nil {
			st = &QuantStat{Class: cl}
			stats[cl] = st
		}
		shape := shapes[name]
		elems := int64(1)
		for _, d := range shape {
			elems *= int64(d)
		}
		before := elems * int64(c.model.WeightDType(name).Size())
		st.Tensors++
		st.Before += before
		sf, ok := formats[name]
		if !ok {
			st.After += before
			continue
		}
		data, _, err := c.model.Float32(name)
		if err != nil {
			return "", err
		}
		q, err := wformat.Quantize(sf, shape[0], shape[1], data)
		if err != nil {
			return "", fmt.Errorf("quantizing %s: %w", name, err)
		}
		st.Quantized++
		st.After += int64(len(q))
		c.stored = append(c.stored, storedTensor{desc: artifact.StoredTensor{Name: name, Format: sf, Rows: shape[0], Cols: shape[1]}, data: q})
	}
	for _, cl := range []string{ClassLinear, ClassEmbedding, ClassOutput, ClassNorm} {
		if st := stats[cl]; st != nil {
			c.res.Quant = append(c.res.Quant, *st)
		}
	}
	return "", nil
}

// WriteQuantStats prints the quantize stage's bytes per tensor class.
func WriteQuantStats(w io.Writer, format string, stats []QuantStat) {
	if len(stats) == 0 {
		return
	}
	if format == "" {
		// The only stats a compile without --weights has.
		fmt.Fprintf(w, "quantize (no --weights: the checkpoint's f16 tensors kept in f16)\n")
	} else {
		fmt.Fprintf(w, "quantize (--weights %s)\n", format)
	}
	fmt.Fprintf(w, "  %-10s %7s %9s %14s %14s %7s\n", "class", "tensors", "quantized", "bytes before", "bytes after", "ratio")
	var b, a int64
	for _, s := range stats {
		fmt.Fprintf(w, "  %-10s %7d %9d %14d %14d %6.2fx\n", s.Class, s.Tensors, s.Quantized, s.Before, s.After, float64(s.Before)/float64(max(s.After, 1)))
		b, a = b+s.Before, a+s.After
	}
	fmt.Fprintf(w, "  %-10s %7s %9s %14d %14d %6.2fx\n", "total", "", "", b, a, float64(b)/float64(max(a, 1)))
}
