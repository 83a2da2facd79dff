package kir

import (
	"fmt"

	"github.com/llmc-dev/llmc/wformat"
)

// This file lowers Q8_0 and Q4_0 linears to integer dot products, as llama.cpp's
// Q8_0 kernels do: the input rows are quantised once per call into int8
// blocks of 32 with one f32 scale each (x ≈ d_x·q_x, d_x = max|x|/127),
// written to scratch by StoreI8, and each output is
// Σ_blocks d_w·d_x·(Σ_32 q_w·q_x), the inner sum in int32 (DotI8). A
// backend prints DotI8 in the form its CPU has (VNNI, AVX2, portable);
// the arithmetic here is the same for all of them.

// intDotChains is how many accumulators each output column sums its
// blocks into (block b into chain b mod chains), so that the FMAs of
// consecutive blocks do not wait for each other: two took 7.8 -> 7.2 ms
// of CPU a decode token (same machine and shape), four no less.
func intDotChains(nb int) int { return min(2, nb) }

// intDotPrefetch is how far ahead of the block it reads (in bytes) the dot
// loop prefetches its weight rows: about two and a half rows of 768, past
// what the hardware prefetcher has asked for. stories110M shape, decode, 2
// threads, 5 runs interleaved: 156 -> 168 tok/s (the same at 4096; 1024,
// tried on a one-chain kernel, did nothing).
const intDotPrefetch = 2048

// scaledDot is a block's dot product times its input's scale dx, a scale
// the tile's rows do not share: the lanes times dx broadcast from memory
// (AVX-512's embedded broadcast, or a broadcast load: no shuffle), which
// leaves the weight's scale, shared by the rows, to one register
// broadcast a block. Multiplying the lanes by d_w·d_x instead (a scalar
// multiply and a register broadcast for every row) took 687 -> 847 tok/s
// of prefill (stories110M shape, Q8_0, 128 tokens, AMD EPYC Zen 4, median
// of 7 interleaved runs; Q4_K 800 -> 831, Q4_0 the same), decode the same.
// Two output columns a tile, each input block feeding both, did not pay
// (Q8_0 847 -> 854, Q4_0 921 -> 870, Q4_K 831 -> 644).
func scaledDot(dot, dx Expr) Expr { return FMul(dot, &Broadcast{X: dx}) }

// sumTree adds xs pairwise: ((x0+x1)+(x2+x3))...
func sumTree(xs []*Var) Expr {
	es := make([]Expr, len(xs))
	for i, x := range xs {
		es[i] = x
	}
	for len(es) > 1 {
		var next []Expr
		for i := 0; i < len(es); i += 2 {
			if i+1 < len(es) {
				next = append(next, FAdd(es[i], es[i+1]))
			} else {
				next = append(next, es[i])
			}
		}
		es = next
	}
	return es[0]
}

// linearQ8Int lowers y = x·wᵀ (+ bias, + a folded residual) for a Q8_0
// or Q4_0 weight with integer dot products (a Q4_0 block's nibbles are
// multiplied unsigned, DotI8.Nibbles, and its zero point taken off per
// block as 8·d_w·d_x·Σq_x): a serial phase quantises the real
// rows of x into scratch, blocks of 32 quants then one scale per block
// (a last partial block padded with zeros, as the weight's rows are when
// quantised), and a phase parallel over groups of output columns sums
// each block's DotI8 lanes times d_w·d_x into one f32x8 per column,
// finished by one HSum. With Options.VNNI, a step of several rows is
// lowered for vpdpbusd instead (see vnni below): unsigned Q8_0 quants,
// zero points and d_w·d_x eight blocks a multiply, tiles of eight rows
// and columns in blocks of colBlock.
func (l *lowerer) linearQ8Int(x, w, out view, extra, bias *view) error {
	f, rb, err := blockRows(w)
	if err != nil {
		return err
	}
	quants, dq := wformat.Q8_0Quants, DotInt8
	switch f {
	case wformat.Q8_0:
	case wformat.Q4_0:
		quants, dq = wformat.Q4_0Quants, DotQ4_0
	case wformat.Q4_K:
		dq = DotLow // and DotHigh: see q4kDot
	default:
		return fmt.Errorf("integer dot products read q8_0, q4_0 or q4_k weights, not %s", f)
	}
	// vnni: a Q8_0 or Q4_0 dot multiplies unsigned weight bytes (Q8_0's
	// plus 128, DotUInt8) by the signed input, as vpdpbusd does, and the
	// zero point z (128 or 8) comes off each row once, as z·Σ_b d_w·d_x·Σq_x
	// summed eight blocks a multiply; a tile of several rows multiplies
	// d_w·d_x eight blocks at a time too, into a local table the dots'
	// FMAs broadcast from.
	//
	// Decode (one row) keeps the signed dots: there the weights' bytes
	// bound it, and the unsigned form measured slower (stories110M shape,
	// AMD EPYC Zen 4, 2 threads, 7 interleaved runs: Q8_0 228 -> 211 tok/s,
	// Q4_0 346 -> 327). So do the rows a step has past its whole tiles,
	// one at a time (a batched decode step of four slots, two of them
	// busy, took 0.76x the time unsigned).
	//
	// Except Q4_0's with sixteen lanes (Options.Wide) and an even number
	// of blocks, whose single rows take the unsigned form too, in pairs of
	// blocks (DotI8.Pair): its decode is bound by the instructions that
	// unpack the nibbles, not by the bytes (AMD EPYC Zen 5, stories110M
	// shape, 2 threads, 9 interleaved runs: 478 -> 555 tok/s; Q8_0's, at
	// 85% of the bandwidth, 359 -> 350).
	nibbles := dq.Nibbles()
	rows, in, outN := x.shape[0], x.shape[1], w.shape[0]
	be, bb := f.BlockElems(), f.BlockBytes()
	if be%DotI8Len != 0 {
		return fmt.Errorf("a %s block has %d quants, not a multiple of the %d doti8 multiplies", f, be, DotI8Len)
	}
	// nb counts the row's blocks of 32 (Q4_K's sub-blocks), real columns
	// only: the activations are quantised in blocks of 32 too.
	nb := (in + DotI8Len - 1) / DotI8Len
	pairs := l.opts.VNNI && l.opts.Wide && f != wformat.Q4_K && nb%2 == 0
	oneRow := pairs && f == wformat.Q4_0 // single rows unsigned, in pairs
	vnni := l.opts.VNNI && f != wformat.Q4_K && (x.shape[0] > 1 || oneRow)
	// Block sums for Q4_0's zero point (or vnni's), padding for vnni's
	// eight-block loads.
	qOff, sOff, sumOff, real := l.quantiseInput(x, nb, nibbles || vnni, vnni)

	col := l.newVar("n", Int)
	signed := dq
	// tile sums output column col for token rows row..row+n-1: each
	// block's weight quants, their absolute values and scale are loaded
	// once for the n rows (the emitters' common subexpressions), and
	// every row has its own chains. One column a tile: with two or four
	// weight rows streamed side by side, sharing each input block, decode
	// took 2.5x the CPU time (AMD EPYC Zen 4, stories110M shape: 7.8 ms a
	// token with one column, 22 with four).
	tile := func(row Expr, n int) []Stmt {
		// vnni: this tile's dots are unsigned (see above), its rows
		// chains enough.
		vnni := vnni && (n > 1 || oneRow)
		// pair: with sixteen lanes (Options.Wide), each row's dot takes
		// two blocks at once (DotI8.Pair, a 512-bit vpdpbusd), times both
		// blocks' d_w·d_x (Halves).
		pair := vnni && pairs
		chains, dq, zero := intDotChains(nb), signed, wformat.Q4_0Zero
		if vnni {
			chains = 1
			if f == wformat.Q8_0 {
				dq, zero = DotUInt8, 128
			}
		}
		lanes := 8
		if pair {
			lanes = 16
		}
		accs := make([][]*Var, n) // accs[r][k]: row r's blocks k mod chains
		// corrs[r][k]: for Q4_0, row r's Σ d_w·d_x·Σq_x over blocks k mod
		// chains.
		corrs := make([][]*Var, n)
		var body []Stmt
		// With vnni, eight blocks at a time: zs[r] sums row r's
		// d_w·d_x·Σq_x, and dwdx holds every row's and block's d_w·d_x
		// (row r's block b at r·nbPad + b).
		var dwdx *Buffer
		zs := make([]*Var, n)
		nbPad := (nb + 7) / 8 * 8
		if vnni {
			for r := range zs {
				zs[r] = l.newVar("zs", F32x8)
				body = append(body, &Decl{Var: zs[r], Init: &Broadcast{X: F(0)}})
			}
			dwdx = &Buffer{Name: fmt.Sprintf("dwdx%d", n*nbPad), Kind: Local, Len: n * nbPad}
			group := func(g Expr, lanes int) []Stmt {
				dv := l.newVar("dw", F32x8)
				stmts := []Stmt{&Decl{Var: dv, Init: &Scales{W: w.buf, Off: IAdd(IMul(col, I(rb)), IMul(g, I(8*bb))), Stride: bb, N: lanes}}}
				for r := range n {
					at := IAdd(IMul(IAdd(row, I(r)), I(nb)), IMul(g, I(8)))
					stmts = append(stmts,
						&Assign{Var: zs[r], Val: &FMA{A: dv, B: Ld8(l.scratch, IAdd(I(sumOff), at)), C: zs[r]}},
						&Store{Buf: dwdx, Index: IAdd(I(r*nbPad), IMul(g, I(8))), Val: FMul(dv, Ld8(l.scratch, IAdd(I(sOff), at)))})
				}
				return stmts
			}
			if full := nb / 8; full > 0 {
				g := l.newVar("g", Int)
				body = append(body, &For{Var: g, Lo: I(0), Hi: I(full), Step: 1, Body: group(g, 8)})
			}
			if rest := nb % 8; rest > 0 {
				body = append(body, group(I(nb/8), rest)...)
			}
		}
		for r := range accs {
			for range chains {
				acc := l.newVar("acc", VecOf(lanes))
				accs[r] = append(accs[r], acc)
				body = append(body, &Decl{Var: acc, Init: Zeros(lanes)})
				if nibbles && !vnni {
					c := l.newVar("corr", F32)
					corrs[r] = append(corrs[r], c)
					body = append(body, &Decl{Var: c, Init: F(0)})
				}
			}
		}
		// subBlocks writes the statements of Q4_K block sb's first n
		// sub-blocks: each sub-block's DotI8 of its nibbles times
		// d·sc_j·d_x, and its min dmin·m_j times d_x·Σq_x into the
		// corrections, sub-block j into chain j mod chains.
		subBlocks := func(sb Expr, n int) []Stmt {
			base := IAdd(IMul(col, I(rb)), IMul(sb, I(bb)))
			var stmts []Stmt
			for k := 0; k < 3; k++ {
				stmts = append(stmts, &Prefetch{Buf: w.buf, Off: IAdd(base, I(intDotPrefetch+64*k))})
			}
			d, dmin, decls := l.q4kScales(w.buf, base)
			stmts = append(stmts, decls...)
			for j := range n {
				scale, zero, decls := l.q4kFactors(w.buf, base, j, d, dmin)
				stmts = append(stmts, decls...)
				k := j % chains
				for r := range accs {
					blk := IAdd(IMul(IAdd(row, I(r)), I(nb)), IAdd(IMul(sb, I(q4kSubs)), I(j)))
					dot := &DotI8{W: w.buf, WOff: IAdd(base, I(q4kRun(j).off)), X: l.scratch, XOff: IAdd(I(4*qOff), IMul(blk, I(DotI8Len))), Quants: q4kDot(j)}
					stmts = append(stmts,
						&Assign{Var: accs[r][k], Val: &FMA{A: scaledDot(dot, Ld(l.scratch, IAdd(I(sOff), blk))), B: &Broadcast{X: scale}, C: accs[r][k]}},
						&Assign{Var: corrs[r][k], Val: &FMA{A: zero, B: Ld(l.scratch, IAdd(I(sumOff), blk)), C: corrs[r][k]}})
				}
			}
			return stmts
		}
		block := func(b Expr, k int) []Stmt {
			var stmts []Stmt
			base := IAdd(IMul(col, I(rb)), IMul(b, I(bb)))
			var dw *Var
			if !vnni {
				dw = l.newVar("dw", F32)
				stmts = append(stmts, &Decl{Var: dw, Init: blockScale(w.buf, base)})
			}
			for r := range accs {
				blk := IAdd(IMul(IAdd(row, I(r)), I(nb)), b) // the block's number among the rows'
				dot := &DotI8{W: w.buf, WOff: IAdd(base, I(quants)), X: l.scratch, XOff: IAdd(I(4*qOff), IMul(blk, I(be))), Quants: dq, Pair: pair}
				if vnni {
					// The lanes times d_w·d_x broadcast from the tile's
					// table: one multiply a block and row fewer.
					var s Expr = &Broadcast{X: Ld(dwdx, IAdd(I(r*nbPad), b))}
					if pair {
						s = &Halves{Lo: Ld(dwdx, IAdd(I(r*nbPad), b)), Hi: Ld(dwdx, IAdd(I(r*nbPad+1), b))}
					}
					stmts = append(stmts, &Assign{Var: accs[r][k], Val: &FMA{A: dot, B: s, C: accs[r][k]}})
					continue
				}
				dx := Ld(l.scratch, IAdd(I(sOff), blk))
				stmts = append(stmts, &Assign{Var: accs[r][k], Val: &FMA{A: scaledDot(dot, dx), B: &Broadcast{X: dw}, C: accs[r][k]}})
				if nibbles && !vnni {
					// The nibbles are q, the weights d_w·(q - 8): the 8 is
					// taken off once a block, as 8·d_w·d_x·Σq_x.
					sx := Ld(l.scratch, IAdd(I(sumOff), blk))
					stmts = append(stmts, &Assign{Var: corrs[r][k], Val: &FMA{A: dw, B: sx, C: corrs[r][k]}})
				}
			}
			return stmts
		}
		switch {
		case f == wformat.Q4_K:
			if full := nb / q4kSubs; full > 0 {
				sb := l.newVar("b", Int)
				body = append(body, &For{Var: sb, Lo: I(0), Hi: I(full), Step: 1, Body: subBlocks(sb, q4kSubs)})
			}
			if rest := nb % q4kSubs; rest > 0 {
				body = append(body, subBlocks(I(nb/q4kSubs), rest)...)
			}
		default:
			// Whole rounds of chains blocks (or of a pair) in a loop,
			// then the rest.
			per := chains
			if pair {
				per = 2
			}
			whole := nb / per * per
			if whole > 0 {
				b := l.newVar("b", Int)
				step := []Stmt{&Prefetch{Buf: w.buf, Off: IAdd(IAdd(IMul(col, I(rb)), IMul(b, I(bb))), I(intDotPrefetch))}}
				if pair {
					step = append(step, block(b, 0)...)
				} else {
					for k := range chains {
						step = append(step, block(IAdd(b, I(k)), k)...)
					}
				}
				body = append(body, &For{Var: b, Lo: I(0), Hi: I(whole), Step: per, Body: step})
			}
			for b := whole; b < nb; b++ {
				body = append(body, block(I(b), b%chains)...)
			}
		}
		for r := range accs {
			y := l.newVar("y", F32)
			var sum Expr = &HSum{X: sumTree(accs[r])}
			switch f {
			case wformat.Q4_0:
				if !vnni {
					sum = &FMA{A: F(-wformat.Q4_0Zero), B: sumTree(corrs[r]), C: sum}
				}
			case wformat.Q4_K:
				sum = FSub(sum, sumTree(corrs[r]))
			}
			if vnni {
				sum = &FMA{A: F(-float32(zero)), B: &HSum{X: zs[r]}, C: sum}
			}
			body = append(body, &Decl{Var: y, Init: sum})
			body = append(body, l.columnStore(y, out, extra, bias, IAdd(row, I(r)), col)...)
		}
		return body
	}
	work := IMul(I(outN*in), real)
	if rows == 1 {
		l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: col, N: I(outN), Work: work, Grain: 1, Body: tile(I(0), 1)})
		return nil
	}
	// Whole tiles of the real rows, then the rest one by one.
	t := rowTile(rows)
	if vnni && rows%8 == 0 {
		// Each row's share of a block is a dot, a conversion and an
		// FMA, so more rows can share the block's loads: eight rows of
		// one chain each, against four of two, took Q8_0 prefill 1220 ->
		// 1295 tok/s and Q4_0 1221 -> 1305 (stories110M shape, AMD EPYC
		// Zen 4, 2 threads, one interleaved run of 9); eight of two
		// chains did not pay.
		t = 8
	}
	sv, s1 := l.newVar("s", Int), l.newVar("s", Int)
	if !vnni {
		body := rowTiles(sv, s1, real, t, tile, nil)
		l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: col, N: I(outN), Work: work, Grain: 1, Body: body})
		return nil
	}
	// Column blocks: every tile of rows meets colBlock weight rows while
	// they are in cache, so the weight is read from memory once a call.
	blk := l.newVar("cb", Int)
	cols := func(inner []Stmt) []Stmt {
		return []Stmt{&For{Var: col, Lo: IMul(blk, I(colBlock)), Hi: IMin(IMul(IAdd(blk, I(1)), I(colBlock)), I(outN)), Step: 1, Body: inner}}
	}
	// The rows past the whole tiles go one at a time, each weight row
	// read once for all of them, as without blocks.
	body := rowTiles(sv, s1, real, t, tile, cols)
	l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: blk, N: I((outN + colBlock - 1) / colBlock), Work: work, Grain: 1, Body: body})
	return nil
}

// colBlock is how many output columns a vnni prefill phase takes at a
// time (see linearQ8Int): stories110M shape, Q8_0, 128 tokens, AMD EPYC
// Zen 4, 2 threads, one interleaved run of 5: 1127 tok/s with no blocks,
// 1159 with 16 columns, 1177 with 64; 256 was slower than none.
const colBlock = 64

// quantiseInput quantises the real rows of x (nb blocks of 32 a row) into
// scratch for integer dot products, in a serial phase: every row's quants
// (nb·32 bytes, a multiple of 8 floats) at float qOff, then every row's
// scales at sOff, and with sums every row's block sums at sumOff (else -1);
// with pad, each of the last two has 8 more, zeros, which eight-block
// loads of the last row's reach. The quantisation joins a serial phase
// before it in the kernel (an RMSNorm's), saving a meeting of the threads.
// real is the count of real rows.
func (l *lowerer) quantiseInput(x view, nb int, sums, pad bool) (qOff, sOff, sumOff int, real Expr) {
	rows := x.shape[0]
	extra := 0
	if pad {
		extra = 8
	}
	qOff = l.scratchTop
	l.alloc([]int{rows * nb * DotI8Len / 4})
	sOff = l.scratchTop
	l.alloc([]int{rows*nb + extra})
	sumOff = -1
	if sums {
		sumOff = l.scratchTop
		l.alloc([]int{rows*nb + extra})
	}
	real = IMin(I(rows), l.length)
	l.serialTail(l.quantiseRows(x, real, nb, qOff, sOff, sumOff, pad)...)
	return qOff, sOff, sumOff, real
}

// serialTail appends stmts to the kernel's last phase if it is serial (a
// linear's input is usually the norm that phase just wrote), else to a new
// serial phase: what a linear computes from its whole input before its
// parallel phase.
func (l *lowerer) serialTail(stmts ...Stmt) {
	if ph := l.k.Phases; len(ph) > 0 && !ph[len(ph)-1].Parallel {
		last := ph[len(ph)-1]
		last.Body = append(last.Body, stmts...)
		return
	}
	l.serial(stmts...)
}

// quantiseRows writes the statements that quantise rows [0, real) of x
// (in columns, nb blocks of 32) into scratch: block b of row s has its 32
// int8s at byte 4·qOff + 32·(s·nb + b) and its scale d = max|x|/127 at
// element sOff + s·nb + b; each quant is x·(127/max|x|) rounded (StoreI8),
// 0 for a block of zeros, and the columns past in are zeros. With sumOff
// ≥ 0, d·Σq, the block's sum of quants times its scale, goes to element
// sumOff + s·nb + b as well. With pad, eight zeros follow the last row's
// scales and sums.
func (l *lowerer) quantiseRows(x view, real Expr, nb, qOff, sOff, sumOff int, pad bool) []Stmt {
	in := x.shape[1]
	s := l.newVar("s", Int)
	blockStmts := func(b Expr, n int) []Stmt {
		xo := IAdd(x.at(s, I(0)), IMul(b, I(DotI8Len)))
		blk := IAdd(IMul(s, I(nb)), b)
		qo := IAdd(I(4*qOff), IMul(blk, I(DotI8Len)))
		var stmts []Stmt
		vecs := n / 8 * 8
		xs := make([]*Var, 0, n)
		var vmax Expr
		for g := 0; g < vecs; g += 8 {
			xv := l.newVar("xv", F32x8)
			stmts = append(stmts, &Decl{Var: xv, Init: Ld8(x.buf, IAdd(xo, I(g)))})
			xs = append(xs, xv)
			a := FMax(xv, FSub(&Broadcast{X: F(0)}, xv))
			if vmax == nil {
				vmax = a
			} else {
				vmax = FMax(vmax, a)
			}
		}
		amax := l.newVar("amax", F32)
		if vmax != nil {
			stmts = append(stmts, &Decl{Var: amax, Init: &HMax{X: vmax}})
		} else {
			stmts = append(stmts, &Decl{Var: amax, Init: F(0)})
		}
		for j := vecs; j < n; j++ {
			xj := l.newVar("xs", F32)
			stmts = append(stmts, &Decl{Var: xj, Init: Ld(x.buf, IAdd(xo, I(j)))},
				&Assign{Var: amax, Val: FMax(amax, FMax(xj, FSub(F(0), xj)))})
			xs = append(xs, xj)
		}
		id := l.newVar("id", F32)
		stmts = append(stmts,
			&Store{Buf: l.scratch, Index: IAdd(I(sOff), blk), Val: FDiv(amax, F(127))},
			&Decl{Var: id, Init: &Select{X: amax, Y: F(0), A: FDiv(F(127), amax), B: F(0)}})
		if sumOff >= 0 {
			// d·Σq over the block's quants, each rounded as StoreI8
			// rounds it (the clamp never binds: |x·id| <= 127), so the
			// zero point comes off the same quantised input the dot
			// product sees.
			var vsum, ssum Expr
			for _, xv := range xs {
				if xv.T == F32x8 {
					q := Fn(RoundEven, FMul(xv, &Broadcast{X: id}))
					if vsum == nil {
						vsum = q
					} else {
						vsum = FAdd(vsum, q)
					}
					continue
				}
				q := Fn(RoundEven, FMul(xv, id))
				if ssum == nil {
					ssum = q
				} else {
					ssum = FAdd(ssum, q)
				}
			}
			sum := Expr(F(0))
			if vsum != nil {
				sum = &HSum{X: vsum}
			}
			if ssum != nil {
				sum = FAdd(sum, ssum)
			}
			stmts = append(stmts, &Store{Buf: l.scratch, Index: IAdd(I(sumOff), blk), Val: FMul(FDiv(amax, F(127)), sum)})
		}
		j := 0
		for _, xv := range xs {
			if xv.T == F32x8 {
				stmts = append(stmts, &StoreI8{Buf: l.scratch, Off: IAdd(qo, I(j)), Val: FMul(xv, &Broadcast{X: id})})
				j += 8
			} else {
				stmts = append(stmts, &StoreI8{Buf: l.scratch, Off: IAdd(qo, I(j)), Val: FMul(xv, id)})
				j++
			}
		}
		for ; j%8 != 0; j++ {
			stmts = append(stmts, &StoreI8{Buf: l.scratch, Off: IAdd(qo, I(j)), Val: F(0)})
		}
		for ; j < DotI8Len; j += 8 {
			stmts = append(stmts, &StoreI8{Buf: l.scratch, Off: IAdd(qo, I(j)), Val: &Broadcast{X: F(0)}})
		}
		return stmts
	}
	full, rem := in/DotI8Len, in%DotI8Len
	var body []Stmt
	if full > 0 {
		b := l.newVar("b", Int)
		body = append(body, &For{Var: b, Lo: I(0), Hi: I(full), Step: 1, Body: blockStmts(b, DotI8Len)})
	}
	if rem > 0 {
		body = append(body, blockStmts(I(full), rem)...)
	}
	out := []Stmt{&For{Var: s, Lo: I(0), Hi: real, Step: 1, Body: body}}
	if pad {
		// Zeros after the last real row's scales and sums, where the
		// tiles' eight-block loads end.
		for _, off := range []int{sOff, sumOff} {
			out = append(out, &Store{Buf: l.scratch, Index: IAdd(I(off), IMul(real, I(nb))), Val: &Broadcast{X: F(0)}})
		}
	}
	return out
}
