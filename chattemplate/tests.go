package chattemplate

import (
	"errors"
	"fmt"
)

// tests are jinja2's built-in tests ("x is defined"). Unknown tests are
// rejected when parsing.
var tests map[string]testFunc

func init() {
	cmp := func(op string) testFunc {
		return func(_ *renderer, v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, fmt.Errorf("test %q takes one argument", op)
			}
			return compareOp(op, v, args[0])
		}
	}
	is := func(f func(v any) bool) testFunc {
		return func(_ *renderer, v any, args []any) (bool, error) {
			if len(args) > 0 {
				return false, errors.New("this test takes no arguments")
			}
			return f(v), nil
		}
	}
	tests = map[string]testFunc{
		"defined":   is(func(v any) bool { _, u := v.(undefined); return !u }),
		"undefined": is(func(v any) bool { _, u := v.(undefined); return u }),
		"none":      is(func(v any) bool { return v == nil }),
		"boolean":   is(func(v any) bool { _, ok := v.(bool); return ok }),
		"true":      is(func(v any) bool { return v == true }),
		"false":     is(func(v any) bool { return v == false }),
		"integer":   is(func(v any) bool { _, ok := v.(int64); return ok }),
		"float":     is(func(v any) bool { _, ok := v.(float64); return ok }),
		"number":    is(func(v any) bool { _, _, _, ok := number(v); return ok }),
		"string":    is(func(v any) bool { _, ok := v.(string); return ok }),
		"mapping":   is(func(v any) bool { _, ok := v.(*dict); return ok }),
		"callable": is(func(v any) bool {
			switch v.(type) {
			case *function, undefined: // jinja2's Undefined has __call__
				return true
			}
			return false
		}),
		"iterable": is(func(v any) bool {
			_, err := iterate(v)
			return err == nil
		}),
		"sequence": is(func(v any) bool {
			switch v.(type) {
			case string, []any, tuple, *dict, undefined:
				return true
			}
			return false
		}),
		"lower":   is(func(v any) bool { return pyIsCase(str(v), false) }),
		"upper":   is(func(v any) bool { return pyIsCase(str(v), true) }),
		"escaped": is(func(v any) bool { return false }),
		"even":    func(r *renderer, v any, args []any) (bool, error) { return modIs(r, v, int64(2), 0) },
		"odd":     func(r *renderer, v any, args []any) (bool, error) { return modIs(r, v, int64(2), 1) },
		"divisibleby": func(r *renderer, v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, errors.New("divisibleby takes one argument")
			}
			return modIs(r, v, args[0], 0)
		},
		"eq": cmp("=="), "equalto": cmp("=="), "==": cmp("=="),
		"ne": cmp("!="), "!=": cmp("!="),
		"lt": cmp("<"), "lessthan": cmp("<"), "<": cmp("<"),
		"le": cmp("<="), "<=": cmp("<="),
		"gt": cmp(">"), "greaterthan": cmp(">"), ">": cmp(">"),
		"ge": cmp(">="), ">=": cmp(">="),
		"in": cmp("in"),
		"sameas": func(_ *renderer, v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, errors.New("sameas takes one argument")
			}
			return sameAs(v, args[0]), nil
		},
		"filter": is(func(v any) bool { s, ok := v.(string); _, f := filters[s]; return ok && f }),
		"test":   is(func(v any) bool { s, ok := v.(string); _, f := tests[s]; return ok && f }),
	}
}

// modIs reports whether v % m == want, the way jinja2's even, odd and
// divisibleby tests compute it.
func modIs(r *renderer, v, m any, want int64) (bool, error) {
	rem, err := r.binary("%", v, m)
	if err != nil {
		return false, err
	}
	return equal(rem, want), nil
}

// sameAs approximates Python's "is": identity for containers and objects,
// equality of type and value for scalars.
func sameAs(a, b any) bool {
	switch x := a.(type) {
	case nil, bool, int64, float64, string, undefined:
		return typeName(a) == typeName(b) && equal(a, b)
	case []any:
		y, ok := b.([]any)
		return ok && len(x) == len(y) && len(x) > 0 && &x[0] == &y[0]
	case tuple:
		y, ok := b.(tuple)
		return ok && len(x) == len(y) && len(x) > 0 && &x[0] == &y[0]
	}
	return a == b
}
