package kir

import "github.com/llmc-dev/llmc/wformat"

// This file lowers Q4_0, Q8_0 and Q4_K linears whose weight rows are
// interleaved in groups of sixteen (wformat.Interleave, which the loader
// applies): each output column of a group is one 32-bit lane, so a
// block's dot products for the sixteen columns are one vector (DotCols:
// eight vpdpbusd of the weights' quants with the input's dwords
// broadcast), and its sixteen scales one vector too (ColScales; a Q4_K
// sub-block's 6-bit scales and mins from ColBits), with no horizontal sum
// and no shuffle of scales. The VNNI tiles of linearQ8Int keep one
// column's block in a vector instead, and join two blocks' scales with a
// shuffle a row; on the stories110M shape's prefill a C model of the two
// ran 0.28 and 0.09 ns a row and block (AMD EPYC Zen 5). Measured, 2
// threads, one interleaved run of 3 to 7: stories110M shape Q4_0 prefill
// 1482 -> 3032 tok/s, Q8_0 1874 -> 2759, decode 356 -> 468 and 365 ->
// 398; TinyLlama Q4_0 prefill 213 -> 456, Q8_0 201 -> 437, its decode
// the same (bound by the bytes). Q4_K, which had kept linearQ8Int's
// one-column tiles of eight-lane dots (same machine, one interleaved run
// of 5 to 9): stories110M shape prefill 871–923 -> 2378–2765, decode
// 386–400 -> 497–499; TinyLlama prefill 98 -> 312, decode the same
// (about 50, three quarters of the bandwidth either way).

// colsLinear reports whether a linear of w can be lowered by linearCols:
// Q4_0, Q8_0 or Q4_K with VNNI and sixteen lanes, whole groups of output
// columns stored contiguously, and a weight no embedding reads (its rows
// are moved for every reader).
func (l *lowerer) colsLinear(w, out view, extra, bias *view) bool {
	return w.buf.Format.Interleaves() && l.opts.VNNI && l.opts.Wide && w.buf.Kind == Weight &&
		w.shape[0]%wformat.Group == 0 && !l.embedded[w.buf.Index] && out.strides[1] == 1 &&
		(extra == nil || extra.strides[1] == 1) && (bias == nil || bias.strides[0] == 1)
}

// linearCols lowers y = x·wᵀ (+ bias, + a folded residual) for a Q4_0,
// Q8_0 or Q4_K weight read with interleaved rows: the real rows of x are
// quantised into int8 blocks of 32 (as linearQ8Int does), and a phase
// parallel over groups of sixteen output columns sums, for each row and
// block of 32, the group's columns in one f32x16 (colBlocks), in tiles of
// eight rows (the rest one at a time), each block's weights and scales
// loaded once for the tile.
func (l *lowerer) linearCols(x, w, out view, extra, bias *view) error {
	_, rb, err := blockRows(w)
	if err != nil {
		return err
	}
	l.prog.Weights[w.buf.Index].Interleave = wformat.Group
	const group = wformat.Group
	rows, in, outN := x.shape[0], x.shape[1], w.shape[0]
	nb := (in + DotI8Len - 1) / DotI8Len
	q := colsInput{nb: nb}
	q.qOff, q.sOff, q.sumOff, q.real = l.quantiseInput(x, nb, true, false)

	g := l.newVar("g", Int)
	col := IMul(g, I(group))
	tile := func(row Expr, n int) []Stmt {
		var body []Stmt
		// accs[r]: row r's sums; mins[r], for Q4_K, its Σ dmin·m_j·d_x·Σq_x.
		accs, mins := make([]*Var, n), make([]*Var, n)
		for r := range accs {
			accs[r] = l.newVar("acc", F32x16)
			body = append(body, &Decl{Var: accs[r], Init: Zeros(16)})
			if w.buf.Format == wformat.Q4_K {
				mins[r] = l.newVar("accm", F32x16)
				body = append(body, &Decl{Var: mins[r], Init: Zeros(16)})
			}
		}
		body = append(body, l.colBlocks(w.buf, IMul(g, I(group*rb)), in, q, row, accs, mins)...)
		for r, acc := range accs {
			s := IAdd(row, I(r))
			val := Expr(acc)
			if mins[r] != nil {
				val = FSub(val, mins[r])
			}
			if bias != nil {
				val = FAdd(val, LdV(bias.buf, bias.at(col), 16))
			}
			if extra != nil {
				val = FAdd(LdV(extra.buf, extra.at(s, col), 16), val)
			}
			body = append(body, &Store{Buf: out.buf, Index: out.at(s, col), Val: val})
		}
		return body
	}
	work := IMul(I(outN*in), q.real)
	if rows == 1 {
		l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: g, N: I(outN / group), Work: work, Grain: 1, Body: tile(I(0), 1)})
		return nil
	}
	t := rowTile(rows)
	if rows%8 == 0 {
		t = 8
	}
	// Blocks of groupBlock groups: every tile of rows meets their weights
	// while they are in cache (as linearQ8Int's colBlock).
	ngroups := outN / group
	blk := l.newVar("gb", Int)
	groups := func(inner []Stmt) []Stmt {
		return []Stmt{&For{Var: g, Lo: IMul(blk, I(groupBlock)), Hi: IMin(IMul(IAdd(blk, I(1)), I(groupBlock)), I(ngroups)), Step: 1, Body: inner}}
	}
	sv, s1 := l.newVar("s", Int), l.newVar("s", Int)
	body := rowTiles(sv, s1, q.real, t, tile, groups)
	l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: blk, N: I((ngroups + groupBlock - 1) / groupBlock), Work: work, Grain: 1, Body: body})
	return nil
}

// colsInput is where quantiseInput put the input of a linearCols: nb
// blocks of 32 a row, their quants, scales d_x and sums d_x·Σq_x, for
// real rows.
type colsInput struct {
	nb                 int
	qOff, sOff, sumOff int
	real               Expr
}

// block is the index of row's block b among the input's blocks.
func (q colsInput) block(row Expr, b Expr) Expr { return IAdd(IMul(row, I(q.nb)), b) }

// colBlocks adds to accs[r] the dots of input row row+r with the group
// of interleaved rows at byte base of w (in columns), over the row's
// blocks. Q4_0 and Q8_0: each block of 32 adds d_w·(d_x·Σq_w·q_x −
// z·d_x·Σq_x), z the zero point DotCols leaves on. Q4_K: each real
// sub-block j of each super-block adds d·sc_j·d_x·Σq_w·q_x to accs[r] and
// dmin·m_j·d_x·Σq_x to mins[r].
func (l *lowerer) colBlocks(w *Buffer, base Expr, in int, q colsInput, row Expr, accs, mins []*Var) []Stmt {
	f := w.Format
	xAt := func(blk Expr) Expr { return IAdd(I(4*q.qOff), IMul(blk, I(DotI8Len))) }
	bcast := func(off int, blk Expr) Expr { return &Broadcast{X: Ld(l.scratch, IAdd(I(off), blk)), Wide: true} }
	if f != wformat.Q4_K {
		zero := float32(wformat.Q4_0Zero)
		if f == wformat.Q8_0 {
			zero = 128 // DotCols' quants are the int8s plus 128
		}
		gb := f.GroupBytes()
		b := l.newVar("b", Int)
		at := IAdd(base, IMul(b, I(gb)))
		sw := l.newVar("sw", F32x16)
		step := []Stmt{
			&Prefetch{Buf: w, Off: IAdd(at, I(intDotPrefetch))},
			&Decl{Var: sw, Init: &ColScales{W: w, Off: IAdd(at, I(wformat.GroupScales))}},
		}
		for r, acc := range accs {
			blk := q.block(IAdd(row, I(r)), b)
			dot := &DotCols{W: w, WOff: IAdd(at, I(wformat.GroupQuants)), X: l.scratch, XOff: xAt(blk)}
			// d_x·dot − z·(d_x·Σq_x), the block's sums scaled by d_w.
			e := &FMA{A: bcast(q.sumOff, blk), B: &Broadcast{X: F(-zero), Wide: true}, C: FMul(dot, bcast(q.sOff, blk))}
			step = append(step, &Assign{Var: acc, Val: &FMA{A: sw, B: e, C: acc}})
		}
		return []Stmt{&For{Var: b, Lo: I(0), Hi: I(q.nb), Step: 1, Body: step}}
	}
	gb, be := wformat.Q4_K.GroupBytes(), wformat.Q4_K.BlockElems()
	// superBlock writes the statements of Q4_K super-block sb, n real
	// columns, at byte at: one prefetch a sub-block, an eighth of the
	// group block ahead.
	superBlock := func(sb, at Expr, n int) []Stmt {
		d, dmin := l.newVar("d", F32x16), l.newVar("dmin", F32x16)
		stmts := []Stmt{
			&Decl{Var: d, Init: &ColScales{W: w, Off: IAdd(at, I(wformat.Q4_KGroupScale))}},
			&Decl{Var: dmin, Init: &ColScales{W: w, Off: IAdd(at, I(wformat.Q4_KGroupMin))}},
		}
		for j := 0; j < q4kSubs && 32*j < n; j++ {
			sc, m := q4kColScaleMin(w, IAdd(at, I(wformat.Q4_KGroupScales)), j)
			scale, zero := l.newVar("ds", F32x16), l.newVar("dm", F32x16)
			stmts = append(stmts,
				&Prefetch{Buf: w, Off: IAdd(at, I(intDotPrefetch+gb*j/q4kSubs))},
				&Decl{Var: scale, Init: FMul(d, sc)},
				&Decl{Var: zero, Init: FMul(dmin, m)})
			for r := range accs {
				blk := q.block(IAdd(row, I(r)), IAdd(IMul(sb, I(q4kSubs)), I(j)))
				dot := &DotCols{W: w, WOff: IAdd(at, I(wformat.Q4_KGroupQuants+512*(j/2))), X: l.scratch, XOff: xAt(blk), High: j%2 == 1}
				stmts = append(stmts,
					&Assign{Var: accs[r], Val: &FMA{A: scale, B: FMul(dot, bcast(q.sOff, blk)), C: accs[r]}},
					&Assign{Var: mins[r], Val: &FMA{A: zero, B: bcast(q.sumOff, blk), C: mins[r]}})
			}
		}
		return stmts
	}
	var stmts []Stmt
	if full := in / be; full > 0 {
		sb := l.newVar("b", Int)
		stmts = append(stmts, &For{Var: sb, Lo: I(0), Hi: I(full), Step: 1, Body: superBlock(sb, IAdd(base, IMul(sb, I(gb))), be)})
	}
	if rem := in % be; rem > 0 {
		stmts = append(stmts, superBlock(I(in/be), IAdd(base, I(in/be*gb)), rem)...)
	}
	return stmts
}

// q4kColScaleMin is sub-block j's 6-bit scales and mins of a Q4_K group
// block, lane c row c's, as f32x16, from its interleaved scale bytes at
// byte at (byte k of the twelve at at+16k): q4kUnpack with ColBits for
// the bit fields and 16·top + low, exact in f32, for the joins.
func q4kColScaleMin(w *Buffer, at Expr, j int) (sc, m Expr) {
	bits := func(k, shift, n int) Expr {
		return &ColBits{W: w, Off: IAdd(at, I(wformat.Group*k)), Shift: shift, Bits: n}
	}
	join := func(top, low Expr) Expr { return &FMA{A: &Broadcast{X: F(16), Wide: true}, B: top, C: low} }
	return q4kUnpack(j, bits, join)
}

// groupBlock is how many groups of sixteen columns a prefill phase of
// linearCols takes at a time.
const groupBlock = 4
