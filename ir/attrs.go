package ir

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Attrs are a node's constant parameters. Values are int, float64, bool,
// string, []int or []float64. Which attributes an op accepts, their kinds
// and their defaults are in the op table (OpInfo.Attrs); read them with
// Node.Attr and the typed getters (Node.IntAttr, ...), which fill in the
// defaults.
type Attrs map[string]any

// Clone returns a copy of a; list values are copied too.
func (a Attrs) Clone() Attrs {
	if a == nil {
		return nil
	}
	c := make(Attrs, len(a))
	for k, v := range a {
		switch l := v.(type) {
		case []int:
			v = slices.Clone(l)
		case []float64:
			v = slices.Clone(l)
		}
		c[k] = v
	}
	return c
}

// spec returns the op table's spec of n's attribute name. Asking for an
// attribute the op does not have is a bug in the caller: it panics.
func (n *Node) spec(name string, kinds ...AttrKind) AttrSpec {
	info := n.Op.Info()
	s, ok := info.Attr(name)
	if !ok {
		panic(fmt.Sprintf("ir: %s has no attribute %q", info.Name, name))
	}
	if len(kinds) > 0 && !slices.Contains(kinds, s.Kind) {
		panic(fmt.Sprintf("ir: attribute %s of %s is of kind %s, read as %s", name, info.Name, s.Kind, kinds[0]))
	}
	return s
}

// Attr returns n's attribute name, or the op table's default when it is
// absent (nil for an absent required attribute, which only an invalid
// node lacks). It panics if n's op has no attribute name.
func (n *Node) Attr(name string) any {
	s := n.spec(name)
	if v, ok := n.Attrs[name]; ok {
		return v
	}
	return s.Default
}

// IntAttr returns n's int attribute name, or its default from the op
// table when absent (0 for an absent required attribute). It panics if
// n's op has no int attribute name.
func (n *Node) IntAttr(name string) int {
	s := n.spec(name, AttrInt)
	def, _ := s.Default.(int)
	return n.Attrs.Int(name, def)
}

// FloatAttr returns n's float attribute name (an int is converted), or its
// default from the op table when absent (0 for an absent required
// attribute). It panics if n's op has no float attribute name.
func (n *Node) FloatAttr(name string) float64 {
	s := n.spec(name, AttrFloat)
	def, _ := s.Default.(float64)
	return n.Attrs.Float(name, def)
}

// BoolAttr returns n's bool attribute name, or its default from the op
// table when absent. It panics if n's op has no bool attribute name.
func (n *Node) BoolAttr(name string) bool {
	s := n.spec(name, AttrBool)
	def, _ := s.Default.(bool)
	return n.Attrs.Bool(name, def)
}

// StringAttr returns n's string attribute name, or its default from the op
// table when absent ("" for an absent required attribute). It panics if
// n's op has no string attribute name.
func (n *Node) StringAttr(name string) string {
	s := n.spec(name, AttrString)
	def, _ := s.Default.(string)
	return n.Attrs.String(name, def)
}

// IntsAttr returns a copy of n's int list attribute name, or of its default
// from the op table when absent. It panics if n's op has no int list
// attribute name.
func (n *Node) IntsAttr(name string) []int {
	s := n.spec(name, AttrInts)
	if v, ok := n.Attrs[name].([]int); ok {
		return slices.Clone(v)
	}
	def, _ := s.Default.([]int)
	return slices.Clone(def)
}

// FloatsAttr returns a copy of n's float list attribute name (an int list
// is converted), or of its default from the op table when absent. It
// panics if n's op has no float list attribute name.
func (n *Node) FloatsAttr(name string) []float64 {
	s := n.spec(name, AttrFloats)
	switch v := n.Attrs[name].(type) {
	case []float64:
		return slices.Clone(v)
	case []int:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	def, _ := s.Default.([]float64)
	return slices.Clone(def)
}

// Int returns attribute key as an int, or def when absent. Prefer
// Node.IntAttr, which takes the default from the op table.
func (a Attrs) Int(key string, def int) int {
	if v, ok := a[key].(int); ok {
		return v
	}
	return def
}

// Float returns attribute key as a float64, or def when absent. Prefer
// Node.FloatAttr, which takes the default from the op table.
func (a Attrs) Float(key string, def float64) float64 {
	switch v := a[key].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return def
}

// Bool returns attribute key as a bool, or def when absent. Prefer
// Node.BoolAttr, which takes the default from the op table.
func (a Attrs) Bool(key string, def bool) bool {
	if v, ok := a[key].(bool); ok {
		return v
	}
	return def
}

// String returns attribute key as a string, or def when absent. Prefer
// Node.StringAttr, which takes the default from the op table.
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

// formatAttr prints one attribute value so that the parser reads back the
// same value and type: floats always carry a '.', an exponent or a word;
// lists are "[a, b, ...]".
func formatAttr(v any) string {
	switch v := v.(type) {
	case []int:
		return formatList(v)
	case []float64:
		return formatList(v)
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

func formatList[E int | float64](l []E) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(formatAttr(e))
	}
	b.WriteByte(']')
	return b.String()
}

// parseAttr reads one scalar attribute value (lists are read by the
// parser, element by element).
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
