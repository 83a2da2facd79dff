package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// strftime formats t with C strftime directives as glibc does, including
// the "%-d" (no padding) flag. Unknown directives are kept as written.
func strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		noPad := false
		if format[i] == '-' && i+1 < len(format) {
			noPad = true
			i++
		}
		pad := func(v, width int) {
			if noPad {
				b.WriteString(strconv.Itoa(v))
			} else {
				fmt.Fprintf(&b, "%0*d", width, v)
			}
		}
		hour12 := t.Hour() % 12
		if hour12 == 0 {
			hour12 = 12
		}
		switch format[i] {
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'b', 'h':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'd':
			pad(t.Day(), 2)
		case 'e':
			if noPad {
				pad(t.Day(), 1)
			} else {
				fmt.Fprintf(&b, "%2d", t.Day())
			}
		case 'H':
			pad(t.Hour(), 2)
		case 'I':
			pad(hour12, 2)
		case 'j':
			pad(t.YearDay(), 3)
		case 'm':
			pad(int(t.Month()), 2)
		case 'M':
			pad(t.Minute(), 2)
		case 'S':
			pad(t.Second(), 2)
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'y':
			pad(t.Year()%100, 2)
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'Z':
			name, _ := t.Zone()
			b.WriteString(name)
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'w':
			b.WriteString(strconv.Itoa(int(t.Weekday())))
		case 'u':
			b.WriteString(strconv.Itoa((int(t.Weekday())+6)%7 + 1))
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			if noPad {
				b.WriteByte('-')
			}
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

// percentFormat is Python's "format % args" for the common conversions
// %s %r %d %i %f %e %g %x %o %c and %%, with flags, width and precision.
func percentFormat(format string, arg any) (string, error) {
	var args []any
	switch a := arg.(type) {
	case tuple:
		args = a
	default:
		args = []any{arg}
	}
	var b strings.Builder
	next := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("-+ #0", format[j]) >= 0 {
			j++
		}
		for j < len(format) && (format[j] >= '0' && format[j] <= '9' || format[j] == '.') {
			j++
		}
		if j >= len(format) {
			return "", errors.New("incomplete format")
		}
		spec, verb := format[i+1:j], format[j]
		i = j
		for _, num := range strings.FieldsFunc(spec, func(r rune) bool { return r < '0' || r > '9' }) {
			if len(num) > 4 {
				return "", errors.New("format: width or precision too large")
			}
		}
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if next >= len(args) {
			return "", errors.New("not enough arguments for format string")
		}
		a := args[next]
		next++
		switch verb {
		case 's':
			fmt.Fprintf(&b, "%"+spec+"s", str(a))
		case 'r':
			fmt.Fprintf(&b, "%"+spec+"s", repr(a))
		case 'd', 'i':
			v, f, isF, ok := number(a)
			if !ok {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", verb, typeName(a))
			}
			if isF {
				v = int64(math.Trunc(f))
			}
			fmt.Fprintf(&b, "%"+spec+"d", v)
		case 'x', 'X', 'o':
			v, _, isF, ok := number(a)
			if !ok || isF {
				return "", fmt.Errorf("%%%c format: an integer is required, not %s", verb, typeName(a))
			}
			fmt.Fprintf(&b, "%"+spec+string(verb), v)
		case 'f', 'F', 'e', 'E', 'g', 'G':
			f, ok := toFloat(a)
			if !ok {
				return "", fmt.Errorf("must be real number, not %s", typeName(a))
			}
			if !strings.Contains(spec, ".") && verb != 'g' && verb != 'G' {
				spec += ".6"
			}
			fmt.Fprintf(&b, "%"+spec+string(verb), f)
		case 'c':
			switch v := a.(type) {
			case string:
				b.WriteString(v)
			case int64:
				b.WriteRune(rune(v))
			default:
				return "", errors.New("%c requires int or char")
			}
		default:
			return "", fmt.Errorf("unsupported format character %q", verb)
		}
	}
	if next < len(args) {
		// Python skips this check when the argument is a mapping or
		// another non-tuple sequence.
		switch arg.(type) {
		case *dict, []any, undefined:
		default:
			return "", errors.New("not all arguments converted during string formatting")
		}
	}
	return b.String(), nil
}

// jsonOptions are the arguments of transformers' tojson filter, which calls
// json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
// sort_keys=sort_keys) — unlike jinja2's own tojson, it escapes no HTML.
type jsonOptions struct {
	indent      string
	hasIndent   bool
	itemSep     string
	keySep      string
	sortKeys    bool
	ensureASCII bool
}

func toJSON(v any, o jsonOptions) (string, error) {
	var b strings.Builder
	if err := writeJSON(&b, v, o, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeJSON(b *strings.Builder, v any, o jsonOptions, depth int) error {
	if depth > maxValueDepth {
		return errors.New("tojson: value nested too deeply")
	}
	if b.Len() > defaultMaxOutput {
		return errTooLarge
	}
	newline := func(level int) {
		if o.hasIndent {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(o.indent, level))
		}
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		switch {
		case math.IsNaN(x):
			b.WriteString("NaN")
		case math.IsInf(x, 1):
			b.WriteString("Infinity")
		case math.IsInf(x, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(formatFloat(x))
		}
	case string:
		writeJSONString(b, x, o.ensureASCII)
	case []any, tuple:
		items, _ := iterate(x)
		if len(items) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			newline(depth + 1)
			if err := writeJSON(b, it, o, depth+1); err != nil {
				return err
			}
		}
		newline(depth)
		b.WriteByte(']')
	case *dict:
		if x.len() == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := make([]string, x.len())
		order := make([]int, x.len())
		for i, k := range x.keys {
			order[i] = i
			switch k := k.(type) {
			case string:
				keys[i] = k
			case nil:
				keys[i] = "null"
			case bool:
				keys[i] = map[bool]string{true: "true", false: "false"}[k]
			case int64, float64:
				var kb strings.Builder
				writeJSON(&kb, k, o, depth+1)
				keys[i] = kb.String()
			default:
				return fmt.Errorf("tojson: keys must be str, int, float, bool or None, not %s", typeName(k))
			}
		}
		if o.sortKeys {
			for _, k := range x.keys {
				if _, ok := k.(string); !ok {
					return errors.New("tojson: sort_keys needs string keys")
				}
			}
			slices.SortStableFunc(order, func(a, c int) int { return strings.Compare(keys[a], keys[c]) })
		}
		b.WriteByte('{')
		for n, i := range order {
			if n > 0 {
				b.WriteString(o.itemSep)
			}
			newline(depth + 1)
			writeJSONString(b, keys[i], o.ensureASCII)
			b.WriteString(o.keySep)
			if err := writeJSON(b, x.vals[i], o, depth+1); err != nil {
				return err
			}
		}
		newline(depth)
		b.WriteByte('}')
	default:
		return fmt.Errorf("tojson: object of type %s is not JSON serializable", typeName(v))
	}
	return nil
}

// writeJSONString quotes s like Python's json.dumps.
func writeJSONString(b *strings.Builder, s string, ensureASCII bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (ensureASCII && r == 0x7f):
				fmt.Fprintf(b, `\u%04x`, r)
			case ensureASCII && r > 0x7f:
				if r > 0xffff {
					r -= 0x10000
					fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
