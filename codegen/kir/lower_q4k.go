package kir

import (
	"github.com/llmc-dev/llmc/wformat"
)

// This file lowers the ops that read Q4_K weights (wformat.Q4_K). A Q4_K
// block holds 256 weights in eight sub-blocks of 32; sub-block j has a
// 6-bit scale sc_j and a 6-bit min m_j, packed into twelve bytes, and
// its weight i is d·sc_j·q_i − dmin·m_j, d and dmin the block's two
// float16s and q_i an unsigned nibble. The scales are unpacked here with
// byte loads (LoadQ QU8) and integer arithmetic, so the backends only
// print loads, shifts, masks and conversions, as for the other block
// formats.

// q4kSubs is the number of sub-blocks of a Q4_K block.
const q4kSubs = wformat.Q4_KSubs

// q4kRun is where sub-block j's quants are: the low nibbles (j even) or
// the high nibbles (j odd) of the 32 bytes at Q4_KQuants + 32·(j/2).
func q4kRun(j int) quantRun {
	part := QU4Lo
	if j%2 == 1 {
		part = QU4Hi
	}
	return quantRun{lo: 32 * j, hi: 32*j + 32, off: wformat.Q4_KQuants + 32*(j/2), part: part}
}

// q4kDot is the DotI8 quants of sub-block j.
func q4kDot(j int) DotQuants {
	if j%2 == 1 {
		return DotHigh
	}
	return DotLow
}

// q4kScaleMin is sub-block j's 6-bit scale and min as int expressions,
// from the packed bytes of the block at byte base: for j < 4 the low six
// bits of bytes j and j+4; for j >= 4 the low (scale) or high (min)
// nibble of byte j+4, with the top two bits of byte j-4 (scale) or j
// (min) above it (wformat.Q4_KScaleMin, q4kUnpack).
func q4kScaleMin(b *Buffer, base Expr, j int) (sc, m Expr) {
	u := func(k int) Expr { return &LoadQ{Buf: b, Off: IAdd(base, I(wformat.Q4_KScales+k)), Part: QU8} }
	// Each of Q4_K's fields starts at bit 0 or ends at bit 7: a remainder
	// or a quotient.
	bits := func(k, shift, n int) Expr {
		if shift == 0 {
			return IRem(u(k), I(1<<n))
		}
		return IDiv(u(k), I(1<<shift))
	}
	join := func(top, low Expr) Expr { return IAdd(low, IMul(top, I(16))) }
	return q4kUnpack(j, bits, join)
}

// q4kUnpack is sub-block j's 6-bit scale and min from the bit fields of
// the twelve packed scale bytes (wformat.Q4_KScaleMin's layout): bits(k,
// shift, n) is bits shift..shift+n-1 of byte k, and join(top, low) is
// 16·top + low.
func q4kUnpack(j int, bits func(k, shift, n int) Expr, join func(top, low Expr) Expr) (sc, m Expr) {
	if j < 4 {
		return bits(j, 0, 6), bits(j+4, 0, 6)
	}
	return join(bits(j-4, 6, 2), bits(j+4, 0, 4)), join(bits(j, 6, 2), bits(j+4, 4, 4))
}

// q4kFactors declares sub-block j's scale d·sc_j and min dmin·m_j, as
// f32, given the block's d and dmin.
func (l *lowerer) q4kFactors(b *Buffer, base Expr, j int, d, dmin *Var) (scale, zero *Var, decls []Stmt) {
	sc, m := q4kScaleMin(b, base, j)
	scale, zero = l.newVar("ds", F32), l.newVar("dm", F32)
	return scale, zero, []Stmt{
		&Decl{Var: scale, Init: FMul(d, &ToF32{X: sc})},
		&Decl{Var: zero, Init: FMul(dmin, &ToF32{X: m})},
	}
}

// q4kScales declares a block's d and dmin.
func (l *lowerer) q4kScales(b *Buffer, base Expr) (d, dmin *Var, decls []Stmt) {
	d, dmin = l.newVar("d", F32), l.newVar("dmin", F32)
	return d, dmin, []Stmt{
		&Decl{Var: d, Init: LdF16(b, IAdd(base, I(wformat.Q4_KScale)))},
		&Decl{Var: dmin, Init: LdF16(b, IAdd(base, I(wformat.Q4_KMin)))},
	}
}

// q4kQuant is the quant i (vec: i..i+7, i a multiple of 8) of sub-block
// j of the block at byte base, as f32 or f32x8.
func q4kQuant(b *Buffer, base Expr, j, i int, vec bool) Expr {
	r := q4kRun(j)
	return &LoadQ{Buf: b, Off: IAdd(base, I(r.off+i)), Part: r.part, Vec: vec}
}

// linearQ4K lowers y = x·wᵀ (+ bias, + a folded residual) for a Q4_K
// weight on the float path: for each output column and token, over the
// real sub-blocks of each block, Σ_j d·sc_j·Σ q·x − dmin·m_j·Σ x, eight
// weights at a time into two f32x8 accumulators (dots, and mins times
// input sums), finished by one HSum; a last partial sub-block reads only
// the real columns of x, its last ones one by one.
func (l *lowerer) linearQ4K(x, w, out view, extra, bias *view) error {
	_, rb, err := blockRows(w)
	if err != nil {
		return err
	}
	rows, in, outN := x.shape[0], x.shape[1], w.shape[0]
	bb := wformat.Q4_K.BlockBytes()
	col, sv := l.newVar("n", Int), l.newVar("s", Int)
	var row Expr = sv
	if rows == 1 {
		row = I(0)
	}
	xrow := x.at(row, I(0))
	acc, accm := l.newVar("acc", F32x8), l.newVar("accm", F32x8)
	y := l.newVar("y", F32)
	stmts := []Stmt{&Decl{Var: acc, Init: &Broadcast{X: F(0)}}, &Decl{Var: accm, Init: &Broadcast{X: F(0)}}}
	var tail []Stmt // the last partial sub-block's columns past its vectors
	// block writes the statements for the first n real columns of the
	// block at index b of the row.
	block := func(b Expr, n int) []Stmt {
		base := IAdd(IMul(col, I(rb)), IMul(b, I(bb)))
		xo := IAdd(xrow, IMul(b, I(wformat.Q4_K.BlockElems())))
		d, dmin, body := l.q4kScales(w.buf, base)
		for j := 0; j < q4kSubs && 32*j < n; j++ {
			scale, zero, decls := l.q4kFactors(w.buf, base, j, d, dmin)
			body = append(body, decls...)
			cols := min(32, n-32*j)
			var p, sx Expr
			for g := 0; g+8 <= cols; g += 8 {
				xv := Ld8(x.buf, IAdd(xo, I(32*j+g)))
				q := q4kQuant(w.buf, base, j, g, true)
				if p == nil {
					p, sx = FMul(q, xv), xv
				} else {
					p, sx = &FMA{A: q, B: xv, C: p}, FAdd(sx, xv)
				}
			}
			if p != nil {
				body = append(body,
					&Assign{Var: acc, Val: &FMA{A: &Broadcast{X: scale}, B: p, C: acc}},
					&Assign{Var: accm, Val: &FMA{A: &Broadcast{X: zero}, B: sx, C: accm}})
			}
			for i := cols / 8 * 8; i < cols; i++ {
				xs := Ld(x.buf, IAdd(xo, I(32*j+i)))
				tail = append(tail, &Assign{Var: y, Val: &FMA{A: FMul(scale, q4kQuant(w.buf, base, j, i, false)), B: xs, C: y}},
					&Assign{Var: y, Val: FSub(y, FMul(zero, xs))})
			}
		}
		return body
	}
	be := wformat.Q4_K.BlockElems()
	full, rem := in/be, in%be
	if full > 0 {
		b := l.newVar("b", Int)
		stmts = append(stmts, &For{Var: b, Lo: I(0), Hi: I(full), Step: 1, Body: block(b, be)})
	}
	if rem > 0 {
		stmts = append(stmts, block(I(full), rem)...)
	}
	// The scalar tail uses the partial block's declarations and y, so it
	// comes after both.
	stmts = append(stmts, &Decl{Var: y, Init: &HSum{X: FSub(acc, accm)}})
	stmts = append(stmts, tail...)
	l.outputColumnPhase(stmts, y, out, extra, bias, row, col, sv, rows, outN, in)
	return nil
}

// embeddingQ4K copies each token's row of a Q4_K table, dequantised:
// d·sc_j·q − dmin·m_j, one loop per real sub-block.
func (l *lowerer) embeddingQ4K(out, w view) error {
	_, rb, err := blockRows(w)
	if err != nil {
		return err
	}
	rows, dim := out.shape[0], out.shape[1]
	be, bb := wformat.Q4_K.BlockElems(), wformat.Q4_K.BlockBytes()
	s, id := l.newVar("s", Int), l.newVar("id", Int)
	body := []Stmt{&Decl{Var: id, Init: Ld(l.tokens, s)}}
	block := func(b Expr, n int) []Stmt {
		base := IAdd(IMul(id, I(rb)), IMul(b, I(bb)))
		d, dmin, stmts := l.q4kScales(w.buf, base)
		for j := 0; j < q4kSubs && 32*j < n; j++ {
			scale, zero, decls := l.q4kFactors(w.buf, base, j, d, dmin)
			stmts = append(stmts, decls...)
			r := q4kRun(j)
			i := l.newVar("i", Int)
			q := &LoadQ{Buf: w.buf, Off: IAdd(IAdd(base, I(r.off)), i), Part: r.part}
			stmts = append(stmts, &For{Var: i, Lo: I(0), Hi: I(min(32, n-32*j)), Step: 1, Body: []Stmt{
				&Store{Buf: out.buf, Index: IAdd(out.at(s, IAdd(IMul(b, I(be)), I(32*j))), i), Val: FSub(FMul(scale, q), zero)},
			}})
		}
		return stmts
	}
	if full := dim / be; full > 0 {
		b := l.newVar("b", Int)
		body = append(body, &For{Var: b, Lo: I(0), Hi: I(full), Step: 1, Body: block(b, be)})
	}
	if rem := dim % be; rem > 0 {
		body = append(body, block(I(dim/be), rem)...)
	}
	l.serial(&For{Var: s, Lo: I(0), Hi: l.realRows(rows), Step: 1, Body: body})
	return nil
}
