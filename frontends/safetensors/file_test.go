package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// encode returns vals in dtype dt as little-endian bytes.
func encode(t testing.TB, dt DType, vals []float32) []byte {
	t.Helper()
	out := make([]byte, 0, len(vals)*dt.Size())
	le := binary.LittleEndian
	for _, v := range vals {
		switch dt {
		case F32:
			out = le.AppendUint32(out, math.Float32bits(v))
		case F16:
			out = le.AppendUint16(out, Float32ToF16(v))
		case BF16:
			out = le.AppendUint16(out, Float32ToBF16(v))
		case F64:
			out = le.AppendUint64(out, math.Float64bits(float64(v)))
		case I32:
			out = le.AppendUint32(out, uint32(int32(v)))
		case I64:
			out = le.AppendUint64(out, uint64(int64(v)))
		case I8:
			out = append(out, byte(int8(v)))
		case U8:
			out = append(out, byte(v))
		default:
			t.Fatalf("encode: unsupported dtype %s", dt)
		}
	}
	return out
}

// rawFile assembles a safetensors file from a header and a data section.
func rawFile(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

// writeTemp writes data to a new file in a temporary directory.
func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

func openBytes(t testing.TB, data []byte) *File {
	t.Helper()
	f, err := Open(writeTemp(t, "x.safetensors", data))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestRoundTrip(t *testing.T) {
	vals := []float32{0, 1, -2, 0.5, 3.25, -0.125, 100, 7}
	truncated := []float32{0, 1, -2, 0, 3, 0, 100, 7} // integer dtypes
	tests := []struct {
		dtype DType
		want  []float32 // what reading back gives, if not vals
	}{
		{dtype: F32},
		{dtype: F16},
		{dtype: BF16},
		{dtype: F64},
		{dtype: I32, want: truncated},
		{dtype: I64, want: truncated},
		{dtype: I8, want: truncated},
	}
	for _, tt := range tests {
		t.Run(tt.dtype.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rt.safetensors")
			in := []WriteTensor{
				{Name: "w", DType: tt.dtype, Shape: []int{2, 4}, Data: encode(t, tt.dtype, vals)},
				{Name: "scalar", DType: tt.dtype, Shape: []int{}, Data: encode(t, tt.dtype, vals[1:2])},
				{Name: "empty", DType: tt.dtype, Shape: []int{0, 3}, Data: nil},
				{Name: "a.b<&>\"é", DType: tt.dtype, Shape: []int{3}, Data: encode(t, tt.dtype, vals[4:7])},
			}
			meta := map[string]string{"format": "pt", "note": "x<y"}
			require.NoError(t, WriteFile(path, in, meta))

			f, err := Open(path)
			require.NoError(t, err)
			defer f.Close()
			assert.Equal(t, meta, f.Metadata())
			assert.Equal(t, path, f.Path())

			got := f.Tensors()
			require.Len(t, got, len(in))
			for i, w := range in {
				g := got[i]
				assert.Equal(t, w.Name, g.Name, "file order is write order")
				assert.Equal(t, w.DType, g.DType)
				assert.Equal(t, w.Shape, g.Shape)
				assert.Equal(t, len(w.Data), len(g.Data))
				if len(w.Data) > 0 {
					assert.Equal(t, w.Data, g.Data)
				}
				byName, ok := f.Tensor(w.Name)
				require.True(t, ok)
				assert.Same(t, g, byName)
			}
			// The data section starts 8-aligned.
			assert.Zero(t, got[0].FileOffset%8)
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, in[0].Data, raw[got[0].FileOffset:got[0].FileOffset+int64(len(in[0].Data))])

			w, _ := f.Tensor("w")
			assert.Equal(t, 8, w.NumElements())
			want := tt.want
			if want == nil {
				want = vals
			}
			fl, err := w.Float32()
			require.NoError(t, err)
			assert.Equal(t, want, fl)

			s, _ := f.Tensor("scalar")
			assert.Equal(t, 1, s.NumElements())
			fl, err = s.Float32()
			require.NoError(t, err)
			assert.Equal(t, []float32{1}, fl)

			e, _ := f.Tensor("empty")
			assert.Equal(t, 0, e.NumElements())
			fl, err = e.Float32()
			require.NoError(t, err)
			assert.Empty(t, fl)
		})
	}
}

// TestWriteExactBytes pins the writer's output to the layout of the
// reference implementation: metadata first, tensors in order, compact JSON,
// space padding to 8 bytes.
func TestWriteExactBytes(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, []WriteTensor{
		{Name: "b", DType: BF16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}},
		{Name: "a", DType: F32, Shape: []int{1}, Data: []byte{0, 0, 0x80, 0x3f}},
	}, map[string]string{"format": "pt"})
	require.NoError(t, err)
	header := `{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`
	header += strings.Repeat(" ", (8-len(header)%8)%8)
	assert.Equal(t, string(rawFile(header, []byte{0x80, 0x3f, 0x00, 0xc0, 0, 0, 0x80, 0x3f})), buf.String())

	buf.Reset()
	require.NoError(t, Write(&buf, nil, nil))
	assert.Equal(t, string(rawFile("{}      ", nil)), buf.String())
}

func TestWriteErrors(t *testing.T) {
	four := make([]byte, 4)
	tests := []struct {
		name    string
		tensors []WriteTensor
		meta    map[string]string
		want    string
	}{
		{"duplicate", []WriteTensor{{Name: "x", DType: F32, Shape: []int{1}, Data: four}, {Name: "x", DType: F32, Shape: []int{1}, Data: four}}, nil, `tensor "x" appears twice`},
		{"reserved", []WriteTensor{{Name: "__metadata__", DType: F32, Shape: []int{1}, Data: four}}, nil, "reserved"},
		{"invalid dtype", []WriteTensor{{Name: "x", Shape: []int{1}, Data: four}}, nil, `tensor "x": invalid dtype DType(0)`},
		{"negative dim", []WriteTensor{{Name: "x", DType: F32, Shape: []int{-1}, Data: four}}, nil, "negative dim"},
		{"short data", []WriteTensor{{Name: "x", DType: F32, Shape: []int{2}, Data: four}}, nil, `tensor "x": shape [2] of F32 needs 8 bytes, found 4`},
		{"overflow", []WriteTensor{{Name: "x", DType: F32, Shape: []int{math.MaxInt, 4}, Data: four}}, nil, "overflows"},
		{"bad utf8 name", []WriteTensor{{Name: "\xff", DType: F32, Shape: []int{1}, Data: four}}, nil, "UTF-8"},
		{"bad utf8 metadata", nil, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.tensors, tt.meta)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Zero(t, buf.Len(), "nothing written on error")

			dir := t.TempDir()
			require.Error(t, WriteFile(filepath.Join(dir, "x.safetensors"), tt.tensors, tt.meta))
			ents, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, ents, "no file or temporary left behind")
		})
	}
}

func TestWriteFileReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	require.NoError(t, WriteFile(path, []WriteTensor{{Name: "x", DType: U8, Shape: []int{1}, Data: []byte{7}}}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	x, ok := f.Tensor("x")
	require.True(t, ok)
	assert.Equal(t, []byte{7}, x.Data)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
}

func TestOpenErrors(t *testing.T) {
	const ok = `"dtype":"F32","shape":[2],"data_offsets":[0,8]`
	eight := make([]byte, 8)
	tests := []struct {
		name   string
		data   []byte
		tensor string // the tensor the error must name, if any
		want   []string
	}{
		{"empty file", nil, "", []string{"file is 0 bytes, shorter than the 8-byte header length prefix"}},
		{"short file", []byte{1, 2, 3}, "", []string{"file is 3 bytes"}},
		{"header beyond file", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "", []string{"header length 100 is larger than the 2 bytes", "truncated"}},
		{"absurd header", binary.LittleEndian.AppendUint64(nil, 1<<40), "", []string{"header length 1099511627776 is absurd"}},
		{"huge header", binary.LittleEndian.AppendUint64(nil, math.MaxUint64), "", []string{"absurd"}},
		{"empty header", rawFile("", nil), "", []string{"header is not valid JSON", "unexpected EOF"}},
		{"not json", rawFile("hello", nil), "", []string{"header is not valid JSON"}},
		{"not an object", rawFile("[1,2]", nil), "", []string{`header is not a JSON object (starts with "[")`}},
		{"string header", rawFile(`"x"`, nil), "", []string{`not a JSON object (starts with string "x")`}},
		{"unterminated", rawFile(`{"a":{`, nil), "", []string{"not valid JSON"}},
		{"trailing comma", rawFile(`{"a":{`+ok+`},}`, eight), "", []string{"not valid JSON"}},
		{"trailing data", rawFile(`{} {}`, nil), "", []string{"data after its JSON object"}},
		{"trailing garbage", rawFile(`{}x`, nil), "", []string{"data after its JSON object"}},
		{"bad utf8", rawFile("{\"\xff\":1}", nil), "", []string{"not valid UTF-8"}},
		{"duplicate key", rawFile(`{"a":{`+ok+`},"a":{`+ok+`}}`, eight), "", []string{`two entries named "a"`}},
		{"entry not object", rawFile(`{"a":5}`, nil), "a", []string{"entry is not a JSON object: 5"}},
		{"entry null", rawFile(`{"a":null}`, nil), "a", []string{"entry is not a JSON object"}},
		{"missing dtype", rawFile(`{"a":{"shape":[],"data_offsets":[0,0]}}`, nil), "a", []string{`no "dtype" field`}},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,0]}}`, nil), "a", []string{`no "shape" field`}},
		{"missing offsets", rawFile(`{"a":{"dtype":"F32","shape":[]}}`, nil), "a", []string{`no "data_offsets" field`}},
		{"unknown dtype", rawFile(`{"w":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}`, eight), "w", []string{`unknown dtype "F12"`}},
		{"lowercase dtype", rawFile(`{"w":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, eight), "w", []string{`unknown dtype "f32"`}},
		{"dtype not string", rawFile(`{"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, eight), "w", []string{"dtype is not a string"}},
		{"negative dim", rawFile(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), "w", []string{"shape[0] must be a non-negative integer, found -2"}},
		{"fractional dim", rawFile(`{"w":{"dtype":"F32","shape":[1,2.5],"data_offsets":[0,8]}}`, eight), "w", []string{"shape[1] must be a non-negative integer, found 2.5"}},
		{"exponent dim", rawFile(`{"w":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}`, eight), "w", []string{"shape[0] must be a non-negative integer, found 2e0"}},
		{"string dim", rawFile(`{"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, eight), "w", []string{`shape[0] must be a non-negative integer, found "2"`}},
		{"huge dim", rawFile(`{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}`, eight), "w", []string{"shape[0] = 99999999999999999999 is too large"}},
		{"shape not array", rawFile(`{"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, eight), "w", []string{"shape must be an array of integers, found 2"}},
		{"shape null", rawFile(`{"w":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, eight), "w", []string{"shape must be an array"}},
		{"one offset", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, eight), "w", []string{"data_offsets must be [begin, end], found 1 values"}},
		{"three offsets", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, eight), "w", []string{"found 3 values"}},
		{"float offset", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}`, eight), "w", []string{"data_offsets[1] must be a non-negative integer, found 8.0"}},
		{"negative offset", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, eight), "w", []string{"data_offsets[0] must be a non-negative integer, found -8"}},
		{"begin after end", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, eight), "w", []string{"data_offsets [8, 0] begin > end"}},
		{"truncated", rawFile(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), "w", []string{"end beyond the data section of 8 bytes", "truncated"}},
		{"size mismatch", rawFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "w", []string{"shape [3] of F32 expects 12 bytes, found 8 in data_offsets [0, 8]"}},
		{"size mismatch bf16", rawFile(`{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}}`, eight), "w", []string{"expects 12 bytes, found 8"}},
		{"overflow", rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, eight), "w", []string{"overflows"}},
		{"overflow by dtype size", rawFile(`{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}`, eight), "w", []string{"overflows"}},
		{"overflow past zero dim", rawFile(`{"w":{"dtype":"F32","shape":[18446744073709551615,2,0],"data_offsets":[0,0]}}`, nil), "w", []string{"overflows"}},
		{"metadata not map", rawFile(`{"__metadata__":[1]}`, nil), "", []string{"__metadata__ must be an object of strings, found [1]"}},
		{"metadata not strings", rawFile(`{"__metadata__":{"a":"x","b":1}}`, nil), "", []string{`__metadata__["b"] must be a string, found 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "bad.safetensors", tt.data)
			f, err := Open(path)
			require.Error(t, err)
			assert.Nil(t, f)
			msg := err.Error()
			t.Log(msg)
			assert.Contains(t, msg, path, "error names the file")
			if tt.tensor != "" {
				assert.Contains(t, msg, `tensor "`+tt.tensor+`"`, "error names the tensor")
			}
			for _, w := range tt.want {
				assert.Contains(t, msg, w)
			}
			var fe *FormatError
			require.True(t, errors.As(err, &fe), "%T is a *FormatError", err)
			assert.Equal(t, path, fe.File)
			assert.Equal(t, tt.tensor, fe.Tensor)
		})
	}
}

func TestOpenOverlap(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		first    string // the earlier tensor, which the error is about
		other    string
		overlaps string
	}{
		{
			name:   "partial",
			header: `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`,
			first:  "a", other: "b", overlaps: "bytes [0, 8) overlap tensor \"b\" at [4, 12)",
		},
		{
			name:   "same range",
			header: `{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`,
			first:  "a", other: "b",
		},
		{
			name:   "contained, after a gap",
			header: `{"big":{"dtype":"U8","shape":[12],"data_offsets":[0,12]},"mid":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"late":{"dtype":"U8","shape":[2],"data_offsets":[8,10]}}`,
			first:  "big", other: "mid",
		},
		{
			name:   "caught by an earlier long tensor",
			header: `{"long":{"dtype":"U8","shape":[10],"data_offsets":[0,10]},"short":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`,
			first:  "long", other: "short",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(writeTemp(t, "o.safetensors", rawFile(tt.header, make([]byte, 12))))
			require.Error(t, err)
			assert.Contains(t, err.Error(), `tensor "`+tt.first+`"`)
			assert.Contains(t, err.Error(), `overlap tensor "`+tt.other+`"`)
			assert.Contains(t, err.Error(), tt.overlaps)
		})
	}
}

func TestOpenLenient(t *testing.T) {
	// Gaps, trailing bytes, empty tensors sharing an offset, unknown entry
	// fields, an empty header and a null metadata are all accepted.
	header := `{"__metadata__":null,"z":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},` +
		`"y":{"dtype":"U8","shape":[0],"data_offsets":[2,2],"extra":true},` +
		`"x":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`
	f := openBytes(t, rawFile(header, []byte{9, 0, 1, 2, 0, 0}))
	var names []string
	for _, t := range f.Tensors() {
		names = append(names, t.Name)
	}
	assert.Equal(t, []string{"w", "y", "z", "x"}, names, "sorted by offset, then end, then name")
	assert.Nil(t, f.Metadata())
	x, _ := f.Tensor("x")
	assert.Equal(t, []byte{1, 2}, x.Data)
	assert.Equal(t, 2, cap(x.Data), "appending to Data cannot reach the next tensor")

	f = openBytes(t, rawFile("  {}  ", nil))
	assert.Empty(t, f.Tensors())
	_, ok := f.Tensor("x")
	assert.False(t, ok)
}

func TestFloat32View(t *testing.T) {
	vals := []float32{1, 2, 3}
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, []WriteTensor{
		{Name: "aligned", DType: F32, Shape: []int{3}, Data: encode(t, F32, vals)},
		{Name: "pad", DType: U8, Shape: []int{2}, Data: []byte{0, 0}},
		{Name: "misaligned", DType: F32, Shape: []int{3}, Data: encode(t, F32, vals)},
		{Name: "half", DType: F16, Shape: []int{3}, Data: encode(t, F16, vals)},
		{Name: "none", DType: F32, Shape: []int{0}},
	}, nil))
	f := openBytes(t, buf.Bytes())

	a, _ := f.Tensor("aligned")
	v, ok := a.Float32View()
	require.True(t, ok)
	assert.Equal(t, vals, v)

	m, _ := f.Tensor("misaligned")
	_, ok = m.Float32View()
	assert.False(t, ok, "offset 14 is not 4-aligned")
	got, err := m.Float32()
	require.NoError(t, err)
	assert.Equal(t, vals, got, "Float32 still works")

	h, _ := f.Tensor("half")
	_, ok = h.Float32View()
	assert.False(t, ok, "not F32")

	n, _ := f.Tensor("none")
	v, ok = n.Float32View()
	assert.True(t, ok)
	assert.Empty(t, v)
}

func TestDecodeFloat32(t *testing.T) {
	f := openBytes(t, rawFile(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"q":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[4,5]},`+
		`"b":{"dtype":"BOOL","shape":[2],"data_offsets":[5,7]},"u":{"dtype":"U16","shape":[1],"data_offsets":[7,9]}}`,
		[]byte{0x80, 0x3f, 0x00, 0xc0, 0x38, 0, 3, 0xff, 0xff}))
	w, _ := f.Tensor("w")
	dst := make([]float32, 2)
	require.NoError(t, w.DecodeFloat32(dst))
	assert.Equal(t, []float32{1, -2}, dst)

	err := w.DecodeFloat32(make([]float32, 3))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tensor w BF16[2]: destination holds 3 values, want 2")

	for name, want := range map[string][]float32{"q": {1}, "b": {0, 1}, "u": {65535}} {
		tn, _ := f.Tensor(name)
		got, err := tn.Float32()
		require.NoError(t, err, name)
		assert.Equal(t, want, got, name)
	}
}

func TestClose(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, []WriteTensor{{Name: "w", DType: F32, Shape: []int{2}, Data: make([]byte, 8)}}, nil))
	f, err := Open(writeTemp(t, "c.safetensors", buf.Bytes()))
	require.NoError(t, err)
	w, _ := f.Tensor("w")
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "second Close is a no-op")

	assert.Nil(t, w.Data)
	_, err = w.Float32()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "file is closed")
	_, ok := w.Float32View()
	assert.False(t, ok)
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope.safetensors"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "nope.safetensors")

	_, err = Open(t.TempDir())
	require.Error(t, err)
}

func TestDType(t *testing.T) {
	tests := []struct {
		d    DType
		name string
		size int
	}{
		{BOOL, "BOOL", 1}, {U8, "U8", 1}, {I8, "I8", 1}, {F8E4M3, "F8_E4M3", 1}, {F8E5M2, "F8_E5M2", 1},
		{I16, "I16", 2}, {U16, "U16", 2}, {F16, "F16", 2}, {BF16, "BF16", 2},
		{I32, "I32", 4}, {U32, "U32", 4}, {F32, "F32", 4},
		{F64, "F64", 8}, {I64, "I64", 8}, {U64, "U64", 8},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.name, tt.d.String())
		assert.Equal(t, tt.size, tt.d.Size(), tt.name)
		d, ok := ParseDType(tt.name)
		assert.True(t, ok, tt.name)
		assert.Equal(t, tt.d, d)
	}
	assert.Len(t, tests, numDTypes-1, "every dtype is tested")
	assert.Equal(t, "DType(0)", DType(0).String())
	assert.Equal(t, 0, DType(200).Size())
	_, ok := ParseDType("F8E4M3")
	assert.False(t, ok)
}
