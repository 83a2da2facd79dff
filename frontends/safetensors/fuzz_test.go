package safetensors

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzOpen feeds arbitrary bytes to parse, the validator behind Open. It must
// never panic, and whatever it accepts must hold together: every tensor's
// bytes lie in the file, match its shape, overlap no other tensor's and
// decode; and writing the tensors back gives a file that parses to the same
// tensors. The checked-in corpus is in testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add(rawFile("{}", nil))
	f.Add(rawFile(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(rawFile(`{"a":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[],"data_offsets":[4,6]}}`, []byte{0x80, 0x3f, 0, 0xc0, 0, 0x3c}))
	f.Add(rawFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, make([]byte, 3)))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil))
	f.Add(rawFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 4)))

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parse("fuzz", data)
		if err != nil {
			if file != nil {
				t.Fatalf("parse returned a File and an error: %v", err)
			}
			return
		}
		var ws []WriteTensor
		prevEnd := int64(-1)
		var prev *Tensor
		for _, tn := range file.Tensors() {
			size := int64(len(tn.Data))
			if tn.FileOffset < 0 || tn.FileOffset+size > int64(len(data)) {
				t.Fatalf("%s: bytes [%d, +%d) outside the %d-byte file", tn, tn.FileOffset, size, len(data))
			}
			if !bytes.Equal(tn.Data, data[tn.FileOffset:tn.FileOffset+size]) {
				t.Fatalf("%s: Data does not match FileOffset", tn)
			}
			if want := int64(tn.NumElements()) * int64(tn.DType.Size()); size != want {
				t.Fatalf("%s: %d bytes, want %d", tn, size, want)
			}
			if size > 0 {
				if tn.FileOffset < prevEnd {
					t.Fatalf("%s overlaps %s", tn, prev)
				}
				prevEnd, prev = tn.FileOffset+size, tn
			}
			if got, ok := file.Tensor(tn.Name); !ok || got != tn {
				t.Fatalf("%s: lookup by name fails", tn)
			}
			if _, err := tn.Float32(); err != nil {
				t.Fatalf("%s: %v", tn, err)
			}
			tn.Float32View()
			ws = append(ws, WriteTensor{Name: tn.Name, DType: tn.DType, Shape: tn.Shape, Data: tn.Data})
		}

		var buf bytes.Buffer
		if err := Write(&buf, ws, file.Metadata()); err != nil {
			t.Fatalf("cannot write back what was read: %v", err)
		}
		again, err := parse("rewritten", buf.Bytes())
		if err != nil {
			t.Fatalf("cannot read back what was written: %v", err)
		}
		got := again.Tensors()
		if len(got) != len(ws) {
			t.Fatalf("rewritten file has %d tensors, want %d", len(got), len(ws))
		}
		for _, w := range ws {
			g, ok := again.Tensor(w.Name)
			if !ok || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
				t.Fatalf("tensor %q changed in the round trip", w.Name)
			}
		}
		if m1, m2 := file.Metadata(), again.Metadata(); !maps.Equal(m1, m2) {
			t.Fatalf("metadata changed in the round trip: %v vs %v", m1, m2)
		}
	})
}

// TestFuzzCorpus keeps the checked-in corpus honest: files named valid_*
// must parse and files named invalid_* must not.
func TestFuzzCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzOpen", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, p := range paths {
		name := filepath.Base(p)
		if !strings.HasPrefix(name, "valid_") && !strings.HasPrefix(name, "invalid_") {
			continue // found by the fuzzer; FuzzOpen runs it
		}
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(p)
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(string(text)), "\n")
			require.Len(t, lines, 2)
			require.Equal(t, "go test fuzz v1", lines[0])
			lit, ok := strings.CutPrefix(lines[1], "[]byte(")
			require.True(t, ok)
			lit, ok = strings.CutSuffix(lit, ")")
			require.True(t, ok)
			data, err := strconv.Unquote(lit)
			require.NoError(t, err)

			_, err = parse(name, []byte(data))
			if strings.HasPrefix(name, "valid_") {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}
