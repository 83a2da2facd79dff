package ir

import (
	"errors"
	"fmt"
)

// Verify checks that g is well formed: every value is defined once before
// its uses and is visible where it is used, every dimension names a declared
// symbol, every node's arguments and attributes fit its op, and every
// result has the type its op gives. It returns all problems found, joined.
func Verify(g *Graph) error {
	v := &verifier{g: g, scope: map[*Value]bool{}, names: map[string]*Value{}, syms: map[string]bool{}}
	v.run()
	return errors.Join(v.errs...)
}

type verifier struct {
	g     *Graph
	scope map[*Value]bool // values visible at the current point
	names map[string]*Value
	syms  map[string]bool
	errs  []error
}

func (v *verifier) errf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("graph %s: "+format, append([]any{v.g.Name}, args...)...))
}

func (v *verifier) run() {
	g := v.g
	if !validIdent(g.Name) {
		v.errf("invalid graph name %q", g.Name)
	}
	for _, s := range g.Syms {
		if v.syms[s] {
			v.errf("symbol %s declared twice", s)
		}
		if !validIdent(s) {
			v.errf("invalid symbol name %q", s)
		}
		v.syms[s] = true
	}
	for _, in := range g.Inputs {
		v.declare(in, KindInput)
	}
	for _, w := range g.Weights {
		if d := w.Derive; d != nil {
			for _, a := range d.Args {
				if !v.scope[a] {
					v.errf("weight %s is made from %s, which is not declared before it", w.Ref(), refOf(a))
				}
			}
			if t, err := d.Type(); err != nil {
				v.errf("weight %s: %v", w.Ref(), err)
			} else if !t.Equal(w.Type) {
				v.errf("weight %s is declared %s, but %s gives %s", w.Ref(), w.Type, d.Op, t)
			}
		}
		v.declare(w, KindWeight)
	}
	for _, s := range g.States {
		v.declare(s, KindState)
	}
	v.nodes(g.Nodes)
	if len(g.Outputs) == 0 {
		v.errf("no outputs")
	}
	for _, o := range g.Outputs {
		if o == nil || !v.scope[o] {
			v.errf("output %s is not defined", refOf(o))
		}
	}
}

// validIdent reports whether s can stand where the text form reads an
// identifier (graph, symbol and kernel names): a valid name that does not
// start like a number (a symbol "2" would print as the constant 2).
func validIdent(s string) bool {
	return validName(s) && (s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z')
}

func refOf(x *Value) string {
	if x == nil {
		return "<nil>"
	}
	return x.Ref()
}

func (v *verifier) declare(x *Value, kind Kind) {
	if x == nil {
		v.errf("nil value")
		return
	}
	if x.Kind != kind {
		v.errf("%s is listed as a %s but has another kind", x.Ref(), map[Kind]string{KindInput: "input", KindWeight: "weight", KindState: "state"}[kind])
	}
	if !validName(x.Name) {
		v.errf("invalid name %q", x.Name)
	}
	if old, ok := v.names[x.Ref()]; ok && old != x {
		v.errf("%s is defined twice", x.Ref())
	}
	v.names[x.Ref()] = x
	v.scope[x] = true
	v.checkType(x.Ref(), x.Type)
}

func (v *verifier) checkType(what string, t Type) {
	if t.IsVoid() {
		v.errf("%s has no type", what)
		return
	}
	for _, d := range t.Shape {
		if d.IsConst() && d.N < 0 {
			v.errf("%s: negative dimension in %s", what, t)
		}
		if !d.IsConst() && !v.syms[d.Sym] {
			v.errf("%s: symbol %s in %s is not declared", what, d.Sym, t)
		}
	}
}

func (v *verifier) nodes(nodes []*Node) {
	for _, n := range nodes {
		v.node(n)
	}
}

func (v *verifier) node(n *Node) {
	if n == nil {
		v.errf("nil node")
		return
	}
	if n.Result != nil {
		// Even a wrong node defines its result, so that later uses do not
		// report the same mistake again (and hide other errors).
		defer func() { v.scope[n.Result] = true }()
	}
	where := n.LongString()
	for i, a := range n.Args {
		if a == nil {
			v.errf("%s: argument %d is nil", where, i+1)
			return
		}
		if !v.scope[a] {
			v.errf("%s: %s is used but not defined before this point", where, a.Ref())
			return
		}
	}
	if n.Op == OpKernel {
		if n.Body == nil {
			v.errf("%s: kernel without a body", where)
			return
		}
		// The body sees the outer scope; its own values stay inside.
		inner := map[*Value]bool{}
		saved := v.scope
		v.scope = map[*Value]bool{}
		for k := range saved {
			v.scope[k] = true
		}
		before := len(v.errs)
		for _, b := range n.Body.Nodes {
			v.node(b)
			if b.Result != nil {
				inner[b.Result] = true
			}
		}
		for _, o := range n.Body.Outputs {
			if !v.scope[o] {
				v.errf("%s: yields %s, which is not defined", where, refOf(o))
			}
		}
		v.scope = saved
		if len(v.errs) > before {
			return
		}
		caps := n.Body.Captures()
		same := len(caps) == len(n.Args)
		for i := 0; same && i < len(caps); i++ {
			same = caps[i] == n.Args[i]
		}
		if !same {
			v.errf("%s: arguments do not match the values its body reads", where)
		}
	} else if n.Body != nil {
		v.errf("%s: only kernels have bodies", where)
	}
	if err := checkArgs(n); err != nil {
		v.errf("%s: %v", where, err)
		return
	}
	if n.Op == OpKernel {
		if err := checkAttrs(n); err != nil {
			v.errf("%s: %v", where, err)
			return
		}
		if name := n.StringAttr("name"); !validIdent(name) {
			v.errf("%s: invalid kernel name %q", where, name)
		}
	}
	t, err := n.Op.Info().Infer(n)
	if err != nil {
		v.errf("%s: %v", where, err)
		return
	}
	switch {
	case n.Result == nil && !t.IsVoid():
		v.errf("%s: result of type %s is missing", where, t)
	case n.Result != nil && t.IsVoid():
		v.errf("%s: op has no result", where)
	case n.Result != nil:
		r := n.Result
		if r.Kind != KindNode || r.Def != n {
			v.errf("%s: result is not linked to its node", where)
		}
		if !r.Type.Equal(t) {
			v.errf("%s: result type %s, but %s gives %s", where, r.Type, n.Op, t)
		}
		v.checkType(r.Ref(), r.Type)
		if !validName(r.Name) {
			v.errf("%s: invalid name %q", where, r.Name)
		}
		if old, ok := v.names[r.Ref()]; ok && old != r {
			v.errf("%s is defined twice", r.Ref())
		}
		v.names[r.Ref()] = r
		v.scope[r] = true
	}
}
