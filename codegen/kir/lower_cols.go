package kir

import "github.com/llmc-dev/llmc/wformat"

// This file lowers Q4_0 and Q8_0 linears whose weight rows are interleaved
// in groups of sixteen (wformat.Interleave, which the loader applies):
// each output column of a group is one 32-bit lane, so a block's dot
// products for the sixteen columns are one vector (DotCols: eight
// vpdpbusd of the weights' quants with the input's dwords broadcast), and
// its sixteen scales one vector too (ColScales), with no horizontal sum
// and no shuffle of scales. The VNNI tiles of linearQ8Int keep one
// column's block in a vector instead, and join two blocks' scales with a
// shuffle a row; on the stories110M shape's prefill a C model of the two
// ran 0.28 and 0.09 ns a row and block (AMD EPYC Zen 5). Measured, 2
// threads, one interleaved run of 3 to 7: stories110M shape Q4_0 prefill
// 1482 -> 3032 tok/s, Q8_0 1874 -> 2759, decode 356 -> 468 and 365 ->
// 398; TinyLlama Q4_0 prefill 213 -> 456, Q8_0 201 -> 437, its decode
// the same (bound by the bytes).

// colsLinear reports whether a linear of w can be lowered by linearCols:
// Q4_0 or Q8_0 with VNNI and sixteen lanes, whole groups of output columns stored
// contiguously, and a weight no embedding reads (its rows are moved for
// every reader).
func (l *lowerer) colsLinear(w, out view, extra, bias *view) bool {
	return w.buf.Format.Interleaves() && l.opts.VNNI && l.opts.Wide && w.buf.Kind == Weight &&
		w.shape[0]%wformat.Group == 0 && !l.embedded[w.buf.Index] && out.strides[1] == 1 &&
		(extra == nil || extra.strides[1] == 1) && (bias == nil || bias.strides[0] == 1)
}

// linearCols lowers y = x·wᵀ (+ bias, + a folded residual) for a Q4_0 or
// Q8_0 weight read with interleaved rows: the real rows of x are quantised
// into int8 blocks of 32 (as linearQ8Int does), and a phase parallel over
// groups of sixteen output columns sums, for each row and block,
// d_w·(d_x·Σq_w·q_x − z·d_x·Σq_x) into one f32x16 of the group's
// columns, in tiles of eight rows (the rest one at a time), each block's
// weights loaded once for the tile.
func (l *lowerer) linearCols(x, w, out view, extra, bias *view) error {
	if _, _, err := blockRows(w); err != nil {
		return err
	}
	l.prog.Weights[w.buf.Index].Interleave = wformat.Group
	const group = wformat.Group
	f := w.buf.Format
	gb, zero := f.GroupBytes(), float32(wformat.Q4_0Zero)
	if f == wformat.Q8_0 {
		zero = 128 // DotCols' quants are the int8s plus 128
	}
	rows, in, outN := x.shape[0], x.shape[1], w.shape[0]
	nb := f.Blocks(in)
	qOff, sOff, sumOff, real := l.quantiseInput(x, nb, true, false)

	g := l.newVar("g", Int)
	col := IMul(g, I(group))
	tile := func(row Expr, n int) []Stmt {
		var body []Stmt
		accs := make([]*Var, n)
		for r := range accs {
			accs[r] = l.newVar("acc", F32x16)
			body = append(body, &Decl{Var: accs[r], Init: Zeros(16)})
		}
		b := l.newVar("b", Int)
		base := IAdd(IMul(g, I(nb*gb)), IMul(b, I(gb)))
		sw := l.newVar("sw", F32x16)
		step := []Stmt{
			&Prefetch{Buf: w.buf, Off: IAdd(base, I(intDotPrefetch))},
			&Decl{Var: sw, Init: &ColScales{W: w.buf, Off: IAdd(base, I(wformat.GroupScales))}},
		}
		for r, acc := range accs {
			blk := IAdd(IMul(IAdd(row, I(r)), I(nb)), b)
			dot := &DotCols{W: w.buf, WOff: IAdd(base, I(wformat.GroupQuants)), X: l.scratch, XOff: IAdd(I(4*qOff), IMul(blk, I(DotI8Len)))}
			// d_x·dot − z·(d_x·Σq_x), the block's sums scaled by d_w.
			e := &FMA{A: &Broadcast{X: Ld(l.scratch, IAdd(I(sumOff), blk)), Wide: true}, B: &Broadcast{X: F(-zero), Wide: true},
				C: FMul(dot, &Broadcast{X: Ld(l.scratch, IAdd(I(sOff), blk)), Wide: true})}
			step = append(step, &Assign{Var: acc, Val: &FMA{A: sw, B: e, C: acc}})
		}
		body = append(body, &For{Var: b, Lo: I(0), Hi: I(nb), Step: 1, Body: step})
		for r, acc := range accs {
			s := IAdd(row, I(r))
			val := Expr(acc)
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
	work := IMul(I(outN*in), real)
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
	groups := func(inner []Stmt) *For {
		return &For{Var: g, Lo: IMul(blk, I(groupBlock)), Hi: IMin(IMul(IAdd(blk, I(1)), I(groupBlock)), I(ngroups)), Step: 1, Body: inner}
	}
	sv, s1 := l.newVar("s", Int), l.newVar("s", Int)
	tiles := IMul(IDiv(real, I(t)), I(t))
	body := []Stmt{
		&For{Var: sv, Lo: I(0), Hi: tiles, Step: t, Body: []Stmt{groups(tile(sv, t))}},
		groups([]Stmt{&For{Var: s1, Lo: tiles, Hi: real, Step: 1, Body: tile(s1, 1)}}),
	}
	l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: blk, N: I((ngroups + groupBlock - 1) / groupBlock), Work: work, Grain: 1, Body: body})
	return nil
}

// groupBlock is how many groups of sixteen columns a prefill phase of
// linearCols takes at a time.
const groupBlock = 4
