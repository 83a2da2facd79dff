package kir

// bf16Input rounds the step's real rows of a linear's input x to bfloat16
// into scratch, once per call, for DotBF16: column k of row s at byte
// 4·off + 2·(s·in + k), in the serial phase before the linear's
// (serialTail). It returns off.
func (l *lowerer) bf16Input(x view) int {
	rows, in := x.shape[0], x.shape[1]
	off := l.scratchTop
	l.alloc([]int{rows * in / 2})
	s, k := l.newVar("s", Int), l.newVar("k", Int)
	store := &StoreBF16{Buf: l.scratch, Off: IAdd(I(4*off), IMul(IAdd(IMul(s, I(in)), k), I(2))), Val: Ld8(x.buf, IAdd(x.at(s, I(0)), k))}
	conv := &For{Var: s, Lo: I(0), Hi: IMin(I(rows), l.length), Step: 1, Body: []Stmt{
		&For{Var: k, Lo: I(0), Hi: I(in), Step: 8, Body: []Stmt{store}},
	}}
	l.serialTail(conv)
	return off
}

// dotTileBF16 is dotTile for a bf16 weight and an input in bfloat16 at
// byte offsets xOffs of scratch (bf16Input): ys[i][c] is the dot product
// of n elements, an f32x16 accumulator each, DotBF16Len elements a
// DotBF16, finished by HSum.
func (l *lowerer) dotTileBF16(ys [][]*Var, xOffs []Expr, w *Buffer, wOffs []Expr, n int) []Stmt {
	var out []Stmt
	accs := make([][]*Var, len(ys))
	for i := range ys {
		for range ys[i] {
			acc := l.newVar("acc", F32x16)
			accs[i] = append(accs[i], acc)
			out = append(out, &Decl{Var: acc, Init: Zeros(16)})
		}
	}
	k := l.newVar("k", Int)
	var body []Stmt
	for i := range ys {
		for c := range ys[i] {
			dot := &DotBF16{Acc: accs[i][c], W: w, WOff: IAdd(wOffs[c], k), X: l.scratch, XOff: IAdd(xOffs[i], IMul(k, I(2)))}
			body = append(body, &Assign{Var: accs[i][c], Val: dot})
		}
	}
	out = append(out, &For{Var: k, Lo: I(0), Hi: I(n), Step: DotBF16Len, Body: body})
	for i := range ys {
		for c, y := range ys[i] {
			out = append(out, &Decl{Var: y, Init: &HSum{X: accs[i][c]}})
		}
	}
	return out
}
