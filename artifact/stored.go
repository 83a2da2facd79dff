package artifact

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/llmc-dev/llmc/wformat"
)

// StoredWeightsName is the file of the weights an artifact stores itself
// (quantized by llmc compile --weights): the tensors' bytes one after
// another, each at a StoredAlign-aligned offset, indexed by the manifest's
// StoredWeights and covered by its checksums like every file.
const StoredWeightsName = "weights.bin"

// StoredAlign is the alignment of each tensor in StoredWeightsName: a page,
// so that a tensor can be mapped on its own, and more than any vector load
// needs.
const StoredAlign = 4096

// StoredTensor is one checkpoint tensor in StoredWeightsName: Rows × Cols
// weights in Format, each row padded to whole blocks.
type StoredTensor struct {
	Name   string         `json:"name"`
	Format wformat.Format `json:"format"`
	Rows   int            `json:"rows"`
	Cols   int            `json:"cols"`
	Offset int64          `json:"offset"`
	Bytes  int64          `json:"bytes"`
}

// WriteStoredWeights writes tensors (their Data) into dir's
// StoredWeightsName and returns their index, with offsets, for the
// manifest.
func WriteStoredWeights(dir string, tensors []StoredTensor, data [][]byte) ([]StoredTensor, error) {
	f, err := os.Create(filepath.Join(dir, StoredWeightsName))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]StoredTensor, len(tensors))
	var off int64
	for i, t := range tensors {
		if want := int64(t.Format.Bytes(t.Rows, t.Cols)); int64(len(data[i])) != want {
			return nil, fmt.Errorf("stored weight %s: %d bytes, %s [%d, %d] takes %d", t.Name, len(data[i]), t.Format, t.Rows, t.Cols, want)
		}
		off = (off + StoredAlign - 1) / StoredAlign * StoredAlign
		if _, err := f.WriteAt(data[i], off); err != nil {
			return nil, err
		}
		t.Offset, t.Bytes = off, int64(len(data[i]))
		out[i] = t
		off += t.Bytes
	}
	return out, f.Close()
}

// StoredWeights is an artifact's StoredWeightsName, mapped read-only.
type StoredWeights struct {
	path    string
	mem     []byte
	tensors map[string]StoredTensor
}

// OpenStoredWeights maps dir's stored weights; it returns nil (and no
// error) for an artifact that stores none.
func OpenStoredWeights(dir string, m *Manifest) (*StoredWeights, error) {
	if len(m.StoredWeights) == 0 {
		return nil, nil
	}
	path := filepath.Join(dir, StoredWeightsName)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", dir, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &StoredWeights{path: path, tensors: map[string]StoredTensor{}}
	if st.Size() > 0 {
		if s.mem, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED); err != nil {
			return nil, fmt.Errorf("mapping %s: %w", path, err)
		}
	}
	for _, t := range m.StoredWeights {
		if !t.Format.Valid() || t.Offset < 0 || t.Offset%StoredAlign != 0 || t.Bytes != int64(t.Format.Bytes(t.Rows, t.Cols)) || t.Offset+t.Bytes > int64(len(s.mem)) {
			s.Close()
			return nil, fmt.Errorf("artifact %s: stored weight %s (%s [%d, %d] at %d, %d bytes) does not fit %s: compile the artifact again",
				dir, t.Name, t.Format, t.Rows, t.Cols, t.Offset, t.Bytes, StoredWeightsName)
		}
		s.tensors[t.Name] = t
	}
	return s, nil
}

// Tensor returns a stored tensor's description and bytes (a view of the
// mapping).
func (s *StoredWeights) Tensor(name string) (StoredTensor, []byte, bool) {
	t, ok := s.tensors[name]
	if !ok {
		return StoredTensor{}, nil, false
	}
	return t, s.mem[t.Offset : t.Offset+t.Bytes : t.Offset+t.Bytes], true
}

// Release drops a stored tensor's pages from the process's resident set
// once they are copied (runtime.Releaser): they stay in the page cache,
// and reading the tensor again brings them back.
func (s *StoredWeights) Release(name string) {
	t, ok := s.tensors[name]
	if !ok || s.mem == nil {
		return
	}
	// Offsets are page-aligned, so the tensor's pages start at Offset;
	// its last, partial page is kept (the end is rounded down).
	end := (t.Offset + t.Bytes) / StoredAlign * StoredAlign
	if end > t.Offset {
		_ = syscall.Madvise(s.mem[t.Offset:end], syscall.MADV_DONTNEED)
	}
}

// Close unmaps the file.
func (s *StoredWeights) Close() error {
	if s == nil || s.mem == nil {
		return nil
	}
	err := syscall.Munmap(s.mem)
	s.mem = nil
	return err
}
