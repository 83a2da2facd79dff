package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unicode/utf8"
)

// A WriteTensor is one tensor for Write: its name, dtype, shape and its
// elements as little-endian bytes, row-major.
type WriteTensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// dataAlign is the alignment of the data section start, as written by the
// reference implementation.
const dataAlign = 8

// Write writes tensors in safetensors format to w, laying out their data in
// the given order, with metadata (if non-empty) as the header's
// "__metadata__". The header is padded with spaces so that the data section
// starts at a multiple of 8 bytes. Write checks each tensor before writing
// anything: names must be unique and not "__metadata__", dtypes valid, and
// len(Data) must equal the element count times the dtype size.
func Write(w io.Writer, tensors []WriteTensor, metadata map[string]string) error {
	header, err := buildHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var prefix [prefixSize]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: writing tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes a safetensors file at path as Write does. It writes to a
// temporary file in the same directory and renames it into place, so readers
// never see a partial file. The file gets mode 0644.
func WriteFile(path string, tensors []WriteTensor, metadata map[string]string) (err error) {
	// Check first, so that bad input leaves no temporary file behind.
	if _, err := buildHeader(tensors, metadata); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Write(bw, tensors, metadata); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// buildHeader checks tensors and returns the padded JSON header. Keys appear
// in the given order, after "__metadata__", so that the file reads naturally.
func buildHeader(tensors []WriteTensor, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("safetensors: metadata entry %q: not valid UTF-8", k)
		}
	}
	if len(metadata) > 0 {
		writeJSONString(&b, metadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}

	seen := make(map[string]bool, len(tensors))
	var offset uint64
	for i, t := range tensors {
		if err := checkWriteTensor(t, seen); err != nil {
			return nil, err
		}
		end := offset + uint64(len(t.Data))
		if end < offset {
			return nil, fmt.Errorf("safetensors: tensor %q: data section overflows", t.Name)
		}
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, t.Name)
		fmt.Fprintf(&b, `:{"dtype":%q,"shape":[`, t.DType.String())
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')

	// Pad so that prefix + header is a multiple of dataAlign.
	for (prefixSize+b.Len())%dataAlign != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header of %d bytes exceeds the limit of %d", b.Len(), MaxHeaderSize)
	}
	return b.Bytes(), nil
}

func checkWriteTensor(t WriteTensor, seen map[string]bool) error {
	if t.Name == metadataKey {
		return fmt.Errorf("safetensors: tensor name %q is reserved for metadata", t.Name)
	}
	if !utf8.ValidString(t.Name) {
		return fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", t.Name)
	}
	if seen[t.Name] {
		return fmt.Errorf("safetensors: tensor %q appears twice", t.Name)
	}
	seen[t.Name] = true
	if !t.DType.Valid() {
		return fmt.Errorf("safetensors: tensor %q: invalid dtype %v", t.Name, t.DType)
	}
	count := uint64(1)
	overflow := false
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: shape %v has negative dim %d", t.Name, t.Shape, i)
		}
		var hi uint64
		hi, count = bits.Mul64(count, uint64(d))
		overflow = overflow || hi != 0
	}
	hi, want := bits.Mul64(count, uint64(t.DType.Size()))
	if overflow || hi != 0 || want > math.MaxInt {
		return fmt.Errorf("safetensors: tensor %q: shape %v of %s overflows the size computation", t.Name, t.Shape, t.DType)
	}
	if uint64(len(t.Data)) != want {
		return fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, found %d", t.Name, t.Shape, t.DType, want, len(t.Data))
	}
	return nil
}

// writeJSONString writes s as a JSON string, leaving <, > and & unescaped.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	// Encoding a string into a Buffer cannot fail. Encode appends a newline,
	// which Truncate drops.
	_ = enc.Encode(s)
	b.Truncate(b.Len() - 1)
}
