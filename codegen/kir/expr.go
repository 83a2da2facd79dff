package kir

// Constructors that fold constants, so that specialised index arithmetic
// prints as the numbers it is.

// I is an int constant.
func I(n int) Expr { return IntConst{N: n} }

// F is an f32 constant.
func F(f float32) Expr { return F32Const{F: f} }

func isInt(e Expr, n int) bool {
	c, ok := e.(IntConst)
	return ok && c.N == n
}

// IAdd is a + b on ints.
func IAdd(a, b Expr) Expr {
	ca, oka := a.(IntConst)
	cb, okb := b.(IntConst)
	switch {
	case oka && okb:
		return I(ca.N + cb.N)
	case oka && ca.N == 0:
		return b
	case okb && cb.N == 0:
		return a
	}
	// (x + c1) + c2 = x + (c1+c2)
	if ab, ok := a.(*Bin); ok && ab.Op == Add && okb {
		if c1, ok := ab.B.(IntConst); ok {
			return IAdd(ab.A, I(c1.N+cb.N))
		}
	}
	return &Bin{Op: Add, A: a, B: b}
}

// ISub is a - b on ints.
func ISub(a, b Expr) Expr {
	if cb, ok := b.(IntConst); ok {
		return IAdd(a, I(-cb.N))
	}
	return &Bin{Op: Sub, A: a, B: b}
}

// IMul is a * b on ints.
func IMul(a, b Expr) Expr {
	ca, oka := a.(IntConst)
	cb, okb := b.(IntConst)
	switch {
	case oka && okb:
		return I(ca.N * cb.N)
	case oka && ca.N == 0, okb && cb.N == 0:
		return I(0)
	case oka && ca.N == 1:
		return b
	case okb && cb.N == 1:
		return a
	}
	return &Bin{Op: Mul, A: a, B: b}
}

// IDiv is a / b on ints (b > 0).
func IDiv(a, b Expr) Expr {
	ca, oka := a.(IntConst)
	cb, okb := b.(IntConst)
	switch {
	case oka && okb:
		return I(ca.N / cb.N)
	case okb && cb.N == 1:
		return a
	}
	return &Bin{Op: Div, A: a, B: b}
}

// IMax and IMin on ints.
func IMax(a, b Expr) Expr {
	ca, oka := a.(IntConst)
	cb, okb := b.(IntConst)
	if oka && okb {
		return I(max(ca.N, cb.N))
	}
	return &Bin{Op: Max, A: a, B: b}
}

func IMin(a, b Expr) Expr {
	ca, oka := a.(IntConst)
	cb, okb := b.(IntConst)
	if oka && okb {
		return I(min(ca.N, cb.N))
	}
	return &Bin{Op: Min, A: a, B: b}
}

// FAdd, FSub, FMul, FDiv, FMax work on f32 or f32x8 operands of one type.
func FAdd(a, b Expr) Expr { return &Bin{Op: Add, A: a, B: b} }
func FSub(a, b Expr) Expr { return &Bin{Op: Sub, A: a, B: b} }
func FMul(a, b Expr) Expr {
	if c, ok := b.(F32Const); ok && c.F == 1 {
		return a
	}
	return &Bin{Op: Mul, A: a, B: b}
}
func FDiv(a, b Expr) Expr { return &Bin{Op: Div, A: a, B: b} }
func FMax(a, b Expr) Expr { return &Bin{Op: Max, A: a, B: b} }

// Fn calls a math function.
func Fn(f MathFn, x Expr) Expr { return &Call{Fn: f, Arg: x} }

// Ld and Ld8 load a scalar or 8 lanes.
func Ld(b *Buffer, i Expr) Expr  { return &Load{Buf: b, Index: i} }
func Ld8(b *Buffer, i Expr) Expr { return &Load{Buf: b, Index: i, Vec: true} }

// LdV loads lanes (1, 8 or 16) elements: a scalar, an f32x8 or an f32x16.
func LdV(b *Buffer, i Expr, lanes int) Expr {
	return &Load{Buf: b, Index: i, Vec: lanes > 1, Wide: lanes == 16}
}

// Zeros is an f32x8 of zeros, or an f32x16 when lanes is 16.
func Zeros(lanes int) Expr { return &Broadcast{X: F(0), Wide: lanes == 16} }

// VecOf is the vector type of lanes lanes (8 or 16).
func VecOf(lanes int) Type {
	if lanes == 16 {
		return F32x16
	}
	return F32x8
}

// LdI8 is the int8 quant at byte off of a block-format weight, as f32.
func LdI8(b *Buffer, off Expr) Expr { return &LoadQ{Buf: b, Off: off, Part: QInt8} }

// LdI8x8 is the eight int8 quants at byte off.., as f32x8.
func LdI8x8(b *Buffer, off Expr) Expr { return &LoadQ{Buf: b, Off: off, Part: QInt8, Vec: true} }

// LdF16 is the float16 scale at byte off, as f32.
func LdF16(b *Buffer, off Expr) Expr { return &LoadQ{Buf: b, Off: off, Part: QF16} }

// IRem is a % b on non-negative ints.
func IRem(a, b Expr) Expr {
	ca, oka := a.(IntConst)
	cb, okb := b.(IntConst)
	if oka && okb {
		return I(ca.N % cb.N)
	}
	return &Bin{Op: Rem, A: a, B: b}
}

// EvalInt evaluates an integer expression with Go's int arithmetic, as
// every backend computes it: constants and +, -, *, /, %, max and min
// here, every other expression (variables, parameters, loads) by leaf.
func EvalInt(e Expr, leaf func(Expr) int) int {
	switch e := e.(type) {
	case IntConst:
		return e.N
	case *Bin:
		a, b := EvalInt(e.A, leaf), EvalInt(e.B, leaf)
		if e.Op == Rem {
			return a % b
		}
		if v, ok := arith(e.Op, a, b); ok {
			return v
		}
	}
	return leaf(e)
}

// arith is a op b for the operators ints and floats share (all but Rem).
func arith[T int | float32](op BinOp, a, b T) (T, bool) {
	switch op {
	case Add:
		return a + b, true
	case Sub:
		return a - b, true
	case Mul:
		return a * b, true
	case Div:
		return a / b, true
	case Max:
		return max(a, b), true
	case Min:
		return min(a, b), true
	}
	return 0, false
}
