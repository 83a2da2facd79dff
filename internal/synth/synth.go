// Package synth writes random-weight Hugging Face Llama model folders of
// named shapes: config.json as transformers writes it for LlamaForCausalLM,
// model.safetensors with the tensor names and shapes LlamaForCausalLM uses,
// generation_config.json and, optionally, a tokenizer's files.
//
// Speed does not depend on the weights' values, so these folders stand in
// for real checkpoints in benchmarks; with a tokenizer whose vocabulary sets
// the model's, they exercise the text path end to end (the text is noise).
//
// Weights are drawn from N(0, 0.02²) (transformers' initializer_range),
// norm weights are 1. They are generated in chunks, each from its own
// generator seeded by (seed, tensor, chunk), on all cores, and written as
// they are made: memory stays at a few chunks whatever the model's size,
// and the output depends only on the seed. The folder is written under a
// temporary name next to the destination and renamed into place.
package synth

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llmc-dev/llmc/frontends/safetensors"
	"github.com/llmc-dev/llmc/tokenizer"
)

// Shape is a model architecture of the Llama family.
type Shape struct {
	Name         string
	Doc          string // where the shape comes from
	Hidden       int    // hidden_size (dim)
	Intermediate int    // intermediate_size (the MLP's hidden dim)
	Layers       int
	Heads        int
	KVHeads      int
	Vocab        int
	MaxPositions int
	Tied         bool // tie_word_embeddings
	RMSNormEps   float64
	RopeTheta    float64
}

var shapes = []Shape{
	{Name: "stories260K", Doc: "llama2.c's stories260K (the shared test model's shape)",
		Hidden: 64, Intermediate: 172, Layers: 5, Heads: 8, KVHeads: 4, Vocab: 512, MaxPositions: 512, Tied: true},
	// llama2.c's models share the classifier with the embeddings.
	{Name: "stories15M", Doc: "llama2.c's stories15M",
		Hidden: 288, Intermediate: 768, Layers: 6, Heads: 6, KVHeads: 6, Vocab: 32000, MaxPositions: 1024, Tied: true},
	{Name: "stories42M", Doc: "llama2.c's stories42M",
		Hidden: 512, Intermediate: 1376, Layers: 8, Heads: 8, KVHeads: 8, Vocab: 32000, MaxPositions: 1024, Tied: true},
	{Name: "stories110M", Doc: "llama2.c's stories110M",
		Hidden: 768, Intermediate: 2048, Layers: 12, Heads: 12, KVHeads: 12, Vocab: 32000, MaxPositions: 1024, Tied: true},
	{Name: "tinyllama-1.1b", Doc: "TinyLlama-1.1B (grouped-query attention, 4 KV heads)",
		Hidden: 2048, Intermediate: 5632, Layers: 22, Heads: 32, KVHeads: 4, Vocab: 32000, MaxPositions: 2048},
}

func init() {
	for i := range shapes {
		shapes[i].RMSNormEps = 1e-5
		shapes[i].RopeTheta = 10000
	}
}

// Shapes lists the named shapes, smallest first.
func Shapes() []Shape { return slices.Clone(shapes) }

// LookupShape returns the shape called name.
func LookupShape(name string) (Shape, error) {
	var names []string
	for _, s := range shapes {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Shape{}, fmt.Errorf("unknown shape %q; known: %s", name, strings.Join(names, ", "))
}

// Params is the number of parameters of s.
func (s Shape) Params() int64 {
	h, in, kv := int64(s.Hidden), int64(s.Intermediate), int64(s.KVHeads*s.HeadDim())
	perLayer := h*h*2 + 2*kv*h + 3*h*in + 2*h
	n := int64(s.Layers)*perLayer + int64(s.Vocab)*h + h
	if !s.Tied {
		n += int64(s.Vocab) * h
	}
	return n
}

// HeadDim is hidden / heads.
func (s Shape) HeadDim() int { return s.Hidden / s.Heads }

func (s Shape) check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden size", s.Hidden}, {"intermediate size", s.Intermediate}, {"layers", s.Layers}, {"heads", s.Heads},
		{"KV heads", s.KVHeads}, {"vocabulary", s.Vocab}, {"positions", s.MaxPositions}} {
		if f.v <= 0 {
			return fmt.Errorf("shape %s: %s is %d, want a positive number", s.Name, f.name, f.v)
		}
	}
	if s.Hidden%s.Heads != 0 || s.HeadDim()%2 != 0 {
		return fmt.Errorf("shape %s: hidden size %d over %d heads is not an even head dim", s.Name, s.Hidden, s.Heads)
	}
	if s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("shape %s: %d KV heads do not divide %d heads", s.Name, s.KVHeads, s.Heads)
	}
	return nil
}

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
	DType DType // "" is f32
	// Vocab overrides the shape's vocabulary size (0 keeps it). A
	// tokenizer sets it to the tokenizer's size instead.
	Vocab int
	// MaxPositions overrides max_position_embeddings (0 keeps it).
	MaxPositions int
	// Tied, when set, overrides the shape's tie_word_embeddings.
	Tied *bool
	// Tokenizer is a folder with tokenizer.json (and tokenizer_config.json,
	// chat_template.jinja, special_tokens_map.json) to copy into the model.
	// The vocabulary size and the BOS and EOS ids then come from it.
	Tokenizer string
	// NoGenerationConfig leaves out generation_config.json.
	NoGenerationConfig bool
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
	BOS    []int
	EOS    []int
}

// tokenizerFiles are copied from Options.Tokenizer when present.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}

// turnEnds are special tokens that end a turn in common chat formats; they
// join the tokenizer's EOS in generation_config.json's eos_token_id, as
// chat models ship it (Phi-3.5: [32007, 32001, 32000]).
var turnEnds = []string{"<|im_end|>", "<|end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|endoftext|>"}

// Write writes a random-weight model folder at dir.
func Write(dir string, o Options) (*Result, error) {
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
	dt, torchDType, err := o.DType.safetensors()
	if err != nil {
		return nil, err
	}
	res := &Result{Dir: dir, DType: o.DType}
	if res.DType == "" {
		res.DType = "f32"
	}
	var tok *tokenizer.Tokenizer
	if o.Tokenizer != "" {
		if tok, err = tokenizer.Load(o.Tokenizer); err != nil {
			return nil, err
		}
		if o.Vocab > 0 && o.Vocab < tok.VocabSize() {
			return nil, fmt.Errorf("vocabulary %d is smaller than the tokenizer's %d tokens", o.Vocab, tok.VocabSize())
		}
		if o.Vocab == 0 {
			s.Vocab = tok.VocabSize()
		}
		if b, ok := tok.BOS(); ok {
			res.BOS = []int{b.ID}
		}
		if e, ok := tok.EOS(); ok {
			res.EOS = []int{e.ID}
		}
		for _, name := range turnEnds {
			if id, ok := tok.ID(name); ok && tok.IsSpecial(id) && !slices.Contains(res.EOS, id) {
				res.EOS = append(res.EOS, id)
			}
		}
	} else {
		res.BOS, res.EOS = []int{min(1, s.Vocab-1)}, []int{min(2, s.Vocab-1)}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	res.Shape, res.Params = s, s.Params()

	if err := prepareDest(dir, o.Replace); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up after a failure
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), configJSON(s, torchDType, res.BOS, res.EOS), 0o644); err != nil {
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
	if res.Bytes, err = writeWeights(filepath.Join(tmp, "model.safetensors"), Tensors(s), dt, o.Seed, o.Progress); err != nil {
		return nil, err
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

// Tensor is one weight of a LlamaForCausalLM checkpoint.
type Tensor struct {
	Name  string
	Shape []int
	Ones  bool // a norm weight: all 1
}

// Tensors lists the weights of s with their transformers names, sorted by
// name as safetensors' Python writer lays them out.
func Tensors(s Shape) []Tensor {
	h, hd := s.Hidden, s.HeadDim()
	ts := []Tensor{
		{Name: "model.embed_tokens.weight", Shape: []int{s.Vocab, h}},
		{Name: "model.norm.weight", Shape: []int{h}, Ones: true},
	}
	if !s.Tied {
		ts = append(ts, Tensor{Name: "lm_head.weight", Shape: []int{s.Vocab, h}})
	}
	for l := range s.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			Tensor{Name: p + "input_layernorm.weight", Shape: []int{h}, Ones: true},
			Tensor{Name: p + "self_attn.q_proj.weight", Shape: []int{s.Heads * hd, h}},
			Tensor{Name: p + "self_attn.k_proj.weight", Shape: []int{s.KVHeads * hd, h}},
			Tensor{Name: p + "self_attn.v_proj.weight", Shape: []int{s.KVHeads * hd, h}},
			Tensor{Name: p + "self_attn.o_proj.weight", Shape: []int{h, s.Heads * hd}},
			Tensor{Name: p + "post_attention_layernorm.weight", Shape: []int{h}, Ones: true},
			Tensor{Name: p + "mlp.gate_proj.weight", Shape: []int{s.Intermediate, h}},
			Tensor{Name: p + "mlp.up_proj.weight", Shape: []int{s.Intermediate, h}},
			Tensor{Name: p + "mlp.down_proj.weight", Shape: []int{h, s.Intermediate}},
		)
	}
	slices.SortFunc(ts, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	return ts
}

func (t Tensor) elems() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// configJSON is config.json as transformers (4.4x) writes a LlamaConfig:
// every field, keys sorted, two-space indent, Python float syntax.
func configJSON(s Shape, torchDType string, bos, eos []int) []byte {
	fields := map[string]string{
		"architectures":           "[\n    \"LlamaForCausalLM\"\n  ]",
		"attention_bias":          "false",
		"attention_dropout":       "0.0",
		"bos_token_id":            idsJSON(bos, "  "),
		"eos_token_id":            idsJSON(eos, "  "),
		"head_dim":                strconv.Itoa(s.HeadDim()),
		"hidden_act":              `"silu"`,
		"hidden_size":             strconv.Itoa(s.Hidden),
		"initializer_range":       pyFloat(initStd),
		"intermediate_size":       strconv.Itoa(s.Intermediate),
		"max_position_embeddings": strconv.Itoa(s.MaxPositions),
		"mlp_bias":                "false",
		"model_type":              `"llama"`,
		"num_attention_heads":     strconv.Itoa(s.Heads),
		"num_hidden_layers":       strconv.Itoa(s.Layers),
		"num_key_value_heads":     strconv.Itoa(s.KVHeads),
		"pretraining_tp":          "1",
		"rms_norm_eps":            pyFloat(s.RMSNormEps),
		"rope_scaling":            "null",
		"rope_theta":              pyFloat(s.RopeTheta),
		"tie_word_embeddings":     strconv.FormatBool(s.Tied),
		"torch_dtype":             strconv.Quote(torchDType),
		"use_cache":               "true",
		"vocab_size":              strconv.Itoa(s.Vocab),
	}
	return objectJSON(fields)
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
// first, then every tensor chunk by chunk as the workers make them.
func writeWeights(path string, ts []Tensor, dt safetensors.DType, seed uint64, progress io.Writer) (int64, error) {
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
	err = generate(ts, dt, seed, func(b []byte) error {
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
func generate(ts []Tensor, dt safetensors.DType, seed uint64, write func([]byte) error) error {
	workers := runtime.GOMAXPROCS(0)
	inFlight := make(chan *job, 2*workers) // bounds memory: chunks made but not written
	jobs := make(chan *job)
	pool := sync.Pool{New: func() any { b := make([]byte, 0, chunkElems*4); return &b }}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			f32 := make([]float32, chunkElems)
			for j := range jobs {
				bp := pool.Get().(*[]byte)
				j.out <- fill((*bp)[:0], f32[:j.n], j, dt, seed)
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

// fill appends the bytes of chunk j to b.
func fill(b []byte, f []float32, j *job, dt safetensors.DType, seed uint64) []byte {
	if j.t.Ones {
		for i := range f {
			f[i] = 1
		}
	} else {
		h := fnv.New64a()
		h.Write([]byte(j.t.Name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()^uint64(j.chunk)*0x9e3779b97f4a7c15))
		for i := range f {
			f[i] = float32(r.NormFloat64() * initStd)
		}
	}
	switch dt {
	case safetensors.F16:
		for _, v := range f {
			b = binary.LittleEndian.AppendUint16(b, safetensors.Float32ToF16(v))
		}
	case safetensors.BF16:
		for _, v := range f {
			b = binary.LittleEndian.AppendUint16(b, safetensors.Float32ToBF16(v))
		}
	default:
		for _, v := range f {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	return b
}

// progress prints "writing model.safetensors: 1.20 GiB of 4.10 GiB (29%)" at most a few
// times a second.
type progress struct {
	w             io.Writer
	name          string
	written, size int64
	last          time.Time
}

func newProgress(w io.Writer, name string, size int64) *progress {
	return &progress{w: w, name: name, size: size}
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
	fmt.Fprintf(p.w, "\rwriting %s: %s of %s (%d%%)   ", p.name, gb(p.written), gb(p.size), p.written*100/max(p.size, 1))
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
