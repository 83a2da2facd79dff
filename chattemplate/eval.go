package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// Render limits. A chat template is data from a model repository, so a
// hostile one must fail cleanly instead of hanging or exhausting memory.
const (
	defaultMaxOutput = 64 << 20   // bytes in any rendered or built string
	defaultMaxSteps  = 50_000_000 // statements run plus loop iterations
	maxItems         = 1 << 22    // items in a list built by + or *
	maxRange         = 100_000    // jinja2's sandbox MAX_RANGE
	maxCallDepth     = 100        // nested macro calls
	maxValueDepth    = 256        // nesting that repr and tojson follow
	maxEvalDepth     = 10_000     // nested expression evaluations
)

type scope struct {
	vars   map[string]any
	parent *scope
}

func newScope(parent *scope) *scope { return &scope{vars: map[string]any{}, parent: parent} }

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

type control int

const (
	ctlNone control = iota
	ctlBreak
	ctlContinue
)

// renderer holds the state of one Render call.
type renderer struct {
	t         *Template
	out       *strings.Builder
	steps     int
	callDepth int
	evalDepth int
}

// wrap attaches the position pos to err unless an inner expression already
// did.
func (r *renderer) wrap(pos int, err error) error {
	switch e := err.(type) {
	case *Error:
		return e
	case *RaiseError:
		if e.Line == 0 {
			e.Line, e.Col = lineCol(r.t.src, pos)
		}
		return e
	}
	return newError(r.t.src, pos, err.Error())
}

func (r *renderer) step() error {
	r.steps++
	if r.steps > r.t.maxSteps {
		return fmt.Errorf("render aborted after %d steps", r.t.maxSteps)
	}
	return nil
}

func (r *renderer) write(s string) error {
	if r.out.Len()+len(s) > r.t.maxOutput {
		return fmt.Errorf("output larger than %d bytes", r.t.maxOutput)
	}
	r.out.WriteString(s)
	return nil
}

func (r *renderer) checkLen(n int) error {
	if n > r.t.maxOutput {
		return errTooLarge
	}
	return nil
}

func (r *renderer) exec(body []node, sc *scope) (control, error) {
	for _, n := range body {
		ctl, err := r.execNode(n, sc)
		if err != nil {
			return ctlNone, r.wrap(n.position(), err)
		}
		if ctl != ctlNone {
			return ctl, nil
		}
	}
	return ctlNone, nil
}

// capture renders body into a string of its own.
func (r *renderer) capture(body []node, sc *scope) (string, control, error) {
	saved := r.out
	var b strings.Builder
	r.out = &b
	ctl, err := r.exec(body, sc)
	r.out = saved
	return b.String(), ctl, err
}

func (r *renderer) execNode(n node, sc *scope) (control, error) {
	if err := r.step(); err != nil {
		return ctlNone, err
	}
	switch n := n.(type) {
	case *textNode:
		return ctlNone, r.write(n.text)
	case *outputNode:
		v, err := r.eval(n.x, sc)
		if err != nil {
			return ctlNone, err
		}
		return ctlNone, r.write(str(v))
	case *ifNode:
		for i, c := range n.conds {
			v, err := r.eval(c, sc)
			if err != nil {
				return ctlNone, err
			}
			if truthy(v) {
				return r.exec(n.bodies[i], sc)
			}
		}
		return r.exec(n.els, sc)
	case *forNode:
		return r.execFor(n, sc)
	case *setNode:
		v, err := r.eval(n.x, sc)
		if err != nil {
			return ctlNone, err
		}
		return ctlNone, r.assign(n.target, v, sc)
	case *setBlockNode:
		s, _, err := r.capture(n.body, sc)
		if err != nil {
			return ctlNone, err
		}
		v, err := r.applyFilters(n.filters, s, sc)
		if err != nil {
			return ctlNone, err
		}
		return ctlNone, r.assign(n.target, v, sc)
	case *macroNode:
		sc.vars[n.name] = r.macro(n, sc)
		return ctlNone, nil
	case *filterBlockNode:
		s, _, err := r.capture(n.body, sc)
		if err != nil {
			return ctlNone, err
		}
		v, err := r.applyFilters(n.filters, s, sc)
		if err != nil {
			return ctlNone, err
		}
		return ctlNone, r.write(str(v))
	case *blockNode:
		return r.exec(n.body, newScope(sc))
	case *breakNode:
		return ctlBreak, nil
	case *continueNode:
		return ctlContinue, nil
	}
	return ctlNone, fmt.Errorf("internal error: unknown node %T", n)
}

func (r *renderer) applyFilters(fs []*filterExpr, v any, sc *scope) (any, error) {
	for _, f := range fs {
		var err error
		if v, err = r.callFilter(f, v, sc); err != nil {
			return nil, r.wrap(f.pos, err)
		}
	}
	return v, nil
}

func (r *renderer) execFor(n *forNode, sc *scope) (control, error) {
	iv, err := r.eval(n.iter, sc)
	if err != nil {
		return ctlNone, err
	}
	items, err := iterate(iv)
	if err != nil {
		return ctlNone, r.wrap(n.iter.position(), err)
	}
	if n.cond != nil {
		var kept []any
		for _, it := range items {
			if err := r.step(); err != nil {
				return ctlNone, err
			}
			fsc := newScope(sc)
			if err := r.assign(n.target, it, fsc); err != nil {
				return ctlNone, err
			}
			v, err := r.eval(n.cond, fsc)
			if err != nil {
				return ctlNone, err
			}
			if truthy(v) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		return r.exec(n.els, sc)
	}
	loop := &loopState{items: items}
	for i, it := range items {
		loop.index = i
		isc := newScope(sc)
		if err := r.assign(n.target, it, isc); err != nil {
			return ctlNone, err
		}
		isc.vars["loop"] = loop
		ctl, err := r.exec(n.body, isc)
		if err != nil {
			return ctlNone, err
		}
		if ctl == ctlBreak {
			break
		}
	}
	return ctlNone, nil
}

func (r *renderer) assign(t target, v any, sc *scope) error {
	if t.attr != "" {
		nv, _ := sc.lookup(t.names[0])
		ns, ok := nv.(*namespace)
		if !ok {
			return fmt.Errorf("cannot assign attribute on non-namespace object %q", t.names[0])
		}
		return ns.attrs.set(t.attr, v)
	}
	if len(t.names) == 1 && !t.tuple {
		sc.vars[t.names[0]] = v
		return nil
	}
	items, err := iterate(v)
	if err != nil {
		return fmt.Errorf("cannot unpack: %v", err)
	}
	if len(items) != len(t.names) {
		if len(items) > len(t.names) {
			return fmt.Errorf("too many values to unpack (expected %d)", len(t.names))
		}
		return fmt.Errorf("not enough values to unpack (expected %d, got %d)", len(t.names), len(items))
	}
	for i, name := range t.names {
		sc.vars[name] = items[i]
	}
	return nil
}

func (r *renderer) macro(m *macroNode, closure *scope) *function {
	return &function{name: m.name, call: func(r *renderer, args []any, kw []kwarg) (any, error) {
		if len(args) > len(m.params) {
			return nil, fmt.Errorf("macro %q takes not more than %d argument(s)", m.name, len(m.params))
		}
		sc := newScope(closure)
		set := make([]bool, len(m.params))
		for i, a := range args {
			sc.vars[m.params[i]] = a
			set[i] = true
		}
		for _, k := range kw {
			i := indexOf(m.params, k.name)
			if i < 0 {
				return nil, fmt.Errorf("macro %q has no argument %q", m.name, k.name)
			}
			if set[i] {
				return nil, fmt.Errorf("macro %q got multiple values for argument %q", m.name, k.name)
			}
			sc.vars[k.name] = k.val
			set[i] = true
		}
		for i, p := range m.params {
			if set[i] {
				continue
			}
			if m.defaults[i] == nil {
				sc.vars[p] = undefined{fmt.Sprintf("parameter %q was not provided", p)}
				continue
			}
			v, err := r.eval(m.defaults[i], sc)
			if err != nil {
				return nil, err
			}
			sc.vars[p] = v
		}
		s, _, err := r.capture(m.body, sc)
		return s, err
	}}
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

func (r *renderer) eval(e expr, sc *scope) (any, error) {
	r.evalDepth++
	defer func() { r.evalDepth-- }()
	if r.evalDepth > maxEvalDepth {
		return nil, r.wrap(e.position(), errors.New("expression nested too deeply"))
	}
	v, err := r.eval1(e, sc)
	if err != nil {
		return nil, r.wrap(e.position(), err)
	}
	return v, nil
}

func (r *renderer) evalArgs(args []expr, kwargs []kwargExpr, sc *scope) ([]any, []kwarg, error) {
	var av []any
	for _, a := range args {
		v, err := r.eval(a, sc)
		if err != nil {
			return nil, nil, err
		}
		av = append(av, v)
	}
	var kv []kwarg
	for _, k := range kwargs {
		v, err := r.eval(k.x, sc)
		if err != nil {
			return nil, nil, err
		}
		kv = append(kv, kwarg{k.name, v})
	}
	return av, kv, nil
}

func (r *renderer) callFilter(f *filterExpr, v any, sc *scope) (any, error) {
	args, kw, err := r.evalArgs(f.args, f.kwargs, sc)
	if err != nil {
		return nil, err
	}
	return f.fn(r, v, args, kw)
}

func (r *renderer) eval1(e expr, sc *scope) (any, error) {
	switch e := e.(type) {
	case *constExpr:
		return e.v, nil
	case *nameExpr:
		if v, ok := sc.lookup(e.name); ok {
			return v, nil
		}
		if g, ok := globals[e.name]; ok {
			return g, nil
		}
		return undefined{fmt.Sprintf("'%s' is undefined", e.name)}, nil
	case *attrExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		return getattr(x, e.name)
	case *itemExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		k, err := r.eval(e.key, sc)
		if err != nil {
			return nil, err
		}
		return getitem(x, k)
	case *sliceExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		var bounds [3]any
		for i, b := range []expr{e.lo, e.hi, e.stride} {
			if b == nil {
				continue
			}
			if bounds[i], err = r.eval(b, sc); err != nil {
				return nil, err
			}
		}
		return slice(x, bounds[0], bounds[1], bounds[2])
	case *callExpr:
		fn, err := r.eval(e.fn, sc)
		if err != nil {
			return nil, err
		}
		args, kw, err := r.evalArgs(e.args, e.kwargs, sc)
		if err != nil {
			return nil, err
		}
		return r.call(fn, args, kw)
	case *filterExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		return r.callFilter(e, x, sc)
	case *testExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		args, _, err := r.evalArgs(e.args, nil, sc)
		if err != nil {
			return nil, err
		}
		ok, err := e.fn(r, x, args)
		return ok, err
	case *unaryExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		if e.op == "not" {
			return !truthy(x), nil
		}
		return unary(e.op, x)
	case *binaryExpr:
		l, err := r.eval(e.l, sc)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case "and":
			if !truthy(l) {
				return l, nil
			}
			return r.eval(e.r, sc)
		case "or":
			if truthy(l) {
				return l, nil
			}
			return r.eval(e.r, sc)
		}
		rv, err := r.eval(e.r, sc)
		if err != nil {
			return nil, err
		}
		return r.binary(e.op, l, rv)
	case *concatExpr:
		var b strings.Builder
		for _, p := range e.parts {
			v, err := r.eval(p, sc)
			if err != nil {
				return nil, err
			}
			b.WriteString(str(v))
			if err := r.checkLen(b.Len()); err != nil {
				return nil, err
			}
		}
		return b.String(), nil
	case *compareExpr:
		l, err := r.eval(e.first, sc)
		if err != nil {
			return nil, err
		}
		for i, op := range e.ops {
			rv, err := r.eval(e.rest[i], sc)
			if err != nil {
				return nil, err
			}
			ok, err := compareOp(op, l, rv)
			if err != nil {
				return nil, r.wrap(e.rest[i].position(), err)
			}
			if !ok {
				return false, nil
			}
			l = rv
		}
		return true, nil
	case *condExpr:
		c, err := r.eval(e.cond, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return r.eval(e.then, sc)
		}
		if e.els == nil {
			return undefined{"the inline if expression evaluated to false and no else section was defined"}, nil
		}
		return r.eval(e.els, sc)
	case *listExpr:
		items := make([]any, 0, len(e.items))
		for _, x := range e.items {
			v, err := r.eval(x, sc)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
		if e.tuple {
			return tuple(items), nil
		}
		return items, nil
	case *dictExpr:
		d := newDict()
		for i, k := range e.keys {
			kv, err := r.eval(k, sc)
			if err != nil {
				return nil, err
			}
			vv, err := r.eval(e.vals[i], sc)
			if err != nil {
				return nil, err
			}
			if err := d.set(kv, vv); err != nil {
				return nil, r.wrap(k.position(), err)
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("internal error: unknown expression %T", e)
}

func (r *renderer) call(fn any, args []any, kw []kwarg) (any, error) {
	switch f := fn.(type) {
	case *function:
		r.callDepth++
		defer func() { r.callDepth-- }()
		if r.callDepth > maxCallDepth {
			return nil, fmt.Errorf("maximum call depth (%d) exceeded", maxCallDepth)
		}
		if err := r.step(); err != nil {
			return nil, err
		}
		return f.call(r, args, kw)
	case undefined:
		return nil, errors.New(f.hint)
	}
	return nil, fmt.Errorf("'%s' object is not callable", typeName(fn))
}

func compareOp(op string, a, b any) (bool, error) {
	switch op {
	case "==":
		return equal(a, b), nil
	case "!=":
		return !equal(a, b), nil
	case "in":
		return contains(b, a)
	case "not in":
		ok, err := contains(b, a)
		return !ok, err
	}
	c, err := compare(op, a, b)
	if err != nil {
		return false, err
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

// contains is Python's "x in container".
func contains(container, x any) (bool, error) {
	switch c := container.(type) {
	case string:
		s, ok := x.(string)
		if !ok {
			return false, fmt.Errorf("'in <string>' requires string as left operand, not %s", typeName(x))
		}
		return strings.Contains(c, s), nil
	case []any:
		return containsItem(c, x), nil
	case tuple:
		return containsItem(c, x), nil
	case *dict:
		if _, err := hashKey(x); err != nil {
			return false, err
		}
		_, ok := c.get(x)
		return ok, nil
	case *namespace:
		_, ok := c.attrs.get(x)
		return ok, nil
	case undefined:
		return false, nil // an undefined iterates as empty
	}
	return false, fmt.Errorf("argument of type '%s' is not iterable", typeName(container))
}

func containsItem(items []any, x any) bool {
	for _, it := range items {
		if equal(it, x) {
			return true
		}
	}
	return false
}

func unary(op string, x any) (any, error) {
	i, f, isF, ok := number(x)
	if !ok {
		if u, isU := x.(undefined); isU {
			return nil, errors.New(u.hint)
		}
		return nil, fmt.Errorf("bad operand type for unary %s: '%s'", op, typeName(x))
	}
	if op == "+" {
		if isF {
			return f, nil
		}
		return i, nil
	}
	if isF {
		return -f, nil
	}
	if i == math.MinInt64 {
		return nil, errors.New("integer overflow")
	}
	return -i, nil
}

var errOverflow = errors.New("integer overflow")

// binary applies an arithmetic operator with Python semantics.
func (r *renderer) binary(op string, a, b any) (any, error) {
	if s, ok := a.(string); ok && op == "%" {
		return percentFormat(s, b)
	}
	for _, v := range []any{a, b} {
		if u, ok := v.(undefined); ok {
			return nil, errors.New(u.hint)
		}
	}
	ai, af, aF, aNum := number(a)
	bi, bf, bF, bNum := number(b)
	if aNum && bNum {
		if !aF && !bF {
			return intOp(op, ai, bi)
		}
		if !aF {
			af = float64(ai)
		}
		if !bF {
			bf = float64(bi)
		}
		return floatOp(op, af, bf)
	}
	switch op {
	case "+":
		switch a := a.(type) {
		case string:
			if b, ok := b.(string); ok {
				if err := r.checkLen(len(a) + len(b)); err != nil {
					return nil, err
				}
				return a + b, nil
			}
		case []any:
			if b, ok := b.([]any); ok {
				if len(a)+len(b) > maxItems {
					return nil, errTooLarge
				}
				return append(append(make([]any, 0, len(a)+len(b)), a...), b...), nil
			}
		case tuple:
			if b, ok := b.(tuple); ok {
				if len(a)+len(b) > maxItems {
					return nil, errTooLarge
				}
				return tuple(append(append(make([]any, 0, len(a)+len(b)), a...), b...)), nil
			}
		}
	case "*":
		seq, n := a, bi
		if aNum && !aF {
			seq, n = b, ai
		} else if !bNum || bF {
			break
		}
		n = max(n, 0)
		switch s := seq.(type) {
		case string:
			if n > 0 && int64(len(s)) > int64(r.t.maxOutput)/n {
				return nil, errTooLarge
			}
			return strings.Repeat(s, int(n)), nil
		case []any, tuple:
			items, _ := iterate(s)
			if n > 0 && int64(len(items)) > maxItems/n {
				return nil, errTooLarge
			}
			out := make([]any, 0, len(items)*int(n))
			for range n {
				out = append(out, items...)
			}
			if _, ok := s.(tuple); ok {
				return tuple(out), nil
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("unsupported operand type(s) for %s: '%s' and '%s'", op, typeName(a), typeName(b))
}

func intOp(op string, a, b int64) (any, error) {
	switch op {
	case "+":
		s := a + b
		if (s > a) != (b > 0) {
			return nil, errOverflow
		}
		return s, nil
	case "-":
		s := a - b
		if (s < a) != (b > 0) {
			return nil, errOverflow
		}
		return s, nil
	case "*":
		if a == 0 || b == 0 {
			return int64(0), nil
		}
		hi, lo := bits.Mul64(uint64(abs64(a)), uint64(abs64(b)))
		if hi != 0 || lo > math.MaxInt64 || a == math.MinInt64 || b == math.MinInt64 {
			return nil, errOverflow
		}
		if (a < 0) != (b < 0) {
			return -int64(lo), nil
		}
		return int64(lo), nil
	case "/":
		if b == 0 {
			return nil, errors.New("division by zero")
		}
		return float64(a) / float64(b), nil
	case "//", "%":
		if b == 0 {
			return nil, errors.New("integer division or modulo by zero")
		}
		if a == math.MinInt64 && b == -1 {
			if op == "%" {
				return int64(0), nil
			}
			return nil, errOverflow
		}
		q, m := a/b, a%b
		if m != 0 && (m < 0) != (b < 0) {
			q--
			m += b
		}
		if op == "//" {
			return q, nil
		}
		return m, nil
	case "**":
		if b < 0 {
			if a == 0 {
				return nil, errors.New("0.0 cannot be raised to a negative power")
			}
			return math.Pow(float64(a), float64(b)), nil
		}
		result, base := int64(1), a
		for b > 0 {
			if b&1 == 1 {
				v, err := intOp("*", result, base)
				if err != nil {
					return nil, err
				}
				result = v.(int64)
			}
			b >>= 1
			if b > 0 {
				v, err := intOp("*", base, base)
				if err != nil {
					return nil, err
				}
				base = v.(int64)
			}
		}
		return result, nil
	}
	return nil, fmt.Errorf("unsupported operator %s", op)
}

func abs64(a int64) int64 {
	if a < 0 {
		return -a
	}
	return a
}

func floatOp(op string, a, b float64) (any, error) {
	switch op {
	case "+":
		return a + b, nil
	case "-":
		return a - b, nil
	case "*":
		return a * b, nil
	case "/":
		if b == 0 {
			return nil, errors.New("float division by zero")
		}
		return a / b, nil
	case "//", "%":
		if b == 0 {
			if op == "%" {
				return nil, errors.New("float modulo")
			}
			return nil, errors.New("float floor division by zero")
		}
		div, mod := floatDivmod(a, b)
		if op == "%" {
			return mod, nil
		}
		return div, nil
	case "**":
		if a == 0 && b < 0 {
			return nil, errors.New("0.0 cannot be raised to a negative power")
		}
		return math.Pow(a, b), nil
	}
	return nil, fmt.Errorf("unsupported operator %s", op)
}

// floatDivmod is CPython's float floor division and modulo, which differ
// from math.Floor(a/b) when a/b rounds up to an integer (1 // 0.1 is 9.0).
func floatDivmod(a, b float64) (div, mod float64) {
	mod = math.Mod(a, b)
	div = (a - mod) / b
	if mod != 0 {
		if (b < 0) != (mod < 0) {
			mod += b
			div -= 1
		}
	} else {
		mod = math.Copysign(0, b)
	}
	if div != 0 {
		f := math.Floor(div)
		if div-f > 0.5 {
			f++
		}
		return f, mod
	}
	return math.Copysign(0, a/b), mod
}

// getattr is jinja2's environment.getattr: an attribute (a method) first,
// then an item.
func getattr(v any, name string) (any, error) {
	switch x := v.(type) {
	case undefined:
		return nil, errors.New(x.hint)
	case *dict:
		if m := lookupMethod(x, name); m != nil {
			return m, nil
		}
		if val, ok := x.get(name); ok {
			return val, nil
		}
	case *namespace:
		if val, ok := x.attrs.get(name); ok {
			return val, nil
		}
	case *loopState:
		if val, ok := x.attr(name); ok {
			return val, nil
		}
	default:
		if m := lookupMethod(x, name); m != nil {
			return m, nil
		}
	}
	return undefined{fmt.Sprintf("'%s object' has no attribute '%s'", typeName(v), name)}, nil
}

// getitem is jinja2's environment.getitem: an item first, then for string
// keys an attribute.
func getitem(v, key any) (any, error) {
	if u, ok := v.(undefined); ok {
		return nil, errors.New(u.hint)
	}
	switch x := v.(type) {
	case *dict:
		if val, ok := x.get(key); ok {
			return val, nil
		}
	case []any:
		if val, ok := index(x, key); ok {
			return val, nil
		}
	case tuple:
		if val, ok := index(x, key); ok {
			return val, nil
		}
	case string:
		if i, _, isF, ok := number(key); ok && !isF {
			runes := []rune(x)
			if i < 0 {
				i += int64(len(runes))
			}
			if i >= 0 && i < int64(len(runes)) {
				return string(runes[i]), nil
			}
		}
	}
	if name, ok := key.(string); ok {
		return getattr(v, name)
	}
	return undefined{fmt.Sprintf("'%s object' has no item %s", typeName(v), repr(key))}, nil
}

func index(items []any, key any) (any, bool) {
	i, _, isF, ok := number(key)
	if !ok || isF {
		return nil, false
	}
	if i < 0 {
		i += int64(len(items))
	}
	if i < 0 || i >= int64(len(items)) {
		return nil, false
	}
	return items[i], true
}

// slice is Python's x[lo:hi:stride] on lists, tuples and strings.
func slice(v, lo, hi, stride any) (any, error) {
	var items []any
	var runes []rune
	n := 0
	switch x := v.(type) {
	case undefined:
		return nil, errors.New(x.hint)
	case []any:
		items, n = x, len(x)
	case tuple:
		items, n = x, len(x)
	case string:
		runes = []rune(x)
		n = len(runes)
	default:
		return nil, fmt.Errorf("'%s' object is not subscriptable", typeName(v))
	}
	idx := func(b any, def int64) (int64, error) {
		if b == nil {
			return def, nil
		}
		i, _, isF, ok := number(b)
		if !ok || isF {
			return 0, errors.New("slice indices must be integers or None")
		}
		return i, nil
	}
	step, err := idx(stride, 1)
	if err != nil {
		return nil, err
	}
	if step == 0 {
		return nil, errors.New("slice step cannot be zero")
	}
	n64 := int64(n)
	var start, stop int64
	if step > 0 {
		if start, err = idx(lo, 0); err != nil {
			return nil, err
		}
		if stop, err = idx(hi, n64); err != nil {
			return nil, err
		}
		start, stop = clampIndex(start, n64, 0, n64), clampIndex(stop, n64, 0, n64)
	} else {
		if start, err = idx(lo, n64-1); err != nil {
			return nil, err
		}
		if stop, err = idx(hi, -1-n64); err != nil {
			return nil, err
		}
		start, stop = clampIndex(start, n64, -1, n64-1), clampIndex(stop, n64, -1, n64-1)
	}
	var pick []int64
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		pick = append(pick, i)
	}
	if _, ok := v.(string); ok {
		var b strings.Builder
		for _, i := range pick {
			b.WriteRune(runes[i])
		}
		return b.String(), nil
	}
	out := make([]any, len(pick))
	for j, i := range pick {
		out[j] = items[i]
	}
	if _, ok := v.(tuple); ok {
		return tuple(out), nil
	}
	return out, nil
}

// clampIndex resolves a negative index against n and clamps it to
// [lo, hi].
func clampIndex(i, n, lo, hi int64) int64 {
	if i < 0 {
		i += n
	}
	return min(max(i, lo), hi)
}
