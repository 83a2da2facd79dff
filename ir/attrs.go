package ir

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Attrs are a node's constant parameters. Values are int, float64, bool or
// string.
type Attrs map[string]any

// Clone returns a copy of a.
func (a Attrs) Clone() Attrs {
	if a == nil {
		return nil
	}
	c := make(Attrs, len(a))
	for k, v := range a {
		c[k] = v
	}
	return c
}

// Int returns attribute key as an int, or def when absent.
func (a Attrs) Int(key string, def int) int {
	if v, ok := a[key].(int); ok {
		return v
	}
	return def
}

// Float returns attribute key as a float64, or def when absent.
func (a Attrs) Float(key string, def float64) float64 {
	switch v := a[key].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return def
}

// Bool returns attribute key as a bool, or def when absent.
func (a Attrs) Bool(key string, def bool) bool {
	if v, ok := a[key].(bool); ok {
		return v
	}
	return def
}

// String returns attribute key as a string, or def when absent.
func (a Attrs) String(key string, def string) string {
	if v, ok := a[key].(string); ok {
		return v
	}
	return def
}

// Equal reports whether two attribute sets are identical.
func (a Attrs) Equal(b Attrs) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || formatAttr(v) != formatAttr(w) {
			return false
		}
	}
	return true
}

// Format prints the attributes as "{k=v, ...}" in key order, or "" when empty.
func (a Attrs) Format() string {
	if len(a) == 0 {
		return ""
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(formatAttr(a[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// formatAttr prints one attribute value so that parseAttr reads back the
// same value and type: floats always carry a '.', an exponent or a word.
func formatAttr(v any) string {
	switch v := v.(type) {
	case int:
		return strconv.Itoa(v)
	case float64:
		switch {
		case math.IsInf(v, 1):
			return "inf"
		case math.IsInf(v, -1):
			return "-inf"
		case math.IsNaN(v):
			return "nan"
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case bool:
		return strconv.FormatBool(v)
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprintf("<%T>", v)
}

func parseAttr(s string) (any, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "inf":
		return math.Inf(1), nil
	case "-inf":
		return math.Inf(-1), nil
	case "nan":
		return math.NaN(), nil
	}
	if strings.HasPrefix(s, `"`) {
		return strconv.Unquote(s)
	}
	if strings.ContainsAny(s, ".eE") {
		return strconv.ParseFloat(s, 64)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("bad attribute value %q", s)
	}
	return n, nil
}
