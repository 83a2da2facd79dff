package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/wformat"
)

// storedSource reads the tensors an artifact stores itself (quantized, in
// weights.bin) from there and the rest (norms, and whatever the policy
// kept in float) from the model folder: compiled programs take the stored
// bytes as they are (runtime.BlockSource), the interpreter takes them
// dequantised to float32, the reference the compiled kernels must match.
type storedSource struct {
	*hf.Model
	st *artifact.StoredWeights
}

// Float32 implements runtime.WeightSource.
func (s storedSource) Float32(name string) ([]float32, []int, error) {
	t, data, ok := s.st.Tensor(name)
	if !ok {
		return s.Model.Float32(name)
	}
	f, err := wformat.Dequantize(t.Format, t.Rows, t.Cols, data)
	if err != nil {
		return nil, nil, fmt.Errorf("stored weight %s: %w", name, err)
	}
	return f, []int{t.Rows, t.Cols}, nil
}

// Elements implements runtime.DecodeSource.
func (s storedSource) Elements(name string) (int, error) {
	if t, _, ok := s.st.Tensor(name); ok {
		return t.Rows * t.Cols, nil
	}
	return s.Model.Elements(name)
}

// DecodeFloat32 implements runtime.DecodeSource: a stored tensor
// dequantised, the others the checkpoint's.
func (s storedSource) DecodeFloat32(name string, dst []float32) error {
	if _, _, ok := s.st.Tensor(name); ok {
		f, _, err := s.Float32(name)
		if err != nil {
			return err
		}
		if len(f) != len(dst) {
			return fmt.Errorf("stored weight %s: %d elements, want %d", name, len(f), len(dst))
		}
		copy(dst, f)
		return nil
	}
	return s.Model.DecodeFloat32(name, dst)
}

// BF16 implements runtime.BF16Source for the tensors the artifact does not
// store (a stored one is not the checkpoint's bfloat16).
func (s storedSource) BF16(name string) ([]uint16, error) {
	if t, _, ok := s.st.Tensor(name); ok {
		return nil, fmt.Errorf("weight %s is stored in the artifact as %s", name, t.Format)
	}
	return s.Model.BF16(name)
}

// Release implements runtime.Releaser: a stored tensor's pages of
// weights.bin, or a checkpoint tensor's.
func (s storedSource) Release(name string) {
	if _, _, ok := s.st.Tensor(name); ok {
		s.st.Release(name)
		return
	}
	s.Model.Release(name)
}

// Blocks implements runtime.BlockSource.
func (s storedSource) Blocks(name string) ([]byte, wformat.Format, error) {
	t, data, ok := s.st.Tensor(name)
	if !ok {
		return nil, 0, fmt.Errorf("weight %s is not stored in the artifact's %s: compile the artifact again", name, artifact.StoredWeightsName)
	}
	return data, t.Format, nil
}

// checkStored checks that every weight a graph types in a block format is
// stored in the artifact in that format and shape.
func checkStored(st *artifact.StoredWeights, graphs []*ir.Graph) error {
	for _, g := range graphs {
		for _, w := range g.Weights {
			f, ok := w.Type.DType.Format()
			if !ok || !f.Blocked() || w.Derive != nil {
				continue
			}
			var t artifact.StoredTensor
			if st != nil {
				t, _, ok = st.Tensor(w.Name)
			}
			shape, _ := w.Type.Shape.Eval(nil)
			if !ok || t.Format != f || len(shape) != 2 || t.Rows != shape[0] || t.Cols != shape[1] {
				return fmt.Errorf("the program reads %s as %s%v, which the artifact's %s does not hold: compile the artifact again", w.Name, f, shape, artifact.StoredWeightsName)
			}
		}
	}
	return nil
}

// weightFormats names the formats of the weights a step reads, most
// bytes first ("q8_0+f32").
func weightFormats(by map[wformat.Format]int64) string {
	fs := make([]wformat.Format, 0, len(by))
	for f := range by {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b wformat.Format) int {
		if by[a] != by[b] {
			if by[a] > by[b] {
				return -1
			}
			return 1
		}
		return int(a) - int(b)
	})
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.String()
	}
	return strings.Join(names, "+")
}
