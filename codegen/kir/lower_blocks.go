package kir

import (
	"fmt"

	"github.com/llmc-dev/llmc/wformat"
)

// This file lowers the ops that read block-format weights (Q8_0, Q4_0):
// the dequantisation is written here, once, as loads of quants and scales
// (LoadQ) and float arithmetic, so that every backend only prints it.
// The arithmetic is float: each quant is widened to f32, its zero point
// subtracted (8 for Q4_0's unsigned nibbles), and multiplied by the
// activations, and a block's sum by its scale. Integer dot products (AVX2
// vpmaddubsw/vpmaddwd, VNNI vpdpbusd, with activations quantised per
// block) are a later step.

// quantRun is a run of a block's weights whose quants are one part of
// consecutive bytes: weight j in [lo, hi) is part of byte off + j - lo of
// the block, and its value is scale × (quant - zero).
type quantRun struct {
	lo, hi, off int
	part        QPart
	zero        float32
}

// quantRuns are the runs of each block format's weights, in order: Q8_0's
// 32 int8s; Q4_0's low nibbles of its 16 bytes (weights 0..15), then
// their high nibbles (16..31); Q4_K's eight sub-blocks (q4kRun, each
// with its own scale and min). A vector load of eight weights stays in
// one run (runs are multiples of eight long).
var quantRuns = map[wformat.Format][]quantRun{
	wformat.Q8_0: {{0, 32, wformat.Q8_0Quants, QInt8, 0}},
	wformat.Q4_0: {
		{0, 16, wformat.Q4_0Quants, QU4Lo, wformat.Q4_0Zero},
		{16, 32, wformat.Q4_0Quants, QU4Hi, wformat.Q4_0Zero},
	},
	wformat.Q4_K: func() []quantRun {
		var runs []quantRun
		for j := range q4kSubs {
			runs = append(runs, q4kRun(j))
		}
		return runs
	}(),
}

// scaleOffsets are the byte offsets of the float16 scale in a block.
var scaleOffsets = map[wformat.Format]int{wformat.Q8_0: wformat.Q8_0Scale, wformat.Q4_0: wformat.Q4_0Scale}

// blockScale is the scale of the block at byte base of weight b, as f32.
func blockScale(b *Buffer, base Expr) Expr {
	return LdF16(b, IAdd(base, I(scaleOffsets[b.Format])))
}

// blockQuant is weight j of the block at byte base of weight b (vec: the
// eight weights j..j+7, j a multiple of 8) without its scale: the quant,
// as f32 or f32x8, less the format's zero point.
func blockQuant(b *Buffer, base Expr, j int, vec bool) Expr {
	for _, r := range quantRuns[b.Format] {
		if j < r.lo || j >= r.hi {
			continue
		}
		if vec && (j-r.lo)%8 != 0 {
			panic(fmt.Sprintf("a vector of %s quants at weight %d straddles a run", b.Format, j))
		}
		var q Expr = &LoadQ{Buf: b, Off: IAdd(base, I(r.off+j-r.lo)), Part: r.part, Vec: vec}
		switch {
		case r.zero != 0 && vec:
			q = FSub(q, &Broadcast{X: F(r.zero)})
		case r.zero != 0:
			q = FSub(q, F(r.zero))
		}
		return q
	}
	panic(fmt.Sprintf("no quant %d in a %s block", j, b.Format))
}

// blockRows checks that w is a whole block-format weight and returns its
// format and the bytes of one stored row.
func blockRows(w view) (wformat.Format, int, error) {
	f := w.buf.Format
	if quantRuns[f] == nil {
		return f, 0, fmt.Errorf("no lowering for %s weights", f)
	}
	if !isInt(w.off, 0) || len(w.shape) != 2 {
		return f, 0, fmt.Errorf("a %s weight is read whole, not through a view", f)
	}
	return f, f.RowBytes(w.shape[1]), nil
}

// linearBlocks lowers y = x·wᵀ (+ bias, + a folded residual) for a
// block-format weight: output columns split across threads; for each, and each token
// of the chunk (the weight row stays in L1 while a prefill chunk reads
// it), Σ over blocks of scale × Σ (quant - zero)·x, eight quants at a
// time. A last
// partial block (rows not a multiple of 32 are padded when quantised)
// reads only the real columns of x.
func (l *lowerer) linearBlocks(x, w, out view, extra, bias *view) error {
	f, rb, err := blockRows(w)
	if err != nil {
		return err
	}
	rows, in, outN := x.shape[0], x.shape[1], w.shape[0]
	be, bb := f.BlockElems(), f.BlockBytes()
	full, rem := in/be, in%be
	col := l.newVar("n", Int)
	sv := l.newVar("s", Int)
	var row Expr = sv
	if rows == 1 {
		row = I(0)
	}
	wrow := IMul(col, I(rb))
	xrow := x.at(row, I(0))
	acc := l.newVar("acc", F32x8)
	y := l.newVar("y", F32)
	stmts := []Stmt{&Decl{Var: acc, Init: &Broadcast{X: F(0)}}}
	if full > 0 {
		b := l.newVar("b", Int)
		base := IAdd(wrow, IMul(b, I(bb)))
		xo := IAdd(xrow, IMul(b, I(be)))
		var p Expr
		for g := 0; g < be; g += 8 {
			q := blockQuant(w.buf, base, g, true)
			xv := Ld8(x.buf, IAdd(xo, I(g)))
			if p == nil {
				p = FMul(q, xv)
			} else {
				p = &FMA{A: q, B: xv, C: p}
			}
		}
		stmts = append(stmts, &For{Var: b, Lo: I(0), Hi: I(full), Step: 1, Body: []Stmt{
			&Assign{Var: acc, Val: &FMA{A: &Broadcast{X: blockScale(w.buf, base)}, B: p, C: acc}},
		}})
	}
	stmts = append(stmts, &Decl{Var: y, Init: &HSum{X: acc}})
	if rem > 0 {
		base := IAdd(wrow, I(full*bb))
		xo := IAdd(xrow, I(full*be))
		t := l.newVar("t", F32)
		vec := rem / 8 * 8
		if vec > 0 {
			pt := l.newVar("pt", F32x8)
			stmts = append(stmts, &Decl{Var: pt, Init: &Broadcast{X: F(0)}})
			for g := 0; g < vec; g += 8 {
				stmts = append(stmts, &Assign{Var: pt, Val: &FMA{A: blockQuant(w.buf, base, g, true), B: Ld8(x.buf, IAdd(xo, I(g))), C: pt}})
			}
			stmts = append(stmts, &Decl{Var: t, Init: &HSum{X: pt}})
		} else {
			stmts = append(stmts, &Decl{Var: t, Init: F(0)})
		}
		for j := vec; j < rem; j++ {
			stmts = append(stmts, &Assign{Var: t, Val: &FMA{A: blockQuant(w.buf, base, j, false), B: Ld(x.buf, IAdd(xo, I(j))), C: t}})
		}
		stmts = append(stmts, &Assign{Var: y, Val: &FMA{A: blockScale(w.buf, base), B: t, C: y}})
	}
	l.outputColumnPhase(stmts, y, out, extra, bias, row, col, sv, rows, outN, in)
	return nil
}

// embeddingBlocks copies each token's row of a block-format table,
// dequantised: scale × (quant - zero), element by element, one loop per
// run of the block's quants.
func (l *lowerer) embeddingBlocks(out, w view) error {
	f, rb, err := blockRows(w)
	if err != nil {
		return err
	}
	rows, dim := out.shape[0], out.shape[1]
	be, bb := f.BlockElems(), f.BlockBytes()
	full, rem := dim/be, dim%be
	s := l.newVar("s", Int)
	id := l.newVar("id", Int)
	body := []Stmt{&Decl{Var: id, Init: Ld(l.tokens, s)}}
	block := func(b Expr, n int) []Stmt {
		base := IAdd(IMul(id, I(rb)), IMul(b, I(bb)))
		d := l.newVar("d", F32)
		stmts := []Stmt{&Decl{Var: d, Init: blockScale(w.buf, base)}}
		for _, r := range quantRuns[f] {
			if r.lo >= n {
				break
			}
			j := l.newVar("j", Int)
			var q Expr = &LoadQ{Buf: w.buf, Off: IAdd(IAdd(base, I(r.off-r.lo)), j), Part: r.part}
			if r.zero != 0 {
				q = FSub(q, F(r.zero))
			}
			stmts = append(stmts, &For{Var: j, Lo: I(r.lo), Hi: I(min(r.hi, n)), Step: 1, Body: []Stmt{
				&Store{Buf: out.buf, Index: IAdd(out.at(s, IMul(b, I(be))), j), Val: FMul(d, q)},
			}})
		}
		return stmts
	}
	if full > 0 {
		b := l.newVar("b", Int)
		body = append(body, &For{Var: b, Lo: I(0), Hi: I(full), Step: 1, Body: block(b, be)})
	}
	if rem > 0 {
		body = append(body, block(I(full), rem)...)
	}
	l.serial(&For{Var: s, Lo: I(0), Hi: l.realRows(rows), Step: 1, Body: body})
	return nil
}
