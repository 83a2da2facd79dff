package golang

import (
	"fmt"
	"sort"
	"strings"

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
// text, then the constant. Inside a loop of the vector file, the terms
// that do not change in the loop come first as one variable computed
// before it (see loopScope).
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
	if len(g.loops) > 0 && simd {
		var base jen.Code
		base, terms = g.hoist(terms)
		if base != nil {
			out = jen.Add(base)
		}
	}
	return g.printTerms(out, terms, l.c, simd)
}

// printTerms prints out (if any) + Σ terms + c.
func (g *gen) printTerms(out *jen.Statement, terms []linTerm, c int, simd bool) *jen.Statement {
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
		return jen.Lit(c)
	case c > 0:
		return jen.Parens(out.Op("+").Lit(c))
	case c < 0:
		return jen.Parens(out.Op("-").Lit(-c))
	}
	return out
}

// loopScope is a loop of the vector file being printed. The Go compiler
// does not move loop-invariant arithmetic out of a loop, so an offset such
// as k + n*1536 recomputed n*1536 (and the other rows' bases) on every
// trip of a dot product's loop over k. The invariant terms of each offset
// in the loop's body are printed as a variable declared before the
// outermost loop in which none of them changes, one per distinct sum.
type loopScope struct {
	inner  map[*kir.Var]bool // variables the body declares or assigns, and the loop's own
	byKey  map[string]int    // hoisted sums by their terms' text
	hoists []hoisted
}

type hoisted struct {
	name  string
	terms []linTerm
}

func newLoopScope(f *kir.For) *loopScope {
	sc := &loopScope{inner: map[*kir.Var]bool{f.Var: true}, byKey: map[string]int{}}
	eachStmt(f.Body, func(st kir.Stmt) {
		switch st := st.(type) {
		case *kir.Decl:
			sc.inner[st.Var] = true
		case *kir.Assign:
			sc.inner[st.Var] = true
		case *kir.For:
			sc.inner[st.Var] = true
		}
	})
	return sc
}

// invariant reports whether e has the same value on every trip: it reads
// no variable the loop changes, and no memory.
func (sc *loopScope) invariant(e kir.Expr) bool {
	ok := true
	kir.WalkExpr(e, func(x kir.Expr) {
		switch x := x.(type) {
		case *kir.Var:
			ok = ok && !sc.inner[x]
		case *kir.Load, *kir.LoadQ:
			ok = false
		}
	})
	return ok
}

func allInvariant(sc *loopScope, terms []linTerm) bool {
	for _, t := range terms {
		if !sc.invariant(t.atom) {
			return false
		}
	}
	return true
}

// hoist takes out of terms those that do not change in the innermost
// loop being printed, when there is more than one or one with a
// coefficient. Their sum becomes a variable of the outermost loop in which
// none of them changes, declared before it; hoist returns that variable
// (nil for none) and the terms left.
func (g *gen) hoist(terms []linTerm) (jen.Code, []linTerm) {
	n := len(g.loops)
	var inv, rest []linTerm
	for _, t := range terms {
		if g.loops[n-1].invariant(t.atom) {
			inv = append(inv, t)
		} else {
			rest = append(rest, t)
		}
	}
	if len(inv) == 0 || len(inv) == 1 && inv[0].coef == 1 {
		return nil, terms
	}
	at := n - 1
	for at > 0 && allInvariant(g.loops[at-1], inv) {
		at--
	}
	sc := g.loops[at]
	var key strings.Builder
	for _, t := range inv {
		fmt.Fprintf(&key, "%d*%s;", t.coef, t.key)
	}
	i, ok := sc.byKey[key.String()]
	if !ok {
		g.hoists++
		i = len(sc.hoists)
		sc.byKey[key.String()] = i
		sc.hoists = append(sc.hoists, hoisted{name: fmt.Sprintf("ix_%d", g.hoists), terms: inv})
	}
	return jen.Id(sc.hoists[i].name), rest
}

// loop prints a loop of the vector file, the sums hoisted out of its body
// declared before it.
func (g *gen) loop(f *kir.For, head jen.Code, simd bool) []jen.Code {
	sc := newLoopScope(f)
	g.loops = append(g.loops, sc)
	body := g.stmts(f.Body, simd)
	g.loops = g.loops[:len(g.loops)-1]
	var out []jen.Code
	for _, h := range sc.hoists {
		// Printed in the enclosing loop's scope: part of the sum may move
		// out of that loop too.
		out = append(out, jen.Id(h.name).Op(":=").Add(g.printHoisted(h.terms, simd)))
	}
	return append(out, jen.Add(head).Block(body...))
}

// printHoisted prints a hoisted sum where its variable is declared.
func (g *gen) printHoisted(terms []linTerm, simd bool) *jen.Statement {
	if len(g.loops) > 0 {
		if base, rest := g.hoist(terms); base != nil {
			return g.printTerms(jen.Add(base), rest, 0, simd)
		}
	}
	return g.printTerms(nil, terms, 0, simd)
}

// atom prints a term's atom. A product of two non-constants is an atom
// whose factors are each printed in linear form.
func (g *gen) atom(e kir.Expr, simd bool) *jen.Statement {
	if b, ok := e.(*kir.Bin); ok && isLinearOp(b) {
		return jen.Parens(g.expr(b.A, simd).Op("*").Add(g.expr(b.B, simd)))
	}
	return g.expr(e, simd)
}
