package chattemplate

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// maxNesting bounds the depth of nested blocks and expressions, so that a
// hostile template cannot exhaust the stack.
const maxNesting = 200

// parser is a recursive-descent parser with jinja2's grammar and operator
// precedence (lowest first): conditional "x if c else y", or, and, not,
// comparisons (==, !=, <, <=, >, >=, in, not in; chainable), + and -, ~,
// * / // %, **, unary - and +, then primaries with postfix .attr, [item],
// [a:b:c], (call), and filters "|f" and tests "is t", which bind tighter
// than any binary operator.
type parser struct {
	src   string
	toks  []token
	p     int
	depth int
	loops int // enclosing for loops, for break and continue
}

func parse(src string) ([]node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	body, _, err := p.parseBody(-1, "")
	return body, err
}

func (p *parser) cur() token  { return p.toks[p.p] }
func (p *parser) peek() token { return p.toks[min(p.p+1, len(p.toks)-1)] }

func (p *parser) next() token {
	t := p.toks[p.p]
	if p.p < len(p.toks)-1 {
		p.p++
	}
	return t
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return newError(p.src, pos, fmt.Sprintf(format, args...))
}

func (p *parser) isOp(op string) bool {
	t := p.cur()
	return t.kind == tOp && t.val == op
}

func (p *parser) isName(name string) bool {
	t := p.cur()
	return t.kind == tName && t.val == name
}

func (p *parser) skipOp(op string) bool {
	if p.isOp(op) {
		p.next()
		return true
	}
	return false
}

func (p *parser) skipName(name string) bool {
	if p.isName(name) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectOp(op string) error {
	if !p.skipOp(op) {
		return p.errorf(p.cur().pos, "expected %q, found %s", op, p.cur())
	}
	return nil
}

func (p *parser) expectKind(kind tokenKind, what string) (token, error) {
	t := p.cur()
	if t.kind != kind {
		return t, p.errorf(t.pos, "expected %s, found %s", what, t)
	}
	return p.next(), nil
}

func (p *parser) expectBlockEnd() error {
	_, err := p.expectKind(tBlockEnd, `"%}"`)
	return err
}

func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > maxNesting {
		return p.errorf(pos, "template nested too deeply")
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// parseBody parses statements until a block tag named in ends, which it
// consumes up to and including the tag name, and returns that name. With no
// ends it parses to the end of the template. open and openName describe the
// enclosing block for the error when the template ends first.
func (p *parser) parseBody(open int, openName string, ends ...string) ([]node, string, error) {
	if err := p.enter(max(open, 0)); err != nil {
		return nil, "", err
	}
	defer p.leave()
	var body []node
	for {
		t := p.cur()
		switch t.kind {
		case tEOF:
			if len(ends) > 0 {
				return nil, "", p.errorf(open, "unclosed %q block: missing %q", openName, ends[len(ends)-1])
			}
			return body, "", nil
		case tText:
			p.next()
			body = append(body, &textNode{at{t.pos}, t.val})
		case tVarBegin:
			p.next()
			x, err := p.parseTuple(true, nil, false)
			if err != nil {
				return nil, "", err
			}
			if _, err := p.expectKind(tVarEnd, `"}}"`); err != nil {
				return nil, "", err
			}
			body = append(body, &outputNode{at{t.pos}, x})
		case tBlockBegin:
			p.next()
			name, err := p.expectKind(tName, "a tag name")
			if err != nil {
				return nil, "", err
			}
			if slices.Contains(ends, name.val) {
				return body, name.val, nil
			}
			n, err := p.parseStatement(t.pos, name)
			if err != nil {
				return nil, "", err
			}
			body = append(body, n)
		default:
			return nil, "", p.errorf(t.pos, "unexpected %s", t)
		}
	}
}

// parseStatement parses the block tag whose name has just been read.
func (p *parser) parseStatement(pos int, name token) (node, error) {
	switch name.val {
	case "if":
		return p.parseIf(pos)
	case "for":
		return p.parseFor(pos)
	case "set":
		return p.parseSet(pos)
	case "macro":
		return p.parseMacro(pos)
	case "filter":
		return p.parseFilterBlock(pos)
	case "generation":
		// transformers' AssistantTracker extension: it marks assistant
		// text for masks and otherwise renders its body, in a scope of
		// its own.
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		body, _, err := p.parseBody(pos, "generation", "endgeneration")
		if err != nil {
			return nil, err
		}
		return &blockNode{at{pos}, body}, p.expectBlockEnd()
	case "break", "continue":
		if p.loops == 0 {
			return nil, p.errorf(name.pos, "%q outside a for loop", name.val)
		}
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		if name.val == "break" {
			return &breakNode{at{pos}}, nil
		}
		return &continueNode{at{pos}}, nil
	case "elif", "else", "endif", "endfor", "endset", "endmacro", "endfilter",
		"endgeneration", "endraw":
		return nil, p.errorf(name.pos, "unexpected %q", name.val)
	case "call", "block", "extends", "include", "import", "from", "with", "autoescape", "do":
		return nil, p.errorf(name.pos, "unsupported tag %q", name.val)
	}
	return nil, p.errorf(name.pos, "unknown tag %q", name.val)
}

func (p *parser) parseIf(pos int) (node, error) {
	n := &ifNode{at: at{pos}}
	for {
		cond, err := p.parseTuple(false, nil, false)
		if err != nil {
			return nil, err
		}
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		body, end, err := p.parseBody(pos, "if", "elif", "else", "endif")
		if err != nil {
			return nil, err
		}
		n.conds = append(n.conds, cond)
		n.bodies = append(n.bodies, body)
		switch end {
		case "elif":
			continue
		case "else":
			if err := p.expectBlockEnd(); err != nil {
				return nil, err
			}
			n.els, _, err = p.parseBody(pos, "if", "endif")
			if err != nil {
				return nil, err
			}
		}
		return n, p.expectBlockEnd()
	}
}

func (p *parser) parseFor(pos int) (node, error) {
	tgt, err := p.parseTarget(false)
	if err != nil {
		return nil, err
	}
	if !p.skipName("in") {
		return nil, p.errorf(p.cur().pos, `expected "in", found %s`, p.cur())
	}
	iter, err := p.parseTuple(false, func(t token) bool {
		return t.kind == tName && (t.val == "if" || t.val == "recursive")
	}, false)
	if err != nil {
		return nil, err
	}
	n := &forNode{at: at{pos}, target: tgt, iter: iter}
	if p.skipName("if") {
		if n.cond, err = p.parseExpression(true); err != nil {
			return nil, err
		}
	}
	if p.isName("recursive") {
		return nil, p.errorf(p.cur().pos, "recursive loops are not supported")
	}
	if err := p.expectBlockEnd(); err != nil {
		return nil, err
	}
	p.loops++
	body, end, err := p.parseBody(pos, "for", "else", "endfor")
	p.loops--
	if err != nil {
		return nil, err
	}
	n.body = body
	if end == "else" {
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		if n.els, _, err = p.parseBody(pos, "for", "endfor"); err != nil {
			return nil, err
		}
	}
	return n, p.expectBlockEnd()
}

// parseTarget parses assignment targets: "x", "a, b", "(a, b)" or, when
// attr is allowed, "ns.x".
func (p *parser) parseTarget(attr bool) (target, error) {
	var t target
	if attr && p.cur().kind == tName && p.peek().kind == tOp && p.peek().val == "." {
		t.names = []string{p.next().val}
		p.next()
		a, err := p.expectKind(tName, "an attribute name")
		t.attr = a.val
		return t, err
	}
	paren := p.skipOp("(")
	for {
		n, err := p.expectKind(tName, "a variable name")
		if err != nil {
			return t, err
		}
		switch n.val {
		case "true", "false", "none", "True", "False", "None", "in", "if", "not", "and", "or":
			return t, p.errorf(n.pos, "cannot assign to %q", n.val)
		}
		t.names = append(t.names, n.val)
		if !p.skipOp(",") {
			break
		}
		t.tuple = true
		if p.cur().kind != tName {
			break
		}
	}
	if paren {
		if err := p.expectOp(")"); err != nil {
			return t, err
		}
	}
	return t, nil
}

func (p *parser) parseSet(pos int) (node, error) {
	tgt, err := p.parseTarget(true)
	if err != nil {
		return nil, err
	}
	if p.skipOp("=") {
		x, err := p.parseTuple(true, nil, false)
		if err != nil {
			return nil, err
		}
		return &setNode{at{pos}, tgt, x}, p.expectBlockEnd()
	}
	if tgt.attr != "" {
		return nil, p.errorf(pos, "a block set cannot assign to an attribute")
	}
	filters, err := p.parseFilterChain(false)
	if err != nil {
		return nil, err
	}
	if err := p.expectBlockEnd(); err != nil {
		return nil, err
	}
	body, _, err := p.parseBody(pos, "set", "endset")
	if err != nil {
		return nil, err
	}
	return &setBlockNode{at{pos}, tgt, filters, body}, p.expectBlockEnd()
}

func (p *parser) parseMacro(pos int) (node, error) {
	name, err := p.expectKind(tName, "a macro name")
	if err != nil {
		return nil, err
	}
	n := &macroNode{at: at{pos}, name: name.val}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	for !p.skipOp(")") {
		if len(n.params) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
			if p.skipOp(")") {
				break
			}
		}
		param, err := p.expectKind(tName, "a parameter name")
		if err != nil {
			return nil, err
		}
		var def expr
		if p.skipOp("=") {
			if def, err = p.parseExpression(true); err != nil {
				return nil, err
			}
		} else if len(n.defaults) > 0 && n.defaults[len(n.defaults)-1] != nil {
			return nil, p.errorf(param.pos, "non-default argument follows default argument")
		}
		n.params = append(n.params, param.val)
		n.defaults = append(n.defaults, def)
	}
	if err := p.expectBlockEnd(); err != nil {
		return nil, err
	}
	loops := p.loops
	p.loops = 0
	n.body, _, err = p.parseBody(pos, "macro", "endmacro")
	p.loops = loops
	if err != nil {
		return nil, err
	}
	return n, p.expectBlockEnd()
}

func (p *parser) parseFilterBlock(pos int) (node, error) {
	filters, err := p.parseFilterChain(true)
	if err != nil {
		return nil, err
	}
	if err := p.expectBlockEnd(); err != nil {
		return nil, err
	}
	body, _, err := p.parseBody(pos, "filter", "endfilter")
	if err != nil {
		return nil, err
	}
	return &filterBlockNode{at{pos}, filters, body}, p.expectBlockEnd()
}

// parseFilterChain parses "f(args) | g" as in {% filter %} and
// {% set x | f %}; the first "|" is absent for {% filter %}.
func (p *parser) parseFilterChain(first bool) ([]*filterExpr, error) {
	var out []*filterExpr
	for first || p.skipOp("|") {
		first = false
		f, err := p.parseFilter(nil)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// parseTuple parses one expression, or a tuple when there are commas.
// withCond allows the conditional expression; isEnd names extra tokens that
// end the tuple; parens tells whether "(" was just read, allowing "()".
func (p *parser) parseTuple(withCond bool, isEnd func(token) bool, parens bool) (expr, error) {
	pos := p.cur().pos
	var items []expr
	isTuple := false
	for {
		if len(items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		t := p.cur()
		if t.kind == tVarEnd || t.kind == tBlockEnd || t.kind == tEOF ||
			(t.kind == tOp && t.val == ")") || (isEnd != nil && isEnd(t)) {
			break
		}
		x, err := p.parseExpression(withCond)
		if err != nil {
			return nil, err
		}
		items = append(items, x)
		if !p.isOp(",") {
			break
		}
		isTuple = true
	}
	if !isTuple {
		if len(items) == 1 {
			return items[0], nil
		}
		if !parens {
			return nil, p.errorf(p.cur().pos, "expected an expression, found %s", p.cur())
		}
	}
	return &listExpr{at{pos}, items, true}, nil
}

func (p *parser) parseExpression(withCond bool) (expr, error) {
	if !withCond {
		return p.parseOr()
	}
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.isName("if") {
		pos := p.next().pos
		cond, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var els expr
		if p.skipName("else") {
			if els, err = p.parseExpression(true); err != nil {
				return nil, err
			}
		}
		x = &condExpr{at{pos}, cond, x, els}
	}
	return x, nil
}

func (p *parser) parseOr() (expr, error) {
	x, err := p.parseAnd()
	for err == nil && p.isName("or") {
		pos := p.next().pos
		var y expr
		if y, err = p.parseAnd(); err == nil {
			x = &binaryExpr{at{pos}, "or", x, y}
		}
	}
	return x, err
}

func (p *parser) parseAnd() (expr, error) {
	x, err := p.parseNot()
	for err == nil && p.isName("and") {
		pos := p.next().pos
		var y expr
		if y, err = p.parseNot(); err == nil {
			x = &binaryExpr{at{pos}, "and", x, y}
		}
	}
	return x, err
}

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		pos := p.next().pos
		if err := p.enter(pos); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{at{pos}, "not", x}, nil
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	pos := p.cur().pos
	x, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	c := &compareExpr{at: at{pos}, first: x}
	for {
		t := p.cur()
		var op string
		switch {
		case t.kind == tOp && slices.Contains([]string{"==", "!=", "<", "<=", ">", ">="}, t.val):
			op = t.val
			p.next()
		case p.isName("in"):
			op = "in"
			p.next()
		case p.isName("not") && p.peek().kind == tName && p.peek().val == "in":
			op = "not in"
			p.next()
			p.next()
		default:
			if len(c.ops) == 0 {
				return x, nil
			}
			return c, nil
		}
		y, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.rest = append(c.rest, y)
	}
}

// parseBinary parses a left-associative chain of ops over operand.
func (p *parser) parseBinary(operand func() (expr, error), ops ...string) (expr, error) {
	x, err := operand()
	if err != nil {
		return nil, err
	}
	for p.cur().kind == tOp && slices.Contains(ops, p.cur().val) {
		t := p.next()
		y, err := operand()
		if err != nil {
			return nil, err
		}
		x = &binaryExpr{at{t.pos}, t.val, x, y}
	}
	return x, nil
}

func (p *parser) parseMath1() (expr, error) { return p.parseBinary(p.parseConcat, "+", "-") }

func (p *parser) parseConcat() (expr, error) {
	pos := p.cur().pos
	x, err := p.parseMath2()
	if err != nil || !p.isOp("~") {
		return x, err
	}
	c := &concatExpr{at{pos}, []expr{x}}
	for p.skipOp("~") {
		y, err := p.parseMath2()
		if err != nil {
			return nil, err
		}
		c.parts = append(c.parts, y)
	}
	return c, nil
}

func (p *parser) parseMath2() (expr, error) {
	return p.parseBinary(p.parsePow, "*", "/", "//", "%")
}

func (p *parser) parsePow() (expr, error) {
	return p.parseBinary(func() (expr, error) { return p.parseUnary(true) }, "**")
}

func (p *parser) parseUnary(withFilter bool) (expr, error) {
	t := p.cur()
	if err := p.enter(t.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	var x expr
	var err error
	if t.kind == tOp && (t.val == "-" || t.val == "+") {
		p.next()
		if x, err = p.parseUnary(false); err != nil {
			return nil, err
		}
		x = &unaryExpr{at{t.pos}, t.val, x}
	} else if x, err = p.parsePrimary(); err != nil {
		return nil, err
	}
	if x, err = p.parsePostfix(x); err != nil {
		return nil, err
	}
	if withFilter {
		return p.parseFilterTests(x)
	}
	return x, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.cur()
	switch t.kind {
	case tName:
		p.next()
		switch t.val {
		case "true", "True":
			return &constExpr{at{t.pos}, true}, nil
		case "false", "False":
			return &constExpr{at{t.pos}, false}, nil
		case "none", "None":
			return &constExpr{at{t.pos}, nil}, nil
		}
		return &nameExpr{at{t.pos}, t.val}, nil
	case tString:
		var b strings.Builder
		for p.cur().kind == tString {
			b.WriteString(p.next().val)
		}
		return &constExpr{at{t.pos}, b.String()}, nil
	case tInt:
		p.next()
		v, err := parseInt(t.val)
		if err != nil {
			return nil, p.errorf(t.pos, "%v", err)
		}
		return &constExpr{at{t.pos}, v}, nil
	case tFloat:
		p.next()
		v, err := strconv.ParseFloat(strings.ReplaceAll(t.val, "_", ""), 64)
		if err != nil && !math.IsInf(v, 0) {
			return nil, p.errorf(t.pos, "invalid float literal %q", t.val)
		}
		return &constExpr{at{t.pos}, v}, nil
	case tOp:
		switch t.val {
		case "(":
			p.next()
			x, err := p.parseTuple(true, nil, true)
			if err != nil {
				return nil, err
			}
			return x, p.expectOp(")")
		case "[":
			p.next()
			items, err := p.parseList("]", func() (expr, error) { return p.parseExpression(true) })
			return &listExpr{at{t.pos}, items, false}, err
		case "{":
			p.next()
			d := &dictExpr{at: at{t.pos}}
			_, err := p.parseList("}", func() (expr, error) {
				k, err := p.parseExpression(true)
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.parseExpression(true)
				d.keys = append(d.keys, k)
				d.vals = append(d.vals, v)
				return v, err
			})
			return d, err
		}
	}
	return nil, p.errorf(t.pos, "unexpected %s", t)
}

// parseList parses comma-separated items up to close, allowing a trailing
// comma.
func (p *parser) parseList(close string, item func() (expr, error)) ([]expr, error) {
	var items []expr
	for !p.skipOp(close) {
		if len(items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
			if p.skipOp(close) {
				break
			}
		}
		x, err := item()
		if err != nil {
			return nil, err
		}
		items = append(items, x)
	}
	return items, nil
}

func parseInt(s string) (int64, error) {
	clean := strings.ReplaceAll(s, "_", "")
	if len(clean) > 1 && clean[0] == '0' && clean[1] >= '0' && clean[1] <= '9' &&
		strings.Trim(clean, "0") != "" {
		return 0, fmt.Errorf("invalid integer literal %q: leading zeros are not allowed", s)
	}
	base := 10
	if len(clean) > 2 && clean[0] == '0' {
		switch clean[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 10 {
			clean = clean[2:]
		}
	}
	v, err := strconv.ParseInt(clean, base, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("integer literal %s is too large", s)
		}
		return 0, fmt.Errorf("invalid integer literal %q", s)
	}
	return v, nil
}

func (p *parser) parsePostfix(x expr) (expr, error) {
	for {
		t := p.cur()
		switch {
		case t.kind == tOp && t.val == ".":
			p.next()
			a := p.next()
			switch a.kind {
			case tName:
				x = &attrExpr{at{a.pos}, x, a.val}
			case tInt:
				v, err := parseInt(a.val)
				if err != nil {
					return nil, p.errorf(a.pos, "%v", err)
				}
				x = &itemExpr{at{a.pos}, x, &constExpr{at{a.pos}, v}}
			default:
				return nil, p.errorf(a.pos, "expected an attribute name, found %s", a)
			}
		case t.kind == tOp && t.val == "[":
			p.next()
			var err error
			if x, err = p.parseSubscript(t.pos, x); err != nil {
				return nil, err
			}
		case t.kind == tOp && t.val == "(":
			var err error
			if x, err = p.parseCall(x); err != nil {
				return nil, err
			}
		default:
			return x, nil
		}
	}
}

// parseSubscript parses what follows "[": an index, a tuple of indexes or
// a slice.
func (p *parser) parseSubscript(pos int, x expr) (expr, error) {
	isSliceEnd := func() bool { return p.isOp("]") || p.isOp(",") || p.isOp(":") }
	var parts [3]expr
	n := 0
	for {
		if !isSliceEnd() {
			e, err := p.parseExpression(true)
			if err != nil {
				return nil, err
			}
			parts[n] = e
		}
		if n == 2 || !p.skipOp(":") {
			break
		}
		n++
	}
	if n > 0 {
		return &sliceExpr{at{pos}, x, parts[0], parts[1], parts[2]}, p.expectOp("]")
	}
	if parts[0] == nil {
		return nil, p.errorf(p.cur().pos, "expected a subscript, found %s", p.cur())
	}
	if !p.isOp(",") {
		return &itemExpr{at{pos}, x, parts[0]}, p.expectOp("]")
	}
	p.next() // the comma after the first index
	items := []expr{parts[0]}
	more, err := p.parseList("]", func() (expr, error) { return p.parseExpression(true) })
	if err != nil {
		return nil, err
	}
	return &itemExpr{at{pos}, x, &listExpr{at{pos}, append(items, more...), true}}, nil
}

// parseArgs parses "(a, b, k=v)" after the callee.
func (p *parser) parseArgs() ([]expr, []kwargExpr, error) {
	if err := p.expectOp("("); err != nil {
		return nil, nil, err
	}
	var args []expr
	var kwargs []kwargExpr
	first := true
	for !p.skipOp(")") {
		if !first {
			if err := p.expectOp(","); err != nil {
				return nil, nil, err
			}
			if p.skipOp(")") {
				break
			}
		}
		first = false
		if p.isOp("*") || p.isOp("**") {
			return nil, nil, p.errorf(p.cur().pos, "*args and **kwargs in calls are not supported")
		}
		if p.cur().kind == tName && p.peek().kind == tOp && p.peek().val == "=" {
			name := p.next().val
			p.next()
			x, err := p.parseExpression(true)
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwargExpr{name, x})
			continue
		}
		t := p.cur()
		x, err := p.parseExpression(true)
		if err != nil {
			return nil, nil, err
		}
		if len(kwargs) > 0 {
			return nil, nil, p.errorf(t.pos, "positional argument follows keyword argument")
		}
		args = append(args, x)
	}
	return args, kwargs, nil
}

func (p *parser) parseCall(fn expr) (expr, error) {
	pos := fn.position()
	args, kwargs, err := p.parseArgs()
	if err != nil {
		return nil, err
	}
	return &callExpr{at{pos}, fn, args, kwargs}, nil
}

func (p *parser) parseFilterTests(x expr) (expr, error) {
	for {
		switch {
		case p.skipOp("|"):
			f, err := p.parseFilter(x)
			if err != nil {
				return nil, err
			}
			x = f
		case p.isName("is"):
			var err error
			if x, err = p.parseTest(x); err != nil {
				return nil, err
			}
		case p.isOp("("):
			var err error
			if x, err = p.parseCall(x); err != nil {
				return nil, err
			}
		default:
			return x, nil
		}
	}
}

// parseDottedName reads "name" or "name.name…" for filters and tests.
func (p *parser) parseDottedName(what string) (token, error) {
	t, err := p.expectKind(tName, what)
	if err != nil {
		return t, err
	}
	for p.isOp(".") && p.peek().kind == tName {
		p.next()
		t.val += "." + p.next().val
	}
	return t, nil
}

func (p *parser) parseFilter(x expr) (*filterExpr, error) {
	name, err := p.parseDottedName("a filter name")
	if err != nil {
		return nil, err
	}
	fn, ok := filters[name.val]
	if !ok {
		return nil, p.errorf(name.pos, "unknown filter %q", name.val)
	}
	f := &filterExpr{at: at{name.pos}, x: x, name: name.val, fn: fn}
	if p.isOp("(") {
		if f.args, f.kwargs, err = p.parseArgs(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (p *parser) parseTest(x expr) (expr, error) {
	is := p.next()
	negate := p.skipName("not")
	name, err := p.parseDottedName("a test name")
	if err != nil {
		return nil, err
	}
	fn, ok := tests[name.val]
	if !ok {
		return nil, p.errorf(name.pos, "unknown test %q", name.val)
	}
	t := &testExpr{at: at{name.pos}, x: x, name: name.val, fn: fn}
	c := p.cur()
	switch {
	case p.isOp("("):
		var kwargs []kwargExpr
		if t.args, kwargs, err = p.parseArgs(); err != nil {
			return nil, err
		}
		if len(kwargs) > 0 {
			return nil, p.errorf(c.pos, "test %q takes no keyword arguments", name.val)
		}
	case c.kind == tName && c.val == "is":
		return nil, p.errorf(c.pos, `cannot chain tests with "is"`)
	case (c.kind == tName && c.val != "else" && c.val != "or" && c.val != "and") ||
		c.kind == tString || c.kind == tInt || c.kind == tFloat ||
		(c.kind == tOp && (c.val == "[" || c.val == "{")):
		arg, err := p.parsePrimary()
		if err != nil {
			return nil, err
		}
		if arg, err = p.parsePostfix(arg); err != nil {
			return nil, err
		}
		t.args = []expr{arg}
	}
	if negate {
		return &unaryExpr{at{is.pos}, "not", t}, nil
	}
	return t, nil
}
