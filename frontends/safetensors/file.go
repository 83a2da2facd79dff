package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// prefixSize is the size of the little-endian header length.
	prefixSize = 8
	// MaxHeaderSize is the largest header Open accepts. Real headers are
	// kilobytes; a larger length means the file is not safetensors at all.
	MaxHeaderSize = 100 << 20
	// metadataKey is the reserved header key for the string map.
	metadataKey = "__metadata__"
)

// A File is an open safetensors file. Its methods may be called from several
// goroutines at once, but not concurrently with Close.
type File struct {
	path     string
	data     []byte       // the whole file, usually memory-mapped
	release  func() error // unmaps data; nil once closed
	tensors  []*Tensor    // sorted by data offset
	byName   map[string]*Tensor
	metadata map[string]string
}

// Open memory-maps the safetensors file at path and validates its header
// (see the package documentation for the checks). The tensors' Data alias
// the mapping, which stays valid until Close. As with any memory mapping, the
// file must not be truncated or rewritten in place while it is open (WriteFile
// replaces files by renaming, which is safe).
func Open(path string) (*File, error) {
	data, release, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := parse(path, data)
	if err != nil {
		if rerr := release(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	f.release = release
	return f, nil
}

// Close releases the file's memory mapping. Tensor data, including views
// from Float32View, must not be used afterwards; Close clears each Tensor's
// Data so that its methods report an error instead of faulting. Closing a
// closed File does nothing.
func (f *File) Close() error {
	if f.release == nil {
		return nil
	}
	for _, t := range f.tensors {
		t.Data = nil
	}
	f.data = nil
	release := f.release
	f.release = nil
	if err := release(); err != nil {
		return fmt.Errorf("safetensors: closing %s: %w", f.path, err)
	}
	return nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Tensors returns the file's tensors in the order of their data offsets. The
// slice is the caller's; the Tensors must not be modified.
func (f *File) Tensors() []*Tensor { return slices.Clone(f.tensors) }

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.byName[name]
	return t, ok
}

// Metadata returns a copy of the header's "__metadata__" map, or nil if it
// has none.
func (f *File) Metadata() map[string]string { return maps.Clone(f.metadata) }

// parse validates data, the full contents of a safetensors file, and indexes
// its tensors. name is used in errors only. It never panics.
func parse(name string, data []byte) (*File, error) {
	if len(data) < prefixSize {
		return nil, formatErrorf(name, "", "file is %d bytes, shorter than the %d-byte header length prefix", len(data), prefixSize)
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, formatErrorf(name, "", "header length %d is absurd (limit %d bytes); not a safetensors file?", n, MaxHeaderSize)
	}
	if rest := uint64(len(data) - prefixSize); n > rest {
		return nil, formatErrorf(name, "", "header length %d is larger than the %d bytes after the length prefix (truncated file?)", n, rest)
	}
	headerEnd := prefixSize + int(n)
	header := data[prefixSize:headerEnd]
	section := data[headerEnd:]

	entries, err := splitHeader(header)
	if err != nil {
		return nil, &FormatError{File: name, Err: err}
	}
	f := &File{
		path:   name,
		data:   data,
		byName: make(map[string]*Tensor, len(entries)),
	}
	for _, e := range entries {
		if e.name == metadataKey {
			if f.metadata, err = parseMetadata(e.raw); err != nil {
				return nil, &FormatError{File: name, Err: err}
			}
			continue
		}
		t, err := parseEntry(e.name, e.raw, len(section))
		if err != nil {
			return nil, &FormatError{File: name, Tensor: e.name, Err: err}
		}
		t.Data = section[t.begin:t.end:t.end]
		t.slack = len(section) - t.end
		t.FileOffset = int64(headerEnd) + int64(t.begin)
		f.tensors = append(f.tensors, t)
		f.byName[t.Name] = t
	}

	slices.SortFunc(f.tensors, func(a, b *Tensor) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.Name, b.Name))
	})
	// In offset order a tensor overlaps an earlier one exactly when it starts
	// before the furthest end seen so far. Empty tensors occupy no bytes.
	var last *Tensor
	for _, t := range f.tensors {
		if t.begin == t.end {
			continue
		}
		if last != nil && t.begin < last.end {
			return nil, formatErrorf(name, last.Name, "bytes [%d, %d) overlap tensor %q at [%d, %d)", last.begin, last.end, t.Name, t.begin, t.end)
		}
		if last == nil || t.end > last.end {
			last = t
		}
	}
	return f, nil
}

// headerEntry is one key of the header object with its undecoded value.
type headerEntry struct {
	name string
	raw  json.RawMessage
}

// splitHeader checks that header is a single JSON object without repeated
// keys and returns its entries in header order.
func splitHeader(header []byte) ([]headerEntry, error) {
	if !utf8.Valid(header) {
		return nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %w", eofAsUnexpected(err))
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("header is not a JSON object (starts with %s)", describeToken(tok))
	}
	var entries []headerEntry
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("header is not valid JSON: %w", eofAsUnexpected(err))
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("header is not valid JSON: object key is %s", describeToken(tok))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("header is not valid JSON: value of %q: %w", key, eofAsUnexpected(err))
		}
		if seen[key] {
			return nil, fmt.Errorf("header has two entries named %q", key)
		}
		seen[key] = true
		entries = append(entries, headerEntry{key, raw})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("header is not valid JSON: %w", eofAsUnexpected(err))
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, fmt.Errorf("header has data after its JSON object: %w", err)
		}
		return nil, fmt.Errorf("header has data after its JSON object: %s", describeToken(tok))
	}
	return entries, nil
}

func eofAsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func describeToken(tok json.Token) string {
	switch tok := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(tok))
	case string:
		return fmt.Sprintf("string %q", tok)
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v", tok)
	}
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("%s must be an object of strings, found %s", metadataKey, truncate(raw))
	}
	if fields == nil { // null
		return nil, nil
	}
	m := make(map[string]string, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		var v string
		if err := json.Unmarshal(fields[k], &v); err != nil {
			return nil, fmt.Errorf("%s[%q] must be a string, found %s", metadataKey, k, truncate(fields[k]))
		}
		m[k] = v
	}
	return m, nil
}

// parseEntry decodes and checks one tensor's header entry against a data
// section of size bytes.
func parseEntry(name string, raw json.RawMessage, size int) (*Tensor, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("entry is not a JSON object: %s", truncate(raw))
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if _, ok := fields[k]; !ok {
			return nil, fmt.Errorf("entry has no %q field", k)
		}
	}

	var dtypeName string
	if err := json.Unmarshal(fields["dtype"], &dtypeName); err != nil {
		return nil, fmt.Errorf("dtype is not a string: %s", truncate(fields["dtype"]))
	}
	dt, ok := ParseDType(dtypeName)
	if !ok {
		return nil, fmt.Errorf("unknown dtype %q", dtypeName)
	}

	dims, err := parseInts(fields["shape"], "shape")
	if err != nil {
		return nil, err
	}
	offs, err := parseInts(fields["data_offsets"], "data_offsets")
	if err != nil {
		return nil, err
	}
	if len(offs) != 2 {
		return nil, fmt.Errorf("data_offsets must be [begin, end], found %d values", len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin > end {
		return nil, fmt.Errorf("data_offsets [%d, %d] begin > end", begin, end)
	}
	if end > uint64(size) {
		return nil, fmt.Errorf("data_offsets [%d, %d] end beyond the data section of %d bytes (truncated file?)", begin, end, size)
	}

	shape := make([]int, len(dims))
	count := uint64(1)
	overflow := false
	for i, d := range dims {
		if d > math.MaxInt {
			overflow = true
			break
		}
		shape[i] = int(d)
		var hi uint64
		hi, count = bits.Mul64(count, d)
		overflow = overflow || hi != 0
	}
	hi, want := bits.Mul64(count, uint64(dt.Size()))
	if overflow || hi != 0 || want > math.MaxInt {
		return nil, fmt.Errorf("shape %s of %s overflows the size computation", fmtUints(dims), dt)
	}
	if got := end - begin; got != want {
		return nil, fmt.Errorf("shape %v of %s expects %d bytes, found %d in data_offsets [%d, %d]", shape, dt, want, got, begin, end)
	}
	return &Tensor{
		Name:  name,
		DType: dt,
		Shape: shape,
		begin: int(begin),
		end:   int(end),
	}, nil
}

// parseInts decodes raw as a JSON array of non-negative integers. what names
// the field in errors.
func parseInts(raw json.RawMessage, what string) ([]uint64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var vals []any
	if err := dec.Decode(&vals); err != nil || vals == nil {
		return nil, fmt.Errorf("%s must be an array of integers, found %s", what, truncate(raw))
	}
	out := make([]uint64, len(vals))
	for i, v := range vals {
		num, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s[%d] must be a non-negative integer, found %s", what, i, describeValue(v))
		}
		u, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("%s[%d] = %s is too large", what, i, num)
			}
			return nil, fmt.Errorf("%s[%d] must be a non-negative integer, found %s", what, i, num)
		}
		out[i] = u
	}
	return out, nil
}

func describeValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return truncate(b)
}

// truncate returns raw JSON as a string short enough for an error message.
func truncate(raw []byte) string {
	const limit = 64
	if len(raw) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(raw[cut]) {
			cut--
		}
		return string(raw[:cut]) + "..."
	}
	return string(raw)
}

func fmtUints(u []uint64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range u {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(v, 10))
	}
	b.WriteByte(']')
	return b.String()
}
