package kir

import (
	"fmt"

	"github.com/llmc-dev/llmc/wformat"
)

// This file lowers the ops that read block-format weights (Q8_0): the
// dequantisation is written here, once, as loads of quants and scales
// (LoadQ) and float multiplies, so that every backend only prints it.
// The arithmetic is float: each quant is widened to f32 and multiplied
// by the activations, and a block's sum by its scale. Integer dot
// products (AVX2 vpmaddubsw/vpmaddwd, VNNI vpdpbusd, with activations
// quantised per block) are a later step.

// blockRows checks that w is a whole block-format weight and returns its
// format and the bytes of one stored row.
func blockRows(w view) (wformat.Format, int, error) {
	f := w.buf.Format
	if f != wformat.Q8_0 {
		return f, 0, fmt.Errorf("no lowering for %s weights", f)
	}
	if !isInt(w.off, 0) || len(w.shape) != 2 {
		return f, 0, fmt.Errorf("a %s weight is read whole, not through a view", f)
	}
	return f, f.RowBytes(w.shape[1]), nil
}

// linearBlocks lowers y = x·wᵀ (+ bias, + a folded residual) for a Q8_0
// weight: output columns split across threads; for each, and each token
// of the chunk (the weight row stays in L1 while a prefill chunk reads
// it), Σ over blocks of scale × Σ quant·x, eight quants at a time. A last
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
			q := LdI8x8(w.buf, IAdd(base, I(wformat.Q8_0Quants+g)))
			xv := Ld8(x.buf, IAdd(xo, I(g)))
			if p == nil {
				p = FMul(q, xv)
			} else {
				p = &FMA{A: q, B: xv, C: p}
			}
		}
		stmts = append(stmts, &For{Var: b, Lo: I(0), Hi: I(full), Step: 1, Body: []Stmt{
			&Assign{Var: acc, Val: &FMA{A: &Broadcast{X: LdF16(w.buf, IAdd(base, I(wformat.Q8_0Scale)))}, B: p, C: acc}},
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
				stmts = append(stmts, &Assign{Var: pt, Val: &FMA{A: LdI8x8(w.buf, IAdd(base, I(wformat.Q8_0Quants+g))), B: Ld8(x.buf, IAdd(xo, I(g))), C: pt}})
			}
			stmts = append(stmts, &Decl{Var: t, Init: &HSum{X: pt}})
		} else {
			stmts = append(stmts, &Decl{Var: t, Init: F(0)})
		}
		for j := vec; j < rem; j++ {
			stmts = append(stmts, &Assign{Var: t, Val: &FMA{A: LdI8(w.buf, IAdd(base, I(wformat.Q8_0Quants+j))), B: Ld(x.buf, IAdd(xo, I(j))), C: t}})
		}
		stmts = append(stmts, &Assign{Var: y, Val: &FMA{A: LdF16(w.buf, IAdd(base, I(wformat.Q8_0Scale))), B: t, C: y}})
	}
	l.outputColumnPhase(stmts, y, out, extra, bias, row, col, sv, rows, outN, in)
	return nil
}

// embeddingBlocks copies each token's row of a Q8_0 table, dequantised:
// scale × quant, element by element.
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
		j := l.newVar("j", Int)
		return []Stmt{
			&Decl{Var: d, Init: LdF16(w.buf, IAdd(base, I(wformat.Q8_0Scale)))},
			&For{Var: j, Lo: I(0), Hi: I(n), Step: 1, Body: []Stmt{
				&Store{Buf: out.buf, Index: IAdd(out.at(s, IMul(b, I(be))), j), Val: FMul(d, LdI8(w.buf, IAdd(IAdd(base, I(wformat.Q8_0Quants)), j)))},
			}},
		}
	}
	if full > 0 {
		b := l.newVar("b", Int)
		body = append(body, &For{Var: b, Lo: I(0), Hi: I(full), Step: 1, Body: block(b, be)})
	}
	if rem > 0 {
		body = append(body, block(I(full), rem)...)
	}
	l.serial(&For{Var: s, Lo: I(0), Hi: I(rows), Step: 1, Body: body})
	return nil
}
