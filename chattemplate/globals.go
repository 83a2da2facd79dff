package chattemplate

import (
	"errors"
	"fmt"
)

// loopState is the "loop" variable of a for loop; index is updated as the
// loop advances.
type loopState struct {
	items   []any
	index   int
	changed []any // last arguments of loop.changed, nil before the first call
}

func (l *loopState) attr(name string) (any, bool) {
	i, n := int64(l.index), int64(len(l.items))
	switch name {
	case "index":
		return i + 1, true
	case "index0":
		return i, true
	case "revindex":
		return n - i, true
	case "revindex0":
		return n - i - 1, true
	case "first":
		return i == 0, true
	case "last":
		return i == n-1, true
	case "length":
		return n, true
	case "depth":
		return int64(1), true
	case "depth0":
		return int64(0), true
	case "previtem":
		if i == 0 {
			return undefined{"there is no previous item"}, true
		}
		return l.items[i-1], true
	case "nextitem":
		if i == n-1 {
			return undefined{"there is no next item"}, true
		}
		return l.items[i+1], true
	case "cycle":
		return &function{name: "loop.cycle", call: func(_ *renderer, args []any, _ []kwarg) (any, error) {
			if len(args) == 0 {
				return nil, errors.New("no items for cycling given")
			}
			return args[l.index%len(args)], nil
		}}, true
	case "changed":
		return &function{name: "loop.changed", call: func(_ *renderer, args []any, _ []kwarg) (any, error) {
			if l.changed != nil && equal(tuple(args), tuple(l.changed)) {
				return false, nil
			}
			l.changed = append([]any{}, args...)
			return true, nil
		}}, true
	}
	return nil, false
}

// globals are the functions every template sees: jinja2's defaults that
// chat templates use plus transformers' raise_exception and strftime_now.
var globals map[string]any

func init() {
	globals = map[string]any{}
	for name, fn := range map[string]func(r *renderer, args []any, kw []kwarg) (any, error){
		"range":           globalRange,
		"namespace":       globalNamespace,
		"dict":            globalDict,
		"raise_exception": globalRaise,
		"strftime_now":    globalStrftimeNow,
	} {
		globals[name] = &function{name: name, call: fn}
	}
}

func globalRange(_ *renderer, args []any, kw []kwarg) (any, error) {
	if len(kw) > 0 {
		return nil, errors.New("range() takes no keyword arguments")
	}
	if len(args) < 1 || len(args) > 3 {
		return nil, fmt.Errorf("range expected 1 to 3 arguments, got %d", len(args))
	}
	var ints [3]int64
	for i, a := range args {
		v, _, isF, ok := number(a)
		if !ok || isF {
			return nil, fmt.Errorf("'%s' object cannot be interpreted as an integer", typeName(a))
		}
		ints[i] = v
	}
	start, stop, step := int64(0), ints[0], int64(1)
	if len(args) >= 2 {
		start, stop = ints[0], ints[1]
	}
	if len(args) == 3 {
		step = ints[2]
	}
	if step == 0 {
		return nil, errors.New("range() arg 3 must not be zero")
	}
	var n int64
	switch {
	case step > 0 && start < stop:
		n = (stop-start-1)/step + 1
	case step < 0 && start > stop:
		n = (start-stop-1)/(-step) + 1
	}
	if n < 0 || n > maxRange {
		return nil, fmt.Errorf("range too big: the sandbox allows at most %d items", maxRange)
	}
	out := make([]any, n)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out, nil
}

func globalNamespace(_ *renderer, args []any, kw []kwarg) (any, error) {
	ns := &namespace{attrs: newDict()}
	if len(args) > 1 {
		return nil, errors.New("namespace() takes at most one positional argument")
	}
	if len(args) == 1 {
		d, ok := args[0].(*dict)
		if !ok {
			return nil, fmt.Errorf("namespace() argument must be a dict, not '%s'", typeName(args[0]))
		}
		for i, k := range d.keys {
			ns.attrs.set(k, d.vals[i])
		}
	}
	for _, k := range kw {
		ns.attrs.set(k.name, k.val)
	}
	return ns, nil
}

func globalDict(_ *renderer, args []any, kw []kwarg) (any, error) {
	d := newDict()
	if len(args) > 1 {
		return nil, errors.New("dict expected at most 1 argument")
	}
	if len(args) == 1 {
		src, ok := args[0].(*dict)
		if !ok {
			return nil, fmt.Errorf("dict() argument must be a dict, not '%s'", typeName(args[0]))
		}
		for i, k := range src.keys {
			d.set(k, src.vals[i])
		}
	}
	for _, k := range kw {
		d.set(k.name, k.val)
	}
	return d, nil
}

func globalRaise(_ *renderer, args []any, _ []kwarg) (any, error) {
	msg := ""
	if len(args) > 0 {
		msg = str(args[0])
	}
	return nil, &RaiseError{Message: msg}
}

func globalStrftimeNow(r *renderer, args []any, _ []kwarg) (any, error) {
	if len(args) != 1 {
		return nil, errors.New("strftime_now() takes exactly one argument")
	}
	f, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("strftime_now() argument must be str, not %s", typeName(args[0]))
	}
	return strftime(r.t.now(), f), nil
}
