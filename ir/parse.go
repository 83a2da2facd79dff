package ir

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseError reports a problem in IR text at a line.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Parse reads one graph in the text form written by Print.
func Parse(src string) (*Graph, error) {
	gs, err := ParseModule(src)
	if err != nil {
		return nil, err
	}
	if len(gs) != 1 {
		return nil, fmt.Errorf("want exactly one graph, found %d", len(gs))
	}
	return gs[0], nil
}

// ParseModule reads any number of graphs. Blank lines and text after '#'
// are ignored.
func ParseModule(src string) ([]*Graph, error) {
	p := &parser{}
	for i, line := range strings.Split(src, "\n") {
		toks, err := lex(line)
		if err != nil {
			return nil, &ParseError{Line: i + 1, Msg: err.Error()}
		}
		if len(toks) > 0 {
			p.lines = append(p.lines, srcLine{num: i + 1, toks: toks})
		}
	}
	var gs []*Graph
	for p.pos < len(p.lines) {
		g, err := p.graph()
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

type tokKind uint8

const (
	tIdent tokKind = iota
	tRef
	tNumber
	tString
	tPunct
)

type token struct {
	kind tokKind
	text string
}

type srcLine struct {
	num  int
	toks []token
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

func lex(line string) ([]token, error) {
	var toks []token
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			return toks, nil
		case c == '%' || c == '@' || c == '$':
			j := i + 1
			for j < len(line) && isNameByte(line[j]) {
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("%c must be followed by a name", c)
			}
			toks = append(toks, token{tRef, line[i:j]})
			i = j
		case c == '"':
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, token{tString, line[i : j+1]})
			i = j + 1
		case c >= '0' && c <= '9' || c == '-' || c == '+':
			j := i + 1
			for j < len(line) && (isNameByte(line[j]) || line[j] == '+') {
				j++
			}
			toks = append(toks, token{tNumber, line[i:j]})
			i = j
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
			j := i + 1
			for j < len(line) && isNameByte(line[j]) {
				j++
			}
			toks = append(toks, token{tIdent, line[i:j]})
			i = j
		case strings.IndexByte("()[]{},:=", c) >= 0:
			toks = append(toks, token{tPunct, line[i : i+1]})
			i++
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return toks, nil
}

type parser struct {
	lines []srcLine
	pos   int
	// per line
	line srcLine
	i    int
	// scopes: the outer graph's values, then each open kernel body's
	g      *Graph
	scopes []map[string]*Value
}

func (p *parser) errf(format string, args ...any) error {
	return &ParseError{Line: p.line.num, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) next() bool {
	if p.pos >= len(p.lines) {
		return false
	}
	p.line, p.i = p.lines[p.pos], 0
	p.pos++
	return true
}

func (p *parser) peek() (token, bool) {
	if p.i < len(p.line.toks) {
		return p.line.toks[p.i], true
	}
	return token{}, false
}

func (p *parser) take() (token, error) {
	t, ok := p.peek()
	if !ok {
		return t, p.errf("unexpected end of line")
	}
	p.i++
	return t, nil
}

func (p *parser) accept(punct string) bool {
	if t, ok := p.peek(); ok && t.kind == tPunct && t.text == punct {
		p.i++
		return true
	}
	return false
}

func (p *parser) expect(punct string) error {
	t, ok := p.peek()
	if !ok {
		return p.errf("expected %q at end of line", punct)
	}
	if t.kind != tPunct || t.text != punct {
		return p.errf("expected %q, found %q", punct, t.text)
	}
	p.i++
	return nil
}

func (p *parser) ident() (string, error) {
	t, err := p.take()
	if err != nil {
		return "", err
	}
	if t.kind != tIdent {
		return "", p.errf("expected a name, found %q", t.text)
	}
	return t.text, nil
}

func (p *parser) endOfLine() error {
	if t, ok := p.peek(); ok {
		return p.errf("unexpected %q", t.text)
	}
	return nil
}

func (p *parser) graph() (*Graph, error) {
	p.next()
	if kw, err := p.ident(); err != nil || kw != "graph" {
		return nil, p.errf("expected \"graph NAME(...) {\"")
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	g := NewGraph(name)
	p.g = g
	p.scopes = []map[string]*Value{{}}
	if p.accept("[") {
		for !p.accept("]") {
			if len(g.Syms) > 0 {
				if err := p.expect(","); err != nil {
					return nil, err
				}
			}
			s, err := p.ident()
			if err != nil {
				return nil, err
			}
			if g.HasSym(s) {
				return nil, p.errf("symbol %q declared twice", s)
			}
			g.Sym(s)
		}
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	for !p.accept(")") {
		if len(g.Inputs) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		ref, t, err := p.decl('%')
		if err != nil {
			return nil, err
		}
		v, err := g.Input(ref, t)
		if err != nil {
			return nil, p.errf("%v", err)
		}
		p.define(v)
	}
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	if err := p.endOfLine(); err != nil {
		return nil, err
	}
	nodes, outs, err := p.block("return")
	if err != nil {
		return nil, err
	}
	g.Nodes, g.Outputs = nodes, outs
	g.Reindex()
	return g, nil
}

// decl parses "<sigil>name: type".
func (p *parser) decl(sigil byte) (string, Type, error) {
	t, err := p.take()
	if err != nil {
		return "", Type{}, err
	}
	if t.kind != tRef || t.text[0] != sigil {
		return "", Type{}, p.errf("expected a %cname, found %q", sigil, t.text)
	}
	if err := p.expect(":"); err != nil {
		return "", Type{}, err
	}
	typ, err := p.typ()
	return t.text[1:], typ, err
}

func (p *parser) typ() (Type, error) {
	name, err := p.ident()
	if err != nil {
		return Type{}, err
	}
	dt, err := ParseDType(name)
	if err != nil {
		return Type{}, p.errf("%v", err)
	}
	if err := p.expect("["); err != nil {
		return Type{}, err
	}
	shape := Shape{}
	for !p.accept("]") {
		if len(shape) > 0 {
			if err := p.expect(","); err != nil {
				return Type{}, err
			}
		}
		t, err := p.take()
		if err != nil {
			return Type{}, err
		}
		switch t.kind {
		case tNumber:
			n, err := strconv.Atoi(t.text)
			if err != nil || n < 0 {
				return Type{}, p.errf("bad dimension %q", t.text)
			}
			shape = append(shape, C(n))
		case tIdent:
			if !p.g.HasSym(t.text) {
				return Type{}, p.errf("undeclared symbol %q (declare it with \"sym %s\")", t.text, t.text)
			}
			shape = append(shape, S(t.text))
		default:
			return Type{}, p.errf("bad dimension %q", t.text)
		}
	}
	return Type{DType: dt, Shape: shape}, nil
}

// define makes v visible in the innermost scope. Its name is taken in the
// whole graph, kernel bodies included, even after its scope closes.
func (p *parser) define(v *Value) {
	p.scopes[len(p.scopes)-1][v.Ref()] = v
	p.g.names[v.Ref()] = v
}

func (p *parser) resolve(ref string) (*Value, error) {
	for i := len(p.scopes) - 1; i >= 0; i-- {
		if v, ok := p.scopes[i][ref]; ok {
			return v, nil
		}
	}
	return nil, p.errf("%s is not defined", ref)
}

func (p *parser) defined(ref string) bool {
	_, ok := p.g.names[ref]
	return ok
}

// block parses lines up to the closing "}", with declarations allowed only
// at graph level. end is the word that names the outputs ("return" or
// "yield").
func (p *parser) block(end string) ([]*Node, []*Value, error) {
	var nodes []*Node
	var outs []*Value
	for {
		if !p.next() {
			return nil, nil, p.errf("missing \"}\"")
		}
		t, _ := p.peek()
		if t.kind == tPunct && t.text == "}" {
			p.i++
			return nodes, outs, p.endOfLine()
		}
		if outs != nil {
			return nil, nil, p.errf("%s must be the last line of its block", end)
		}
		if t.kind == tIdent {
			switch t.text {
			case "weight", "state":
				if end != "return" || len(nodes) > 0 {
					return nil, nil, p.errf("%s declarations must come before the graph's nodes", t.text)
				}
				if err := p.declLine(t.text); err != nil {
					return nil, nil, err
				}
				continue
			case "return", "yield":
				if t.text != end {
					return nil, nil, p.errf("%q where %q was expected", t.text, end)
				}
				p.i++
				var err error
				if outs, err = p.refs(); err != nil {
					return nil, nil, err
				}
				if len(outs) == 0 {
					outs = []*Value{}
				}
				continue
			}
		}
		n, err := p.node()
		if err != nil {
			return nil, nil, err
		}
		nodes = append(nodes, n)
	}
}

func (p *parser) refs() ([]*Value, error) {
	var vs []*Value
	for {
		if _, ok := p.peek(); !ok {
			return vs, nil
		}
		if len(vs) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		t, err := p.take()
		if err != nil {
			return nil, err
		}
		if t.kind != tRef {
			return nil, p.errf("expected a value, found %q", t.text)
		}
		v, err := p.resolve(t.text)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
}

func (p *parser) declLine(kw string) error {
	p.i++
	switch kw {
	case "weight", "state":
		sigil := byte('@')
		if kw == "state" {
			sigil = '$'
		}
		name, t, err := p.decl(sigil)
		if err != nil {
			return err
		}
		if p.defined(string(sigil) + name) {
			return p.errf("%c%s is declared twice", sigil, name)
		}
		var v *Value
		if kw == "weight" && p.accept("=") {
			op, err := p.ident()
			if err != nil {
				return err
			}
			args, err := p.args()
			if err != nil {
				return err
			}
			v, err = p.g.DerivedWeight(name, op, args...)
			if err != nil {
				return p.errf("%v", err)
			}
			if !v.Type.Equal(t) {
				return p.errf("weight @%s is declared %s, but %s gives %s", name, t, op, v.Type)
			}
		} else if kw == "weight" {
			v, err = p.g.Weight(name, t)
		} else {
			v, err = p.g.State(name, t)
		}
		if err != nil {
			return p.errf("%v", err)
		}
		p.define(v)
		return p.endOfLine()
	}
	return nil
}

// node parses "[%r =] op args [{attrs}] [: type] [{ body }]".
func (p *parser) node() (*Node, error) {
	var resName string
	if t, _ := p.peek(); t.kind == tRef {
		if t.text[0] != '%' {
			return nil, p.errf("a node's result must be a %%name, found %q", t.text)
		}
		if p.defined(t.text) {
			return nil, p.errf("%s is defined twice", t.text)
		}
		resName = t.text[1:]
		p.i++
		if err := p.expect("="); err != nil {
			return nil, err
		}
	}
	opName, err := p.ident()
	if err != nil {
		return nil, err
	}
	op, ok := LookupOp(opName)
	if !ok {
		return nil, p.errf("unknown op %q", opName)
	}
	n := &Node{Op: op}
	if op == OpKernel {
		kname, err := p.ident()
		if err != nil {
			return nil, err
		}
		n.Attrs = Attrs{"name": kname}
	} else {
		for {
			t, ok := p.peek()
			if !ok || t.kind != tRef {
				break
			}
			if len(n.Args) > 0 {
				return nil, p.errf("expected \",\" before %s", t.text)
			}
			args, err := p.args()
			if err != nil {
				return nil, err
			}
			n.Args = args
		}
	}
	if t, ok := p.peek(); ok && t.kind == tPunct && t.text == "{" && p.i+1 < len(p.line.toks) {
		p.i++
		if err := p.attrs(n); err != nil {
			return nil, err
		}
	}
	var declared Type
	if p.accept(":") {
		if declared, err = p.typ(); err != nil {
			return nil, err
		}
	}
	if resName != "" && declared.IsVoid() {
		return nil, p.errf("%%%s needs a type (\"... : f32[...]\")", resName)
	}
	if resName == "" && !declared.IsVoid() {
		return nil, p.errf("a typed node needs a result name")
	}
	if resName != "" {
		n.Result = &Value{Name: resName, Kind: KindNode, Type: declared, Def: n}
	}
	if op == OpKernel {
		if err := p.expect("{"); err != nil {
			return nil, err
		}
		if err := p.endOfLine(); err != nil {
			return nil, err
		}
		head := p.line
		p.scopes = append(p.scopes, map[string]*Value{})
		nodes, outs, err := p.block("yield")
		if err != nil {
			return nil, err
		}
		p.scopes = p.scopes[:len(p.scopes)-1]
		n.Body = &Graph{Name: n.StringAttr("name"), Nodes: nodes, Outputs: outs}
		n.Args = n.Body.Captures()
		p.line = head
	} else if err := p.endOfLine(); err != nil {
		return nil, err
	}
	if err := checkArgs(n); err != nil {
		return nil, p.errf("%s: %v", n.LongString(), err)
	}
	got, err := op.Info().Infer(n)
	if err != nil {
		return nil, p.errf("%s: %v", n.LongString(), err)
	}
	if !got.Equal(declared) {
		return nil, p.errf("%s: declared type %s, but %s gives %s", n.LongString(), declared, opName, got)
	}
	if n.Result != nil {
		p.define(n.Result)
	}
	return n, nil
}

func (p *parser) args() ([]*Value, error) {
	var vs []*Value
	for {
		t, err := p.take()
		if err != nil {
			return nil, err
		}
		if t.kind != tRef {
			return nil, p.errf("expected a value, found %q", t.text)
		}
		v, err := p.resolve(t.text)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
		if !p.accept(",") {
			return vs, nil
		}
	}
}

func (p *parser) attrs(n *Node) error {
	if n.Attrs == nil {
		n.Attrs = Attrs{}
	}
	for !p.accept("}") {
		if len(n.Attrs) > 0 && !(n.Op == OpKernel && len(n.Attrs) == 1) {
			if err := p.expect(","); err != nil {
				return err
			}
		}
		key, err := p.ident()
		if err != nil {
			return err
		}
		if _, dup := n.Attrs[key]; dup {
			return p.errf("attribute %s given twice", key)
		}
		if err := p.expect("="); err != nil {
			return err
		}
		v, err := p.attrValue(key)
		if err != nil {
			return err
		}
		n.Attrs[key] = v
	}
	return nil
}

// attrValue parses a scalar or a list "[a, b, ...]" of numbers: an []int
// when every element is an integer (also the empty list), else []float64.
func (p *parser) attrValue(key string) (any, error) {
	t, err := p.take()
	if err != nil {
		return nil, err
	}
	if t.kind == tPunct && t.text == "[" {
		return p.attrList(key)
	}
	if t.kind == tPunct || t.kind == tRef {
		return nil, p.errf("bad attribute value %q", t.text)
	}
	v, err := parseAttr(t.text)
	if err != nil {
		return nil, p.errf("attribute %s: %v", key, err)
	}
	return v, nil
}

func (p *parser) attrList(key string) (any, error) {
	var elems []any
	floats := false
	for !p.accept("]") {
		if len(elems) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		t, err := p.take()
		if err != nil {
			return nil, err
		}
		if t.kind != tNumber && t.kind != tIdent {
			return nil, p.errf("attribute %s: bad list element %q", key, t.text)
		}
		v, err := parseAttr(t.text)
		if err != nil {
			return nil, p.errf("attribute %s: %v", key, err)
		}
		switch v.(type) {
		case int:
		case float64:
			floats = true
		default:
			return nil, p.errf("attribute %s: list element %s is not a number", key, t.text)
		}
		elems = append(elems, v)
	}
	if !floats {
		ints := make([]int, len(elems))
		for i, e := range elems {
			ints[i] = e.(int)
		}
		return ints, nil
	}
	fs := make([]float64, len(elems))
	for i, e := range elems {
		switch e := e.(type) {
		case int:
			fs[i] = float64(e)
		case float64:
			fs[i] = e
		}
	}
	return fs, nil
}
