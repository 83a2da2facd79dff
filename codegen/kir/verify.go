package kir

import (
	"errors"
	"fmt"
	"github.com/llmc-dev/llmc/artifact"
	"go/token"
	"slices"
	"strings"

	"github.com/llmc-dev/llmc/wformat"
)

// Verify checks that p is a well-formed kernel IR program, the contract
// between lowering (and any pass over the kernel IR) and the emitters:
//
//   - types: every operator gets operands of the types it takes, a
//     declaration or assignment the variable's type, a store an f32 or an
//     f32x8, a loop bound or index an int;
//   - definitions: a variable is used only inside the scope of its
//     declaration (or loop), declared once in a scope, and names one
//     variable per phase; step inputs are %pos, and %len in entries that
//     have it; buffers agree with the weights, states and tables they
//     name, and only the arena, scratch, states and locals are written;
//   - phases: a parallel phase has an int loop variable and trip count
//     and work estimate that use no variable, and every store in it but
//     a local's depends on its variable (else its threads race); a serial phase has
//     none of these;
//   - bounds: indices whose range is known statically (loops with
//     constant bounds, %len, remainders and minima) stay in their
//     buffer, vector accesses with all eight lanes;
//   - names: entries, kernels, buffers and variables are identifiers the
//     backends can use, and entries and kernels are unique.
//
// Errors name the entry, kernel, phase and statement; all of them are
// reported, joined.
func Verify(p *Program) error {
	if p == nil {
		return errors.New("kir: nil program")
	}
	v := &verifier{p: p, bufs: map[string]*Buffer{}, tables: map[string]*Buffer{}, names: map[string]bool{}}
	v.program()
	return errors.Join(v.errs...)
}

// maxErrors bounds the errors Verify reports: after that many, the rest
// are mostly consequences.
const maxErrors = 20

type verifier struct {
	p      *Program
	errs   []error
	at     []string           // where: entry, kernel, phase, statement
	bufs   map[string]*Buffer // the first buffer seen of each name
	tables map[string]*Buffer
	names  map[string]bool // buffer names, which variables must not take

	arena, scratch, tokens int // what the runtime allocates

	entry  *Entry
	plan   string // set while checking an expression evaluated outside phases
	scopes []map[*Var]bool
	byName map[string]*Var // the phase's variables
	loops  map[*Var]bool   // loop variables in scope
	ranges map[*Var]rng    // loop variables of known range
	pvar   *Var            // the parallel phase's variable
	deps   map[*Var]bool   // variables that depend on pvar
}

func (v *verifier) errorf(format string, args ...any) {
	if len(v.errs) == maxErrors {
		v.errs = append(v.errs, errors.New("kir: too many errors"))
	}
	if len(v.errs) > maxErrors {
		return
	}
	where := strings.Join(v.at, ": ")
	if where != "" {
		where += ": "
	}
	v.errs = append(v.errs, fmt.Errorf("kir: %s%s", where, fmt.Sprintf(format, args...)))
}

func (v *verifier) push(where string) { v.at = append(v.at, where) }
func (v *verifier) pop()              { v.at = v.at[:len(v.at)-1] }

func isIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// reserved are names a variable cannot take: the text form's keywords, and
// the names the Go backend's generated code uses unqualified (its phases'
// parameters, builtins, and the packages it imports; its helpers are
// package vec's, always qualified).
var reserved = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`var store store8 store16 store8bf16 for if in step load8 load16 loadi8 load8i8 loadf16
		NaNf serial parallel work grain
		p lo hi int float32 float64 max min len copy clear append make
		math unsafe archsimd binary runtime vec wformat`) {
		reserved[n] = true
	}
}

func (v *verifier) program() {
	p := v.p
	for i, w := range p.Weights {
		switch {
		case w == nil:
			v.errorf("weight #%d is nil", i)
		case w.Rows < 1 || w.Cols < 1:
			v.errorf("weight #%d %s has shape [%d, %d]", i, w.Name, w.Rows, w.Cols)
		}
	}
	if p.Slots < 0 {
		v.errorf("program has %d slots", p.Slots)
	}
	for i, s := range p.States {
		switch {
		case s == nil:
			v.errorf("state #%d is nil", i)
		case s.Rows < 1 || s.RowSize < 1:
			v.errorf("state #%d %s has shape [%d × %d]", i, s.Name, s.Rows, s.RowSize)
		case p.Slots > 1 && s.Rows%p.Slots != 0:
			v.errorf("state #%d %s has %d rows, not a multiple of the program's %d slots", i, s.Name, s.Rows, p.Slots)
		case !slices.Contains(wformat.KVFormats, s.Dtype):
			v.errorf("state #%d %s is stored as %s: KV cache states are f32, f16 or bf16", i, s.Name, s.Dtype)
		}
	}
	for i, t := range p.Tables {
		switch {
		case t == nil:
			v.errorf("table %d is nil", i)
			continue
		case t.Kind != Table:
			v.errorf("table %s has kind %s", t.Name, t.Kind)
		case t.Index != i:
			v.errorf("table %s is table %d but has number %d", t.Name, i, t.Index)
		case t.Len != len(t.Data):
			v.errorf("table %s has length %d but %d values", t.Name, t.Len, len(t.Data))
		case t.Format != wformat.F32:
			v.errorf("table %s is marked %s: only weights are", t.Name, t.Format)
		}
		if v.tables[t.Name] != nil {
			v.errorf("two tables are named %s", t.Name)
		}
		v.tables[t.Name] = t
		v.buffer(t)
	}
	for _, b := range usedBuffers(p) {
		v.names[b.Name] = true
	}
	entries, kernels := map[string]bool{}, map[string]bool{}
	for _, e := range p.Entries {
		if e == nil {
			v.errorf("nil entry")
			continue
		}
		v.arena, v.scratch, v.tokens = max(v.arena, e.ArenaLen), max(v.scratch, e.ScratchLen), max(v.tokens, artifact.RowFields*e.Seq)
	}
	for _, e := range p.Entries {
		if e == nil {
			continue
		}
		v.push("entry " + e.Name)
		if !isIdent(e.Name) {
			v.errorf("entry name %q is not an identifier", e.Name)
		}
		if entries[e.Name] {
			v.errorf("two entries are named %s", e.Name)
		}
		entries[e.Name] = true
		for _, k := range e.Kernels {
			if k != nil {
				if kernels[k.Name] {
					v.errorf("two kernels are named %s: kernel names must be unique in a program", k.Name)
				}
				kernels[k.Name] = true
			}
		}
		v.entryPoint(e)
		v.pop()
	}
}

func (v *verifier) entryPoint(e *Entry) {
	v.entry = e
	if e.Seq < 1 {
		v.errorf("seq %d: an entry takes at least one token", e.Seq)
	}
	if e.ArenaLen < 0 || e.ScratchLen < 0 {
		v.errorf("arena %d, scratch %d", e.ArenaLen, e.ScratchLen)
	}
	v.resetPhase()
	v.plan = "the output offset"
	if v.typ(e.OutOffset) != Int && e.OutOffset != nil {
		v.errorf("the output offset %s is not an int", exprString(e.OutOffset))
	}
	v.plan = ""
	switch {
	case e.Output == nil:
		v.errorf("no output buffer")
	case e.Output.Kind != Arena:
		v.errorf("the output is in %s buffer %s: backends return outputs from the arena", e.Output.Kind, e.Output.Name)
	default:
		v.buffer(e.Output)
		size := 1
		for _, d := range e.OutShape {
			if d < 1 {
				v.errorf("output shape %v", e.OutShape)
			}
			size *= d
		}
		if e.OutOffset != nil {
			v.bounds(e.Output, e.OutOffset, size, "output")
		}
	}
	for _, k := range e.Kernels {
		if k == nil {
			v.errorf("nil kernel")
			continue
		}
		v.push("kernel " + k.Name)
		if !isIdent(k.Name) {
			v.errorf("kernel name %q is not an identifier", k.Name)
		}
		for i, ph := range k.Phases {
			v.push(fmt.Sprintf("phase %d", i))
			if ph == nil {
				v.errorf("nil phase")
			} else {
				v.phase(ph)
			}
			v.pop()
		}
		v.pop()
	}
}

func (v *verifier) resetPhase() {
	v.scopes = []map[*Var]bool{{}}
	v.byName, v.loops, v.ranges, v.deps = map[string]*Var{}, map[*Var]bool{}, map[*Var]rng{}, map[*Var]bool{}
	v.pvar = nil
}

func (v *verifier) phase(ph *Phase) {
	v.resetPhase()
	if !ph.Parallel {
		if ph.Var != nil || ph.N != nil || ph.Work != nil {
			v.errorf("a serial phase has a loop variable, trip count or work estimate")
		}
		v.stmts(ph.Body)
		return
	}
	if ph.Grain < 1 {
		v.errorf("parallel phase has grain %d", ph.Grain)
	}
	v.plan = "a parallel phase's trip count"
	if ph.N == nil {
		v.errorf("parallel phase without a trip count")
	} else if t := v.typ(ph.N); t != Int && t != bad {
		v.errorf("parallel phase's trip count %s is %s, not int", exprString(ph.N), t)
	}
	v.plan = "a parallel phase's work estimate"
	if ph.Work == nil {
		v.errorf("parallel phase without a work estimate")
	} else if t := v.typ(ph.Work); t != Int && t != bad {
		v.errorf("parallel phase's work estimate %s is %s, not int", exprString(ph.Work), t)
	}
	v.plan = ""
	if ph.Var == nil {
		v.errorf("parallel phase without a loop variable")
		return
	}
	if ph.Var.T != Int {
		v.errorf("parallel phase's loop variable %s is %s, not int", ph.Var.Name, ph.Var.T)
	}
	v.declare(ph.Var)
	v.loops[ph.Var] = true
	v.pvar = ph.Var
	v.deps[ph.Var] = true
	if ph.N != nil {
		if r, ok := v.rangeOf(ph.N, map[*Var]bool{}); ok && r.hi >= 1 {
			v.ranges[ph.Var] = rng{0, r.hi - 1}
		}
	}
	v.stmts(ph.Body)
}

// declare brings x into the current scope.
func (v *verifier) declare(x *Var) bool {
	if x == nil {
		v.errorf("declaration of a nil variable")
		return false
	}
	switch {
	case !isIdent(x.Name):
		v.errorf("variable name %q is not an identifier", x.Name)
	case reserved[x.Name] || token.IsKeyword(x.Name) || strings.HasPrefix(x.Name, "p_") || strings.HasPrefix(x.Name, "ix_"):
		v.errorf("variable name %s is reserved", x.Name)
	case v.names[x.Name]:
		v.errorf("variable %s has the name of a buffer", x.Name)
	}
	if x.T > F32x16 {
		v.errorf("variable %s has unknown type %s", x.Name, x.T)
	}
	if y, ok := v.byName[x.Name]; ok && y != x {
		v.errorf("two variables are named %s in one phase", x.Name)
	}
	v.byName[x.Name] = x
	if v.inScope(x) {
		v.errorf("%s is declared again inside its own scope", x.Name)
		return false
	}
	v.scopes[len(v.scopes)-1][x] = true
	return true
}

func (v *verifier) inScope(x *Var) bool {
	for _, s := range v.scopes {
		if s[x] {
			return true
		}
	}
	return false
}

func (v *verifier) block(ss []Stmt, loop *Var) {
	v.scopes = append(v.scopes, map[*Var]bool{})
	if loop != nil {
		v.declare(loop)
		v.loops[loop] = true
	}
	v.stmts(ss)
	for x := range v.scopes[len(v.scopes)-1] {
		delete(v.loops, x)
		delete(v.ranges, x)
	}
	v.scopes = v.scopes[:len(v.scopes)-1]
}

func (v *verifier) stmts(ss []Stmt) {
	for _, s := range ss {
		v.push(stmtLine(s))
		v.stmt(s)
		v.pop()
	}
}

// stmtLine is stmtString, safe on malformed statements.
func stmtLine(s Stmt) (line string) {
	defer func() {
		if recover() != nil {
			line = fmt.Sprintf("<malformed %T>", s)
		}
	}()
	return strings.TrimSuffix(stmtString(s), ":")
}

func (v *verifier) stmt(s Stmt) {
	switch s := s.(type) {
	case *Decl:
		t := v.typ(s.Init)
		if s.Var == nil {
			v.errorf("declaration of a nil variable")
			return
		}
		if t != bad && t != s.Var.T {
			v.errorf("%s is %s but its initial value is %s", s.Var.Name, s.Var.T, t)
		}
		v.declare(s.Var)
		if v.pvar != nil && v.mentionsDep(s.Init) {
			v.deps[s.Var] = true
		}
	case *Assign:
		t := v.typ(s.Val)
		if s.Var == nil {
			v.errorf("assignment to a nil variable")
			return
		}
		switch {
		case !v.inScope(s.Var):
			v.errorf("%s is assigned outside the scope of its declaration", s.Var.Name)
		case v.loops[s.Var]:
			v.errorf("%s is a loop variable: loops own their variables", s.Var.Name)
		case t != bad && t != s.Var.T:
			v.errorf("%s is %s but is assigned %s", s.Var.Name, s.Var.T, t)
		}
		if v.pvar != nil && v.mentionsDep(s.Val) {
			v.deps[s.Var] = true
		}
	case *Store:
		if s.Buf == nil {
			v.errorf("store to a nil buffer")
			return
		}
		v.buffer(s.Buf)
		switch s.Buf.Kind {
		case Weight, Table, Tokens:
			v.errorf("store to %s buffer %s, which is read-only", s.Buf.Kind, s.Buf.Name)
		}
		if t := v.typ(s.Index); t != Int && t != bad {
			v.errorf("index %s is %s, not int", exprString(s.Index), t)
		}
		width := 1
		switch t := v.typ(s.Val); t {
		case F32:
		case F32x8:
			width = 8
		case F32x16:
			width = 16
			if s.Buf.Format != wformat.F32 || s.Buf.Kind == Local {
				v.errorf("stored value %s is f32x16: sixteen lanes are stored to f32 arena, scratch and state buffers only", exprString(s.Val))
			}
		case bad:
		default:
			v.errorf("stored value %s is %s: buffers hold f32s", exprString(s.Val), t)
		}
		if s.Index != nil {
			v.bounds(s.Buf, s.Index, width, "store")
		}
		if v.pvar != nil && s.Index != nil && s.Buf.Kind != Local && !v.mentionsDep(s.Index) {
			v.errorf("in a parallel phase over %s, the store index %s does not depend on %s: its threads race", v.pvar.Name, exprString(s.Index), v.pvar.Name)
		}
	case *StoreI8:
		if s.Buf == nil {
			v.errorf("store to a nil buffer")
			return
		}
		width := 1
		switch t := v.typ(s.Val); t {
		case F32:
		case F32x8:
			width = 8
		case bad:
		default:
			v.errorf("quantised value %s is %s, not f32 or f32x8", exprString(s.Val), t)
		}
		v.scratchStore(s.Buf, s.Off, width, "storei8", "int8s")
	case *StoreBF16:
		if s.Buf == nil {
			v.errorf("store to a nil buffer")
			return
		}
		if t := v.typ(s.Val); t != F32x8 && t != bad {
			v.errorf("rounded value %s is %s, not f32x8", exprString(s.Val), t)
		}
		v.scratchStore(s.Buf, s.Off, 16, "store8bf16", "bfloat16 inputs")
	case *Prefetch:
		if s.Buf == nil {
			v.errorf("prefetch of a nil buffer")
			return
		}
		v.buffer(s.Buf)
		if s.Buf.Kind != Weight && s.Buf.Kind != State {
			v.errorf("prefetch of %s buffer %s: only weights and states are prefetched", s.Buf.Kind, s.Buf.Name)
		}
		if t := v.typ(s.Off); t != Int && t != bad {
			v.errorf("offset %s is %s, not int", exprString(s.Off), t)
		}
	case *For:
		lo, hi := v.typ(s.Lo), v.typ(s.Hi)
		if lo != Int && lo != bad || hi != Int && hi != bad {
			v.errorf("loop bounds [%s, %s) are %s and %s, not ints", exprString(s.Lo), exprString(s.Hi), lo, hi)
		}
		if s.Step < 1 {
			v.errorf("loop step %d: loops count up", s.Step)
		}
		if s.Var == nil {
			v.errorf("loop without a variable")
			return
		}
		if s.Var.T != Int {
			v.errorf("loop variable %s is %s, not int", s.Var.Name, s.Var.T)
		}
		if v.pvar != nil && (v.mentionsDep(s.Lo) || v.mentionsDep(s.Hi)) {
			v.deps[s.Var] = true
		}
		v.loopRange(s)
		v.block(s.Body, s.Var)
	case *IfGreater:
		x, y := v.typ(s.X), v.typ(s.Y)
		if x != F32 && x != bad || y != F32 && y != bad {
			v.errorf("comparison of %s and %s: if compares f32s", x, y)
		}
		v.block(s.Then, nil)
	case nil:
		v.errorf("nil statement")
	default:
		v.errorf("unknown statement %T", s)
	}
}

// loopRange records the range of a loop's variable when its bounds are
// known statically and use no variable (so that every value in the
// range is reached, whatever the enclosing loops do). block forgets it
// when the variable leaves its scope.
func (v *verifier) loopRange(s *For) {
	if s.Lo == nil || s.Hi == nil || s.Step < 1 || usesVar(s.Lo) || usesVar(s.Hi) {
		return
	}
	lo, ok1 := v.rangeOf(s.Lo, map[*Var]bool{})
	hi, ok2 := v.rangeOf(s.Hi, map[*Var]bool{})
	if !ok1 || !ok2 || hi.hi <= lo.lo {
		return // unknown, or never runs
	}
	r := rng{lo.lo, hi.hi - 1}
	if s.Step > 1 {
		if lo.lo != lo.hi {
			return
		}
		if hi.hi < inf {
			r.hi = lo.lo + (hi.hi-1-lo.lo)/s.Step*s.Step
		}
	}
	v.ranges[s.Var] = r
}

func usesVar(e Expr) bool {
	found := false
	WalkExpr(e, func(e Expr) {
		if _, ok := e.(*Var); ok {
			found = true
		}
	})
	return found
}

func (v *verifier) mentionsDep(e Expr) bool {
	found := false
	WalkExpr(e, func(e Expr) {
		if x, ok := e.(*Var); ok && v.deps[x] {
			found = true
		}
	})
	return found
}

// buffer checks a buffer against the program's weights, states and
// tables, and against other buffers of its name.
func (v *verifier) buffer(b *Buffer) {
	if first, ok := v.bufs[b.Name]; ok {
		if first != b && bufferDecl(first) != bufferDecl(b) {
			v.errorf("buffer %s is declared as %q and as %q", b.Name, bufferDecl(first), bufferDecl(b))
		}
		return
	}
	v.bufs[b.Name] = b
	if !isIdent(b.Name) {
		v.errorf("buffer name %q is not an identifier", b.Name)
	}
	if b.Format != wformat.F32 && b.Kind != Weight && b.Kind != State {
		v.errorf("%s buffer %s is marked %s: only weights and states are", b.Kind, b.Name, b.Format)
	}
	switch b.Kind {
	case Arena, Scratch, Tokens:
		have := map[BufKind]int{Arena: v.arena, Scratch: v.scratch, Tokens: v.tokens}[b.Kind]
		if b.Len > have {
			v.errorf("%s buffer %s has %d elements but the entries allocate %d", b.Kind, b.Name, b.Len, have)
		}
	case Weight:
		if b.Index < 0 || b.Index >= len(v.p.Weights) || v.p.Weights[b.Index] == nil {
			v.errorf("buffer %s is weight #%d of %d", b.Name, b.Index, len(v.p.Weights))
			return
		}
		w := v.p.Weights[b.Index]
		if b.Format != w.Fmt() {
			v.errorf("buffer %s is %s but weight #%d %s is %s", b.Name, b.Format, b.Index, w.Name, w.Fmt())
		}
		switch {
		case !b.Format.Valid():
			v.errorf("buffer %s: weights are not stored as %s", b.Name, b.Format)
		case b.Format.Blocked() && b.Len != w.Bytes():
			v.errorf("buffer %s has %d bytes but weight #%d %s, %s [%d, %d], has %d", b.Name, b.Len, b.Index, w.Name, b.Format, w.Rows, w.Cols, w.Bytes())
		case !b.Format.Blocked() && b.Len != w.Rows*w.Cols:
			v.errorf("buffer %s has %d elements but weight #%d %s [%d, %d] has %d", b.Name, b.Len, b.Index, w.Name, w.Rows, w.Cols, w.Rows*w.Cols)
		}
		if w.Interleave != 0 && (w.Interleave != wformat.Group || !w.Fmt().Interleaves() || w.Rows%wformat.Group != 0) {
			v.errorf("weight #%d %s, %s [%d, %d], interleaved by %d: only q4_0, q8_0 and q4_k rows are, %d at a time", b.Index, w.Name, w.Fmt(), w.Rows, w.Cols, w.Interleave, wformat.Group)
		}
	case State:
		if b.Index < 0 || b.Index >= len(v.p.States) || v.p.States[b.Index] == nil {
			v.errorf("buffer %s is state #%d of %d", b.Name, b.Index, len(v.p.States))
			return
		}
		s := v.p.States[b.Index]
		if b.Format != s.Dtype {
			v.errorf("buffer %s is %s but state #%d %s is stored as %s", b.Name, b.Format, b.Index, s.Name, s.Dtype)
		}
		if b.Len != s.Rows*s.RowSize {
			v.errorf("buffer %s has %d elements but state #%d %s [%d × %d] has %d", b.Name, b.Len, b.Index, s.Name, s.Rows, s.RowSize, s.Rows*s.RowSize)
		}
	case Local:
		if b.Len <= 0 {
			v.errorf("local buffer %s has %d elements", b.Name, b.Len)
		}
	case Table:
		if t, ok := v.tables[b.Name]; !ok || (t != b && bufferDecl(t) != bufferDecl(b)) {
			v.errorf("table %s is not in the program's tables", b.Name)
		}
	default:
		v.errorf("buffer %s has unknown kind %s", b.Name, b.Kind)
	}
}

// bad is the type of an expression already reported.
const bad Type = 255

func (v *verifier) typ(e Expr) Type {
	switch e := e.(type) {
	case nil:
		v.errorf("missing expression")
		return bad
	case IntConst:
		return Int
	case F32Const:
		return F32
	case *Var:
		if e == nil {
			v.errorf("nil variable")
			return bad
		}
		if !v.inScope(e) {
			if v.plan != "" {
				v.errorf("%s uses variable %s: it is evaluated outside the phases", v.plan, e.Name)
			} else {
				v.errorf("%s is used outside the scope of its declaration", e.Name)
			}
			return bad
		}
		return e.T
	case Param:
		switch {
		case e.Name == "pos":
		case e.Name == "len" && v.entry.HasLen:
		case e.Name == "len":
			v.errorf("%%len in entry %s, which has no len input", v.entry.Name)
		default:
			v.errorf("unknown step input %%%s", e.Name)
		}
		return Int
	case *Load:
		if e == nil || e.Buf == nil {
			v.errorf("load from a nil buffer")
			return bad
		}
		v.buffer(e.Buf)
		if e.Buf.Format.Blocked() {
			v.errorf("element load from %s weight %s: its blocks are read by loadi8, load8i8 and loadf16", e.Buf.Format, e.Buf.Name)
			return bad
		}
		if t := v.typ(e.Index); t != Int && t != bad {
			v.errorf("index %s is %s, not int", exprString(e.Index), t)
		}
		width := 1
		if e.Wide && !e.Vec {
			v.errorf("%s: a wide load is a vector load", exprString(e))
			return bad
		}
		if e.Vec {
			width = 8
			if e.Wide {
				width = 16
			}
			if e.Buf.Kind == Tokens {
				v.errorf("vector load of tokens: token ids load one at a time")
				return bad
			}
		}
		if e.Index != nil {
			v.bounds(e.Buf, e.Index, width, "load")
		}
		return e.Type()
	case *LoadQ:
		if e == nil || e.Buf == nil {
			v.errorf("load from a nil buffer")
			return bad
		}
		v.buffer(e.Buf)
		if !e.Buf.Format.Blocked() {
			v.errorf("%s reads %s buffer %s: only block-format weights hold quants and scales", exprString(e), e.Buf.Format, e.Buf.Name)
			return bad
		}
		if v.interleaved(e.Buf) {
			v.errorf("%s: %s", exprString(e), interleavedOnly(e.Buf))
			return bad
		}
		if t := v.typ(e.Off); t != Int && t != bad {
			v.errorf("offset %s is %s, not int", exprString(e.Off), t)
		}
		if e.Part >= numQParts {
			v.errorf("%s: unknown part %d", exprString(e), e.Part)
			return bad
		}
		if !slices.Contains(QParts[e.Buf.Format], e.Part) {
			v.errorf("%s: a %s block holds no %s", exprString(e), e.Buf.Format, qPartNames[e.Part][0][len("load"):])
			return bad
		}
		width := qPartBytes[e.Part]
		if e.Vec {
			if qPartNames[e.Part][1] == "" {
				v.errorf("%s: scales and packed bytes load one at a time", exprString(e))
				return bad
			}
			width *= 8
		}
		if e.Off != nil {
			v.bounds(e.Buf, e.Off, width, "load")
		}
		return e.Type()
	case *DotI8:
		if e == nil || e.W == nil || e.X == nil {
			v.errorf("doti8 of a nil buffer")
			return bad
		}
		v.buffer(e.W)
		v.buffer(e.X)
		if v.interleaved(e.W) {
			v.errorf("%s: %s", exprString(e), interleavedOnly(e.W))
			return bad
		}
		if e.Quants >= numDotQuants {
			v.errorf("%s: unknown quants %d", exprString(e), e.Quants)
			return bad
		}
		if f := dotFormats[e.Quants]; e.W.Kind != Weight || e.W.Format != f {
			v.errorf("%s: its first operand %s is a %s %s buffer, not a weight of %s quants", exprString(e), e.W.Name, e.W.Format, e.W.Kind, f)
			return bad
		}
		wBytes, xBytes := e.WBytes(), DotI8Len
		if e.Pair {
			if e.Quants != DotInt8 && e.Quants != DotUInt8 && e.Quants != DotQ4_0 {
				v.errorf("%s: pairs of blocks are Q8_0's or Q4_0's", exprString(e))
				return bad
			}
			wBytes += e.W.Format.BlockBytes()
			xBytes *= 2
		}
		if !v.dotOperands(e, e.W, e.WOff, wBytes, e.X, e.XOff, xBytes, "doti8") {
			return bad
		}
		return e.Type()
	case *DotBF16:
		if e == nil || e.W == nil || e.X == nil {
			v.errorf("dotbf16 of a nil buffer")
			return bad
		}
		v.buffer(e.W)
		v.buffer(e.X)
		if t := v.typ(e.Acc); t != F32x16 && t != bad {
			v.errorf("%s: its accumulator is %s, not f32x16", exprString(e), t)
		}
		if e.W.Kind != Weight || !e.W.IsBF16() {
			v.errorf("%s: its first operand %s is a %s %s buffer, not a bf16 weight", exprString(e), e.W.Name, e.W.Format, e.W.Kind)
			return bad
		}
		if !v.dotOperands(e, e.W, e.WOff, DotBF16Len, e.X, e.XOff, 2*DotBF16Len, "dotbf16") {
			return bad
		}
		return F32x16
	case *Scales:
		if e == nil || e.W == nil {
			v.errorf("scales of a nil buffer")
			return bad
		}
		v.buffer(e.W)
		if v.interleaved(e.W) {
			v.errorf("%s: %s", exprString(e), interleavedOnly(e.W))
			return bad
		}
		if e.W.Kind != Weight || !slices.Contains(QParts[e.W.Format], QF16) {
			v.errorf("%s reads %s %s buffer %s: only block-format weights hold f16 scales", exprString(e), e.W.Format, e.W.Kind, e.W.Name)
			return bad
		}
		if e.N < 1 || e.N > 8 || e.Stride < 2 {
			v.errorf("%s: want 1 to 8 scales at least 2 bytes apart", exprString(e))
			return bad
		}
		if t := v.typ(e.Off); t != Int && t != bad {
			v.errorf("offset %s is %s, not int", exprString(e.Off), t)
		}
		if e.Off != nil {
			v.bounds(e.W, e.Off, (e.N-1)*e.Stride+2, "scales")
		}
		return F32x8
	case *DotCols:
		if e == nil || e.W == nil || e.X == nil {
			v.errorf("dotcols of a nil buffer")
			return bad
		}
		v.buffer(e.W)
		v.buffer(e.X)
		if !v.interleaved(e.W) {
			v.errorf("%s: %s is not a weight with interleaved rows", exprString(e), e.W.Name)
			return bad
		}
		if e.High && e.W.Format != wformat.Q4_K {
			v.errorf("%s: only q4_k's dots take the high nibbles, not %s's", exprString(e), e.W.Format)
		}
		if !v.dotOperands(e, e.W, e.WOff, e.WBytes(), e.X, e.XOff, DotI8Len, "dotcols") {
			return bad
		}
		return F32x16
	case *ColBits:
		if e == nil || !v.colRead(e, e.W, e.Off, wformat.Group, "colbits") {
			return bad
		}
		if e.Shift < 0 || e.Bits < 1 || e.Shift+e.Bits > 8 {
			v.errorf("%s: bits %d..%d of a byte", exprString(e), e.Shift, e.Shift+e.Bits-1)
		}
		return F32x16
	case *ColScales:
		if e == nil || !v.colRead(e, e.W, e.Off, 2*wformat.Group, "colscales") {
			return bad
		}
		return F32x16
	case *Halves:
		if e == nil {
			return v.nilExpr()
		}
		for _, x := range []Expr{e.Lo, e.Hi} {
			if t := v.typ(x); t != F32 && t != bad {
				v.errorf("%s: operand %s is %s, not f32", exprString(e), exprString(x), t)
			}
		}
		return F32x16
	case *Bin:
		if e == nil {
			return v.nilExpr()
		}
		a, b := v.typ(e.A), v.typ(e.B)
		if a == bad || b == bad {
			return bad
		}
		switch {
		case a != b:
			v.errorf("%s mixes %s and %s", exprString(e), a, b)
			return bad
		case e.Op > Rem:
			v.errorf("%s: unknown operator %s", exprString(e), e.Op)
			return bad
		case e.Op == Rem && a != Int:
			v.errorf("%s: %% is on ints, not %s", exprString(e), a)
			return bad
		case a == F32x16 && e.Op != Add && e.Op != Sub && e.Op != Mul:
			v.errorf("%s: f32x16 takes +, - and * only", exprString(e))
			return bad
		case a == Int && (e.Op == Div || e.Op == Rem) && isInt(e.B, 0):
			v.errorf("%s divides by zero", exprString(e))
		}
		return a
	case *FMA:
		if e == nil {
			return v.nilExpr()
		}
		a, b, c := v.typ(e.A), v.typ(e.B), v.typ(e.C)
		if a == bad || b == bad || c == bad {
			return bad
		}
		if a != b || b != c || a == Int {
			v.errorf("%s has operands %s, %s, %s: fma takes three f32s, f32x8s or f32x16s", exprString(e), a, b, c)
			return bad
		}
		return a
	case *Call:
		if e == nil {
			return v.nilExpr()
		}
		a := v.typ(e.Arg)
		if !e.Fn.Valid() {
			v.errorf("%s: unknown function %s", exprString(e), e.Fn)
			return bad
		}
		if a == Int || a == F32x16 {
			v.errorf("%s of an %s", e.Fn, a)
			return bad
		}
		return a
	case *Broadcast:
		if e == nil {
			return v.nilExpr()
		}
		return v.unary(e, e.X, F32, e.Type())
	case *HSum:
		if e == nil {
			return v.nilExpr()
		}
		if t := v.typ(e.X); !t.IsVector() && t != bad {
			v.errorf("%s of %s: it takes f32x8 or f32x16", exprString(e), t)
		}
		return F32
	case *HMax:
		if e == nil {
			return v.nilExpr()
		}
		return v.unary(e, e.X, F32x8, F32)
	case *ToF32:
		if e == nil {
			return v.nilExpr()
		}
		return v.unary(e, e.X, Int, F32)
	case *HSums:
		if e == nil {
			return v.nilExpr()
		}
		for _, x := range e.Xs {
			if t := v.typ(x); t != F32x8 && t != bad {
				v.errorf("%s: operand %s is %s, not f32x8", exprString(e), exprString(x), t)
			}
		}
		return F32x8
	case *Select:
		if e == nil {
			return v.nilExpr()
		}
		for _, x := range []Expr{e.X, e.Y, e.A, e.B} {
			if t := v.typ(x); t != F32 && t != bad {
				v.errorf("%s: operand %s is %s, not f32", exprString(e), exprString(x), t)
			}
		}
		return F32
	}
	v.errorf("unknown expression %T", e)
	return bad
}

func (v *verifier) nilExpr() Type {
	v.errorf("nil expression")
	return bad
}

// scratchStore checks what StoreI8 and StoreBF16 share: the buffer is
// scratch (what names the statement, elems what it stores), the byte
// offset is an int with width bytes in bounds from it, and in a parallel
// phase it depends on the phase's variable.
func (v *verifier) scratchStore(b *Buffer, off Expr, width int, what, elems string) {
	v.buffer(b)
	if b.Kind != Scratch {
		v.errorf("%s to %s buffer %s: %s are stored to scratch only", what, b.Kind, b.Name, elems)
	}
	if t := v.typ(off); t != Int && t != bad {
		v.errorf("offset %s is %s, not int", exprString(off), t)
	}
	if off != nil {
		v.byteBounds(b, off, width, what)
	}
	if v.pvar != nil && off != nil && !v.mentionsDep(off) {
		v.errorf("in a parallel phase over %s, the store offset %s does not depend on %s: its threads race", v.pvar.Name, exprString(off), v.pvar.Name)
	}
}

// dotOperands checks what DotI8, DotCols and DotBF16 share: the input x
// is the scratch StoreI8 (StoreBF16) writes, both offsets are ints, and wBytes of w and
// xBytes of x from them are in bounds. It reports whether x is scratch.
func (v *verifier) dotOperands(e Expr, w *Buffer, wOff Expr, wBytes int, x *Buffer, xOff Expr, xBytes int, what string) bool {
	if x.Kind != Scratch {
		writer := "storei8"
		if _, ok := e.(*DotBF16); ok {
			writer = "store8bf16"
		}
		v.errorf("%s: its second operand %s is a %s buffer, not the scratch that %s writes", exprString(e), x.Name, x.Kind, writer)
		return false
	}
	for _, off := range []Expr{wOff, xOff} {
		if t := v.typ(off); t != Int && t != bad {
			v.errorf("offset %s is %s, not int", exprString(off), t)
		}
	}
	if wOff != nil {
		v.bounds(w, wOff, wBytes, what)
	}
	if xOff != nil {
		v.byteBounds(x, xOff, xBytes, what)
	}
	return true
}

// interleaved reports whether b is a weight whose rows are interleaved
// (artifact.Weight.Interleave).
func (v *verifier) interleaved(b *Buffer) bool {
	return b.Kind == Weight && b.Index >= 0 && b.Index < len(v.p.Weights) && v.p.Weights[b.Index] != nil && v.p.Weights[b.Index].Interleave != 0
}

// colRead checks a read of n bytes at byte offset off of w, a weight
// with interleaved rows, by e (colbits, colscales); false when e cannot
// be typed.
func (v *verifier) colRead(e Expr, w *Buffer, off Expr, n int, what string) bool {
	if w == nil {
		v.errorf("%s of a nil buffer", what)
		return false
	}
	v.buffer(w)
	if !v.interleaved(w) {
		v.errorf("%s: %s is not a weight with interleaved rows", exprString(e), w.Name)
		return false
	}
	if t := v.typ(off); t != Int && t != bad {
		v.errorf("offset %s is %s, not int", exprString(off), t)
	}
	if off != nil {
		v.bounds(w, off, n, what)
	}
	return true
}

func interleavedOnly(b *Buffer) string {
	return fmt.Sprintf("weight %s has interleaved rows, which only dotcols, colscales and colbits read", b.Name)
}

func (v *verifier) unary(e, x Expr, in, out Type) Type {
	if t := v.typ(x); t != in && t != bad {
		v.errorf("%s of %s: it takes %s", exprString(e), t, in)
	}
	return out
}

// rng is a range of ints [lo, hi]; hi may be inf (unbounded).
type rng struct{ lo, hi int }

const inf = 1 << 40

func sat(x int) int { return min(x, inf) }

// rangeOf is the range of an int expression when every value in it is
// reached for some loop iteration and step input: e uses each loop
// variable at most once, through operators that are monotonic in each
// operand. seen tracks the variables used.
func (v *verifier) rangeOf(e Expr, seen map[*Var]bool) (rng, bool) {
	switch e := e.(type) {
	case IntConst:
		return rng{e.N, e.N}, true
	case Param:
		if e.Name == "len" {
			return rng{1, v.entry.Seq}, true // a step has 1 to seq tokens
		}
		if e.Name == "pos" {
			return rng{0, inf}, true
		}
	case *Var:
		r, ok := v.ranges[e]
		if !ok || seen[e] {
			return rng{}, false
		}
		seen[e] = true
		return r, true
	case *Bin:
		a, ok := v.rangeOf(e.A, seen)
		if !ok {
			return rng{}, false
		}
		b, ok := v.rangeOf(e.B, seen)
		if !ok {
			return rng{}, false
		}
		switch e.Op {
		case Add:
			if a.lo <= -inf || b.lo <= -inf {
				return rng{}, false
			}
			return rng{a.lo + b.lo, sat(a.hi + b.hi)}, true
		case Sub:
			if b.lo != b.hi || b.lo >= inf {
				return rng{}, false
			}
			hi := a.hi
			if hi < inf {
				hi -= b.lo
			}
			return rng{a.lo - b.lo, hi}, true
		case Mul:
			if a.lo < 0 || b.lo < 0 {
				return rng{}, false
			}
			hi := inf
			if a.hi == 0 || b.hi == 0 {
				hi = 0
			} else if a.hi < inf && b.hi < inf && a.hi <= inf/b.hi {
				hi = a.hi * b.hi
			}
			return rng{min(a.lo*b.lo, inf), hi}, true
		case Div:
			if a.lo < 0 || b.lo != b.hi || b.lo <= 0 {
				return rng{}, false
			}
			hi := a.hi
			if hi < inf {
				hi /= b.lo
			}
			return rng{a.lo / b.lo, hi}, true
		case Rem:
			c := b.lo
			if a.lo < 0 || b.lo != b.hi || c <= 0 {
				return rng{}, false
			}
			if a.hi >= inf || a.hi-a.lo+1 >= c || a.lo%c > a.hi%c {
				return rng{0, c - 1}, true
			}
			return rng{a.lo % c, a.hi % c}, true
		case Max:
			return rng{max(a.lo, b.lo), max(a.hi, b.hi)}, true
		case Min:
			return rng{min(a.lo, b.lo), min(a.hi, b.hi)}, true
		}
	}
	return rng{}, false
}

// bounds reports an index whose known range leaves b.
func (v *verifier) bounds(b *Buffer, idx Expr, width int, what string) {
	v.boundsIn(b, idx, width, what, b.Len, "elements")
}

// byteBounds reports a byte offset into a float buffer (4 bytes an
// element) whose known range leaves it.
func (v *verifier) byteBounds(b *Buffer, off Expr, width int, what string) {
	v.boundsIn(b, off, width, what, 4*b.Len, "bytes")
}

func (v *verifier) boundsIn(b *Buffer, idx Expr, width int, what string, n int, unit string) {
	r, ok := v.rangeOf(idx, map[*Var]bool{})
	if !ok || r.hi >= inf {
		return
	}
	switch {
	case r.lo < 0:
		v.errorf("%s index %s of %s can be %d", what, exprString(idx), b.Name, r.lo)
	case r.hi+width > n:
		lanes := ""
		if width > 1 {
			lanes = fmt.Sprintf(" (+%d)", width)
		}
		v.errorf("%s index %s of %s reaches %d%s, past its %d %s", what, exprString(idx), b.Name, r.hi, lanes, n, unit)
	}
}
