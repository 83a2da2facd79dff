package llvm_test

import (
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/runtime/native"
	"github.com/llmc-dev/llmc/wformat"
)

func TestChooseDotForm(t *testing.T) {
	zen4 := map[string]bool{"avx2": true, "avx512f": true, "avx512vl": true, "avx512_vnni": true}
	for _, c := range []struct {
		arch  string
		feats map[string]bool
		limit string
		want  llvm.DotForm
	}{
		{"amd64", zen4, "", llvm.DotVNNI},
		{"amd64", zen4, "avx512", llvm.DotVNNI},
		{"amd64", zen4, "avx2", llvm.DotAVX2},
		{"amd64", zen4, "scalar", llvm.DotPortable},
		{"amd64", map[string]bool{"avx2": true, "avx_vnni": true}, "", llvm.DotVNNI},
		{"amd64", map[string]bool{"avx2": true, "avx512_vnni": true}, "", llvm.DotAVX2}, // no VL: no 256-bit vpdpbusd
		{"amd64", map[string]bool{"avx": true}, "", llvm.DotPortable},
		{"arm64", map[string]bool{"asimddp": true}, "", llvm.DotPortable},
	} {
		require.Equal(t, c.want, llvm.ChooseDotForm(c.arch, c.feats, c.limit), "%s %v limit %q", c.arch, c.feats, c.limit)
	}
	_, err := llvm.ParseDotForm("sse")
	require.ErrorContains(t, err, `unknown integer dot form "sse" (want vnni, avx2, portable)`)
}

// TestIntDotMatchesMachine compiles the q8_0-, q4_0- and q4_k-intdot cases
// in each DotI8 form this CPU runs (and the q8_0- and q4_0-intdot-rows
// cases, lowered for VNNI, in each form too) and checks that the native code
// computes exactly what kir.Machine does: the int8 products are exact in
// every form, and the float arithmetic around them is the kernel IR's. The
// weight's quants are random bytes, -128 included for Q8_0 (which the sign
// trick must survive), every nibble for Q4_0 and Q4_K (and every packed
// scale and min for Q4_K), and the inputs have blocks of
// zeros, tiny and large values.
func TestIntDotMatchesMachine(t *testing.T) {
	tc := toolchain(t)
	feats, err := native.HostFeatures()
	if err != nil {
		feats = map[string]bool{}
	}
	best := llvm.ChooseDotForm(goruntime.GOARCH, feats, "")
	for _, form := range llvm.DotForms {
		if form == llvm.DotVNNI && best != llvm.DotVNNI || form == llvm.DotAVX2 && best == llvm.DotPortable {
			t.Logf("skipping form %s: this CPU has %s at best", form, best)
			continue
		}
		for _, f := range []wformat.Format{wformat.Q8_0, wformat.Q4_0, wformat.Q4_K} {
			t.Run(f.String()+"/"+string(form), func(t *testing.T) { intDotMatchesMachine(t, tc, f, f.String()+"-intdot-"+string(form), form) })
		}
		// kir.Options.VNNI's prefill lowering, printed in every form.
		for _, f := range []wformat.Format{wformat.Q8_0, wformat.Q4_0} {
			t.Run(f.String()+"-rows/"+string(form), func(t *testing.T) { intDotMatchesMachine(t, tc, f, f.String()+"-intdot-rows-vnni", form) })
			// And with kir.Options.Wide: the tiles' dots in pairs of blocks.
			t.Run(f.String()+"-pairs/"+string(form), func(t *testing.T) { intDotMatchesMachine(t, tc, f, f.String()+"-intdot-pairs-vnni", form) })
		}
		// Q4_0's decode rows in pairs too, and Q4_0, Q8_0 and Q4_K with
		// interleaved weight rows (kir.linearCols), prefill and decode.
		for _, name := range []string{"q4_0-intdot-pair-row-vnni", "q4_0-intdot-cols-vnni", "q4_0-intdot-cols-row-vnni", "q8_0-intdot-cols-vnni",
			"q4_k-intdot-cols-vnni", "q4_k-intdot-cols-row-vnni"} {
			f, err := wformat.Parse(name[:4])
			require.NoError(t, err)
			t.Run(f.String()+"-"+strings.TrimSuffix(strings.TrimPrefix(name[5:], "intdot-"), "-vnni")+"/"+string(form), func(t *testing.T) { intDotMatchesMachine(t, tc, f, name, form) })
		}
	}
}

func intDotMatchesMachine(t *testing.T, tc *llvm.Toolchain, f wformat.Format, name string, form llvm.DotForm) {
	p := caseProgram(t, name)
	w := p.Weights[0]
	r := rand.New(rand.NewPCG(5, 6))
	blocks := make([]byte, (w.Bytes()+3)/4*4)
	for i := range blocks {
		blocks[i] = byte(r.IntN(256))
	}
	nb := (w.Cols + f.BlockElems() - 1) / f.BlockElems()
	for row := range w.Rows {
		for b := range nb {
			// Q4_K: d here, dmin after it, and random packed scales.
			at := row*f.RowBytes(w.Cols) + b*f.BlockBytes()
			h := wformat.F32ToF16(float32(r.Float64()*0.1 + 0.001))
			blocks[at], blocks[at+1] = byte(h), byte(h>>8)
			blocks[at+2] = 0x80 // a -128 quant in every Q8_0 block, 0 and 8 in a Q4_0 one
			switch f {
			case wformat.Q4_0:
				blocks[at+3] = 0xf0 // 15 and 0: the extremes, -8 and 7
			case wformat.Q4_K:
				m := wformat.F32ToF16(float32(r.Float64()*0.05 + 0.001))
				blocks[at+2], blocks[at+3] = byte(m), byte(m>>8)
			}
		}
	}
	if w.Interleave != 0 {
		// The rows moved as the loader moves them.
		packed, err := wformat.Interleave(f, w.Rows, w.Cols, blocks[:w.Bytes()])
		require.NoError(t, err)
		copy(blocks, packed)
	}
	words := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(blocks))), len(blocks)/4)
	// The inputs: three sets (scales 1 with a block of zeros, 1e-3
	// and 300) in a table, copied into arena[0 : seq·in] by a first
	// phase from the set the first token names.
	e := p.Entries[0]
	n := e.Seq * w.Cols
	xs := make([]float32, 3*n)
	for set, scale := range []float64{1, 1e-3, 300} {
		for i := range n {
			xs[set*n+i] = float32(r.NormFloat64() * scale)
		}
	}
	clear(xs[:32])
	tab := &kir.Buffer{Name: "xin", Kind: kir.Table, Index: len(p.Tables), Len: len(xs), Data: xs}
	p.Tables = append(p.Tables, tab)
	tok := &kir.Buffer{Name: "tokens", Kind: kir.Tokens, Len: 1}
	id, i := &kir.Var{Name: "set", T: kir.Int}, &kir.Var{Name: "i", T: kir.Int}
	k := e.Kernels[0]
	k.Phases = append([]*kir.Phase{{Body: []kir.Stmt{
		&kir.Decl{Var: id, Init: kir.Ld(tok, kir.I(0))},
		&kir.For{Var: i, Lo: kir.I(0), Hi: kir.I(n), Step: 1, Body: []kir.Stmt{
			&kir.Store{Buf: e.Output, Index: i, Val: kir.Ld(tab, kir.IAdd(kir.IMul(id, kir.I(n)), i))},
		}},
	}}}, k.Phases...)
	require.NoError(t, kir.Verify(p))

	o := llvm.Options{DotForm: form}
	ll, err := o.Emit(p)
	require.NoError(t, err)
	printed := map[llvm.DotForm]string{llvm.DotVNNI: "vpdpbusd", llvm.DotAVX2: "pmadd.ub.sw", llvm.DotPortable: "mul nsw <32 x i32>"}[form]
	if form == llvm.DotVNNI && strings.Contains(kir.Print(p), "x2(") {
		printed = "vpdpbusd.512" // pairs of blocks: one 512-bit dot
	}
	if form == llvm.DotAVX2 && strings.Contains(kir.Print(p), "dotu8(") {
		printed = "mul nsw <32 x i32>" // AVX2 prints dotu8 the portable way
	}
	if strings.Contains(kir.Print(p), "dotcols(") {
		// Column dots: 512-bit vpdpbusd, or 64 products widened.
		printed = map[bool]string{true: "vpdpbusd.512", false: "mul nsw <64 x i32>"}[form == llvm.DotVNNI]
	}
	require.Contains(t, ll, printed)
	so, lay := compileSOWith(t, tc, o, p, max(8, e.Seq), 8)
	prog := load(t, so, lay, [][]float32{words}, 2)
	m := kir.NewMachine(p, [][]float32{nil})
	m.Blocks = [][]byte{blocks}
	for set := range 3 {
		toks := make([]int32, e.Seq)
		for j := range toks {
			toks[j] = int32(set)
		}
		want, err := m.Run(e.Name, toks, 0, e.Seq)
		require.NoError(t, err)
		got, _, err := prog.Run(e.Name, toks, 0)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for _, y := range want {
			require.False(t, y == 0 || math.IsNaN(float64(y)) || math.IsInf(float64(y), 0), "input set %d: output %v", set, want)
		}
		for j := range want {
			if math.Float32bits(want[j]) != math.Float32bits(got[j]) {
				t.Fatalf("input set %d: element %d: machine %g, native %g", set, j, want[j], got[j])
			}
		}
	}
}
