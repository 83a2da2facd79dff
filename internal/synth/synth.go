// Package synth writes random-weight Hugging Face model folders of named
// shapes: the llama2.c models' and real configurations of the Llama,
// Gemma, Gemma2 and Qwen2 families (shapes.go), each with config.json as
// transformers writes it for the published model, model.safetensors with
// the tensor names and shapes of its architecture, generation_config.json
// and, optionally, a tokenizer's files.
//
// Speed does not depend on the weights' values, so these folders stand in
// for real checkpoints in benchmarks; with a tokenizer whose vocabulary fits
// the model's, they exercise the text path end to end (the text is noise).
//
// Weights are drawn from N(0, σ²) with σ the shape's initializer_range
// (0.02 unless the published config says otherwise), through a table of
// 65,536 quantiles of the normal distribution indexed by 16 random bits, so
// that a multi-GB model is made at memory speed. Norm weights make a scale
// of 1: they are 1, or 0 in the Gemma families, which store the scale as an
// offset from 1. The weights are generated in chunks, each from its own
// generator seeded by (seed, tensor, chunk), on all cores, and written as
// they are made: memory stays at a few chunks whatever the model's size,
// and the output depends only on the seed. The folder is written under a
// temporary name next to the destination (artifact.TempDir's, which the
// next Write to the same destination removes if its process was killed)
// and renamed into place; WriteContext stops between chunks when its
// context is done, leaving the destination as it was.
package synth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/safetensors"
	"github.com/llmc-dev/llmc/tokenizer"
)

// DType is the element type of the weights: "f32", "f16" or "bf16".
type DType string

func (d DType) safetensors() (safetensors.DType, string, error) {
	switch d {
	case "f32", "":
		return safetensors.F32, "float32", nil
	case "f16":
		return safetensors.F16, "float16", nil
	case "bf16":
		return safetensors.BF16, "bfloat16", nil
	}
	return 0, "", fmt.Errorf("dtype %q: want f32, f16 or bf16", string(d))
}

// Options say what Write writes.
type Options struct {
	Shape Shape
	Seed  uint64
	DType DType // "" is the shape's (the published checkpoint's), else f32
	// Vocab overrides the shape's vocabulary size (0 keeps it). A
	// tokenizer sets it to the tokenizer's size instead, unless the shape
	// is a published model's whose vocabulary holds the tokenizer's (Qwen2.5
	// pads its 151,665 tokens to 151,936 rows).
	Vocab int
	// MaxPositions overrides max_position_embeddings (0 keeps it).
	MaxPositions int
	// Tied, when set, overrides the shape's tie_word_embeddings.
	Tied *bool
	// Tokenizer is a folder with tokenizer.json (and tokenizer_config.json,
	// chat_template.jinja, special_tokens_map.json) to copy into the model.
	// The BOS and EOS ids then come from it, and the vocabulary size too
	// (see Vocab).
	Tokenizer string
	// NoGenerationConfig leaves out generation_config.json.
	NoGenerationConfig bool
	// ConfigOnly writes the folder without model.safetensors: the config
	// files (and tokenizer) of a shape, to check them without writing
	// gigabytes of weights.
	ConfigOnly bool
	// Replace an existing folder at the destination.
	Replace bool
	// Progress, when set, receives a progress line (rewritten with \r).
	Progress io.Writer
}

// Result describes a written model.
type Result struct {
	Dir    string
	Shape  Shape // with the overrides applied
	DType  DType
	Params int64
	Bytes  int64 // size of model.safetensors
	// BOS and EOS are generation_config.json's ids: config.json's, and with
	// a tokenizer its turn-end tokens after its EOS.
	BOS []int
	EOS []int
}

// tokenizerFiles are copied from Options.Tokenizer when present.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}

// turnEnds are special tokens that end a turn in common chat formats; they
// join the tokenizer's EOS in generation_config.json's eos_token_id, as
// chat models ship it (Phi-3.5: [32007, 32001, 32000]).
var turnEnds = []string{"<|im_end|>", "<|end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|endoftext|>"}

// Write writes a random-weight model folder at dir.
func Write(dir string, o Options) (*Result, error) {
	return WriteContext(context.Background(), dir, o)
}

// WriteContext is Write stopped when ctx is done: between the files it
// writes and between the chunks of model.safetensors. It then leaves dir
// as it was, removes its temporary folder and returns an error wrapping
// context.Cause(ctx).
func WriteContext(ctx context.Context, dir string, o Options) (*Result, error) {
	res, err := write(ctx, dir, o)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("writing %s: %w", dir, context.Cause(ctx))
	}
	return res, err
}

func write(ctx context.Context, dir string, o Options) (*Result, error) {
	s := o.Shape
	if o.Vocab < 0 || o.MaxPositions < 0 {
		return nil, fmt.Errorf("vocabulary %d and positions %d: want positive numbers or 0 for the shape's", o.Vocab, o.MaxPositions)
	}
	if o.Vocab > 0 {
		s.Vocab = o.Vocab
	}
	if o.MaxPositions > 0 {
		s.MaxPositions = o.MaxPositions
	}
	if o.Tied != nil {
		s.Tied = *o.Tied
	}
	if s.RMSNormEps == 0 {
		s.RMSNormEps = 1e-5
	}
	if s.RopeTheta == 0 {
		s.RopeTheta = 10000
	}
	dtype := o.DType
	if dtype == "" {
		dtype = s.DType
	}
	if dtype == "" {
		dtype = "f32"
	}
	dt, torchDType, err := dtype.safetensors()
	if err != nil {
		return nil, err
	}
	res := &Result{Dir: dir, DType: dtype}
	// config.json's ids: the shape's, or the tokenizer's where it has them.
	bos, eos := s.BOS, s.EOS
	if bos == nil && eos == nil {
		bos, eos = []int{min(1, s.Vocab-1)}, []int{min(2, s.Vocab-1)}
	}
	var tok *tokenizer.Tokenizer
	if o.Tokenizer != "" {
		if tok, err = tokenizer.Load(o.Tokenizer); err != nil {
			return nil, err
		}
		if o.Vocab > 0 && o.Vocab < tok.VocabSize() {
			return nil, fmt.Errorf("vocabulary %d is smaller than the tokenizer's %d tokens", o.Vocab, tok.VocabSize())
		}
		if o.Vocab == 0 && (s.Model == "" || s.Vocab < tok.VocabSize()) {
			s.Vocab = tok.VocabSize()
		}
		if s.Model == "" {
			bos, eos = nil, nil // llama2.c's models have no ids of their own
		}
		if b, ok := tok.BOS(); ok {
			bos = []int{b.ID}
		}
		if e, ok := tok.EOS(); ok {
			eos = []int{e.ID}
		}
	}
	res.BOS, res.EOS = bos, slices.Clone(eos)
	if tok != nil {
		for _, name := range turnEnds {
			if id, ok := tok.ID(name); ok && tok.IsSpecial(id) && !slices.Contains(res.EOS, id) {
				res.EOS = append(res.EOS, id)
			}
		}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	for _, id := range slices.Concat(bos, eos) {
		if id < 0 || id >= s.Vocab {
			return nil, fmt.Errorf("shape %s: special token id %d is outside the vocabulary of %d tokens", s.Name, id, s.Vocab)
		}
	}
	res.Shape, res.Params = s, s.Params()

	if err := prepareDest(dir, o.Replace); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Named after this process, so that one left by a synth that was killed
	// is removed by the next one to dir (artifact.SweepStale).
	tmp, err := artifact.TempDir(dir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up after a failure
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), configJSON(s, torchDType, bos, eos), 0o644); err != nil {
		return nil, err
	}
	if !o.NoGenerationConfig {
		if err := os.WriteFile(filepath.Join(tmp, "generation_config.json"), generationConfigJSON(res.BOS, res.EOS), 0o644); err != nil {
			return nil, err
		}
	}
	if o.Tokenizer != "" {
		for _, name := range tokenizerFiles {
			data, err := os.ReadFile(filepath.Join(o.Tokenizer, name))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
				return nil, err
			}
		}
	}
	if !o.ConfigOnly {
		if res.Bytes, err = writeWeights(ctx, filepath.Join(tmp, "model.safetensors"), Tensors(s), dt, s.initRange(), o.Seed, o.Progress); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err // complete, but not wanted any more: dir stays as it was
	}
	if err := install(tmp, dir); err != nil {
		return nil, err
	}
	return res, nil
}

// prepareDest refuses to overwrite anything but an empty folder, unless
// replace is set.
func prepareDest(dir string, replace bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0o755)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a folder", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 && !replace {
		return fmt.Errorf("%s exists and is not empty (replace it with --force)", dir)
	}
	return nil
}

// install renames tmp to dir, replacing what is there.
func install(tmp, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.Rename(old, dir)
			return err
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, dir)
}

// generationConfigJSON is generation_config.json as transformers derives
// it from the model config.
func generationConfigJSON(bos, eos []int) []byte {
	return objectJSON(map[string]string{
		"_from_model_config": "true",
		"bos_token_id":       idsJSON(bos, "  "),
		"eos_token_id":       idsJSON(eos, "  "),
	})
}

func objectJSON(fields map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})
	for i, k := range keys {
		fmt.Fprintf(&b, "  %q: %s", k, fields[k])
		if i < len(keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// idsJSON writes one id as a number, several as an indented list, none as
// null, as transformers does.
func idsJSON(ids []int, indent string) string {
	switch len(ids) {
	case 0:
		return "null"
	case 1:
		return strconv.Itoa(ids[0])
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i, id := range ids {
		b.WriteString(indent + "  " + strconv.Itoa(id))
		if i < len(ids)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(indent + "]")
	return b.String()
}

// pyFloat formats f as Python's repr does (1e-05, 10000.0, 0.02).
func pyFloat(f float64) string {
	if f == 0 {
		return "0.0"
	}
	exp := int(math.Floor(math.Log10(math.Abs(f))))
	if exp < -4 || exp >= 16 {
		return strconv.FormatFloat(f, 'e', -1, 64) // Go also writes two exponent digits
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// initStd is the standard deviation of the random weights
// (transformers' initializer_range).
const initStd = 0.02

// chunkElems is how many elements one generator makes at a time.
const chunkElems = 1 << 20

// writeWeights writes the safetensors file at path, streaming: header
// first, then every tensor chunk by chunk as the workers make them. It
// stops before the next chunk when ctx is done.
func writeWeights(ctx context.Context, path string, ts []Tensor, dt safetensors.DType, std float64, seed uint64, progress io.Writer) (int64, error) {
	header, dataBytes, err := safetensorsHeader(ts, dt)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 4<<20)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	bw.Write(prefix[:])
	bw.Write(header)

	p := newProgress(progress, filepath.Base(path), dataBytes)
	err = generate(ts, newEncoder(dt, std), seed, func(b []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
		p.add(int64(len(b)))
		return nil
	})
	p.done()
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	total := int64(8+len(header)) + dataBytes
	return total, f.Close()
}

// safetensorsHeader builds the JSON header, padded with spaces to a
// multiple of 8 bytes (with the 8-byte length before it), as the
// safetensors writer does, with the "format": "pt" metadata transformers
// writes.
func safetensorsHeader(ts []Tensor, dt safetensors.DType) ([]byte, int64, error) {
	var b bytes.Buffer
	b.WriteString(`{"__metadata__":{"format":"pt"}`)
	var off int64
	for _, t := range ts {
		size := t.elems() * int64(dt.Size())
		name, _ := json.Marshal(t.Name)
		shape, _ := json.Marshal(t.Shape)
		fmt.Fprintf(&b, `,%s:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, dt.String(), shape, off, off+size)
		off += size
	}
	b.WriteByte('}')
	for (8+b.Len())%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > safetensors.MaxHeaderSize {
		return nil, 0, fmt.Errorf("safetensors header of %d bytes exceeds the limit of %d", b.Len(), safetensors.MaxHeaderSize)
	}
	return b.Bytes(), off, nil
}

// job is one chunk of one tensor.
type job struct {
	tensor int
	t      Tensor
	chunk  int64 // index of the chunk in the tensor
	n      int   // elements
	out    chan []byte
}

// generate makes the data of ts, chunk by chunk in parallel, and hands the
// chunks to write in file order.
func generate(ts []Tensor, enc *encoder, seed uint64, write func([]byte) error) error {
	workers := runtime.GOMAXPROCS(0)
	inFlight := make(chan *job, 2*workers) // bounds memory: chunks made but not written
	jobs := make(chan *job)
	pool := sync.Pool{New: func() any { b := make([]byte, chunkElems*enc.size); return &b }}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				bp := pool.Get().(*[]byte)
				j.out <- enc.fill((*bp)[:j.n*enc.size], j, seed)
			}
		})
	}
	go func() {
		defer close(jobs)
		defer close(inFlight)
		for i, t := range ts {
			n := t.elems()
			for c := int64(0); c*chunkElems < n; c++ {
				j := &job{tensor: i, t: t, chunk: c, n: int(min(chunkElems, n-c*chunkElems)), out: make(chan []byte, 1)}
				select {
				case inFlight <- j:
				case <-stop:
					return
				}
				select {
				case jobs <- j:
				case <-stop:
					return
				}
			}
		}
	}()
	var err error
	for j := range inFlight {
		if err != nil {
			continue // j may never have reached a worker
		}
		b := <-j.out
		if err = write(b); err != nil {
			close(stop)
		}
		pool.Put(&b)
	}
	wg.Wait()
	return err
}

// encoder makes chunks of one weight dtype: random ones from a table of
// normal quantiles, constant ones by repeating a value.
type encoder struct {
	dt   safetensors.DType
	size int // bytes an element
	// t16 or t32 map 16 random bits i to Φ⁻¹((i+½)/65536)·σ, encoded:
	// symmetric, so the mean is 0, and the standard deviation is σ to
	// within 0.1% (the tails stop at 4.3σ).
	t16 []uint16
	t32 []uint32
}

func newEncoder(dt safetensors.DType, std float64) *encoder {
	e := &encoder{dt: dt, size: dt.Size()}
	if e.size == 2 {
		e.t16 = make([]uint16, 1<<16)
	} else {
		e.t32 = make([]uint32, 1<<16)
	}
	for i := range 1 << 16 {
		p := (float64(i) + 0.5) / (1 << 16)
		v := float32(math.Sqrt2 * math.Erfinv(2*p-1) * std)
		if e.size == 2 {
			e.t16[i] = e.bits16(v)
		} else {
			e.t32[i] = math.Float32bits(v)
		}
	}
	return e
}

func (e *encoder) bits16(v float32) uint16 {
	if e.dt == safetensors.F16 {
		return safetensors.Float32ToF16(v)
	}
	return safetensors.Float32ToBF16(v)
}

// fill writes the bytes of chunk j into b (len(b) is j.n elements).
func (e *encoder) fill(b []byte, j *job, seed uint64) []byte {
	if j.t.Const {
		switch e.size {
		case 2:
			v := e.bits16(j.t.Value)
			for i := 0; i < len(b); i += 2 {
				binary.LittleEndian.PutUint16(b[i:], v)
			}
		default:
			v := math.Float32bits(j.t.Value)
			for i := 0; i < len(b); i += 4 {
				binary.LittleEndian.PutUint32(b[i:], v)
			}
		}
		return b
	}
	h := fnv.New64a()
	h.Write([]byte(j.t.Name))
	r := splitmix(seed ^ splitmix(h.Sum64()^uint64(j.chunk)*0x9e3779b97f4a7c15))
	n := j.n
	// Four elements a random word.
	switch e.size {
	case 2:
		t := e.t16
		i := 0
		for ; i+4 <= n; i += 4 {
			w := wyrand(&r)
			o := b[2*i : 2*i+8]
			binary.LittleEndian.PutUint16(o[0:], t[uint16(w)])
			binary.LittleEndian.PutUint16(o[2:], t[uint16(w>>16)])
			binary.LittleEndian.PutUint16(o[4:], t[uint16(w>>32)])
			binary.LittleEndian.PutUint16(o[6:], t[uint16(w>>48)])
		}
		for w := wyrand(&r); i < n; i, w = i+1, w>>16 {
			binary.LittleEndian.PutUint16(b[2*i:], t[uint16(w)])
		}
	default:
		t := e.t32
		i := 0
		for ; i+4 <= n; i += 4 {
			w := wyrand(&r)
			o := b[4*i : 4*i+16]
			binary.LittleEndian.PutUint32(o[0:], t[uint16(w)])
			binary.LittleEndian.PutUint32(o[4:], t[uint16(w>>16)])
			binary.LittleEndian.PutUint32(o[8:], t[uint16(w>>32)])
			binary.LittleEndian.PutUint32(o[12:], t[uint16(w>>48)])
		}
		for w := wyrand(&r); i < n; i, w = i+1, w>>16 {
			binary.LittleEndian.PutUint32(b[4*i:], t[uint16(w)])
		}
	}
	return b
}

// wyrand is Wang Yi's wyrand generator: a 64-bit word a call, a counter
// mixed by one 128-bit multiply.
func wyrand(state *uint64) uint64 {
	*state += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(*state, *state^0xe7037ed1a0b428db)
	return hi ^ lo
}

// splitmix is SplitMix64's finaliser, which spreads a seed's bits.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// progress prints "writing model.safetensors: 1.20 GiB of 4.10 GiB (29%),
// 810 MiB/s, 4s left" at most five times a second.
type progress struct {
	w             io.Writer
	name          string
	written, size int64
	start, last   time.Time
}

func newProgress(w io.Writer, name string, size int64) *progress {
	return &progress{w: w, name: name, size: size, start: time.Now()}
}

func (p *progress) add(n int64) {
	p.written += n
	if p.w == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.print()
}

func (p *progress) print() {
	el := time.Since(p.start).Seconds()
	rate := float64(p.written) / max(el, 1e-3)
	line := fmt.Sprintf("writing %s: %s of %s (%d%%), %s/s", p.name, gb(p.written), gb(p.size), p.written*100/max(p.size, 1), gb(int64(rate)))
	if left := p.size - p.written; left > 0 && el > 0.5 {
		line += fmt.Sprintf(", %.0fs left", float64(left)/rate)
	} else if left <= 0 {
		line += fmt.Sprintf(" in %.1fs", el)
	}
	fmt.Fprintf(p.w, "\r%-78s", line)
}

func (p *progress) done() {
	if p.w != nil && !p.last.IsZero() {
		p.print()
		fmt.Fprintln(p.w)
	}
}

// gb writes a size in binary units, as llmc's other output does.
func gb(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
