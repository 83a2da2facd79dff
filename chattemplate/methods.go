package chattemplate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// method is a method of a built-in type, called on its receiver.
type method func(r *renderer, recv any, args []any, kw []kwarg) (any, error)

var (
	strMethods  map[string]method
	dictMethods map[string]method
	listMethods map[string]method
)

// unsafeAttrs are the mutating methods that jinja2's immutable sandbox
// (which transformers uses) refuses to call.
var unsafeAttrs = map[string]bool{
	"append": true, "extend": true, "insert": true, "pop": true, "remove": true,
	"reverse": true, "sort": true, "clear": true, "popitem": true, "setdefault": true,
	"update": true, "add": true, "discard": true,
}

// lookupMethod returns recv's method name bound to recv, or an undefined
// for a mutating method, or nil if recv has no such method.
func lookupMethod(recv any, name string) any {
	var table map[string]method
	switch recv.(type) {
	case string:
		table = strMethods
	case *dict:
		table = dictMethods
	case []any, tuple:
		table = listMethods
	default:
		return nil
	}
	if m, ok := table[name]; ok {
		return &function{name: name, call: func(r *renderer, args []any, kw []kwarg) (any, error) {
			return m(r, recv, args, kw)
		}}
	}
	if _, isStr := recv.(string); !isStr && unsafeAttrs[name] {
		return undefined{fmt.Sprintf("access to attribute '%s' of '%s' object is unsafe", name, typeName(recv))}
	}
	return nil
}

func init() {
	s := func(f func(r *renderer, s string, a []any) (any, error), params ...string) method {
		return func(r *renderer, recv any, args []any, kw []kwarg) (any, error) {
			a, err := bind("str method", params, args, kw)
			if err != nil {
				return nil, err
			}
			return f(r, recv.(string), a)
		}
	}
	strip := func(left, right bool) method {
		return s(func(_ *renderer, x string, a []any) (any, error) {
			return pyStrip(x, orDefault(a[0], nil), left, right)
		}, "chars")
	}
	fixes := func(suffix bool) method {
		return s(func(_ *renderer, x string, a []any) (any, error) {
			var fixes []any
			switch p := a[0].(type) {
			case string:
				fixes = []any{p}
			case tuple:
				fixes = p
			default:
				return nil, errors.New("startswith/endswith: argument must be str or a tuple of str")
			}
			for _, f := range fixes {
				f, ok := f.(string)
				if !ok {
					return nil, errors.New("startswith/endswith: tuple items must be str")
				}
				if (suffix && strings.HasSuffix(x, f)) || (!suffix && strings.HasPrefix(x, f)) {
					return true, nil
				}
			}
			return false, nil
		}, "prefix")
	}
	conv := func(f func(string) string) method {
		return s(func(_ *renderer, x string, _ []any) (any, error) { return f(x), nil })
	}
	pred := func(f func(string) bool) method {
		return s(func(_ *renderer, x string, _ []any) (any, error) { return f(x), nil })
	}
	find := func(last bool) method {
		return s(func(_ *renderer, x string, a []any) (any, error) {
			sub, ok := a[0].(string)
			if !ok {
				return nil, errors.New("find: argument must be str")
			}
			i := strings.Index(x, sub)
			if last {
				i = strings.LastIndex(x, sub)
			}
			if i < 0 {
				return int64(-1), nil
			}
			return int64(utf8.RuneCountInString(x[:i])), nil
		}, "sub")
	}
	all := func(f func(rune) bool) func(string) bool {
		return func(x string) bool {
			if x == "" {
				return false
			}
			for _, r := range x {
				if !f(r) {
					return false
				}
			}
			return true
		}
	}
	strMethods = map[string]method{
		"strip":      strip(true, true),
		"lstrip":     strip(true, false),
		"rstrip":     strip(false, true),
		"startswith": fixes(false),
		"endswith":   fixes(true),
		"split": s(func(_ *renderer, x string, a []any) (any, error) {
			return pySplit(x, orDefault(a[0], nil), orDefault(a[1], int64(-1)), false)
		}, "sep", "maxsplit"),
		"rsplit": s(func(_ *renderer, x string, a []any) (any, error) {
			return pySplit(x, orDefault(a[0], nil), orDefault(a[1], int64(-1)), true)
		}, "sep", "maxsplit"),
		"splitlines": s(func(_ *renderer, x string, a []any) (any, error) {
			lines := pySplitLines(x)
			out := make([]any, len(lines))
			for i, l := range lines {
				out[i] = l
			}
			if truthy(orDefault(a[0], false)) {
				return nil, errors.New("splitlines(keepends=True) is not supported")
			}
			return out, nil
		}, "keepends"),
		"upper":      conv(pyUpper),
		"lower":      conv(pyLower),
		"title":      conv(pyTitle),
		"capitalize": conv(pyCapitalize),
		"replace": s(func(r *renderer, x string, a []any) (any, error) {
			old, ok1 := a[0].(string)
			new, ok2 := a[1].(string)
			if !ok1 || !ok2 {
				return nil, errors.New("replace() arguments must be str")
			}
			n, _, isF, ok := number(orDefault(a[2], int64(-1)))
			if !ok || isF {
				return nil, errors.New("replace() count must be an int")
			}
			return pyReplace(r, x, old, new, n)
		}, "old", "new", "count"),
		"find":  find(false),
		"rfind": find(true),
		"count": s(func(_ *renderer, x string, a []any) (any, error) {
			sub, ok := a[0].(string)
			if !ok {
				return nil, errors.New("count: argument must be str")
			}
			if sub == "" {
				return int64(utf8.RuneCountInString(x) + 1), nil
			}
			return int64(strings.Count(x, sub)), nil
		}, "sub"),
		"join": s(func(r *renderer, x string, a []any) (any, error) {
			items, err := iterate(a[0])
			if err != nil {
				return nil, err
			}
			parts := make([]string, len(items))
			n := 0
			for i, it := range items {
				p, ok := it.(string)
				if !ok {
					return nil, fmt.Errorf("sequence item %d: expected str instance, %s found", i, typeName(it))
				}
				parts[i] = p
				n += len(p) + len(x)
			}
			if err := r.checkLen(n); err != nil {
				return nil, err
			}
			return strings.Join(parts, x), nil
		}, "iterable"),
		"removeprefix": s(func(_ *renderer, x string, a []any) (any, error) {
			return strings.TrimPrefix(x, str(a[0])), nil
		}, "prefix"),
		"removesuffix": s(func(_ *renderer, x string, a []any) (any, error) {
			return strings.TrimSuffix(x, str(a[0])), nil
		}, "suffix"),
		"isdigit": pred(all(unicode.IsDigit)),
		"isalpha": pred(all(unicode.IsLetter)),
		"isalnum": pred(all(func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) })),
		"isspace": pred(all(pyIsSpace)),
		"islower": pred(func(x string) bool { return pyIsCase(x, false) }),
		"isupper": pred(func(x string) bool { return pyIsCase(x, true) }),
		"format":  strFormat,
	}

	dictMethods = map[string]method{
		"items": func(_ *renderer, recv any, args []any, kw []kwarg) (any, error) {
			return filterItems(nil, recv, nil, nil)
		},
		"keys": func(_ *renderer, recv any, args []any, kw []kwarg) (any, error) {
			return append([]any{}, recv.(*dict).keys...), nil
		},
		"values": func(_ *renderer, recv any, args []any, kw []kwarg) (any, error) {
			return append([]any{}, recv.(*dict).vals...), nil
		},
		"get": func(_ *renderer, recv any, args []any, kw []kwarg) (any, error) {
			a, err := bind("get", []string{"key", "default"}, args, kw)
			if err != nil {
				return nil, err
			}
			if v, ok := recv.(*dict).get(a[0]); ok {
				return v, nil
			}
			return orDefault(a[1], nil), nil
		},
	}

	listMethods = map[string]method{
		"index": func(_ *renderer, recv any, args []any, kw []kwarg) (any, error) {
			items, _ := iterate(recv)
			if len(args) != 1 {
				return nil, errors.New("index() takes one argument")
			}
			for i, it := range items {
				if equal(it, args[0]) {
					return int64(i), nil
				}
			}
			return nil, fmt.Errorf("%s is not in list", repr(args[0]))
		},
		"count": func(_ *renderer, recv any, args []any, kw []kwarg) (any, error) {
			items, _ := iterate(recv)
			if len(args) != 1 {
				return nil, errors.New("count() takes one argument")
			}
			n := 0
			for _, it := range items {
				if equal(it, args[0]) {
					n++
				}
			}
			return int64(n), nil
		},
	}
}

// pyStrip is str.strip/lstrip/rstrip: whitespace, or any of chars.
func pyStrip(s string, chars any, left, right bool) (string, error) {
	cut := pyIsSpace
	if chars != nil {
		cs, ok := chars.(string)
		if !ok {
			return "", errors.New("strip arg must be None or str")
		}
		cut = func(r rune) bool { return strings.ContainsRune(cs, r) }
	}
	if left {
		s = strings.TrimLeftFunc(s, cut)
	}
	if right {
		s = strings.TrimRightFunc(s, cut)
	}
	return s, nil
}

// pySplit is str.split and str.rsplit.
func pySplit(s string, sep, maxsplit any, fromRight bool) (any, error) {
	n, _, isF, ok := number(maxsplit)
	if !ok || isF {
		return nil, errors.New("split: maxsplit must be an int")
	}
	var parts []string
	if sep == nil {
		parts = splitWhitespace(s, n, fromRight)
	} else {
		sp, ok := sep.(string)
		if !ok {
			return nil, errors.New("split: separator must be str or None")
		}
		if sp == "" {
			return nil, errors.New("empty separator")
		}
		switch {
		case n < 0:
			parts = strings.Split(s, sp)
		case fromRight:
			parts = rsplitN(s, sp, int(min(n, int64(len(s)))))
		default:
			parts = strings.SplitN(s, sp, int(min(n, int64(len(s))))+1)
		}
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

// splitWhitespace is str.split() and str.rsplit() with no separator: runs of
// whitespace separate, and after n splits (n >= 0) the rest is kept as it
// is apart from the whitespace next to the last cut.
func splitWhitespace(s string, n int64, fromRight bool) []string {
	var parts []string
	if fromRight {
		end := len(s)
		for {
			end = len(strings.TrimRightFunc(s[:end], pyIsSpace))
			if end == 0 {
				break
			}
			if n >= 0 && int64(len(parts)) == n {
				parts = append(parts, s[:end])
				break
			}
			start := strings.LastIndexFunc(s[:end], pyIsSpace) + 1
			if start > 0 {
				_, size := utf8.DecodeLastRuneInString(s[:start])
				start = start - 1 + size
			}
			parts = append(parts, s[start:end])
			end = start
		}
		slices.Reverse(parts)
		return parts
	}
	i := 0
	for {
		i = len(s) - len(strings.TrimLeftFunc(s[i:], pyIsSpace))
		if i == len(s) {
			break
		}
		if n >= 0 && int64(len(parts)) == n {
			parts = append(parts, s[i:])
			break
		}
		j := strings.IndexFunc(s[i:], pyIsSpace)
		if j < 0 {
			j = len(s) - i
		}
		parts = append(parts, s[i:i+j])
		i += j
	}
	return parts
}

func rsplitN(s, sep string, n int) []string {
	var rev []string
	for ; n > 0; n-- {
		i := strings.LastIndex(s, sep)
		if i < 0 {
			break
		}
		rev = append(rev, s[i+len(sep):])
		s = s[:i]
	}
	out := []string{s}
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return out
}

// pySplitLines is str.splitlines() without keepends.
func pySplitLines(s string) []string {
	var lines []string
	start := 0
	for i, r := range s {
		if i < start {
			continue
		}
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			lines = append(lines, s[start:i])
			start = i + utf8.RuneLen(r)
			if r == '\r' && start < len(s) && s[start] == '\n' {
				start++
			}
		}
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

// pyLower is str.lower, with the special cases that differ from Go's
// per-rune mapping in text a chat template is likely to see.
func pyLower(s string) string {
	if !strings.ContainsAny(s, "İΣ") {
		return strings.ToLower(s)
	}
	var b strings.Builder
	runes := []rune(s)
	for i, r := range runes {
		switch {
		case r == 'İ':
			b.WriteString("i\u0307")
		case r == 'Σ' && i > 0 && unicode.IsLetter(runes[i-1]) &&
			(i+1 == len(runes) || !unicode.IsLetter(runes[i+1])):
			b.WriteRune('ς')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// pyUpper is str.upper, including "ß" → "SS".
func pyUpper(s string) string {
	return strings.ReplaceAll(strings.ToUpper(s), "ß", "SS")
}

func pyCapitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	first := string(unicode.ToTitle(r))
	if r == 'ß' {
		first = "Ss"
	}
	return first + pyLower(s[n:])
}

// pyTitle is str.title: a cased character after an uncased one starts a
// word.
func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		cased := unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)
		switch {
		case cased && !prevCased:
			b.WriteRune(unicode.ToTitle(r))
		case cased:
			b.WriteString(pyLower(string(r)))
		default:
			b.WriteRune(r)
		}
		prevCased = cased
	}
	return b.String()
}

// pyIsCase is str.isupper (upper) or str.islower: some cased character
// and none of the other case.
func pyIsCase(s string, upper bool) bool {
	cased := false
	for _, r := range s {
		switch {
		case unicode.IsUpper(r) || unicode.IsTitle(r):
			if !upper {
				return false
			}
			cased = true
		case unicode.IsLower(r):
			if upper {
				return false
			}
			cased = true
		}
	}
	return cased
}

// strFormat is str.format with "{}", "{0}" and "{name}" fields and "{{",
// "}}" escapes; format specs and conversions are not supported.
func strFormat(_ *renderer, recv any, args []any, kw []kwarg) (any, error) {
	s := recv.(string)
	var b strings.Builder
	auto := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return nil, errors.New("single '{' encountered in format string")
			}
			field := s[i+1 : i+j]
			i += j
			var v any
			switch {
			case field == "":
				if auto >= len(args) {
					return nil, errors.New("format: not enough positional arguments")
				}
				v = args[auto]
				auto++
			case field[0] >= '0' && field[0] <= '9':
				n := 0
				for _, d := range field {
					if d < '0' || d > '9' || n > len(args) {
						return nil, fmt.Errorf("format: unsupported field %q", field)
					}
					n = n*10 + int(d-'0')
				}
				if n >= len(args) {
					return nil, errors.New("format: not enough positional arguments")
				}
				v = args[n]
			default:
				found := false
				for _, k := range kw {
					if k.name == field {
						v, found = k.val, true
					}
				}
				if !found {
					return nil, fmt.Errorf("format: no argument %q", field)
				}
			}
			b.WriteString(str(v))
		case c == '}':
			return nil, errors.New("single '}' encountered in format string")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
