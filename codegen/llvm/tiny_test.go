package llvm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

// Tiny synthetic models: one or two layers of hidden size 16 cover every
// kernel the lowering makes (GQA, biases, softcaps, sliding-window rings,
// unit-offset norms, GELU) and compile in a moment.
var tinyConfigs = map[string]string{
	"llama": `{"architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
		"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
		"max_position_embeddings": 64}`,
	"gemma2": `{"architectures": ["Gemma2ForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
		"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
		"vocab_size": 32, "max_position_embeddings": 64, "sliding_window": 8, "query_pre_attn_scalar": 4,
		"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}`,
	// Wide enough that the matmuls reach kir.ParallelMinWork and run on
	// the worker pool.
	"llama-wide": `{"architectures": ["LlamaForCausalLM"], "hidden_size": 128, "intermediate_size": 256,
		"num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
		"max_position_embeddings": 64}`,
	"qwen2": `{"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16, "intermediate_size": 40,
		"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 32,
		"max_position_embeddings": 64}`,
}

// tinyProgram lowers a tiny model's decode entry point and a prefill entry
// point of chunk tokens (static KV cache of maxSeq positions).
func tinyProgram(t testing.TB, model string, maxSeq, chunk int) (*kir.Program, *hf.Config) {
	t.Helper()
	return tinyProgramKV(t, model, maxSeq, chunk, wformat.F32)
}

// tinyProgramKV is tinyProgram with its KV cache stored in kv.
func tinyProgramKV(t testing.TB, model string, maxSeq, chunk int, kv wformat.Format) (*kir.Program, *hf.Config) {
	t.Helper()
	cfg, err := hf.ParseConfig([]byte(tinyConfigs[model]))
	require.NoError(t, err)
	var graphs []*ir.Graph
	for _, e := range []struct {
		name string
		seq  int
		all  bool
	}{{"decode", 1, false}, {"prefill", chunk, true}} {
		g, err := hf.Build(cfg, hf.BuildOptions{Name: e.name, AllLogits: e.all})
		require.NoError(t, err)
		_, err = passes.Run(&passes.Entry{Name: e.name, Graph: g, Seq: e.seq},
			&passes.Options{KV: passes.Static, MaxSeq: maxSeq, MaxTokens: chunk})
		require.NoError(t, err)
		graphs = append(graphs, g)
	}
	p, err := kir.LowerWith(graphs, kir.Options{KVFormat: kv})
	require.NoError(t, err)
	return p, cfg
}
