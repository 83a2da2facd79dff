package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

type filterFunc func(r *renderer, v any, args []any, kw []kwarg) (any, error)

type testFunc func(r *renderer, v any, args []any) (bool, error)

// filters are jinja2's built-in filters that chat templates use, with
// transformers' tojson. Unknown filters are rejected when parsing.
var filters map[string]filterFunc

func init() {
	filters = map[string]filterFunc{
		"abs":        filterAbs,
		"attr":       filterAttr,
		"batch":      filterBatch,
		"capitalize": strFilter(pyCapitalize),
		"count":      filterLength,
		"default":    filterDefault,
		"d":          filterDefault,
		"dictsort":   filterDictsort,
		"escape":     strFilter(htmlEscape),
		"e":          strFilter(htmlEscape),
		"first":      filterFirst,
		"float":      filterFloat,
		"format":     filterFormat,
		"indent":     filterIndent,
		"int":        filterInt,
		"items":      filterItems,
		"join":       filterJoin,
		"last":       filterLast,
		"length":     filterLength,
		"list":       filterList,
		"lower":      strFilter(pyLower),
		"map":        filterMap,
		"max":        func(r *renderer, v any, a []any, kw []kwarg) (any, error) { return minMax(v, a, kw, 1) },
		"min":        func(r *renderer, v any, a []any, kw []kwarg) (any, error) { return minMax(v, a, kw, -1) },
		"reject":     selectFilter(false, false),
		"rejectattr": selectFilter(false, true),
		"replace":    filterReplace,
		"reverse":    filterReverse,
		"round":      filterRound,
		"safe":       func(r *renderer, v any, a []any, kw []kwarg) (any, error) { return v, nil },
		"select":     selectFilter(true, false),
		"selectattr": selectFilter(true, true),
		"sort":       filterSort,
		"string":     strFilter(func(s string) string { return s }),
		"sum":        filterSum,
		"title":      strFilter(jinjaTitle),
		"tojson":     filterToJSON,
		"trim":       filterTrim,
		"unique":     filterUnique,
		"upper":      strFilter(pyUpper),
		"wordcount":  filterWordcount,
	}
}

// missing marks an optional argument that was not given.
type missing struct{}

// bind matches positional and keyword arguments to params like a Python
// call; params not given are missing{}.
func bind(fname string, params []string, args []any, kw []kwarg) ([]any, error) {
	if len(args) > len(params) {
		return nil, fmt.Errorf("%s() takes at most %d arguments (%d given)", fname, len(params), len(args))
	}
	out := make([]any, len(params))
	for i := range out {
		out[i] = missing{}
	}
	copy(out, args)
	for _, k := range kw {
		i := indexOf(params, k.name)
		if i < 0 {
			return nil, fmt.Errorf("%s() got an unexpected keyword argument %q", fname, k.name)
		}
		if i < len(args) {
			return nil, fmt.Errorf("%s() got multiple values for argument %q", fname, k.name)
		}
		out[i] = k.val
	}
	return out, nil
}

func orDefault(v, def any) any {
	if _, ok := v.(missing); ok {
		return def
	}
	return v
}

func isGiven(v any) bool {
	_, ok := v.(missing)
	return !ok
}

func strFilter(f func(string) string) filterFunc {
	return func(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
		if len(args) > 0 || len(kw) > 0 {
			return nil, errors.New("this filter takes no arguments")
		}
		return f(str(v)), nil
	}
}

func filterAbs(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	i, f, isF, ok := number(v)
	switch {
	case !ok:
		return nil, fmt.Errorf("bad operand type for abs(): '%s'", typeName(v))
	case isF:
		return math.Abs(f), nil
	case i == math.MinInt64:
		return nil, errOverflow
	}
	return abs64(i), nil
}

func filterAttr(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("attr", []string{"name"}, args, kw)
	if err != nil {
		return nil, err
	}
	name, ok := a[0].(string)
	if !ok {
		return nil, errors.New("attr() needs an attribute name")
	}
	return getattr(v, name)
}

func filterBatch(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("batch", []string{"linecount", "fill_with"}, args, kw)
	if err != nil {
		return nil, err
	}
	n, _, isF, ok := number(a[0])
	if !ok || isF || n <= 0 {
		return nil, errors.New("batch: linecount must be a positive int")
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	var out []any
	for len(items) > 0 {
		k := int(min(n, int64(len(items))))
		row := slices.Clone(items[:k])
		items = items[k:]
		if fill := a[1]; isGiven(fill) {
			for int64(len(row)) < n {
				row = append(row, fill)
			}
		}
		out = append(out, row)
	}
	return out, nil
}

func filterDefault(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("default", []string{"default_value", "boolean"}, args, kw)
	if err != nil {
		return nil, err
	}
	def := orDefault(a[0], "")
	if _, isUndef := v.(undefined); isUndef || (truthy(orDefault(a[1], false)) && !truthy(v)) {
		return def, nil
	}
	return v, nil
}

// sortKey lowers strings unless caseSensitive, as jinja2's ignore_case.
func sortKey(v any, caseSensitive bool) any {
	if s, ok := v.(string); ok && !caseSensitive {
		return pyLower(s)
	}
	return v
}

// sortItems sorts stably by key, reporting the first incomparable pair.
func sortItems(items []any, key func(any) any, reverse bool) error {
	var err error
	slices.SortStableFunc(items, func(a, b any) int {
		c, e := compare("<", key(a), key(b))
		if e != nil && err == nil {
			err = e
		}
		if reverse {
			return -c
		}
		return c
	})
	return err
}

func filterDictsort(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("dictsort", []string{"case_sensitive", "by", "reverse"}, args, kw)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*dict)
	if !ok {
		return nil, fmt.Errorf("dictsort: expected a dict, got %s", typeName(v))
	}
	pos := 0
	switch orDefault(a[1], "key") {
	case "key":
	case "value":
		pos = 1
	default:
		return nil, errors.New(`dictsort: "by" must be "key" or "value"`)
	}
	cs := truthy(orDefault(a[0], false))
	items := make([]any, d.len())
	for i, k := range d.keys {
		items[i] = tuple{k, d.vals[i]}
	}
	err = sortItems(items, func(x any) any { return sortKey(x.(tuple)[pos], cs) }, truthy(orDefault(a[2], false)))
	return items, err
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func filterFirst(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return undefined{"no first item, sequence was empty"}, nil
	}
	return items[0], nil
}

func filterLast(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return undefined{"no last item, sequence was empty"}, nil
	}
	return items[len(items)-1], nil
}

// parsePyFloat accepts what Python's float() accepts from a string.
func parsePyFloat(s string) (float64, bool) {
	s = strings.TrimFunc(s, pyIsSpace)
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity", "nan":
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	}
	if s == "" || strings.Contains(s, "__") || strings.HasPrefix(strings.TrimLeft(s, "+-"), "0x") {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func filterFloat(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("float", []string{"default"}, args, kw)
	if err != nil {
		return nil, err
	}
	if u, ok := v.(undefined); ok {
		return nil, errors.New(u.hint)
	}
	if f, ok := toFloat(v); ok {
		return f, nil
	}
	if s, ok := v.(string); ok {
		if f, ok := parsePyFloat(s); ok {
			return f, nil
		}
	}
	return orDefault(a[0], 0.0), nil
}

func filterInt(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("int", []string{"default", "base"}, args, kw)
	if err != nil {
		return nil, err
	}
	def := orDefault(a[0], int64(0))
	if u, ok := v.(undefined); ok {
		return nil, errors.New(u.hint)
	}
	i, f, isF, ok := number(v)
	switch {
	case ok && !isF:
		return i, nil
	case ok:
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1<<63 {
			return def, nil
		}
		return int64(f), nil
	}
	s, ok := v.(string)
	if !ok {
		return def, nil
	}
	base, _, isF, ok := number(orDefault(a[1], int64(10)))
	if !ok || isF || base < 2 || base > 36 {
		base = 10
	}
	clean := strings.ReplaceAll(strings.TrimFunc(s, pyIsSpace), "_", "")
	if n, err := strconv.ParseInt(clean, int(base), 64); err == nil {
		return n, nil
	}
	if f, ok := parsePyFloat(s); ok && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1<<63 {
		return int64(f), nil
	}
	return def, nil
}

func filterFormat(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	if len(kw) > 0 {
		return nil, errors.New("format: keyword arguments are not supported")
	}
	return percentFormat(str(v), tuple(args))
}

func filterIndent(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("indent", []string{"width", "first", "blank"}, args, kw)
	if err != nil {
		return nil, err
	}
	indent := "    "
	switch w := orDefault(a[0], int64(4)).(type) {
	case string:
		indent = w
	default:
		n, _, isF, ok := number(w)
		if !ok || isF {
			return nil, errors.New("indent: width must be an int or a string")
		}
		indent = strings.Repeat(" ", int(min(max(n, 0), 1024)))
	}
	s, ok := v.(string)
	if !ok {
		// jinja2 appends "\n" to the value, which fails for non-strings.
		return nil, fmt.Errorf("unsupported operand type(s) for +=: '%s' and 'str'", typeName(v))
	}
	lines := pySplitLines(s + "\n")
	var b strings.Builder
	if truthy(orDefault(a[2], false)) {
		b.WriteString(strings.Join(lines, "\n"+indent))
	} else {
		b.WriteString(lines[0])
		for _, l := range lines[1:] {
			b.WriteByte('\n')
			if l != "" {
				b.WriteString(indent)
			}
			b.WriteString(l)
		}
	}
	if truthy(orDefault(a[1], false)) {
		return indent + b.String(), nil
	}
	return b.String(), nil
}

func filterItems(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	switch d := v.(type) {
	case undefined:
		return []any{}, nil
	case *dict:
		out := make([]any, d.len())
		for i, k := range d.keys {
			out[i] = tuple{k, d.vals[i]}
		}
		return out, nil
	}
	return nil, fmt.Errorf("items: can only get item pairs from a mapping, not %s", typeName(v))
}

// attrGetter resolves a dotted attribute path such as "a.b" or "items.0"
// the way jinja2's make_attrgetter does.
func attrGetter(path any) (func(any) (any, error), error) {
	p, ok := path.(string)
	if !ok {
		if i, _, isF, ok := number(path); ok && !isF {
			return func(v any) (any, error) { return getitem(v, i) }, nil
		}
		return nil, errors.New("attribute must be a string")
	}
	parts := strings.Split(p, ".")
	return func(v any) (any, error) {
		for _, part := range parts {
			var key any = part
			if n, err := strconv.ParseInt(part, 10, 64); err == nil {
				key = n
			}
			var err error
			if v, err = getitem(v, key); err != nil {
				return nil, err
			}
		}
		return v, nil
	}, nil
}

func filterJoin(r *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("join", []string{"d", "attribute"}, args, kw)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if isGiven(a[1]) {
		get, err := attrGetter(a[1])
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			if items[i], err = get(it); err != nil {
				return nil, err
			}
		}
	}
	sep := str(orDefault(a[0], ""))
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(str(it))
		if err := r.checkLen(b.Len()); err != nil {
			return nil, err
		}
	}
	return b.String(), nil
}

func filterLength(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	n, err := length(v)
	return int64(n), err
}

func filterList(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	items, err := iterate(v)
	return slices.Clone(items), err
}

func filterMap(r *renderer, v any, args []any, kw []kwarg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(items))
	if len(args) == 0 {
		a, err := bind("map", []string{"attribute", "default"}, nil, kw)
		if err != nil {
			return nil, err
		}
		if !isGiven(a[0]) {
			return nil, errors.New("map: give a filter name or attribute=")
		}
		get, err := attrGetter(a[0])
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			if out[i], err = get(it); err != nil {
				return nil, err
			}
			if _, undef := out[i].(undefined); undef && isGiven(a[1]) {
				out[i] = a[1]
			}
		}
		return out, nil
	}
	name, ok := args[0].(string)
	f, known := filters[name]
	if !ok || !known {
		return nil, fmt.Errorf("map: unknown filter %s", repr(args[0]))
	}
	for i, it := range items {
		if out[i], err = f(r, it, args[1:], kw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// minMax returns the largest (sign 1) or smallest (sign -1) item.
func minMax(v any, args []any, kw []kwarg, sign int) (any, error) {
	a, err := bind("max", []string{"case_sensitive", "attribute"}, args, kw)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return undefined{"no aggregated item, sequence was empty"}, nil
	}
	get, err := optionalAttrGetter(a[1])
	if err != nil {
		return nil, err
	}
	cs := truthy(orDefault(a[0], false))
	best := items[0]
	bestKey, err := get(best)
	if err != nil {
		return nil, err
	}
	for _, it := range items[1:] {
		k, err := get(it)
		if err != nil {
			return nil, err
		}
		c, err := compare("<", sortKey(k, cs), sortKey(bestKey, cs))
		if err != nil {
			return nil, err
		}
		if c*sign > 0 {
			best, bestKey = it, k
		}
	}
	return best, nil
}

// selectFilter builds select, reject, selectattr and rejectattr.
func selectFilter(keep, byAttr bool) filterFunc {
	return func(r *renderer, v any, args []any, kw []kwarg) (any, error) {
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		get := func(x any) (any, error) { return x, nil }
		if byAttr {
			if len(args) == 0 {
				return nil, errors.New("missing attribute name")
			}
			if get, err = attrGetter(args[0]); err != nil {
				return nil, err
			}
			args = args[1:]
		}
		check := func(x any) (bool, error) { return truthy(x), nil }
		if len(args) > 0 {
			name, _ := args[0].(string)
			t, ok := tests[name]
			if !ok {
				return nil, fmt.Errorf("unknown test %s", repr(args[0]))
			}
			targs := args[1:]
			check = func(x any) (bool, error) { return t(r, x, targs) }
		}
		var out []any
		for _, it := range items {
			x, err := get(it)
			if err != nil {
				return nil, err
			}
			ok, err := check(x)
			if err != nil {
				return nil, err
			}
			if ok == keep {
				out = append(out, it)
			}
		}
		return out, nil
	}
}

func filterReplace(r *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("replace", []string{"old", "new", "count"}, args, kw)
	if err != nil {
		return nil, err
	}
	if !isGiven(a[0]) || !isGiven(a[1]) {
		return nil, errors.New("replace() needs old and new")
	}
	n := int64(-1)
	if c := orDefault(a[2], nil); c != nil {
		var isF, ok bool
		if n, _, isF, ok = number(c); !ok || isF {
			return nil, errors.New("replace: count must be an int")
		}
	}
	return pyReplace(r, str(v), str(a[0]), str(a[1]), n)
}

// pyReplace is Python's str.replace; a negative n replaces all.
func pyReplace(r *renderer, s, old, new string, n int64) (string, error) {
	count := strings.Count(s, old)
	if old == "" {
		count = runeLen(s) + 1
	}
	if n >= 0 && int64(count) > n {
		count = int(n)
	}
	if err := r.checkLen(len(s) + count*(len(new)-len(old))); err != nil {
		return "", err
	}
	return strings.Replace(s, old, new, count), nil
}

func filterReverse(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	if s, ok := v.(string); ok {
		runes := []rune(s)
		slices.Reverse(runes)
		return string(runes), nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(items)
	slices.Reverse(out)
	return out, nil
}

func filterRound(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("round", []string{"precision", "method"}, args, kw)
	if err != nil {
		return nil, err
	}
	p, _, isF, ok := number(orDefault(a[0], int64(0)))
	if !ok || isF {
		return nil, errors.New("round: precision must be an int")
	}
	p = min(max(p, -300), 300)
	method := orDefault(a[1], "common")
	i, f, isF, ok := number(v)
	if !ok {
		return nil, fmt.Errorf("round: expected a number, got %s", typeName(v))
	}
	if !isF {
		if method == "common" && p >= 0 {
			return i, nil // Python's round(int, n) keeps the int
		}
		f = float64(i)
	}
	scale := math.Pow(10, float64(p))
	switch method {
	case "common":
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return f, nil
		}
		if p >= 0 {
			// Round the exact binary value half to even, as Python does.
			r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'f', int(p), 64), 64)
			if err != nil {
				return f, nil
			}
			return r, nil
		}
		return math.RoundToEven(f*scale) / scale, nil
	case "ceil":
		return math.Ceil(f*scale) / scale, nil
	case "floor":
		return math.Floor(f*scale) / scale, nil
	}
	return nil, errors.New(`round: method must be "common", "ceil" or "floor"`)
}

func filterSort(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("sort", []string{"reverse", "case_sensitive", "attribute"}, args, kw)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	items = slices.Clone(items)
	get, err := optionalAttrGetter(a[2])
	if err != nil {
		return nil, err
	}
	cs := truthy(orDefault(a[1], false))
	var getErr error
	err = sortItems(items, func(x any) any {
		k, err := get(x)
		if err != nil && getErr == nil {
			getErr = err
		}
		return sortKey(k, cs)
	}, truthy(orDefault(a[0], false)))
	if getErr != nil {
		return nil, getErr
	}
	return items, err
}

func filterSum(r *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("sum", []string{"attribute", "start"}, args, kw)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	get, err := optionalAttrGetter(a[0])
	if err != nil {
		return nil, err
	}
	total := orDefault(a[1], int64(0))
	for _, it := range items {
		x, err := get(it)
		if err != nil {
			return nil, err
		}
		if total, err = r.binary("+", total, x); err != nil {
			return nil, err
		}
	}
	return total, nil
}

func filterToJSON(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("tojson", []string{"indent", "ensure_ascii", "separators", "sort_keys"}, args, kw)
	if err != nil {
		return nil, err
	}
	o := jsonOptions{itemSep: ", ", keySep: ": "}
	if ind := orDefault(a[0], nil); ind != nil {
		o.hasIndent = true
		o.itemSep = ","
		switch ind := ind.(type) {
		case string:
			o.indent = ind
		default:
			n, _, isF, ok := number(ind)
			if !ok || isF {
				return nil, errors.New("tojson: indent must be an int or a string")
			}
			o.indent = strings.Repeat(" ", int(min(max(n, 0), 64)))
		}
	}
	if sep := orDefault(a[2], nil); sep != nil {
		items, err := iterate(sep)
		if err != nil || len(items) != 2 {
			return nil, errors.New("tojson: separators must be a pair of strings")
		}
		o.itemSep, o.keySep = str(items[0]), str(items[1])
	}
	o.ensureASCII = truthy(orDefault(a[1], false))
	o.sortKeys = truthy(orDefault(a[3], false))
	return toJSON(v, o)
}

func filterTrim(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("trim", []string{"chars"}, args, kw)
	if err != nil {
		return nil, err
	}
	return pyStrip(str(v), orDefault(a[0], nil), true, true)
}

func filterUnique(_ *renderer, v any, args []any, kw []kwarg) (any, error) {
	a, err := bind("unique", []string{"case_sensitive", "attribute"}, args, kw)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	get, err := optionalAttrGetter(a[1])
	if err != nil {
		return nil, err
	}
	cs := truthy(orDefault(a[0], false))
	var out, seen []any
	for _, it := range items {
		k, err := get(it)
		if err != nil {
			return nil, err
		}
		k = sortKey(k, cs)
		if !containsItem(seen, k) {
			seen = append(seen, k)
			out = append(out, it)
		}
	}
	return out, nil
}

func filterWordcount(_ *renderer, v any, _ []any, _ []kwarg) (any, error) {
	n := 0
	inWord := false
	for _, r := range str(v) {
		w := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
		if w && !inWord {
			n++
		}
		inWord = w
	}
	return int64(n), nil
}

// jinjaTitle is jinja2's title filter: words start after "-", whitespace
// or an opening bracket.
func jinjaTitle(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		if r == '-' || pyIsSpace(r) || strings.ContainsRune("({[<", r) {
			b.WriteRune(r)
			start = true
			continue
		}
		if start {
			b.WriteString(pyUpper(string(r)))
		} else {
			b.WriteString(pyLower(string(r)))
		}
		start = false
	}
	return b.String()
}

// optionalAttrGetter returns attrGetter(attr) when the filter was given an
// attribute argument, else the identity.
func optionalAttrGetter(attr any) (func(any) (any, error), error) {
	if !isGiven(attr) {
		return func(x any) (any, error) { return x, nil }, nil
	}
	return attrGetter(attr)
}
