package kir_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

// textModels are the shared models whose lowered programs the text form
// is tested on.
var textModels = []string{"stories260K", "llama-tiny", "gemma-tiny", "gemma2-tiny", "qwen2-tiny", "mistral-tiny"}

// lowerShared lowers a shared model's decode and prefill entry points
// (static cache of maxSeq positions, chunks of 8), with RoPE tables baked
// in when tables is set.
func lowerShared(t testing.TB, model string, maxSeq int, tables bool) *kir.Program {
	t.Helper()
	return lower(t, model, maxSeq, tables, wformat.F32)
}

// lowerSharedKV is lowerShared without tables, its KV cache stored in kv.
func lowerSharedKV(t testing.TB, model string, maxSeq int, kv wformat.Format) *kir.Program {
	t.Helper()
	return lower(t, model, maxSeq, false, kv)
}

func lower(t testing.TB, model string, maxSeq int, tables bool, kv wformat.Format) *kir.Program {
	t.Helper()
	m, err := hf.Open(testshared.Path(t, "models", model))
	require.NoError(t, err)
	defer m.Close()
	const chunk = 8
	var graphs []*ir.Graph
	for _, e := range []struct {
		name string
		seq  int
		all  bool
	}{{"decode", 1, false}, {"prefill", chunk, true}} {
		g, err := m.Build(hf.BuildOptions{Name: e.name, AllLogits: e.all})
		require.NoError(t, err)
		_, err = passes.Run(&passes.Entry{Name: e.name, Graph: g, Seq: e.seq},
			&passes.Options{KV: passes.Static, MaxSeq: maxSeq, MaxTokens: chunk})
		require.NoError(t, err)
		graphs = append(graphs, g)
	}
	o := kir.Options{KeepBF16: true, KVFormat: kv}
	if tables {
		o.MaxSeq = maxSeq
	}
	p, err := kir.LowerWith(graphs, o)
	require.NoError(t, err)
	return p
}

// TestRoundTripKV16 checks that the text keeps a 16-bit KV cache's format,
// on the states and on their buffers, through Print and Parse.
func TestRoundTripKV16(t *testing.T) {
	for _, f := range []wformat.Format{wformat.F16, wformat.BF16} {
		for _, model := range []string{"stories260K", "gemma2-tiny"} {
			t.Run(model+"/"+f.String(), func(t *testing.T) {
				p := lowerSharedKV(t, model, 16, f)
				text := kir.Print(p)
				require.Contains(t, text, "state #0 k.0 "+f.String()+"[")
				require.Regexp(t, `buffer st_0 state #0 `+f.String()+` \[`, text)
				q, err := kir.Parse(text)
				require.NoError(t, err)
				require.NoError(t, kir.Verify(q))
				require.Equal(t, text, kir.Print(q))
				for _, s := range q.States {
					require.Equal(t, f, s.Dtype, s.Name)
				}
			})
		}
	}
}

// TestRoundTrip prints the programs of real models, parses them back and
// prints again: the text must not change, and the parsed program must
// verify.
func TestRoundTrip(t *testing.T) {
	for _, model := range textModels {
		for _, tables := range []bool{false, true} {
			name := model
			if tables {
				name += "/tables"
			}
			t.Run(name, func(t *testing.T) {
				p := lowerShared(t, model, 16, tables)
				text := kir.Print(p)
				q, err := kir.Parse(text)
				require.NoError(t, err)
				require.NoError(t, kir.Verify(q))
				require.Equal(t, text, kir.Print(q))
			})
		}
	}
}
