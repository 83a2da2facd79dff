package cli_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/frontends/safetensors"
)

// The damaged models below are copies of llama-tiny (3 layers, hidden 64,
// vocab 256, untied lm_head, tensors of F32).

// truncateWeights cuts model.safetensors to size bytes, or to the file's
// size plus size when size is negative.
func truncateWeights(size int64) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "model.safetensors")
		if size < 0 {
			st, err := os.Stat(p)
			require.NoError(t, err)
			size += st.Size()
		}
		require.NoError(t, os.Truncate(p, size))
	}
}

// headerEntry is one tensor's entry in a safetensors header.
type headerEntry struct {
	DType       string `json:"dtype"`
	Shape       []int  `json:"shape"`
	DataOffsets []int  `json:"data_offsets"`
}

// editHeader rewrites the JSON header of dir/model.safetensors with edit,
// keeping the data section as it is; sectionSize is the data section's
// length. It reads the 8-byte little-endian header length, decodes the
// header, and writes length, header and data back.
func editHeader(edit func(t *testing.T, h map[string]json.RawMessage, sectionSize int)) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "model.safetensors")
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		n := binary.LittleEndian.Uint64(data)
		header, section := data[8:8+n], data[8+n:]
		var h map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(header, &h))
		edit(t, h, len(section))
		header, err = json.Marshal(h)
		require.NoError(t, err)
		var out bytes.Buffer
		require.NoError(t, binary.Write(&out, binary.LittleEndian, uint64(len(header))))
		out.Write(header)
		out.Write(section)
		require.NoError(t, os.WriteFile(p, out.Bytes(), 0o644))
	}
}

func getEntry(t *testing.T, h map[string]json.RawMessage, name string) headerEntry {
	t.Helper()
	var e headerEntry
	require.NoError(t, json.Unmarshal(h[name], &e), "tensor %s", name)
	return e
}

func setEntry(t *testing.T, h map[string]json.RawMessage, name string, e headerEntry) {
	t.Helper()
	raw, err := json.Marshal(e)
	require.NoError(t, err)
	h[name] = raw
}

// setOffsets points a tensor's data_offsets at [begin, end).
func setOffsets(name string, offsets func(e headerEntry, sectionSize int) (int, int)) func(t *testing.T, dir string) {
	return editHeader(func(t *testing.T, h map[string]json.RawMessage, sectionSize int) {
		e := getEntry(t, h, name)
		b, end := offsets(e, sectionSize)
		e.DataOffsets = []int{b, end}
		setEntry(t, h, name, e)
	})
}

// setHeaderLength overwrites the 8-byte header length.
func setHeaderLength(n uint64) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "model.safetensors")
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		binary.LittleEndian.PutUint64(data, n)
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
}

// rewriteTensors writes dir/model.safetensors afresh, through the
// safetensors writer, from its tensors as edit leaves them.
func rewriteTensors(edit func(ts []safetensors.WriteTensor) []safetensors.WriteTensor) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "model.safetensors")
		require.NoError(t, safetensors.WriteFile(p, edit(readTensors(t, p)), nil))
	}
}

// readTensors reads every tensor of the safetensors file p into memory.
func readTensors(t *testing.T, p string) []safetensors.WriteTensor {
	t.Helper()
	f, err := safetensors.Open(p)
	require.NoError(t, err)
	defer f.Close()
	var ts []safetensors.WriteTensor
	for _, x := range f.Tensors() {
		ts = append(ts, safetensors.WriteTensor{Name: x.Name, DType: x.DType, Shape: slices.Clone(x.Shape), Data: bytes.Clone(x.Data)})
	}
	return ts
}

// shardWeights splits dir/model.safetensors into two shards with a
// model.safetensors.index.json, as transformers writes big models, then
// lets edit damage the index (its JSON object) or the shards.
func shardWeights(edit func(t *testing.T, dir string, index map[string]any)) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "model.safetensors")
		ts := readTensors(t, p)
		require.NoError(t, os.Remove(p))
		names := [2]string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
		half := len(ts) / 2
		weightMap := map[string]any{}
		for i, part := range [][]safetensors.WriteTensor{ts[:half], ts[half:]} {
			require.NoError(t, safetensors.WriteFile(filepath.Join(dir, names[i]), part, nil))
			for _, x := range part {
				weightMap[x.Name] = names[i]
			}
		}
		index := map[string]any{"metadata": map[string]any{}, "weight_map": weightMap}
		edit(t, dir, index)
		data, err := json.Marshal(index)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, safetensors.IndexFileName), data, 0o644))
	}
}

func dropTensor(name string) func(t *testing.T, dir string) {
	return rewriteTensors(func(ts []safetensors.WriteTensor) []safetensors.WriteTensor {
		return slices.DeleteFunc(ts, func(x safetensors.WriteTensor) bool { return x.Name == name })
	})
}

func changeTensor(name string, change func(*safetensors.WriteTensor)) func(t *testing.T, dir string) {
	return rewriteTensors(func(ts []safetensors.WriteTensor) []safetensors.WriteTensor {
		for i := range ts {
			if ts[i].Name == name {
				change(&ts[i])
			}
		}
		return ts
	})
}

// editConfig rewrites config.json with edit.
func editConfig(edit func(cfg map[string]any)) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "config.json")
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		var cfg map[string]any
		require.NoError(t, json.Unmarshal(data, &cfg))
		edit(cfg)
		data, err = json.MarshalIndent(cfg, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
}

func writeFile(name, content string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}

func removeFile(name string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		require.NoError(t, os.Remove(filepath.Join(dir, name)))
	}
}

// TestBadModel runs every command that opens a model on a damaged copy of
// llama-tiny: each must fail with status 1 and a message that names the
// problem, print nothing on stdout, and not panic.
func TestBadModel(t *testing.T) {
	t.Parallel()
	const q1 = "model.layers.1.self_attn.q_proj.weight"
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// configOnly: the damage is in config.json, so llmc kv (which reads
		// only the config) must fail too.
		configOnly bool
		want       []string // in the message
	}{
		// Truncated weights.
		{name: "weights truncated to 0 bytes", damage: truncateWeights(0),
			want: []string{"model.safetensors", "0 bytes, shorter than the 8-byte header length"}},
		{name: "weights truncated inside the length", damage: truncateWeights(5),
			want: []string{"model.safetensors", "5 bytes, shorter than the 8-byte header length"}},
		{name: "weights truncated inside the header", damage: truncateWeights(100),
			want: []string{"model.safetensors", "header length", "truncated"}},
		{name: "weights truncated in the middle", damage: truncateWeights(300_000),
			want: []string{"model.safetensors", "beyond the data section", "truncated"}},
		{name: "weights short by one byte", damage: truncateWeights(-1),
			want: []string{"model.safetensors", `"model.norm.weight"`, "beyond the data section", "truncated"}},

		// A header that lies.
		{name: "offsets beyond the file", damage: setOffsets("model.norm.weight", func(e headerEntry, size int) (int, int) {
			return size, size + 256
		}), want: []string{"model.safetensors", `"model.norm.weight"`, "beyond the data section"}},
		{name: "offsets far beyond the file", damage: setOffsets("model.norm.weight", func(e headerEntry, size int) (int, int) {
			return 1 << 60, 1<<60 + 256
		}), want: []string{`"model.norm.weight"`, "beyond the data section"}},
		{name: "offsets overlap another tensor", damage: editHeader(func(t *testing.T, h map[string]json.RawMessage, _ int) {
			q0 := getEntry(t, h, "model.layers.0.self_attn.q_proj.weight")
			e := getEntry(t, h, q1)
			e.DataOffsets = []int{q0.DataOffsets[0] + 4, q0.DataOffsets[1] + 4}
			setEntry(t, h, q1, e)
		}), want: []string{"model.safetensors", "overlap", "model.layers.0.self_attn.q_proj.weight", q1}},
		{name: "offsets begin after end", damage: setOffsets(q1, func(e headerEntry, _ int) (int, int) {
			return e.DataOffsets[1], e.DataOffsets[0]
		}), want: []string{q1, "begin > end"}},
		{name: "offsets disagree with the shape", damage: setOffsets(q1, func(e headerEntry, _ int) (int, int) {
			return e.DataOffsets[0], e.DataOffsets[0] + 100
		}), want: []string{q1, "shape [64 64] of F32 expects 16384 bytes, found 100"}},
		{name: "negative offsets", damage: setOffsets(q1, func(e headerEntry, _ int) (int, int) {
			return -16384, 0
		}), want: []string{q1, "data_offsets"}},
		{name: "header length beyond the file", damage: setHeaderLength(1 << 20),
			want: []string{"model.safetensors", "header length 1048576", "truncated"}},
		{name: "header length absurd", damage: setHeaderLength(1 << 62),
			want: []string{"model.safetensors", "header length"}},
		{name: "weights not safetensors", damage: writeFile("model.safetensors", "this is not a safetensors file at all"),
			want: []string{"model.safetensors", "header"}},
		{name: "header not JSON", damage: writeFile("model.safetensors", "\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":[}  "),
			want: []string{"model.safetensors", "not valid JSON"}},

		// Weights that do not fit the config.
		{name: "tensor of the wrong shape", damage: changeTensor(q1, func(x *safetensors.WriteTensor) { x.Shape = []int{128, 32} }),
			want: []string{q1, "shape [128 32], expected [64 64]"}},
		{name: "tensor with fewer rows", damage: changeTensor("model.layers.2.self_attn.k_proj.weight", func(x *safetensors.WriteTensor) {
			x.Shape, x.Data = []int{16, 64}, x.Data[:16*64*4]
		}), want: []string{"model.layers.2.self_attn.k_proj.weight", "shape [16 64], expected [32 64]", "num_key_value_heads"}},
		{name: "tensor of an integer dtype", damage: changeTensor("model.norm.weight", func(x *safetensors.WriteTensor) {
			x.DType, _ = safetensors.ParseDType("I32")
		}), want: []string{"model.norm.weight", "I32"}},
		{name: "missing tensor", damage: dropTensor("model.layers.2.mlp.down_proj.weight"),
			want: []string{"model.layers.2.mlp.down_proj.weight", "missing"}},
		{name: "missing lm_head when untied", damage: dropTensor("lm_head.weight"),
			want: []string{"lm_head.weight", "missing"}},
		{name: "index names a shard that is missing", damage: shardWeights(func(t *testing.T, dir string, _ map[string]any) {
			require.NoError(t, os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors")))
		}), want: []string{"model-00002-of-00002.safetensors"}},
		{name: "index maps a tensor to the wrong shard", damage: shardWeights(func(t *testing.T, _ string, index map[string]any) {
			wm := index["weight_map"].(map[string]any)
			require.Equal(t, "model-00002-of-00002.safetensors", wm["model.norm.weight"])
			wm["model.norm.weight"] = "model-00001-of-00002.safetensors"
		}), want: []string{"model.norm.weight", "model-00001-of-00002.safetensors", "has no such tensor"}},
		{name: "index names a shard outside the folder", damage: shardWeights(func(t *testing.T, _ string, index map[string]any) {
			index["weight_map"].(map[string]any)["lm_head.weight"] = "../../etc/passwd"
		}), want: []string{"lm_head.weight", "../../etc/passwd"}},
		{name: "index without weight_map", damage: shardWeights(func(t *testing.T, _ string, index map[string]any) {
			delete(index, "weight_map")
		}), want: []string{safetensors.IndexFileName, "weight_map"}},
		{name: "index not JSON", damage: shardWeights(func(t *testing.T, dir string, index map[string]any) {
			index["weight_map"] = "not a map"
		}), want: []string{safetensors.IndexFileName}},
		{name: "no weights file", damage: removeFile("model.safetensors"),
			want: []string{"model.safetensors", "safetensors file"}},

		// A config.json that is wrong.
		{name: "config missing hidden_size", configOnly: true, damage: editConfig(func(c map[string]any) { delete(c, "hidden_size") }),
			want: []string{"config.json", `"hidden_size" is missing`}},
		{name: "config hidden_size zero", configOnly: true, damage: editConfig(func(c map[string]any) { c["hidden_size"] = 0 }),
			want: []string{"config.json", `"hidden_size" is 0`}},
		{name: "config missing vocab_size", configOnly: true, damage: editConfig(func(c map[string]any) { delete(c, "vocab_size") }),
			want: []string{"config.json", `"vocab_size" is missing`}},
		{name: "unknown architecture", configOnly: true, damage: editConfig(func(c map[string]any) { c["architectures"] = []string{"FalconForCausalLM"} }),
			want: []string{"config.json", "FalconForCausalLM", "not supported",
				"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM"}},
		{name: "config without architectures", configOnly: true, damage: editConfig(func(c map[string]any) { delete(c, "architectures") }),
			want: []string{"config.json", `"architectures" is missing`, "LlamaForCausalLM"}},
		{name: "config not JSON", configOnly: true, damage: writeFile("config.json", `{"architectures": [`),
			want: []string{"config.json", "invalid JSON"}},
		{name: "heads do not divide", configOnly: true, damage: editConfig(func(c map[string]any) { c["num_key_value_heads"] = 3 }),
			want: []string{"config.json", "num_key_value_heads", "3"}},
		{name: "no config.json", configOnly: true, damage: removeFile("config.json"),
			want: []string{"config.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyModel(t, "llama-tiny")
			tt.damage(t, dir)
			cmds := []struct {
				main func(*testing.T, ...string) result
				args []string
			}{
				{llmrun, []string{"generate", dir, "--ids", "1,2", "--max-new-tokens", "2"}},
				{llmrun, []string{"score", dir, "--ids", "1,2,3"}},
				{llmc, []string{"ir", dir}},
			}
			if tt.configOnly {
				cmds = append(cmds, struct {
					main func(*testing.T, ...string) result
					args []string
				}{llmc, []string{"kv", dir, "--max-seq", "16"}})
			}
			for _, c := range cmds {
				r := c.main(t, c.args...)
				what := strings.Join(c.args[:1], " ")
				t.Logf("%s: exit %d: %s", what, r.code, r.stderr)
				assert.Equalf(t, 1, r.code, "%s: exit status; stderr:\n%s", what, r.stderr)
				assert.Emptyf(t, r.stdout, "%s: stdout", what)
				for _, w := range tt.want {
					assert.Containsf(t, r.stderr, w, "%s: the message should say %q", what, w)
				}
			}
		})
	}
}

// TestBadArguments covers mistakes in how a command is called: usage
// errors exit 2, problems with what the arguments point at exit 1.
func TestBadArguments(t *testing.T) {
	t.Parallel()
	stories := model(t, "stories260K")
	tiny := model(t, "llama-tiny") // 256 positions, vocab 256
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "no-such-model")
	notDir := filepath.Join(t.TempDir(), "model.bin")
	require.NoError(t, os.WriteFile(notDir, []byte("weights"), 0o644))
	noLogitsDir := filepath.Join(t.TempDir(), "missing-dir", "logits.jsonl")
	long := idList(slices.Repeat([]int{1}, 257))

	tests := []struct {
		name string
		main func(*testing.T, ...string) result
		args []string
		code int
		want []string
	}{
		// Token ids.
		{"id equal to vocab size", llmrun, []string{"generate", stories, "--ids", "1,512"}, 2, []string{"token id 512", "item 2", "0..511"}},
		{"id beyond vocab size", llmrun, []string{"generate", tiny, "--ids", "1,2,99999"}, 2, []string{"token id 99999", "item 3", "0..255"}},
		{"id beyond vocab size when scoring", llmrun, []string{"score", stories, "--ids", "1,600"}, 2, []string{"token id 600"}},
		{"negative id", llmrun, []string{"generate", stories, "--ids", "1,-3"}, 2, []string{`"-3"`, "item 2", "non-negative integer"}},
		{"garbage id", llmrun, []string{"generate", stories, "--ids", "1,abc"}, 2, []string{`"abc"`, "item 2"}},
		{"float id", llmrun, []string{"generate", stories, "--ids", "1.5"}, 2, []string{`"1.5"`, "item 1"}},
		{"empty item", llmrun, []string{"generate", stories, "--ids", "1,,2"}, 2, []string{`""`, "item 2"}},
		{"huge id", llmrun, []string{"generate", stories, "--ids", "99999999999999999999999"}, 2, []string{"99999999999999999999999"}},
		{"garbage id when scoring", llmrun, []string{"score", stories, "--ids", "1;2"}, 2, []string{`"1;2"`}},
		{"empty ids", llmrun, []string{"generate", stories, "--ids", " "}, 2, []string{"--ids is empty"}},
		{"no ids", llmrun, []string{"generate", stories}, 2, []string{"--ids is required"}},
		{"one id to score", llmrun, []string{"score", stories, "--ids", "1"}, 2, []string{"at least 2"}},

		// Positions.
		{"prompt plus new tokens beyond max positions", llmrun, []string{"generate", stories, "--ids", "1,2", "--max-new-tokens", "512"}, 2,
			[]string{"--max-new-tokens 512", "513 positions", "512"}},
		{"new tokens far beyond max positions", llmrun, []string{"generate", tiny, "--ids", "1", "--max-new-tokens", "1000000"}, 2,
			[]string{"--max-new-tokens 1000000", "256"}},
		{"prompt beyond max positions when scoring", llmrun, []string{"score", tiny, "--ids", long}, 2, []string{"257 tokens", "256 positions"}},
		{"negative new tokens", llmrun, []string{"generate", stories, "--ids", "1", "--max-new-tokens", "-1"}, 2, []string{"--max-new-tokens is -1"}},

		// Other flag values.
		{"unknown format", llmrun, []string{"generate", stories, "--ids", "1", "--format", "xml"}, 2, []string{`--format is "xml"`}},
		{"unknown score format", llmrun, []string{"score", stories, "--ids", "1,2", "--format", "csv"}, 2, []string{`--format is "csv"`}},
		{"top-p out of range", llmrun, []string{"generate", stories, "--ids", "1", "--temperature", "0.8", "--top-p", "2"}, 2, []string{"--top-p is 2"}},
		{"top-p out of range when greedy", llmrun, []string{"generate", stories, "--ids", "1", "--top-p", "1.5"}, 2, []string{"--top-p is 1.5"}},
		{"negative temperature", llmrun, []string{"generate", stories, "--ids", "1", "--temperature", "-1"}, 2, []string{"--temperature is -1"}},
		{"NaN temperature", llmrun, []string{"generate", stories, "--ids", "1", "--temperature", "NaN"}, 2, []string{"--temperature is NaN"}},
		{"negative top-k", llmrun, []string{"generate", stories, "--ids", "1", "--top-k", "-2"}, 2, []string{"--top-k is -2"}},
		{"min-p out of range", llmrun, []string{"generate", stories, "--ids", "1", "--temperature", "1", "--min-p", "3"}, 2, []string{"--min-p is 3"}},
		{"negative repetition penalty", llmrun, []string{"generate", stories, "--ids", "1", "--repetition-penalty", "-1"}, 2, []string{"--repetition-penalty is -1"}},
		{"negative threads", llmrun, []string{"generate", stories, "--ids", "1", "--threads", "-1"}, 2, []string{"--threads is -1"}},
		{"garbage flag value", llmrun, []string{"generate", stories, "--ids", "1", "--max-new-tokens", "many"}, 2, []string{"max-new-tokens", "many"}},
		{"logits into a missing folder", llmrun, []string{"score", stories, "--ids", "1,2", "--logits", noLogitsDir}, 1, []string{"writing " + noLogitsDir}},
		{"compile into an unwritable place", llmc, []string{"compile", tiny, "--backend", "interp", "-o", "/proc/llmc-test.llmc", "--quiet"}, 1, []string{"writing /proc/llmc-test.llmc"}},
		{"compile over a file", llmc, []string{"compile", tiny, "--backend", "interp", "-o", notDir, "--quiet"}, 1, []string{notDir + " exists and is not an llmc artifact"}},
		{"compile under a file", llmc, []string{"compile", tiny, "--backend", "interp", "-o", filepath.Join(notDir, "x.llmc"), "--quiet"}, 1, []string{"writing " + filepath.Join(notDir, "x.llmc"), "not a directory"}},
		{"kv negative max-seq", llmc, []string{"kv", stories, "--max-seq", "-1"}, 2, []string{"--max-seq is -1"}},
		{"kv integer dtype", llmc, []string{"kv", stories, "--dtype", "i32"}, 2, []string{`--dtype is "i32"`}},

		// MODEL.
		{"model does not exist", llmrun, []string{"generate", missing, "--ids", "1"}, 1, []string{missing}},
		{"model does not exist when scoring", llmrun, []string{"score", missing, "--ids", "1,2"}, 1, []string{missing}},
		{"ir of a model that does not exist", llmc, []string{"ir", missing}, 1, []string{missing}},
		{"kv of a model that does not exist", llmc, []string{"kv", missing}, 1, []string{missing}},
		{"empty folder", llmrun, []string{"generate", empty, "--ids", "1"}, 1, []string{empty, "config.json"}},
		{"empty folder when scoring", llmrun, []string{"score", empty, "--ids", "1,2"}, 1, []string{empty, "config.json"}},
		{"ir of an empty folder", llmc, []string{"ir", empty}, 1, []string{empty, "config.json"}},
		{"kv of an empty folder", llmc, []string{"kv", empty}, 1, []string{empty, "config.json"}},
		{"model is a file", llmrun, []string{"generate", notDir, "--ids", "1"}, 1, []string{notDir}},
		{"no model", llmrun, []string{"generate", "--ids", "1"}, 2, []string{"missing MODEL"}},
		{"two models", llmrun, []string{"generate", stories, tiny, "--ids", "1"}, 2, []string{"want one MODEL", "2 arguments"}},
		{"ir without a model", llmc, []string{"ir"}, 2, []string{"missing MODEL"}},

		// Commands and flags.
		{"unknown llmrun command", llmrun, []string{"frobnicate", stories}, 2, []string{`unknown command "frobnicate"`, "generate", "score"}},
		{"unknown llmc command", llmc, []string{"compile-all", stories}, 2, []string{`unknown command "compile-all"`, "ir", "kv"}},
		{"no llmrun command", llmrun, nil, 2, []string{"usage: llmrun"}},
		{"no llmc command", llmc, nil, 2, []string{"usage: llmc"}},
		{"unknown generate flag", llmrun, []string{"generate", stories, "--ids", "1", "--bogus"}, 2, []string{"unknown flag --bogus", "run 'llmrun generate --help' for usage"}},
		{"unknown score flag", llmrun, []string{"score", stories, "--ids", "1,2", "--temperature", "1"}, 2, []string{"-temperature"}},
		{"unknown ir flag", llmc, []string{"ir", stories, "--max-seq", "3"}, 2, []string{"-max-seq"}},
		{"unknown kv flag", llmc, []string{"kv", stories, "--all-logits"}, 2, []string{"-all-logits"}},
		{"flag missing its value", llmrun, []string{"generate", stories, "--ids"}, 2, []string{"--ids needs a value"}},
		{"serve port out of range", llmrun, []string{"serve", stories, "--addr", "127.0.0.1:99999"}, 2, []string{`--addr is "127.0.0.1:99999"`, "0..65535"}},
		{"help of an unknown command", llmrun, []string{"help", "frobnicate"}, 2, []string{`unknown command "frobnicate"`, "generate", "score"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.main(t, tt.args...)
			t.Logf("exit %d: %s", r.code, firstLine(r.stderr))
			assert.Equalf(t, tt.code, r.code, "exit status; stderr:\n%s", r.stderr)
			assert.Empty(t, r.stdout)
			for _, w := range tt.want {
				assert.Contains(t, r.stderr, w)
			}
			if tt.code == 2 && !strings.Contains(r.stderr, "usage:") {
				assert.Contains(t, r.stderr, "--help", "a usage error shows the usage or points at it")
			}
		})
	}

	t.Run("generation at exactly max positions is allowed", func(t *testing.T) {
		t.Parallel()
		// Without an EOS token generation runs to the limit: 1 prompt token
		// and 256 new tokens feed 256 positions, since the last token is
		// never fed back.
		noEOS := copyModel(t, "llama-tiny")
		editConfig(func(c map[string]any) { c["eos_token_id"] = nil })(t, noEOS)
		g := parseGeneration(t, llmrun(t, "generate", noEOS, "--ids", "1", "--max-new-tokens", "256", "--format", "json"))
		assert.Len(t, g.IDs, 256)
		assert.Equal(t, "length", g.StopReason)
		r := llmrun(t, "generate", noEOS, "--ids", "1", "--max-new-tokens", "257")
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, "--max-new-tokens 257")
	})
	t.Run("scoring exactly max positions is allowed", func(t *testing.T) {
		t.Parallel()
		r := llmrun(t, "score", tiny, "--ids", idList(slices.Repeat([]int{1}, 256)))
		requireOK(t, r)
		assert.Contains(t, r.stdout, "tokens: 256")
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
