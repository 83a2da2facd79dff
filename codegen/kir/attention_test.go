package kir_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/wformat"
)

// TestAttentionPrefetch checks what decode attention's loop over whole
// blocks of eight keys prefetches: every cache line of head 0's slice of
// the key rows 16 to 23 positions on and of the value rows 8 to 15 on,
// wrapped on a sliding window's ring (mistral-tiny), in a float32 and a
// float16 cache. Soft-capped attention (gemma2-tiny) scores key by key and
// has no such loop.
func TestAttentionPrefetch(t *testing.T) {
	const jb = 16 // the block's first key, where the ring of mistral-tiny wraps
	for _, model := range []string{"stories260K", "mistral-tiny", "gemma2-tiny"} {
		for _, kv := range []wformat.Format{wformat.F32, wformat.F16} {
			t.Run(model+"/"+kv.String(), func(t *testing.T) {
				p := lowerSharedKV(t, model, 64, kv)
				loops := 0
				for _, e := range p.Entries {
					if e.Name != "decode" {
						continue
					}
					for _, k := range e.Kernels {
						if k.Kind != "attention" {
							continue
						}
						for _, f := range blockLoops(k) {
							loops++
							// The block's first key is jb; every other variable
							// (the slot's first row, the key head) is 0.
							leaf := func(x kir.Expr) int {
								v, ok := x.(*kir.Var)
								require.True(t, ok, "prefetch offset reads %s", x)
								if v == f.Var {
									return jb
								}
								return 0
							}
							got := map[string][]int{}
							for _, s := range f.Body {
								if pf, ok := s.(*kir.Prefetch); ok {
									st := p.States[pf.Buf.Index]
									got[st.Name[:1]] = append(got[st.Name[:1]], kir.EvalInt(pf.Off, leaf))
								}
							}
							st := p.States[0]
							want := func(ahead int) []int {
								var out []int
								for r := range 8 {
									row := (jb + ahead + r) % st.Rows
									for b := 0; b < headDim(t, model)*st.ElemBytes(); b += 64 {
										out = append(out, row*st.RowSize*st.ElemBytes()+b)
									}
								}
								return out
							}
							slices.Sort(got["k"])
							slices.Sort(got["v"])
							require.Equal(t, want(16), got["k"], "keys prefetched in %s", k.Name)
							require.Equal(t, want(8), got["v"], "values prefetched in %s", k.Name)
						}
					}
				}
				if model == "gemma2-tiny" {
					require.Zero(t, loops)
				} else {
					require.NotZero(t, loops)
				}
			})
		}
	}
}

// blockLoops are the loops of a kernel's phases that step over blocks of
// eight keys and finish their scores with one hsums.
func blockLoops(k *kir.Kernel) []*kir.For {
	var out []*kir.For
	var walk func([]kir.Stmt)
	walk = func(ss []kir.Stmt) {
		for _, s := range ss {
			f, ok := s.(*kir.For)
			if !ok {
				continue
			}
			hsums := false
			kir.Walk(f.Body, func(e kir.Expr) {
				_, ok := e.(*kir.HSums)
				hsums = hsums || ok
			}, nil)
			if f.Step == 8 && hsums {
				out = append(out, f)
				continue
			}
			walk(f.Body)
		}
	}
	for _, ph := range k.Phases {
		walk(ph.Body)
	}
	return out
}

// headDim is a shared model's attention head size.
func headDim(t *testing.T, model string) int {
	switch model {
	case "stories260K":
		return 8
	case "mistral-tiny":
		return 16
	case "gemma2-tiny":
		return 32
	}
	t.Fatalf("no head size for %s", model)
	return 0
}
