package hf

import (
	"fmt"

	"github.com/llmc-dev/llmc/ir"
)

// BuildOptions select what the graph computes.
type BuildOptions struct {
	// Name is the graph's name; "forward" when empty.
	Name string
	// AllLogits makes the graph return logits for every new token
	// ([seq, vocab], for scoring); otherwise only for the last one
	// ([1, vocab], for generation).
	AllLogits bool
	// Runs, when > 0, makes the graph return the logits of the last row
	// of each of up to Runs runs of rows ([Runs, vocab]): a batched step
	// of several sequences, some of them prefilling.
	Runs int
	// WeightDType gives each weight's dtype in the checkpoint; nil means f32.
	WeightDType func(name string) ir.DType
}

// Symbols of the graphs Build makes: seq is the number of new tokens in a
// step, ctx the number of positions in the KV cache after it.
const (
	SymSeq = "seq"
	SymCtx = "ctx"
)

// Build returns the graph of one forward step of the model described by c,
// with a dynamic KV cache: state $k.L and $v.L of shape [ctx, kv heads, head
// dim] per layer, appended to each step. Its inputs are %tokens (i32[seq])
// and %pos (i32[], the number of tokens already cached).
func Build(c *Config, opts BuildOptions) (*ir.Graph, error) {
	name := opts.Name
	if name == "" {
		name = "forward"
	}
	b := &builder{c: c, g: ir.NewGraph(name), opts: opts}
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("building the %s graph: %w", c.Architecture, err)
	}
	if err := ir.Verify(b.g); err != nil {
		return nil, fmt.Errorf("building the %s graph: %w", c.Architecture, err)
	}
	return b.g, nil
}

// builder emits nodes and keeps the first error, so that the model code
// reads as straight-line math.
type builder struct {
	c    *Config
	g    *ir.Graph
	opts BuildOptions
	err  error
}

func (b *builder) weight(name string, dims ...int) *ir.Value {
	if b.err != nil {
		return nil
	}
	dt := ir.F32
	if b.opts.WeightDType != nil {
		dt = b.opts.WeightDType(name)
	}
	v, err := b.g.Weight(name, ir.Type{DType: dt, Shape: ir.Consts(dims...)})
	b.err = err
	return v
}

func (b *builder) emit(op ir.Op, name string, attrs ir.Attrs, args ...*ir.Value) *ir.Value {
	return b.emitTyped(op, name, attrs, ir.Type{}, args...)
}

func (b *builder) emitTyped(op ir.Op, name string, attrs ir.Attrs, want ir.Type, args ...*ir.Value) *ir.Value {
	if b.err != nil {
		return nil
	}
	v, err := b.g.Emit(op, name, attrs, want, args...)
	b.err = err
	return v
}

func (b *builder) norm(name string, x *ir.Value, weight string) *ir.Value {
	attrs := ir.Attrs{"eps": b.c.RMSNormEps}
	if b.c.RMSNormUnitOffset {
		attrs["unit_offset"] = true
	}
	return b.emit(ir.OpRMSNorm, name, attrs, x, b.weight(weight, b.c.HiddenSize))
}

func (b *builder) linear(name string, x *ir.Value, prefix string, out, in int, bias bool) *ir.Value {
	args := []*ir.Value{x, b.weight(prefix+".weight", out, in)}
	if bias {
		args = append(args, b.weight(prefix+".bias", out))
	}
	return b.emit(ir.OpLinear, name, nil, args...)
}

func (b *builder) reshape(name string, x *ir.Value, dims ...ir.Dim) *ir.Value {
	return b.emitTyped(ir.OpReshape, name, nil, ir.T(ir.F32, dims...), x)
}

func (b *builder) ropeAttrs() ir.Attrs {
	a := ir.Attrs{"theta": b.c.RopeTheta}
	if rs := b.c.RopeScaling; rs != nil {
		a["scaling"] = rs.Type
		a["factor"] = rs.Factor
		if rs.Type == "llama3" {
			a["low_freq_factor"] = rs.LowFreqFactor
			a["high_freq_factor"] = rs.HighFreqFactor
			a["original_max_positions"] = rs.OriginalMaxPositions
		}
	}
	return a
}

func (b *builder) build() error {
	c, g := b.c, b.g
	seq, ctx := g.Sym(SymSeq), g.Sym(SymCtx)
	tokens, err := g.Input("tokens", ir.T(ir.I32, seq))
	if err != nil {
		return err
	}
	pos, err := g.Input("pos", ir.T(ir.I32))
	if err != nil {
		return err
	}
	hd, nh, nkv := c.HeadDim, c.NumHeads, c.NumKVHeads
	embed := b.weight("model.embed_tokens.weight", c.VocabSize, c.HiddenSize)

	x := b.emit(ir.OpEmbedding, "x", nil, embed, tokens)
	if c.EmbedScale != 0 {
		x = b.emit(ir.OpScale, "x.scaled", ir.Attrs{"factor": c.EmbedScale}, x)
	}
	for l := 0; l < c.NumLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		n := fmt.Sprintf("l%d.", l)
		kc, err := g.State(fmt.Sprintf("k.%d", l), ir.T(ir.F32, ctx, ir.C(nkv), ir.C(hd)))
		if err != nil {
			return err
		}
		vc, err := g.State(fmt.Sprintf("v.%d", l), ir.T(ir.F32, ctx, ir.C(nkv), ir.C(hd)))
		if err != nil {
			return err
		}

		h := b.norm(n+"attn_norm", x, p+"input_layernorm.weight")
		q := b.linear(n+"q", h, p+"self_attn.q_proj", nh*hd, c.HiddenSize, c.QKVBias)
		k := b.linear(n+"k", h, p+"self_attn.k_proj", nkv*hd, c.HiddenSize, c.QKVBias)
		v := b.linear(n+"v", h, p+"self_attn.v_proj", nkv*hd, c.HiddenSize, c.QKVBias)
		q = b.reshape(n+"q.heads", q, seq, ir.C(nh), ir.C(hd))
		k = b.reshape(n+"k.heads", k, seq, ir.C(nkv), ir.C(hd))
		v = b.reshape(n+"v.heads", v, seq, ir.C(nkv), ir.C(hd))
		q = b.emit(ir.OpRoPE, n+"q.rope", b.ropeAttrs(), q, pos)
		k = b.emit(ir.OpRoPE, n+"k.rope", b.ropeAttrs(), k, pos)
		b.emit(ir.OpKVAppend, "", nil, kc, k)
		b.emit(ir.OpKVAppend, "", nil, vc, v)
		// Attention as the textbook writes it; the compiler fuses these
		// into one kernel when the cache is static.
		sc := b.emit(ir.OpAttnScores, n+"scores", ir.Attrs{"scale": c.AttnScale}, q, kc)
		if c.AttnSoftcap != 0 {
			sc = b.emit(ir.OpSoftcap, n+"scores.capped", ir.Attrs{"cap": c.AttnSoftcap}, sc)
		}
		var mask ir.Attrs
		if c.IsLayerSliding(l) {
			mask = ir.Attrs{"window": c.SlidingWindow}
		}
		sc = b.emit(ir.OpCausalMask, n+"scores.masked", mask, sc, pos)
		sc = b.emit(ir.OpSoftmax, n+"probs", nil, sc)
		a := b.emit(ir.OpAttnValues, n+"attn", nil, sc, vc)
		a = b.reshape(n+"attn.flat", a, seq, ir.C(nh*hd))
		o := b.linear(n+"o", a, p+"self_attn.o_proj", c.HiddenSize, nh*hd, c.OBias)
		if c.SandwichNorms {
			o = b.norm(n+"o.norm", o, p+"post_attention_layernorm.weight")
		}
		x = b.emit(ir.OpAdd, n+"h", nil, x, o)

		mlpNorm := p + "post_attention_layernorm.weight"
		if c.SandwichNorms {
			mlpNorm = p + "pre_feedforward_layernorm.weight"
		}
		h = b.norm(n+"mlp_norm", x, mlpNorm)
		gate := b.linear(n+"gate", h, p+"mlp.gate_proj", c.IntermediateSize, c.HiddenSize, c.MLPBias)
		up := b.linear(n+"up", h, p+"mlp.up_proj", c.IntermediateSize, c.HiddenSize, c.MLPBias)
		act := ir.OpSiLU
		if c.HiddenAct == "gelu_pytorch_tanh" {
			act = ir.OpGELUTanh
		}
		gate = b.emit(act, n+"act", nil, gate)
		m := b.emit(ir.OpMul, n+"gated", nil, gate, up)
		d := b.linear(n+"down", m, p+"mlp.down_proj", c.HiddenSize, c.IntermediateSize, c.MLPBias)
		if c.SandwichNorms {
			d = b.norm(n+"down.norm", d, p+"post_feedforward_layernorm.weight")
		}
		x = b.emit(ir.OpAdd, n+"out", nil, x, d)
	}
	switch {
	case b.opts.Runs > 0:
		x = b.emit(ir.OpLast, "last", ir.Attrs{"runs": b.opts.Runs}, x)
	case !b.opts.AllLogits:
		x = b.emit(ir.OpLast, "last", nil, x)
	}
	x = b.norm("final_norm", x, "model.norm.weight")
	head := "lm_head.weight"
	if c.TieEmbeddings {
		head = "model.embed_tokens.weight"
	}
	logits := b.emit(ir.OpLinear, "logits", nil, x, b.weight(head, c.VocabSize, c.HiddenSize))
	if c.FinalSoftcap != 0 {
		logits = b.emit(ir.OpSoftcap, "logits.capped", ir.Attrs{"cap": c.FinalSoftcap}, logits)
	}
	if b.err != nil {
		return b.err
	}
	g.SetOutputs(logits)
	return nil
}
