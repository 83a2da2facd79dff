package kir

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/llmc-dev/llmc/wformat"
)

// ParseError is a syntax error of the text form, at a 1-based line and
// column (in bytes).
type ParseError struct {
	Line, Col int
	Msg       string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Parse reads a program in the text form Print writes. It resolves names
// (buffers by their declarations, variables by their declarations in the
// phase) but does not check the program: run Verify on the result.
func Parse(src string) (p *Program, err error) {
	ps := &parser{lines: strings.Split(src, "\n"), prog: &Program{}, bufs: map[string]*Buffer{}}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*ParseError)
			if !ok {
				panic(r)
			}
			p, err = nil, fmt.Errorf("kir: %w", pe)
		}
	}()
	ps.program()
	return ps.prog, nil
}

type parser struct {
	lines []string
	ln    int    // index of the current line
	s     string // the current line
	pos   int    // byte offset in s
	prog  *Program
	bufs  map[string]*Buffer
	entry *Entry
	vars  map[string]*Var // the current phase's variables
}

func (p *parser) failf(format string, args ...any) {
	panic(&ParseError{Line: p.ln + 1, Col: p.pos + 1, Msg: fmt.Sprintf(format, args...)})
}

// next moves to the next line that is not blank and returns its
// indentation, or -1 at the end.
func (p *parser) next() int {
	for ; p.ln < len(p.lines); p.ln++ {
		line := p.lines[p.ln]
		if strings.TrimLeft(line, " ") == "" {
			continue
		}
		p.s = line
		p.pos = len(line) - len(strings.TrimLeft(line, " "))
		if p.s[p.pos] == '\t' {
			p.failf("indent with spaces, not tabs")
		}
		return p.pos
	}
	p.s, p.pos = "", 0
	return -1
}

func (p *parser) program() {
	for {
		ind := p.next()
		if ind < 0 {
			return
		}
		if ind != 0 {
			p.failf("unexpected indentation")
		}
		switch kw := p.ident(); kw {
		case "slots":
			if len(p.prog.Weights)+len(p.prog.States)+len(p.prog.Entries) > 0 || p.prog.Slots != 0 {
				p.pos = 0
				p.failf("slots must come first, once")
			}
			if p.prog.Slots = p.int(); p.prog.Slots < 2 {
				p.failf("slots %d: a program of one sequence has no slots line", p.prog.Slots)
			}
		case "weight":
			p.weight()
		case "state":
			p.state()
		case "table":
			p.table()
		case "buffer":
			p.buffer()
		case "entry":
			p.entryLine()
			p.ln++
			p.kernels()
			continue
		default:
			p.pos = 0
			p.failf("expected slots, weight, state, table, buffer or entry, found %q", kw)
		}
		p.end()
		p.ln++
	}
}

func (p *parser) skip() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

// accept consumes lit (after spaces) if it comes next.
func (p *parser) accept(lit string) bool {
	p.skip()
	if strings.HasPrefix(p.s[p.pos:], lit) {
		p.pos += len(lit)
		return true
	}
	return false
}

func (p *parser) expect(lit string) {
	if !p.accept(lit) {
		p.failf("expected %q", lit)
	}
}

func (p *parser) end() {
	p.skip()
	if p.pos < len(p.s) {
		p.failf("unexpected %q at the end of the line", p.s[p.pos:])
	}
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

// peekIdent is the identifier that comes next, not consumed.
func (p *parser) peekIdent() string {
	p.skip()
	i := p.pos
	if i >= len(p.s) || !isIdentStart(p.s[i]) {
		return ""
	}
	for i < len(p.s) && isIdentChar(p.s[i]) {
		i++
	}
	return p.s[p.pos:i]
}

func (p *parser) ident() string {
	id := p.peekIdent()
	if id == "" {
		p.failf("expected a name")
	}
	p.pos += len(id)
	return id
}

// keyword consumes the identifier kw if it comes next.
func (p *parser) keyword(kw string) bool {
	if p.peekIdent() == kw {
		p.pos += len(kw)
		return true
	}
	return false
}

func (p *parser) expectKeyword(kw string) {
	if !p.keyword(kw) {
		p.failf("expected %q", kw)
	}
}

// word reads a bare or quoted name (see Print).
func (p *parser) word() string {
	p.skip()
	rest := p.s[p.pos:]
	if strings.HasPrefix(rest, `"`) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			p.failf("bad quoted name: %v", err)
		}
		s, _ := strconv.Unquote(q)
		p.pos += len(q)
		return s
	}
	i := 0
	for i < len(rest) && isWordChar(rune(rest[i])) {
		i++
	}
	if i == 0 {
		p.failf("expected a name")
	}
	p.pos += i
	return rest[:i]
}

// intArgs reads the rest of a call after its operand: ", a, b)".
func (p *parser) intArgs() (a, b int) {
	p.expect(",")
	a = p.int()
	p.expect(",")
	b = p.int()
	p.expect(")")
	return a, b
}

func (p *parser) int() int {
	p.skip()
	i := p.pos
	if i < len(p.s) && p.s[i] == '-' {
		i++
	}
	for i < len(p.s) && p.s[i] >= '0' && p.s[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(p.s[p.pos:i])
	if err != nil {
		p.failf("expected an integer")
	}
	p.pos = i
	return n
}

func (p *parser) typ() Type {
	switch t := p.ident(); t {
	case "int":
		return Int
	case "f32":
		return F32
	case "f32x8":
		return F32x8
	case "f32x16":
		return F32x16
	default:
		p.pos -= len(t)
		p.failf("unknown type %q", t)
	}
	return 0
}

func (p *parser) weight() {
	p.expect("#")
	start := p.pos
	if n := p.int(); n != len(p.prog.Weights) {
		p.pos = start
		p.failf("weight #%d out of order: want #%d", n, len(p.prog.Weights))
	}
	w := &WeightRef{Name: p.word()}
	dt := p.ident()
	f, err := wformat.Parse(dt)
	switch {
	case err != nil || f == wformat.F16:
		p.pos -= len(dt)
		p.failf("unknown weight type %q", dt)
	case f == wformat.BF16:
		w.BF16 = true
	case f.Blocked():
		w.Format = f
	}
	p.expect("[")
	w.Rows = p.int()
	p.expect(",")
	w.Cols = p.int()
	p.expect("]")
	if p.keyword("interleaved") {
		w.Interleave = p.int()
	}
	if p.accept("=") {
		p.expectKeyword("concat")
		for {
			w.Concat = append(w.Concat, p.word())
			if !p.accept(",") {
				break
			}
		}
	}
	p.prog.Weights = append(p.prog.Weights, w)
}

func (p *parser) state() {
	p.expect("#")
	start := p.pos
	if n := p.int(); n != len(p.prog.States) {
		p.pos = start
		p.failf("state #%d out of order: want #%d", n, len(p.prog.States))
	}
	s := &StateRef{Name: p.word()}
	for _, f := range wformat.KVFormats {
		if f != wformat.F32 && p.keyword(f.String()) {
			s.Dtype = f
			break
		}
	}
	p.expect("[")
	s.Rows = p.int()
	p.expect("×")
	s.RowSize = p.int()
	p.expect("]")
	p.prog.States = append(p.prog.States, s)
}

func (p *parser) declare(b *Buffer, at int) {
	if _, dup := p.bufs[b.Name]; dup {
		p.pos = at
		p.failf("buffer %s is declared twice", b.Name)
	}
	p.bufs[b.Name] = b
}

func (p *parser) table() {
	at := p.pos
	t := &Buffer{Name: p.word(), Kind: Table, Index: len(p.prog.Tables)}
	p.expect("[")
	t.Len = p.int()
	p.expect("]")
	p.expect("=")
	p.expect("{")
	if !p.accept("}") {
		for {
			t.Data = append(t.Data, p.f32())
			if p.accept("}") {
				break
			}
			p.expect(",")
		}
	}
	p.declare(t, at)
	p.prog.Tables = append(p.prog.Tables, t)
}

func (p *parser) buffer() {
	p.skip()
	at := p.pos
	b := &Buffer{Name: p.word()}
	kind := p.ident()
	found := false
	for i, n := range bufKindNames {
		if n == kind {
			b.Kind, found = BufKind(i), true
		}
	}
	if !found {
		p.pos -= len(kind)
		p.failf("unknown buffer kind %q", kind)
	}
	if b.Kind == Weight || b.Kind == State || b.Kind == Table {
		p.expect("#")
		b.Index = p.int()
	}
	for _, f := range wformat.Formats() {
		if f != wformat.F32 && p.keyword(f.String()) {
			b.Format = f
			break
		}
	}
	p.expect("[")
	b.Len = p.int()
	p.expect("]")
	p.declare(b, at)
}

func (p *parser) buf() *Buffer {
	p.skip()
	at := p.pos
	name := p.ident()
	b, ok := p.bufs[name]
	if !ok {
		p.pos = at
		p.failf("undefined buffer %s", name)
	}
	return b
}

func (p *parser) entryLine() {
	e := &Entry{Name: p.word()}
	p.expect("(seq")
	e.Seq = p.int()
	e.HasLen = p.accept(", len")
	p.expect(", arena")
	e.ArenaLen = p.int()
	p.expect(", scratch")
	e.ScratchLen = p.int()
	p.expect(")")
	p.expect("->")
	e.Output = p.buf()
	p.expect("[")
	p.vars = map[string]*Var{}
	e.OutOffset = p.expr()
	p.expect(":")
	p.expect("+[")
	for !p.accept("]") {
		e.OutShape = append(e.OutShape, p.int())
	}
	p.expect("]")
	p.end()
	p.prog.Entries = append(p.prog.Entries, e)
	p.entry = e
}

// kernels reads the kernels of the current entry: lines indented by two.
func (p *parser) kernels() {
	for {
		ind := p.next()
		if ind <= 0 {
			return
		}
		if ind != 2 {
			p.failf("unexpected indentation: want a kernel")
		}
		p.expectKeyword("kernel")
		k := &Kernel{Name: p.word(), Kind: p.word()}
		p.expect("->")
		k.Value = p.word()
		p.expect("(")
		if !p.accept(")") {
			for {
				k.Ops = append(k.Ops, p.word())
				if p.accept(")") {
					break
				}
				p.expect(",")
			}
		}
		p.end()
		p.ln++
		p.entry.Kernels = append(p.entry.Kernels, k)
		for {
			ind := p.next()
			if ind < 4 {
				break
			}
			if ind != 4 {
				p.failf("unexpected indentation: want a phase")
			}
			k.Phases = append(k.Phases, p.phase())
		}
	}
}

func (p *parser) phase() *Phase {
	p.vars = map[string]*Var{}
	ph := &Phase{}
	switch kw := p.ident(); kw {
	case "serial":
	case "parallel":
		ph.Parallel, ph.Grain = true, 1
		name := p.ident()
		p.expectKeyword("in")
		p.expect("[0,")
		ph.N = p.expr()
		p.expect(")")
		p.expectKeyword("work")
		ph.Work = p.expr()
		if p.keyword("grain") {
			ph.Grain = p.int()
		}
		ph.Var = &Var{Name: name, T: Int}
		p.vars[name] = ph.Var
	default:
		p.pos -= len(kw)
		p.failf("expected serial or parallel, found %q", kw)
	}
	p.expect(":")
	p.end()
	p.ln++
	ph.Body = p.block(6)
	return ph
}

// block reads the statements indented by ind.
func (p *parser) block(ind int) []Stmt {
	var out []Stmt
	for {
		got := p.next()
		if got < ind {
			return out
		}
		if got > ind {
			p.failf("unexpected indentation")
		}
		out = append(out, p.stmt(ind))
	}
}

// variable returns the phase's variable name of type t, made on first
// declaration.
func (p *parser) variable(name string, t Type, at int) *Var {
	if v, ok := p.vars[name]; ok {
		if v.T != t {
			p.pos = at
			p.failf("%s is declared as %s and as %s", name, v.T, t)
		}
		return v
	}
	v := &Var{Name: name, T: t}
	p.vars[name] = v
	return v
}

func (p *parser) stmt(ind int) Stmt {
	p.skip()
	at := p.pos
	switch kw := p.peekIdent(); kw {
	case "var":
		p.ident()
		p.skip()
		vat := p.pos
		name := p.ident()
		t := p.typ()
		p.expect("=")
		init := p.expr()
		p.end()
		d := &Decl{Var: p.variable(name, t, vat), Init: init}
		p.ln++
		return d
	case "store", "store8", "store16":
		p.ident()
		b := p.buf()
		idx := p.index()
		p.expect("=")
		val := p.expr()
		if want := map[string]Type{"store": F32, "store8": F32x8, "store16": F32x16}[kw]; val.Type() != want && (kw != "store" || val.Type().IsVector()) {
			p.pos = at
			p.failf("%s of a %s value", kw, val.Type())
		}
		p.end()
		p.ln++
		return &Store{Buf: b, Index: idx, Val: val}
	case "storei8", "store8i8":
		p.ident()
		b := p.buf()
		off := p.index()
		p.expect("=")
		val := p.expr()
		if (val.Type() == F32x8) != (kw == "store8i8") {
			p.pos = at
			p.failf("%s of a %s value", kw, val.Type())
		}
		p.end()
		p.ln++
		return &StoreI8{Buf: b, Off: off, Val: val}
	case "store8bf16":
		p.ident()
		b := p.buf()
		off := p.index()
		p.expect("=")
		val := p.expr()
		if val.Type() != F32x8 {
			p.pos = at
			p.failf("%s of a %s value", kw, val.Type())
		}
		p.end()
		p.ln++
		return &StoreBF16{Buf: b, Off: off, Val: val}
	case "prefetch":
		p.ident()
		b := p.buf()
		off := p.index()
		p.end()
		p.ln++
		return &Prefetch{Buf: b, Off: off}
	case "for":
		p.ident()
		p.skip()
		vat := p.pos
		name := p.ident()
		p.expectKeyword("in")
		p.expect("[")
		lo := p.expr()
		p.expect(",")
		hi := p.expr()
		p.expect(")")
		p.expectKeyword("step")
		step := p.int()
		p.expect(":")
		p.end()
		f := &For{Var: p.variable(name, Int, vat), Lo: lo, Hi: hi, Step: step}
		p.ln++
		f.Body = p.block(ind + 2)
		return f
	case "if":
		p.ident()
		x := p.expr()
		p.expect(">")
		y := p.expr()
		p.expect(":")
		p.end()
		p.ln++
		return &IfGreater{X: x, Y: y, Then: p.block(ind + 2)}
	}
	v := p.varRef()
	p.expect("=")
	val := p.expr()
	p.end()
	p.ln++
	return &Assign{Var: v, Val: val}
}

func (p *parser) varRef() *Var {
	p.skip()
	at := p.pos
	name := p.ident()
	v, ok := p.vars[name]
	if !ok {
		p.pos = at
		p.failf("undefined variable %s", name)
	}
	return v
}

// f32 reads a float constant without its f suffix (a table's contents).
func (p *parser) f32() float32 {
	p.skip()
	at := p.pos
	tok := p.number()
	v, err := strconv.ParseFloat(tok, 32)
	if err != nil {
		p.pos = at
		p.failf("bad number %q", tok)
	}
	return float32(v)
}

// number scans a numeric token: a sign, then letters, digits and dots,
// with a sign after an exponent.
func (p *parser) number() string {
	start := p.pos
	if p.pos < len(p.s) && (p.s[p.pos] == '-' || p.s[p.pos] == '+') {
		p.pos++
	}
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case isIdentChar(c) || c == '.':
			p.pos++
		case (c == '-' || c == '+') && p.pos > start && strings.ContainsRune("eEpP", rune(p.s[p.pos-1])):
			p.pos++
		default:
			return p.s[start:p.pos]
		}
	}
	return p.s[start:p.pos]
}

var binOps = map[string]BinOp{"+": Add, "-": Sub, "*": Mul, "/": Div, "%": Rem}

func (p *parser) expr() Expr {
	p.skip()
	at := p.pos
	if p.pos >= len(p.s) {
		p.failf("expected an expression")
	}
	c := p.s[p.pos]
	switch {
	case c == '(':
		p.pos++
		a := p.expr()
		if p.accept(">") {
			y := p.expr()
			p.expect("?")
			x := p.expr()
			p.expect(":")
			b := p.expr()
			p.expect(")")
			return &Select{X: a, Y: y, A: x, B: b}
		}
		p.skip()
		if p.pos >= len(p.s) {
			p.failf("expected an operator")
		}
		op, ok := binOps[p.s[p.pos:p.pos+1]]
		if !ok {
			p.failf("expected an operator")
		}
		p.pos++
		b := p.expr()
		p.expect(")")
		return &Bin{Op: op, A: a, B: b}
	case c == '%':
		p.pos++
		return Param{Name: p.ident()}
	case c == '-' || c == '+' || c >= '0' && c <= '9':
		tok := p.number()
		if f, ok := strings.CutSuffix(tok, "f"); ok && !strings.HasPrefix(strings.TrimLeft(f, "+-"), "0x") {
			v, err := strconv.ParseFloat(f, 32)
			if err != nil {
				p.pos = at
				p.failf("bad float %q", tok)
			}
			return F32Const{F: float32(v)}
		}
		n, err := strconv.Atoi(tok)
		if err != nil {
			p.pos = at
			p.failf("bad number %q", tok)
		}
		return IntConst{N: n}
	case !isIdentStart(c):
		p.failf("expected an expression, found %q", c)
	}
	name := p.ident()
	if name == "NaNf" {
		return F32Const{F: float32(math.NaN())}
	}
	if q, ok := loadQNames[name]; ok && p.peekIdent() != "" {
		b := p.buf()
		q.Buf, q.Off = b, p.index()
		return &q
	}
	pair := strings.HasSuffix(name, "x2")
	if q := slices.Index(dotNames[:], strings.TrimSuffix(name, "x2")); q >= 0 && p.accept("(") {
		d := &DotI8{Quants: DotQuants(q), Pair: pair}
		d.W, d.WOff, d.X, d.XOff = p.dotOperands()
		return d
	}
	if name == "dotbf16" && p.accept("(") {
		d := &DotBF16{Acc: p.expr()}
		p.expect(",")
		d.W, d.WOff, d.X, d.XOff = p.dotOperands()
		return d
	}
	if (name == "dotcols" || name == "dotcolshi") && p.accept("(") {
		d := &DotCols{High: name == "dotcolshi"}
		d.W, d.WOff, d.X, d.XOff = p.dotOperands()
		return d
	}
	if name == "colbits" && p.accept("(") {
		b := &ColBits{W: p.buf()}
		b.Off = p.index()
		b.Shift, b.Bits = p.intArgs()
		return b
	}
	if name == "colscales" && p.accept("(") {
		s := &ColScales{W: p.buf()}
		s.Off = p.index()
		p.expect(")")
		return s
	}
	if name == "scales" && p.accept("(") {
		s := &Scales{W: p.buf()}
		s.Off = p.index()
		s.Stride, s.N = p.intArgs()
		return s
	}
	if (name == "load8" || name == "load16") && p.peekIdent() != "" {
		b := p.buf()
		return &Load{Buf: b, Index: p.index(), Vec: true, Wide: name == "load16"}
	}
	if p.pos < len(p.s) && p.s[p.pos] == '[' {
		p.pos = at
		b := p.buf()
		return &Load{Buf: b, Index: p.index()}
	}
	if p.pos < len(p.s) && p.s[p.pos] == '(' {
		return p.call(name, at)
	}
	p.pos = at
	return p.varRef()
}

// index reads "[expr]": the index or byte offset after a buffer's name.
func (p *parser) index() Expr {
	p.expect("[")
	e := p.expr()
	p.expect("]")
	return e
}

// loadQNames are LoadQ's printed forms (see LoadQ.String).
var loadQNames = func() map[string]LoadQ {
	m := map[string]LoadQ{}
	for p, names := range qPartNames {
		for v, n := range names {
			if n != "" {
				m[n] = LoadQ{Part: QPart(p), Vec: v == 1}
			}
		}
	}
	return m
}()

// args reads n comma-separated expressions and the closing parenthesis.
func (p *parser) args(n int) []Expr {
	p.expect("(")
	out := make([]Expr, n)
	for i := range out {
		if i > 0 {
			p.expect(",")
		}
		out[i] = p.expr()
	}
	p.expect(")")
	return out
}

func (p *parser) call(name string, at int) Expr {
	switch name {
	case "fma":
		a := p.args(3)
		return &FMA{A: a[0], B: a[1], C: a[2]}
	case "max", "min":
		a := p.args(2)
		op := Max
		if name == "min" {
			op = Min
		}
		return &Bin{Op: op, A: a[0], B: a[1]}
	case "bcast", "bcast16":
		return &Broadcast{X: p.args(1)[0], Wide: name == "bcast16"}
	case "hsum":
		return &HSum{X: p.args(1)[0]}
	case "hmax":
		return &HMax{X: p.args(1)[0]}
	case "f32":
		return &ToF32{X: p.args(1)[0]}
	case "halves":
		a := p.args(2)
		return &Halves{Lo: a[0], Hi: a[1]}
	case "hsums":
		h := &HSums{}
		copy(h.Xs[:], p.args(8))
		return h
	}
	if f, ok := LookupMathFn(name); ok {
		return &Call{Fn: f, Arg: p.args(1)[0]}
	}
	p.pos = at
	p.failf("unknown function %s", name)
	return nil
}

// dotOperands parses the rest of a dot product: "w[off], x[off])".
func (p *parser) dotOperands() (w *Buffer, wOff Expr, x *Buffer, xOff Expr) {
	w = p.buf()
	wOff = p.index()
	p.expect(",")
	x = p.buf()
	xOff = p.index()
	p.expect(")")
	return w, wOff, x, xOff
}
