package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Values are plain Go values, following Python's data model:
//
//	nil        None
//	bool       bool
//	int64      int (no big integers: overflow is an error)
//	float64    float
//	string     str
//	[]any      list
//	tuple      tuple
//	*dict      dict (insertion ordered)
//	*namespace the object made by namespace()
//	*loopState the loop variable
//	*function  built-in function, bound method or macro
//	undefined  a missing variable, attribute or item

// undefined is jinja2's default Undefined: it prints as "", is false and
// iterates as empty, but any attribute, item, call or arithmetic on it fails
// with hint.
type undefined struct{ hint string }

type tuple []any

// dict is an insertion-ordered dictionary with hashable scalar keys.
type dict struct {
	keys  []any
	vals  []any
	index map[any]int
}

type namespace struct{ attrs *dict }

// kwarg is one keyword argument of a call, in source order.
type kwarg struct {
	name string
	val  any
}

// function is anything callable from a template.
type function struct {
	name string
	call func(r *renderer, args []any, kw []kwarg) (any, error)
}

type (
	nanKey   struct{}
	tupleKey string
)

func newDict() *dict { return &dict{index: map[any]int{}} }

// hashKey maps a key to its identity in the index, the way Python hashes
// True, 1 and 1.0 alike.
func hashKey(k any) (any, error) {
	switch k := k.(type) {
	case nil, string, int64:
		return k, nil
	case undefined:
		return undefined{}, nil // every Undefined is equal to every other
	case tuple:
		parts := make([]any, len(k))
		for i, x := range k {
			h, err := hashKey(x)
			if err != nil {
				return nil, err
			}
			parts[i] = h
		}
		return tupleKey(fmt.Sprintf("%#v", parts)), nil
	case bool:
		if k {
			return int64(1), nil
		}
		return int64(0), nil
	case float64:
		if k == math.Trunc(k) && math.Abs(k) < 1<<62 {
			return int64(k), nil
		}
		if k != k {
			return nanKey{}, nil // Python keeps each NaN apart; close enough
		}
		return k, nil
	}
	return nil, fmt.Errorf("unhashable type: '%s'", typeName(k))
}

func (d *dict) set(k, v any) error {
	h, err := hashKey(k)
	if err != nil {
		return err
	}
	if i, ok := d.index[h]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[h] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

func (d *dict) get(k any) (any, bool) {
	h, err := hashKey(k)
	if err != nil {
		return nil, false
	}
	i, ok := d.index[h]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

func (d *dict) len() int { return len(d.keys) }

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case tuple:
		return "tuple"
	case *dict:
		return "dict"
	case *namespace:
		return "Namespace"
	case *loopState:
		return "LoopContext"
	case *function:
		return "function"
	case undefined:
		return "Undefined"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func truthy(v any) bool {
	switch v := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return v
	case int64:
		return v != 0
	case float64:
		return v != 0
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case tuple:
		return len(v) > 0
	case *dict:
		return v.len() > 0
	}
	return true
}

// str is Python's str().
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case undefined:
		return ""
	}
	return repr(v)
}

// repr is Python's repr(). Containers that share items can describe
// exponentially large text, so the result is cut off a little after
// defaultMaxOutput bytes; anything that long fails when written out.
func repr(v any) string {
	var b strings.Builder
	writeRepr(&b, v, 0)
	return b.String()
}

func writeRepr(b *strings.Builder, v any, depth int) {
	if b.Len() > defaultMaxOutput {
		return
	}
	if depth > maxValueDepth {
		b.WriteString("...")
		return
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case undefined:
		// jinja2 prints an Undefined inside a container as its repr.
		b.WriteString("Undefined")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		b.WriteString(formatFloat(v))
	case string:
		writeStringRepr(b, v)
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, x, depth+1)
		}
		b.WriteByte(']')
	case tuple:
		b.WriteByte('(')
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, x, depth+1)
		}
		if len(v) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case *dict:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, k, depth+1)
			b.WriteString(": ")
			writeRepr(b, v.vals[i], depth+1)
		}
		b.WriteByte('}')
	case *namespace:
		b.WriteString("<Namespace ")
		writeRepr(b, v.attrs, depth+1)
		b.WriteByte('>')
	case *loopState:
		fmt.Fprintf(b, "<LoopContext %d/%d>", v.index+1, len(v.items))
	case *function:
		fmt.Fprintf(b, "<function %s>", v.name)
	default:
		fmt.Fprintf(b, "%v", v)
	}
}

// writeStringRepr quotes s the way Python's repr does.
func writeStringRepr(b *strings.Builder, s string) {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError:
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		case r < 0x80 || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
	}
	b.WriteByte(q)
}

// formatFloat is Python's float repr: the shortest round-tripping digits,
// fixed notation for exponents in [-4, 16), always with a fraction or an
// exponent.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	if exp >= -4 && exp < 16 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.ContainsAny(s, ".") {
			s += ".0"
		}
		return s
	}
	sign := "+"
	if exp < 0 {
		sign = "-"
		exp = -exp
	}
	return fmt.Sprintf("%se%s%02d", mant, sign, exp)
}

// number returns v as an int64 or float64; bools count as ints.
func number(v any) (i int64, f float64, isFloat, ok bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return 1, 0, false, true
		}
		return 0, 0, false, true
	case int64:
		return v, 0, false, true
	case float64:
		return 0, v, true, true
	}
	return 0, 0, false, false
}

func toFloat(v any) (float64, bool) {
	i, f, isF, ok := number(v)
	if !ok {
		return 0, false
	}
	if isF {
		return f, true
	}
	return float64(i), true
}

func equal(a, b any) bool {
	if ai, af, aF, ok := number(a); ok {
		bi, bf, bF, ok := number(b)
		if !ok {
			return false
		}
		if !aF && !bF {
			return ai == bi
		}
		if !aF {
			af = float64(ai)
		}
		if !bF {
			bf = float64(bi)
		}
		return af == bf
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case undefined:
		_, ok := b.(undefined)
		return ok
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case []any:
		bl, ok := b.([]any)
		return ok && seqEqual(a, bl)
	case tuple:
		bt, ok := b.(tuple)
		return ok && seqEqual(a, bt)
	case *dict:
		bd, ok := b.(*dict)
		if !ok || a.len() != bd.len() {
			return false
		}
		for i, k := range a.keys {
			v, ok := bd.get(k)
			if !ok || !equal(a.vals[i], v) {
				return false
			}
		}
		return true
	}
	return a == b // identity for namespaces, functions, loops
}

func seqEqual(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// compare orders a and b like Python's <, or fails with a TypeError.
func compare(op string, a, b any) (int, error) {
	if af, ok := toFloat(a); ok {
		if bf, ok := toFloat(b); ok {
			ai, _, aF, _ := number(a)
			bi, _, bF, _ := number(b)
			if !aF && !bF {
				return cmpInt(ai, bi), nil
			}
			switch {
			case af < bf:
				return -1, nil
			case af > bf:
				return 1, nil
			}
			return 0, nil
		}
	}
	switch a := a.(type) {
	case string:
		if b, ok := b.(string); ok {
			return strings.Compare(a, b), nil
		}
	case []any:
		if b, ok := b.([]any); ok {
			return compareSeq(op, a, b)
		}
	case tuple:
		if b, ok := b.(tuple); ok {
			return compareSeq(op, a, b)
		}
	}
	return 0, fmt.Errorf("'%s' not supported between instances of '%s' and '%s'", op, typeName(a), typeName(b))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareSeq(op string, a, b []any) (int, error) {
	for i := 0; i < len(a) && i < len(b); i++ {
		if equal(a[i], b[i]) {
			continue
		}
		return compare(op, a[i], b[i])
	}
	return cmpInt(int64(len(a)), int64(len(b))), nil
}

// errTooLarge is returned when a value would exceed the render limits.
var errTooLarge = errors.New("result too large")

// iterate returns the items a for loop visits.
func iterate(v any) ([]any, error) {
	switch v := v.(type) {
	case undefined:
		return nil, nil
	case []any:
		return v, nil
	case tuple:
		return v, nil
	case *dict:
		return slices.Clone(v.keys), nil
	case string:
		out := make([]any, 0, len(v))
		for _, r := range v {
			out = append(out, string(r))
		}
		return out, nil
	}
	return nil, fmt.Errorf("'%s' object is not iterable", typeName(v))
}

func length(v any) (int, error) {
	switch v := v.(type) {
	case undefined:
		return 0, nil
	case string:
		return utf8.RuneCountInString(v), nil
	case []any:
		return len(v), nil
	case tuple:
		return len(v), nil
	case *dict:
		return v.len(), nil
	case *namespace:
		return v.attrs.len(), nil
	}
	return 0, fmt.Errorf("object of type '%s' has no len()", typeName(v))
}

// runeLen is the length of s in characters, as Python counts it.
func runeLen(s string) int { return utf8.RuneCountInString(s) }

// pyIsSpace is Python's str.isspace for one character.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
