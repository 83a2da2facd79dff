package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The models in the shared folder were written by the Python reference
// implementation (see shared/models/README.md).

func TestSharedModels(t *testing.T) {
	tests := []struct {
		model   string
		dtype   DType
		tensors int
		check   string // a tensor to look at
		shape   []int
	}{
		{"stories260K", F32, 47, "model.embed_tokens.weight", []int{512, 64}},
		{"llama-tiny", F32, 30, "lm_head.weight", []int{256, 64}},
		{"llama-tiny-bf16", BF16, 30, "lm_head.weight", []int{256, 64}},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			path := testshared.Path(t, "models", tt.model, "model.safetensors")
			f, err := Open(path)
			require.NoError(t, err)
			defer f.Close()

			assert.Equal(t, map[string]string{"format": "pt"}, f.Metadata())
			ts := f.Tensors()
			assert.Len(t, ts, tt.tensors)
			for _, tn := range ts {
				assert.Equal(t, tt.dtype, tn.DType, tn.Name)
				vals, err := tn.Float32()
				require.NoError(t, err, tn.Name)
				for i, v := range vals {
					require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), "%s[%d] = %v", tn.Name, i, v)
				}
				if tn.DType == F32 {
					view, ok := tn.Float32View()
					require.True(t, ok, "%s: the reference writer aligns F32 data", tn.Name)
					assert.Equal(t, vals, view, tn.Name)
				}
			}
			c, ok := f.Tensor(tt.check)
			require.True(t, ok)
			assert.Equal(t, tt.shape, c.Shape)

			// Writing the tensors back in file order reproduces the file
			// byte for byte: our writer lays files out as the reference does.
			var ws []WriteTensor
			for _, tn := range ts {
				ws = append(ws, WriteTensor{Name: tn.Name, DType: tn.DType, Shape: tn.Shape, Data: tn.Data})
			}
			var buf bytes.Buffer
			require.NoError(t, Write(&buf, ws, f.Metadata()))
			orig, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(orig, buf.Bytes()), "rewritten %s differs from the original", tt.model)

			s, err := OpenDir(testshared.Path(t, "models", tt.model))
			require.NoError(t, err)
			defer s.Close()
			assert.Len(t, s.Names(), tt.tensors)
			assert.Equal(t, []string{path}, s.Files())
		})
	}
}

// TestSharedBF16MatchesF32 checks Float32ToBF16 against PyTorch's rounding:
// llama-tiny-bf16 holds llama-tiny's weights converted to bfloat16.
func TestSharedBF16MatchesF32(t *testing.T) {
	f32, err := Open(testshared.Path(t, "models", "llama-tiny", "model.safetensors"))
	require.NoError(t, err)
	defer f32.Close()
	bf16, err := Open(testshared.Path(t, "models", "llama-tiny-bf16", "model.safetensors"))
	require.NoError(t, err)
	defer bf16.Close()

	for _, want := range bf16.Tensors() {
		src, ok := f32.Tensor(want.Name)
		require.True(t, ok, want.Name)
		require.Equal(t, want.Shape, src.Shape, want.Name)
		vals, err := src.Float32()
		require.NoError(t, err)
		for i, v := range vals {
			got := Float32ToBF16(v)
			require.Equal(t, binary.LittleEndian.Uint16(want.Data[2*i:]), got, "%s[%d] = %v", want.Name, i, v)
		}
	}
}
