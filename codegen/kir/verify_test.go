package kir_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/wformat"
)

// validProgram parses testdata/valid.kir, a small program that uses every
// statement and expression and that Verify accepts.
func validProgram(t testing.TB) *kir.Program {
	t.Helper()
	src, err := os.ReadFile("testdata/valid.kir")
	require.NoError(t, err)
	p, err := kir.Parse(string(src))
	require.NoError(t, err)
	return p
}

func TestValidProgram(t *testing.T) {
	p := validProgram(t)
	require.NoError(t, kir.Verify(p))
	src, err := os.ReadFile("testdata/valid.kir")
	require.NoError(t, err)
	require.Equal(t, string(src), kir.Print(p), "testdata/valid.kir is in Print's form")
}

// parts are the pieces of the valid program that the cases break.
type parts struct {
	p                        *kir.Program
	e                        *kir.Entry
	k                        *kir.Kernel
	par, ser                 *kir.Phase
	loop                     *kir.For // the serial phase's for
	acc, s6, id7, x5, i2, n1 *kir.Var
	arena, w, scratch, tok   *kir.Buffer
	st, tab                  *kir.Buffer
}

func split(p *kir.Program) *parts {
	x := &parts{p: p, e: p.Entries[0]}
	x.k = x.e.Kernels[0]
	x.par, x.ser = x.k.Phases[0], x.k.Phases[1]
	x.n1 = x.par.Var
	x.acc = x.par.Body[0].(*kir.Decl).Var
	x.s6 = x.par.Body[2].(*kir.Decl).Var
	x.id7 = x.ser.Body[0].(*kir.Decl).Var
	x.loop = x.ser.Body[1].(*kir.For)
	x.i2 = x.loop.Var
	x.x5 = x.loop.Body[0].(*kir.Decl).Var
	x.arena = x.e.Output
	x.w = x.par.Body[1].(*kir.For).Body[0].(*kir.Assign).Val.(*kir.FMA).A.(*kir.Load).Buf
	x.tok = x.ser.Body[0].(*kir.Decl).Init.(*kir.Load).Buf
	x.st = x.loop.Body[2].(*kir.Store).Buf
	x.scratch = x.ser.Body[2].(*kir.Store).Buf
	x.tab = p.Tables[0]
	return x
}

// in appends statements to the body of the serial phase's loop.
func (x *parts) inLoop(ss ...kir.Stmt) { x.loop.Body = append(x.loop.Body, ss...) }

// after appends statements to the serial phase.
func (x *parts) after(ss ...kir.Stmt) { x.ser.Body = append(x.ser.Body, ss...) }

func store(b *kir.Buffer, i, v kir.Expr) kir.Stmt { return &kir.Store{Buf: b, Index: i, Val: v} }

// TestVerifyErrors breaks the valid program in each way Verify checks.
func TestVerifyErrors(t *testing.T) {
	where := "kir: entry step: kernel step_k0_ops: phase 1: "
	cases := []struct {
		name   string
		break_ func(x *parts)
		want   string
	}{
		// Types.
		{"decl type", func(x *parts) { x.ser.Body[0].(*kir.Decl).Init = kir.F(1) }, where + "var id7 int = 1f: id7 is int but its initial value is f32"},
		{"assign type", func(x *parts) { x.loop.Body[1].(*kir.Assign).Val = kir.I(1) }, "x5 is f32 but is assigned int"},
		{"bin mixes", func(x *parts) { x.loop.Body[1].(*kir.Assign).Val = kir.FAdd(x.x5, kir.I(1)) }, "(x5 + 1) mixes f32 and int"},
		{"bin op", func(x *parts) { x.loop.Body[1].(*kir.Assign).Val = &kir.Bin{Op: 42, A: x.x5, B: x.x5} }, "unknown operator BinOp(42)"},
		{"float rem", func(x *parts) { x.loop.Body[1].(*kir.Assign).Val = &kir.Bin{Op: kir.Rem, A: x.x5, B: x.x5} }, "% is on ints, not f32"},
		{"div by zero", func(x *parts) { x.after(store(x.arena, &kir.Bin{Op: kir.Div, A: x.id7, B: kir.I(0)}, kir.F(1))) }, "(id7 / 0) divides by zero"},
		{"fma types", func(x *parts) {
			x.loop.Body[2].(*kir.Store).Val = &kir.FMA{A: x.x5, B: x.x5, C: &kir.Broadcast{X: x.x5}}
		}, "fma takes three f32s, f32x8s or f32x16s"},
		{"fma ints", func(x *parts) { x.after(store(x.arena, &kir.FMA{A: x.id7, B: x.id7, C: x.id7}, kir.F(1))) }, "operands int, int, int"},
		{"unknown function", func(x *parts) { x.loop.Body[1].(*kir.Assign).Val = &kir.Call{Fn: kir.MathFn(99), Arg: x.x5} }, "unknown function MathFn(99)"},
		{"call of int", func(x *parts) { x.loop.Body[1].(*kir.Assign).Val = kir.Fn(kir.Exp, x.i2) }, "exp of an int"},
		{"bcast of vector", func(x *parts) {
			x.ser.Body[2].(*kir.Store).Val = &kir.Broadcast{X: kir.Ld8(x.scratch, kir.I(0))}
		}, "bcast(load8 scratch[0]) of f32x8: it takes f32"},
		{"hsum of scalar", func(x *parts) { x.par.Body[2].(*kir.Decl).Init = &kir.HSum{X: kir.F(1)} }, "hsum(1f) of f32: it takes f32x8"},
		{"hmax of scalar", func(x *parts) { x.ser.Body[3].(*kir.Store).Val = &kir.HMax{X: kir.F(1)} }, "hmax(1f) of f32: it takes f32x8"},
		{"hsums operand", func(x *parts) { x.ser.Body[4].(*kir.Store).Val.(*kir.HSums).Xs[3] = kir.F(2) }, "operand 2f is f32, not f32x8"},
		{"f32 of float", func(x *parts) { x.loop.Body[1].(*kir.Assign).Val = &kir.ToF32{X: x.x5} }, "f32(x5) of f32: it takes int"},
		{"select operand", func(x *parts) { x.par.Body[3].(*kir.Store).Val.(*kir.Select).Y = kir.I(0) }, "operand 0 is int, not f32"},
		{"store of f32x16", func(x *parts) { x.after(store(x.arena, kir.I(1000), kir.Zeros(16))) }, "reaches 1000 (+16)"},
		{"call of f32x16", func(x *parts) { x.after(store(x.arena, kir.I(0), &kir.HSum{X: kir.Fn(kir.Exp, kir.Zeros(16))})) }, "exp of an f32x16"},
		{"f32x16 division", func(x *parts) {
			x.after(store(x.arena, kir.I(0), &kir.HSum{X: kir.FDiv(kir.Zeros(16), kir.Zeros(16))}))
		}, "f32x16 takes +, - and * only"},
		{"f32x16 mixed with f32x8", func(x *parts) {
			x.after(store(x.arena, kir.I(0), &kir.HSum{X: kir.FAdd(kir.Zeros(16), kir.Zeros(8))}))
		}, "mixes f32x16 and f32x8"},
		{"store8bf16 to the arena", func(x *parts) {
			x.after(&kir.StoreBF16{Buf: x.arena, Off: kir.I(0), Val: kir.Ld8(x.scratch, kir.I(0))})
		}, "store8bf16 to arena buffer arena: bfloat16 inputs are stored to scratch only"},
		{"store8bf16 of a scalar", func(x *parts) {
			x.after(&kir.StoreBF16{Buf: x.scratch, Off: kir.I(0), Val: kir.F(1)})
		}, "rounded value 1f is f32, not f32x8"},
		{"dotbf16 of an f32 weight", func(x *parts) {
			x.after(store(x.arena, kir.I(0), &kir.HSum{X: &kir.DotBF16{Acc: kir.Zeros(16), W: x.w, WOff: kir.I(0), X: x.scratch, XOff: kir.I(0)}}))
		}, "its first operand w_0 is a f32 weight buffer, not a bf16 weight"},
		{"dotbf16 accumulator", func(x *parts) {
			x.w.Format, x.p.Weights[0].BF16 = wformat.BF16, true
			x.after(store(x.arena, kir.I(0), &kir.HSum{X: &kir.DotBF16{Acc: kir.Zeros(8), W: x.w, WOff: kir.I(0), X: x.scratch, XOff: kir.I(0)}}))
		}, "its accumulator is f32x8, not f32x16"},
		{"dotbf16 of the arena", func(x *parts) {
			x.w.Format, x.p.Weights[0].BF16 = wformat.BF16, true
			x.after(store(x.arena, kir.I(0), &kir.HSum{X: &kir.DotBF16{Acc: kir.Zeros(16), W: x.w, WOff: kir.I(0), X: x.arena, XOff: kir.I(0)}}))
		}, "its second operand arena is a arena buffer, not the scratch that store8bf16 writes"},
		{"wide scalar load", func(x *parts) {
			x.after(store(x.arena, kir.I(0), &kir.Load{Buf: x.arena, Index: kir.I(0), Wide: true}))
		}, "a wide load is a vector load"},
		{"wide load bounds", func(x *parts) { x.after(store(x.arena, kir.I(0), &kir.HSum{X: kir.LdV(x.scratch, kir.I(8), 16)})) }, "(+16), past its 16"},
		{"store of int", func(x *parts) { x.after(store(x.arena, kir.I(0), x.id7)) }, "stored value id7 is int: buffers hold f32s"},
		{"store index", func(x *parts) { x.after(store(x.arena, kir.F(0), kir.F(1))) }, "index 0f is f32, not int"},
		{"load index", func(x *parts) { x.after(store(x.arena, kir.I(0), kir.Ld(x.arena, kir.F(1)))) }, "index 1f is f32, not int"},
		{"vector load of tokens", func(x *parts) { x.after(store(x.arena, kir.I(0), &kir.HSum{X: kir.Ld8(x.tok, kir.I(0))})) }, "vector load of tokens"},
		{"loop bounds", func(x *parts) { x.loop.Hi = kir.F(4) }, "loop bounds [0, 4f) are int and f32, not ints"},
		{"loop step", func(x *parts) { x.loop.Step = 0 }, "for i2 in [0, min(4, %len)) step 0: loop step 0: loops count up"},
		{"loop variable type", func(x *parts) { x.i2.T = kir.F32 }, "loop variable i2 is f32, not int"},
		{"if types", func(x *parts) { x.loop.Body[3].(*kir.IfGreater).Y = kir.I(0) }, "comparison of f32 and int: if compares f32s"},
		{"missing expression", func(x *parts) { x.ser.Body[0].(*kir.Decl).Init = nil }, "var id7 int = <nil>: missing expression"},
		{"nil statement", func(x *parts) { x.after(nil) }, "nil statement"},
		{"unknown variable type", func(x *parts) { x.x5.T = 7 }, "variable x5 has unknown type Type(7)"},

		// Definitions and scopes.
		{"used out of scope", func(x *parts) { x.after(store(x.arena, kir.I(0), x.x5)) }, "store arena[0] = x5: x5 is used outside the scope of its declaration"},
		{"used before declared", func(x *parts) {
			x.ser.Body = append([]kir.Stmt{store(x.arena, kir.I(0), &kir.ToF32{X: x.id7})}, x.ser.Body...)
		}, "id7 is used outside the scope of its declaration"},
		{"assigned out of scope", func(x *parts) { x.after(&kir.Assign{Var: x.x5, Val: kir.F(0)}) }, "x5 is assigned outside the scope of its declaration"},
		{"declared twice", func(x *parts) { x.inLoop(&kir.Decl{Var: x.id7, Init: kir.I(0)}) }, "id7 is declared again inside its own scope"},
		{"two variables one name", func(x *parts) { x.after(&kir.Decl{Var: &kir.Var{Name: "x5", T: kir.F32}, Init: kir.F(0)}) }, "two variables are named x5 in one phase"},
		{"loop variable assigned", func(x *parts) { x.inLoop(&kir.Assign{Var: x.i2, Val: kir.I(0)}) }, "i2 is a loop variable: loops own their variables"},
		{"parallel variable assigned", func(x *parts) { x.par.Body = append(x.par.Body, &kir.Assign{Var: x.n1, Val: kir.I(0)}) }, "n1 is a loop variable"},
		{"name not identifier", func(x *parts) { x.x5.Name = "x 5" }, `variable name "x 5" is not an identifier`},
		{"name reserved", func(x *parts) { x.x5.Name = "store" }, "variable name store is reserved"},
		{"name a Go keyword", func(x *parts) { x.x5.Name = "func" }, "variable name func is reserved"},
		{"name an imported package", func(x *parts) { x.x5.Name = "vec" }, "variable name vec is reserved"},
		{"name of a buffer", func(x *parts) { x.x5.Name = "scratch" }, "variable scratch has the name of a buffer"},
		{"unknown input", func(x *parts) { x.loop.Hi = kir.Param{Name: "n"} }, "unknown step input %n"},
		{"len without len", func(x *parts) { x.e.HasLen = false }, "%len in entry step, which has no len input"},

		// Phases.
		{"parallel without variable", func(x *parts) { x.par.Var = nil }, "parallel phase without a loop variable"},
		{"parallel variable type", func(x *parts) { x.n1.T = kir.F32 }, "parallel phase's loop variable n1 is f32, not int"},
		{"parallel without trip count", func(x *parts) { x.par.N = nil }, "parallel phase without a trip count"},
		{"trip count type", func(x *parts) { x.par.N = kir.F(2) }, "trip count 2f is f32, not int"},
		{"trip count uses a variable", func(x *parts) { x.par.N = x.n1 }, "a parallel phase's trip count uses variable n1: it is evaluated outside the phases"},
		{"work type", func(x *parts) { x.par.Work = kir.F(2) }, "work estimate 2f is f32, not int"},
		{"parallel without work", func(x *parts) { x.par.Work = nil }, "parallel phase without a work estimate"},
		{"grain", func(x *parts) { x.par.Grain = 0 }, "parallel phase has grain 0"},
		{"serial with variable", func(x *parts) { x.ser.Var = x.n1 }, "a serial phase has a loop variable, trip count or work estimate"},
		{"race", func(x *parts) { x.par.Body[3].(*kir.Store).Index = kir.I(16) }, "in a parallel phase over n1, the store index 16 does not depend on n1: its threads race"},
		{"race through a variable", func(x *parts) {
			x.par.Body = append(x.par.Body, store(x.arena, kir.IAdd(kir.I(18), kir.IMul(x.n1, kir.I(0))), kir.F(0)))
		}, "the store index 18 does not depend on n1"},

		// Static bounds.
		{"past the end", func(x *parts) { x.par.N = kir.I(30) }, "store index (16 + n1) of arena reaches 45, past its 40 elements"},
		{"vector past the end", func(x *parts) { x.ser.Body[4].(*kir.Store).Index = kir.I(33) }, "store index 33 of arena reaches 33 (+8), past its 40 elements"},
		{"vector load past the end", func(x *parts) { x.par.Body[1].(*kir.For).Hi = kir.I(72) }, "load index ((n1 * 16) + j3) of w_0 reaches 80 (+8), past its 64 elements"},
		{"below zero", func(x *parts) {
			x.ser.Body[0].(*kir.Decl).Init.(*kir.Load).Index = kir.ISub(kir.Param{Name: "len"}, kir.I(2))
		}, "load index (%len + -2) of tokens can be -1"},
		{"remainder", func(x *parts) {
			x.inLoop(store(x.scratch, kir.IAdd(kir.I(15), kir.IRem(kir.Param{Name: "pos"}, kir.I(2))), kir.F(0)))
		}, "reaches 16, past its 16 elements"},
		{"output past the arena", func(x *parts) { x.e.OutShape = []int{41} }, "output index 0 of arena reaches 0 (+41), past its 40 elements"},

		// Buffers.
		{"weight buffer length", func(x *parts) { x.w.Len = 63 }, "buffer w_0 has 63 elements but weight #0 w [4, 16] has 64"},
		{"weight buffer number", func(x *parts) { x.w.Index = 3 }, "buffer w_0 is weight #3 of 1"},
		{"weight buffer bf16", func(x *parts) { x.w.Format = wformat.BF16 }, "buffer w_0 is bf16 but weight #0 w is f32"},
		{"state buffer length", func(x *parts) { x.st.Len = 8 }, "buffer st_0 has 8 elements but state #0 st [8 × 4] has 32"},
		{"state buffer number", func(x *parts) { x.st.Index = 1 }, "buffer st_0 is state #1 of 1"},
		{"state stored as q8_0", func(x *parts) { x.p.States[0].Dtype, x.st.Format = wformat.Q8_0, wformat.Q8_0 },
			"state #0 st is stored as q8_0: KV cache states are f32, f16 or bf16"},
		{"state buffer f16, state f32", func(x *parts) { x.st.Format = wformat.F16 }, "buffer st_0 is f16 but state #0 st is stored as f32"},
		{"state bf16, buffer f32", func(x *parts) { x.p.States[0].Dtype = wformat.BF16 }, "buffer st_0 is f32 but state #0 st is stored as bf16"},
		{"f16 arena", func(x *parts) { x.arena.Format = wformat.F16 }, "arena buffer arena is marked f16: only weights and states are"},
		{"f16 weight, f32 buffer", func(x *parts) { x.p.Weights[0].Format = wformat.F16 }, "buffer w_0 is f32 but weight #0 w is f16"},
		{"weight in no format", func(x *parts) { x.p.Weights[0].Format, x.w.Format = wformat.Format(99), wformat.Format(99) }, "buffer w_0: weights are not stored as format(99)"},
		{"table not in the program", func(x *parts) { x.p.Tables = nil }, "table tab_0 is not in the program's tables"},
		{"arena larger than allocated", func(x *parts) { x.e.ArenaLen = 30 }, "arena buffer arena has 40 elements but the entries allocate 30"},
		{"one name two buffers", func(x *parts) {
			x.after(store(&kir.Buffer{Name: "scratch", Kind: kir.Arena, Len: 4}, kir.I(0), kir.F(0)))
		}, `buffer scratch is declared as "scratch scratch [16]" and as "scratch arena [4]"`},
		{"bf16 scratch", func(x *parts) { x.scratch.Format = wformat.BF16 }, "scratch buffer scratch is marked bf16: only weights and states are"},
		{"buffer name", func(x *parts) { x.scratch.Name = "scratch-1" }, `buffer name "scratch-1" is not an identifier`},
		{"buffer kind", func(x *parts) { x.scratch.Kind = 9 }, "buffer scratch has unknown kind BufKind(9)"},
		{"store to weight", func(x *parts) { x.after(store(x.w, kir.I(0), kir.F(0))) }, "store to weight buffer w_0, which is read-only"},
		{"store to table", func(x *parts) { x.after(store(x.tab, kir.I(0), kir.F(0))) }, "store to table buffer tab_0, which is read-only"},
		{"store to tokens", func(x *parts) { x.after(store(x.tok, kir.I(0), kir.F(0))) }, "store to tokens buffer tokens, which is read-only"},
		{"table number", func(x *parts) { x.tab.Index = 2 }, "table tab_0 is table 0 but has number 2"},
		{"table length", func(x *parts) { x.tab.Data = x.tab.Data[:3] }, "table tab_0 has length 4 but 3 values"},
		{"table kind", func(x *parts) { x.p.Tables = append(x.p.Tables, &kir.Buffer{Name: "t2", Kind: kir.Arena, Index: 1}) }, "table t2 has kind arena"},
		{"table bf16", func(x *parts) { x.tab.Format = wformat.BF16 }, "table tab_0 is marked bf16"},
		{"two tables one name", func(x *parts) {
			x.p.Tables = append(x.p.Tables, &kir.Buffer{Name: "tab_0", Kind: kir.Table, Index: 1})
		}, "two tables are named tab_0"},

		// The program and its entries.
		{"weight shape", func(x *parts) { x.p.Weights[0].Rows = 0 }, "weight #0 w has shape [0, 16]"},
		{"state shape", func(x *parts) { x.p.States[0].RowSize = 0 }, "state #0 st has shape [8 × 0]"},
		{"seq", func(x *parts) { x.e.Seq = 0 }, "seq 0: an entry takes at least one token"},
		{"entry memory", func(x *parts) { x.e.ScratchLen = -1 }, "arena 40, scratch -1"},
		{"entry name", func(x *parts) { x.e.Name = "a.b" }, `entry name "a.b" is not an identifier`},
		{"two entries one name", func(x *parts) {
			x.p.Entries = append(x.p.Entries, &kir.Entry{Name: "step", Seq: 1, Output: x.arena, OutOffset: kir.I(0)})
		}, "two entries are named step"},
		{"kernel name", func(x *parts) { x.k.Name = "k-0" }, `kernel name "k-0" is not an identifier`},
		{"two kernels one name", func(x *parts) { x.e.Kernels = append(x.e.Kernels, &kir.Kernel{Name: x.k.Name}) }, "two kernels are named step_k0_ops"},
		{"output buffer kind", func(x *parts) { x.e.Output = x.scratch }, "the output is in scratch buffer scratch: backends return outputs from the arena"},
		{"no output", func(x *parts) { x.e.Output = nil }, "no output buffer"},
		{"output shape", func(x *parts) { x.e.OutShape = []int{0} }, "output shape [0]"},
		{"output offset type", func(x *parts) { x.e.OutOffset = kir.F(0) }, "the output offset 0f is not an int"},
		{"output offset uses a variable", func(x *parts) { x.e.OutOffset = x.id7 }, "the output offset uses variable id7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := validProgram(t)
			c.break_(split(p))
			err := kir.Verify(p)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestVerifyNil(t *testing.T) {
	require.ErrorContains(t, kir.Verify(nil), "nil program")
}
