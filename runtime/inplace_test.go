package runtime

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/frontends/safetensors"
)

// mappedModel writes tensors to a safetensors file and opens it as the
// runtime does (hf.Model, a memory-mapped file): F32 "a" [4, 8], BF16 "b"
// [4, 8], F32 "q" and "k" [2, 8], and F16 "h" [2, 8], which must be
// converted. Elements are 1, 2, 3, ... per tensor.
func mappedModel(t *testing.T) *hf.Model {
	t.Helper()
	f32 := func(n int) []byte {
		b := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(i+1)))
		}
		return b
	}
	half := func(n int, conv func(float32) uint16) []byte {
		b := make([]byte, 2*n)
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], conv(float32(i+1)))
		}
		return b
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	require.NoError(t, safetensors.WriteFile(path, []safetensors.WriteTensor{
		{Name: "a", DType: safetensors.F32, Shape: []int{4, 8}, Data: f32(32)},
		{Name: "b", DType: safetensors.BF16, Shape: []int{4, 8}, Data: half(32, safetensors.Float32ToBF16)},
		{Name: "q", DType: safetensors.F32, Shape: []int{2, 8}, Data: f32(16)},
		{Name: "k", DType: safetensors.F32, Shape: []int{2, 8}, Data: f32(16)},
		{Name: "h", DType: safetensors.F16, Shape: []int{2, 8}, Data: half(16, safetensors.Float32ToF16)},
	}, nil))
	set, err := safetensors.OpenFiles(path)
	require.NoError(t, err)
	t.Cleanup(func() { set.Close() })
	return &hf.Model{Dir: filepath.Dir(path), Tensors: set}
}

// fileBytes is tensor name's data in the mapped file.
func fileBytes(t *testing.T, m *hf.Model, name string) []byte {
	t.Helper()
	ten, ok := m.Tensors.Tensor(name)
	require.True(t, ok, name)
	return ten.Data
}

// aliases reports whether p is the first byte of b.
func aliases(p unsafe.Pointer, b []byte) bool { return p == unsafe.Pointer(unsafe.SliceData(b)) }

// TestWeightsInPlace checks that weight gathering copies only what it
// must: a weight that is one checkpoint tensor stored as the program keeps
// it (F32, or BF16 kept in bfloat16) is the mapped file's memory itself,
// not a copy; stacked and converted weights are copied, with the right
// elements.
func TestWeightsInPlace(t *testing.T) {
	m := mappedModel(t)
	lp := &LinkedProgram{Weights: []artifact.Weight{
		{Name: "a", Rows: 4, Cols: 8},
		{Name: "b", Rows: 4, Cols: 8, BF16: true},
		{Name: "q", Rows: 2, Cols: 8}, // a part, listed as programs list them
		{Name: "qk", Rows: 4, Cols: 8, Concat: []string{"q", "k"}},
		{Name: "h", Rows: 2, Cols: 8},              // F16: widened
		{Name: "b", Rows: 4, Cols: 8, BF16: false}, // BF16 read as float32: widened
	}}
	w, free, err := LinkedWeights(lp, m)
	require.NoError(t, err)
	defer free()

	require.True(t, aliases(unsafe.Pointer(unsafe.SliceData(w.F32[0])), fileBytes(t, m, "a")), "F32 weight a was copied, not used in place")
	require.True(t, aliases(unsafe.Pointer(unsafe.SliceData(w.BF16[1])), fileBytes(t, m, "b")), "BF16 weight b was copied, not used in place")
	require.True(t, aliases(unsafe.Pointer(unsafe.SliceData(w.F32[2])), fileBytes(t, m, "q")), "F32 weight q was copied, not used in place")
	require.False(t, aliases(unsafe.Pointer(unsafe.SliceData(w.F32[3])), fileBytes(t, m, "q")), "a stacked weight must be a copy")

	seq := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(i + 1)
		}
		return s
	}
	require.Equal(t, seq(32), w.F32[0])
	require.Equal(t, append(seq(16), seq(16)...), w.F32[3])
	require.Equal(t, seq(16), w.F32[4])
	require.Equal(t, seq(32), w.F32[5])
	require.Len(t, w.BF16[1], 32)
	for i, h := range w.BF16[1] {
		require.Equal(t, float32(i+1), safetensors.BF16ToFloat32(h))
	}
	// Released parts are still readable: release is only advice.
	require.Equal(t, seq(16), w.F32[2])
}

// TestViewWeight checks when a weight can be used in place: not stacked,
// stored as kept, with the slack the caller reads past its end inside the
// file; the native loader asks for that slack (its vector loads may run
// past a weight's last element).
func TestViewWeight(t *testing.T) {
	m := mappedModel(t)
	for _, c := range []struct {
		w     artifact.Weight
		slack int
		ok    bool
	}{
		{artifact.Weight{Name: "a", Rows: 4, Cols: 8}, 64, true},
		{artifact.Weight{Name: "b", Rows: 4, Cols: 8, BF16: true}, 64, true},
		{artifact.Weight{Name: "b", Rows: 4, Cols: 8}, 0, false},             // BF16 widened to float32
		{artifact.Weight{Name: "a", Rows: 4, Cols: 8, BF16: true}, 0, false}, // F32 is not bfloat16
		{artifact.Weight{Name: "h", Rows: 2, Cols: 8}, 0, false},             // F16: converted
		{artifact.Weight{Name: "qk", Rows: 4, Cols: 8, Concat: []string{"q", "k"}}, 0, false},
		{artifact.Weight{Name: "a", Rows: 2, Cols: 8}, 0, false},  // not the artifact's shape
		{artifact.Weight{Name: "k", Rows: 2, Cols: 8}, 32, true},  // h follows: 32 bytes
		{artifact.Weight{Name: "k", Rows: 2, Cols: 8}, 33, false}, // past the end of the file
		{artifact.Weight{Name: "x", Rows: 1, Cols: 1}, 0, false},  // missing: FillWeight reports it
	} {
		f32, bf16, ok := ViewWeight(&c.w, m, c.slack)
		require.Equal(t, c.ok, ok, "%+v slack %d", c.w, c.slack)
		if !ok {
			require.Nil(t, f32)
			require.Nil(t, bf16)
			continue
		}
		p := unsafe.Pointer(unsafe.SliceData(f32))
		if c.w.BF16 {
			p = unsafe.Pointer(unsafe.SliceData(bf16))
		}
		require.True(t, aliases(p, fileBytes(t, m, c.w.Name)), "%s", c.w.Name)
	}
	// Without a ViewSource nothing is in place.
	_, _, ok := ViewWeight(&artifact.Weight{Name: "a", Rows: 4, Cols: 8}, f32Only{m}, 0)
	require.False(t, ok)
}

// TestCopyWeights checks the default gathering of a compiled program's
// weights (CopyWeights): copied into huge-page memory, except the parts of
// stacked weights, which stay in place (the kernels read the stacked copy;
// copying them too would hold them twice), with the same elements.
func TestCopyWeights(t *testing.T) {
	m := mappedModel(t)
	lp := &LinkedProgram{Weights: []artifact.Weight{
		{Name: "a", Rows: 4, Cols: 8},
		{Name: "b", Rows: 4, Cols: 8, BF16: true},
		{Name: "q", Rows: 2, Cols: 8},
		{Name: "qk", Rows: 4, Cols: 8, Concat: []string{"q", "k"}},
	}}
	w, free, err := LinkedWeights(lp, CopyWeights(m))
	require.NoError(t, err)
	defer free()
	require.False(t, aliases(unsafe.Pointer(unsafe.SliceData(w.F32[0])), fileBytes(t, m, "a")), "a should be copied")
	require.False(t, aliases(unsafe.Pointer(unsafe.SliceData(w.BF16[1])), fileBytes(t, m, "b")), "b should be copied")
	require.True(t, aliases(unsafe.Pointer(unsafe.SliceData(w.F32[2])), fileBytes(t, m, "q")), "the part q was copied, not left in place")
	in, freeIn, err := LinkedWeights(lp, m)
	require.NoError(t, err)
	defer freeIn()
	require.Equal(t, in.F32, w.F32)
	require.Equal(t, in.BF16, w.BF16)
}
