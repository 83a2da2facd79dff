package hf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/llmc-dev/llmc/frontends/safetensors"
	"github.com/llmc-dev/llmc/ir"
)

// Model is an opened Hugging Face model folder: its config and its
// memory-mapped weights.
type Model struct {
	Dir     string
	Config  *Config
	Tensors *safetensors.Set
}

// Open reads DIR/config.json (and generation_config.json) and maps the
// safetensors weights. Close releases the mapping.
func Open(dir string) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	return &Model{Dir: dir, Config: cfg, Tensors: set}, nil
}

// Close unmaps the weights.
func (m *Model) Close() error { return m.Tensors.Close() }

// WeightDType returns the IR dtype of a checkpoint tensor (f32 when the
// tensor is missing, so that CheckWeights can report it by name).
func (m *Model) WeightDType(name string) ir.DType {
	t, ok := m.Tensors.Tensor(name)
	if !ok {
		return ir.F32
	}
	switch t.DType.String() {
	case "F16":
		return ir.F16
	case "BF16":
		return ir.BF16
	}
	return ir.F32
}

// Build returns the model's graph with weights typed as the checkpoint
// stores them, after checking that every weight the graph uses exists with
// the shape it expects.
func (m *Model) Build(opts BuildOptions) (*ir.Graph, error) {
	opts.WeightDType = m.WeightDType
	g, err := Build(m.Config, opts)
	if err != nil {
		return nil, err
	}
	if err := m.CheckWeights(g); err != nil {
		return nil, err
	}
	return g, nil
}

// CheckWeights checks every weight g declares against the checkpoint:
// present, a float dtype, and of the declared shape. It names the tensor
// and both shapes, and, for a projection whose rows disagree with the
// config, the config fields involved. Tensors in a dtype llmc does not
// read are reported apart from the rest: the checkpoint's format is the
// problem there, not a config that disagrees with its weights.
func (m *Model) CheckWeights(g *ir.Graph) error {
	var dtypes, problems []string
	for _, w := range g.Weights {
		if w.Derive != nil {
			continue // built from checked weights when the program loads
		}
		t, ok := m.Tensors.Tensor(w.Name)
		if !ok {
			problems = append(problems, fmt.Sprintf("tensor %s is missing (expected shape %v)", w.Name, w.Type.Shape))
			continue
		}
		switch t.DType.String() {
		case "F32", "F16", "BF16":
		default:
			dtypes = append(dtypes, fmt.Sprintf("tensor %s has dtype %s; llmc reads F32, F16 and BF16 weights", w.Name, t.DType))
			continue
		}
		want, _ := w.Type.Shape.Eval(nil)
		if !sameInts(want, t.Shape) {
			msg := fmt.Sprintf("tensor %s has shape %v, expected %v", w.Name, t.Shape, want)
			if hint := m.shapeHint(w.Name, t.Shape); hint != "" {
				msg += " (" + hint + ")"
			}
			problems = append(problems, msg)
		}
	}
	if extra := m.extraLayers(); extra != "" {
		problems = append(problems, extra)
	}
	var errs []error
	if len(dtypes) > 0 {
		errs = append(errs, fmt.Errorf("%s: the checkpoint stores weights in a dtype llmc does not read:%s", m.Dir, problemList(dtypes)))
	}
	if len(problems) > 0 {
		errs = append(errs, fmt.Errorf("%s: the weights do not match %s:%s", m.Dir, m.Config.Path, problemList(problems)))
	}
	return errors.Join(errs...)
}

// problemList formats problems one to an indented line, at most 8 of them.
func problemList(problems []string) string {
	if len(problems) > 8 {
		problems = append(problems[:8:8], fmt.Sprintf("and %d more", len(problems)-8))
	}
	return "\n  " + strings.Join(problems, "\n  ")
}

// extraLayers names the checkpoint's tensors of layers past the config's
// num_hidden_layers, which a graph of that many layers would silently
// leave out (a config and weights of different models): "" when none.
func (m *Model) extraLayers() string {
	const prefix = "model.layers."
	n, top, example := 0, -1, ""
	for _, name := range m.Tensors.Names() {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		l, err := strconv.Atoi(num)
		if err != nil || l < m.Config.NumLayers {
			continue
		}
		n++
		if l > top {
			top, example = l, name
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("the checkpoint has %d tensors of layers %d..%d (such as %s), but config.json's num_hidden_layers is %d: the config and the weights come from different models", n, m.Config.NumLayers, top, example, m.Config.NumLayers)
}

// shapeHint explains a projection shape mismatch in config terms.
func (m *Model) shapeHint(name string, found []int) string {
	c := m.Config
	switch {
	case strings.HasSuffix(name, "q_proj.weight") && len(found) == 2:
		return fmt.Sprintf("config: head_dim %d × num_attention_heads %d = %d rows, the tensor has %d", c.HeadDim, c.NumHeads, c.HeadDim*c.NumHeads, found[0])
	case (strings.HasSuffix(name, "k_proj.weight") || strings.HasSuffix(name, "v_proj.weight")) && len(found) == 2:
		return fmt.Sprintf("config: head_dim %d × num_key_value_heads %d = %d rows, the tensor has %d", c.HeadDim, c.NumKVHeads, c.HeadDim*c.NumKVHeads, found[0])
	case strings.HasSuffix(name, "embed_tokens.weight") && len(found) == 2:
		return fmt.Sprintf("config: vocab_size %d, hidden_size %d", c.VocabSize, c.HiddenSize)
	}
	return ""
}

// Float32 implements runtime.WeightSource: F32 tensors are returned as a
// view of the mapping when aligned, others are converted, after which the
// mapped pages they were converted from are released (see Release).
func (m *Model) Float32(name string) ([]float32, []int, error) {
	t, ok := m.Tensors.Tensor(name)
	if !ok {
		return nil, nil, fmt.Errorf("%s: tensor %s is missing", m.Dir, name)
	}
	if v, ok := t.Float32View(); ok {
		return v, t.Shape, nil
	}
	f, err := t.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: tensor %s: %w", m.Dir, name, err)
	}
	t.Release()
	return f, t.Shape, nil
}

// Elements implements runtime.DecodeSource.
func (m *Model) Elements(name string) (int, error) {
	t, ok := m.Tensors.Tensor(name)
	if !ok {
		return 0, fmt.Errorf("%s: tensor %s is missing", m.Dir, name)
	}
	return t.NumElements(), nil
}

// DecodeFloat32 implements runtime.DecodeSource: the tensor converted to
// float32 into dst (Float32 without the copy), after which its mapped
// pages are released.
func (m *Model) DecodeFloat32(name string, dst []float32) error {
	t, ok := m.Tensors.Tensor(name)
	if !ok {
		return fmt.Errorf("%s: tensor %s is missing", m.Dir, name)
	}
	if err := t.DecodeFloat32(dst); err != nil {
		return fmt.Errorf("%s: tensor %s: %w", m.Dir, name, err)
	}
	t.Release()
	return nil
}

// Float32View implements runtime.ViewSource: an F32 tensor in place.
func (m *Model) Float32View(name string) ([]float32, int, bool) {
	t, ok := m.Tensors.Tensor(name)
	if !ok {
		return nil, 0, false
	}
	v, ok := t.Float32View()
	return v, t.Slack(), ok
}

// BF16View implements runtime.ViewSource: a BF16 tensor in place.
func (m *Model) BF16View(name string) ([]uint16, int, bool) {
	t, ok := m.Tensors.Tensor(name)
	if !ok {
		return nil, 0, false
	}
	v, ok := t.BF16View()
	return v, t.Slack(), ok
}

// Release implements runtime.Releaser: the tensor's mapped pages leave
// the process's resident memory (they stay in the page cache).
func (m *Model) Release(name string) {
	if t, ok := m.Tensors.Tensor(name); ok {
		t.Release()
	}
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BF16 implements runtime.BF16Source: a BF16 tensor's elements as stored,
// in place when the mapping allows (see BF16View), else copied.
func (m *Model) BF16(name string) ([]uint16, error) {
	t, ok := m.Tensors.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: tensor %s is missing", m.Dir, name)
	}
	if t.DType.String() != "BF16" {
		return nil, fmt.Errorf("%s: tensor %s is %s, not BF16", m.Dir, name, t.DType)
	}
	if v, ok := t.BF16View(); ok {
		return v, nil
	}
	out := make([]uint16, len(t.Data)/2)
	for i := range out {
		out[i] = uint16(t.Data[2*i]) | uint16(t.Data[2*i+1])<<8
	}
	return out, nil
}
