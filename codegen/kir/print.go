package kir

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/llmc-dev/llmc/wformat"
)

// Print renders p as text that Parse reads back: Print(Parse(Print(p)))
// is Print(p). The text holds everything the emitters read: weights,
// states, tables with their contents, every buffer the kernels touch,
// and each entry's kernels, phases and statements.
//
//	slots 4                                    (when more than one)
//	weight #0 model.embed_tokens.weight f32[32, 16]
//	state #0 k.0 [16 × 8]                      (bf16[16 × 8], f16[...]: a 16-bit KV cache)
//	table invfreq_0 [4] = {1, 0.1, 0.01, 0.001}
//	buffer w_0 weight #0 [512]
//	buffer arena arena [64]
//
//	entry decode (seq 1, arena 64, scratch 112) -> arena[0 : +[1 32]]
//	  kernel decode_k0_embedding embedding -> %x  (embedding)
//	    serial:
//	      for s1 in [0, 1) step 1:
//	        var id2 int = tokens[s1]
//
// Names that are not plain words are quoted as Go strings.
func Print(p *Program) string {
	var b strings.Builder
	if p.Slots > 1 {
		fmt.Fprintf(&b, "slots %d\n", p.Slots)
	}
	for i, w := range p.Weights {
		dt := w.Fmt().String()
		fmt.Fprintf(&b, "weight #%d %s %s[%d, %d]", i, word(w.Name), dt, w.Rows, w.Cols)
		if w.Interleave != 0 {
			fmt.Fprintf(&b, " interleaved %d", w.Interleave)
		}
		if len(w.Concat) > 0 {
			names := make([]string, len(w.Concat))
			for j, c := range w.Concat {
				names[j] = word(c)
			}
			fmt.Fprintf(&b, " = concat %s", strings.Join(names, ", "))
		}
		b.WriteByte('\n')
	}
	for i, s := range p.States {
		dt := "" // a float32 state prints as before
		if s.Dtype != wformat.F32 {
			dt = s.Dtype.String()
		}
		fmt.Fprintf(&b, "state #%d %s %s[%d × %d]\n", i, word(s.Name), dt, s.Rows, s.RowSize)
	}
	tables := map[string]bool{}
	for _, t := range p.Tables {
		tables[t.Name] = true
		fmt.Fprintf(&b, "table %s [%d] = {", word(t.Name), t.Len)
		for i, x := range t.Data {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(formatF32(x))
		}
		b.WriteString("}\n")
	}
	for _, buf := range usedBuffers(p) {
		if buf.Kind == Table && tables[buf.Name] {
			continue
		}
		fmt.Fprintf(&b, "buffer %s\n", bufferDecl(buf))
	}
	for _, e := range p.Entries {
		hasLen := ""
		if e.HasLen {
			hasLen = ", len"
		}
		fmt.Fprintf(&b, "\nentry %s (seq %d%s, arena %d, scratch %d) -> %s[%s : +%v]\n", word(e.Name), e.Seq, hasLen, e.ArenaLen, e.ScratchLen, bufName(e.Output), exprString(e.OutOffset), e.OutShape)
		for _, k := range e.Kernels {
			ops := make([]string, len(k.Ops))
			for i, o := range k.Ops {
				ops[i] = word(o)
			}
			fmt.Fprintf(&b, "  kernel %s %s -> %s  (%s)\n", word(k.Name), word(k.Kind), word(k.Value), strings.Join(ops, ", "))
			for _, ph := range k.Phases {
				b.WriteString("    " + phaseHeader(ph) + "\n")
				printStmts(&b, ph.Body, "      ")
			}
		}
	}
	return b.String()
}

// bufferDecl is a buffer's declaration: name, kind, number and length.
func bufferDecl(b *Buffer) string {
	s := word(b.Name) + " " + b.Kind.String()
	if b.Kind == Weight || b.Kind == State || b.Kind == Table {
		s += fmt.Sprintf(" #%d", b.Index)
	}
	if b.Format != wformat.F32 {
		s += " " + b.Format.String()
	}
	return s + fmt.Sprintf(" [%d]", b.Len)
}

// usedBuffers returns the buffers p's entries use, by name, in order of
// first use.
func usedBuffers(p *Program) []*Buffer {
	var out []*Buffer
	seen := map[string]bool{}
	add := func(b *Buffer) {
		if b != nil && !seen[b.Name] {
			seen[b.Name] = true
			out = append(out, b)
		}
	}
	expr := func(e Expr) {
		if l, ok := e.(*Load); ok {
			add(l.Buf)
		}
		if l, ok := e.(*LoadQ); ok {
			add(l.Buf)
		}
	}
	for _, e := range p.Entries {
		add(e.Output)
		WalkExpr(e.OutOffset, expr)
		for _, k := range e.Kernels {
			for _, ph := range k.Phases {
				WalkExpr(ph.N, expr)
				WalkExpr(ph.Work, expr)
				WalkBuffers(ph.Body, add)
			}
		}
	}
	return out
}

func phaseHeader(ph *Phase) string {
	if !ph.Parallel {
		return "serial:"
	}
	grain := ""
	if ph.Grain != 1 {
		grain = fmt.Sprintf(" grain %d", ph.Grain)
	}
	return fmt.Sprintf("parallel %s in [0, %s) work %s%s:", varName(ph.Var), exprString(ph.N), exprString(ph.Work), grain)
}

func printStmts(b *strings.Builder, ss []Stmt, indent string) {
	for _, s := range ss {
		b.WriteString(indent + stmtString(s) + "\n")
		switch s := s.(type) {
		case *For:
			printStmts(b, s.Body, indent+"  ")
		case *IfGreater:
			printStmts(b, s.Then, indent+"  ")
		}
	}
}

// stmtString is one statement on one line (a loop or conditional without
// its body).
func stmtString(s Stmt) string {
	switch s := s.(type) {
	case *Decl:
		t := "?"
		if s.Var != nil {
			t = s.Var.T.String()
		}
		return fmt.Sprintf("var %s %s = %s", varName(s.Var), t, exprString(s.Init))
	case *Assign:
		return fmt.Sprintf("%s = %s", varName(s.Var), exprString(s.Val))
	case *Store:
		op := "store"
		if s.Val != nil && s.Val.Type() == F32x8 {
			op = "store8"
		}
		if s.Val != nil && s.Val.Type() == F32x16 {
			op = "store16"
		}
		return fmt.Sprintf("%s %s[%s] = %s", op, bufName(s.Buf), exprString(s.Index), exprString(s.Val))
	case *StoreI8:
		op := "storei8"
		if s.Val != nil && s.Val.Type() == F32x8 {
			op = "store8i8"
		}
		return fmt.Sprintf("%s %s[%s] = %s", op, bufName(s.Buf), exprString(s.Off), exprString(s.Val))
	case *StoreBF16:
		return fmt.Sprintf("store8bf16 %s[%s] = %s", bufName(s.Buf), exprString(s.Off), exprString(s.Val))
	case *Prefetch:
		return fmt.Sprintf("prefetch %s[%s]", bufName(s.Buf), exprString(s.Off))
	case *For:
		return fmt.Sprintf("for %s in [%s, %s) step %d:", varName(s.Var), exprString(s.Lo), exprString(s.Hi), s.Step)
	case *IfGreater:
		return fmt.Sprintf("if %s > %s:", exprString(s.X), exprString(s.Y))
	case nil:
		return "<nil statement>"
	}
	return fmt.Sprintf("<statement %T>", s)
}

// exprString prints e, or a placeholder for a missing expression (which
// Verify reports).
func exprString(e Expr) (s string) {
	if e == nil {
		return "<nil>"
	}
	defer func() {
		// A String method reached a nil operand.
		if recover() != nil {
			s = "<malformed>"
		}
	}()
	return e.String()
}

func varName(v *Var) string {
	if v == nil {
		return "<nil>"
	}
	return v.Name
}

func bufName(b *Buffer) string {
	if b == nil {
		return "<nil>"
	}
	return b.Name
}

// formatF32 prints x with the fewest digits that read back as x.
func formatF32(x float32) string { return strconv.FormatFloat(float64(x), 'g', -1, 32) }

// word prints a name bare when it is a plain word and quoted otherwise.
func word(s string) string {
	if isWord(s) {
		return s
	}
	return strconv.Quote(s)
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !isWordChar(c) {
			return false
		}
	}
	return true
}

// isWordChar reports whether c may appear in a bare name: letters,
// digits and the punctuation of checkpoint names and graph values.
func isWordChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_.%/:@-+", c)
}
