package golang

import (
	"sort"

	"github.com/dave/jennifer/jen"

	"github.com/llmc-dev/llmc/codegen/kir"
)

// Integer index expressions are printed in a linear form: Σ coef·atom +
// const, the atoms (variables, parameters, loads, quotients, minima,
// non-constant products) in one order. The kernel IR writes an offset as
// the lowering built it, ((jb+3)*32)+(kh*8) for the fourth key of a
// block, and the Go compiler neither re-associates nor hoists integer
// arithmetic out of a loop, so each of a block's eight rows recomputed its
// offset from scratch (a LEA, a shift and a spill a row in the attention
// kernels). Printed as ((jb*32)+(kh*8))+96, every row shares the
// parenthesised base, which the compiler's CSE computes once, and the
// constant folds into the load's displacement.
//
// Two's-complement +, - and multiplication by a constant are associative,
// commutative and distributive, as Go's int arithmetic is, so the value
// is the same to the bit for any operands; / and % stay atoms, their own
// operands printed in linear form.

// linTerm is coef·atom; key is the atom's kernel IR text, which identifies
// equal atoms.
type linTerm struct {
	key  string
	atom kir.Expr
	coef int
}

// linear is Σ terms + c.
type linear struct {
	terms []linTerm
	c     int
}

func (l *linear) add(o linear, scale int) {
	for _, t := range o.terms {
		l.addTerm(t.key, t.atom, t.coef*scale)
	}
	l.c += o.c * scale
}

func (l *linear) addTerm(key string, atom kir.Expr, coef int) {
	for i := range l.terms {
		if l.terms[i].key == key {
			l.terms[i].coef += coef
			return
		}
	}
	l.terms = append(l.terms, linTerm{key, atom, coef})
}

// constant reports whether l has no terms left (after cancellation).
func (l linear) constant() bool {
	for _, t := range l.terms {
		if t.coef != 0 {
			return false
		}
	}
	return true
}

// linearise writes an integer expression in linear form, the variables of
// unrolled loops as their values.
func (g *gen) linearise(e kir.Expr) linear {
	switch e := e.(type) {
	case kir.IntConst:
		return linear{c: e.N}
	case *kir.Var:
		if v, ok := g.unrolledVars[e]; ok {
			return linear{c: v}
		}
	case *kir.Bin:
		switch e.Op {
		case kir.Add, kir.Sub:
			l := g.linearise(e.A)
			scale := 1
			if e.Op == kir.Sub {
				scale = -1
			}
			l.add(g.linearise(e.B), scale)
			return l
		case kir.Mul:
			a, b := g.linearise(e.A), g.linearise(e.B)
			if b.constant() {
				a, b = b, a
			}
			if a.constant() {
				var l linear
				l.add(b, a.c)
				return l
			}
		}
	}
	var l linear
	l.addTerm(e.String(), e, 1)
	return l
}

// isLinearOp reports whether e is an integer +, - or * (printed in linear
// form).
func isLinearOp(e *kir.Bin) bool {
	return e.Type() == kir.Int && (e.Op == kir.Add || e.Op == kir.Sub || e.Op == kir.Mul)
}

// linearExpr prints an integer +, - or * in linear form: the positive
// terms, then the negative ones, each group in the order of the atoms'
// text, then the constant.
func (g *gen) linearExpr(e kir.Expr, simd bool) *jen.Statement {
	l := g.linearise(e)
	terms := make([]linTerm, 0, len(l.terms))
	for _, t := range l.terms {
		if t.coef != 0 {
			terms = append(terms, t)
		}
	}
	// Positive terms first, so that a difference reads as one.
	sort.Slice(terms, func(i, j int) bool {
		if pi, pj := terms[i].coef > 0, terms[j].coef > 0; pi != pj {
			return pi
		}
		return terms[i].key < terms[j].key
	})
	var out *jen.Statement
	for _, t := range terms {
		v := g.atom(t.atom, simd)
		coef := t.coef
		neg := out != nil && coef < 0
		if neg {
			coef = -coef
		}
		if coef != 1 {
			v = jen.Parens(v.Op("*").Lit(coef))
		}
		switch {
		case out == nil:
			out = v
		case neg:
			out = jen.Parens(out.Op("-").Add(v))
		default:
			out = jen.Parens(out.Op("+").Add(v))
		}
	}
	switch {
	case out == nil:
		return jen.Lit(l.c)
	case l.c > 0:
		return jen.Parens(out.Op("+").Lit(l.c))
	case l.c < 0:
		return jen.Parens(out.Op("-").Lit(-l.c))
	}
	return out
}

// atom prints a term's atom. A product of two non-constants is an atom
// whose factors are each printed in linear form.
func (g *gen) atom(e kir.Expr, simd bool) *jen.Statement {
	if b, ok := e.(*kir.Bin); ok && isLinearOp(b) {
		return jen.Parens(g.expr(b.A, simd).Op("*").Add(g.expr(b.B, simd)))
	}
	return g.expr(e, simd)
}
