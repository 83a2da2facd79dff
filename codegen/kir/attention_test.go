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
	case "gemma2-tiny", "gemma-tiny":
		return 32
	case "llama-tied-bias-free-gqa1":
		return 8
	}
	t.Fatalf("no head size for %s", model)
	return 0
}

// TestAttentionHeadTiles checks that attention's whole-block loop runs the
// heads of a KV group together: per block it loads each of the eight key
// rows once, in head-dim/8 vectors, however many heads the tile has, and
// finishes one hsums per head. A chunk of eight queries has items enough
// for tiles of up to four heads; a decode step of these models (eight
// heads at most) keeps one head an item so that its threads share it.
func TestAttentionHeadTiles(t *testing.T) {
	for _, tc := range []struct {
		model           string
		prefill, decode int // heads a tile
	}{
		{"stories260K", 2, 1},               // 8 heads, groups of 2
		{"mistral-tiny", 2, 1},              // 4 heads, groups of 2
		{"gemma-tiny", 4, 1},                // 4 heads, one group
		{"llama-tied-bias-free-gqa1", 4, 1}, // 8 heads, one group
	} {
		t.Run(tc.model, func(t *testing.T) {
			p := lowerSharedKV(t, tc.model, 64, wformat.F16)
			dim := headDim(t, tc.model)
			seen := map[string]bool{}
			for _, e := range p.Entries {
				want := map[string]int{"decode": tc.decode, "prefill": tc.prefill}[e.Name]
				for _, k := range e.Kernels {
					if k.Kind != "attention" {
						continue
					}
					for _, f := range blockLoops(k) {
						seen[e.Name] = true
						hsums, keyLoads := 0, 0
						kir.Walk(f.Body, func(x kir.Expr) {
							switch x := x.(type) {
							case *kir.HSums:
								hsums++
							case *kir.Load:
								if x.Buf.Kind == kir.State && p.States[x.Buf.Index].Name[:1] == "k" {
									keyLoads++
								}
							}
						}, nil)
						require.Equal(t, want, hsums, "heads a tile in %s of %s", k.Name, e.Name)
						require.Equal(t, dim, keyLoads, "vector loads of key rows a block in %s of %s", k.Name, e.Name)
					}
				}
			}
			require.True(t, seen["decode"] && seen["prefill"], "block loops in %v", seen)
		})
	}
}
