package runtime

import (
	"fmt"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/wformat"
)

// BlockSlack is how many bytes after a block-format weight a compiled
// program may read: the Go backend's vector kernels load a row's last
// eight int8 quants with a 16-byte load.
const BlockSlack = 16

// BlockSource is a WeightSource that also hands out tensors stored in a
// block format (an artifact's weights.bin) as stored: each row's blocks,
// padded.
type BlockSource interface {
	Blocks(name string) ([]byte, wformat.Format, error)
}

// FillBlocks gathers stored weight w (w.Stored(): a block format, or
// f16) from ws into dst, which holds exactly w.Bytes(): its parts' bytes
// one after another, since every row is its own blocks.
func FillBlocks(w *artifact.Weight, ws WeightSource, dst []byte) error {
	f := w.Fmt()
	src, ok := ws.(BlockSource)
	if !ok {
		return fmt.Errorf("weight %s: the weights cannot be read as %s (is the artifact's %s missing?)", w.Name, f, artifact.StoredWeightsName)
	}
	n := w.Bytes()
	if len(dst) < n {
		return fmt.Errorf("weight %s: %d bytes of memory for %d", w.Name, len(dst), n)
	}
	release := func(string) {}
	if r, ok := ws.(Releaser); ok {
		release = r.Release
	}
	// An interleaved weight is gathered into a buffer of its own first,
	// then moved into dst.
	plain := dst[:n]
	if w.Interleave != 0 {
		plain = make([]byte, n)
	}
	at := 0
	for _, name := range w.Parts() {
		data, g, err := src.Blocks(name)
		if err != nil {
			return err
		}
		defer release(name) // once copied: the mapped file need not stay resident
		if g != f {
			return fmt.Errorf("weight %s: %s is stored as %s, the program reads %s: compile the artifact again", w.Name, name, g, f)
		}
		if at+len(data) > n {
			return fmt.Errorf("weight %s: %s has more bytes than the artifact's %s [%d, %d]: compile the artifact again", w.Name, name, f, w.Rows, w.Cols)
		}
		at += copy(plain[at:], data)
	}
	if at != n {
		return fmt.Errorf("weight %s has %d bytes, the artifact expects %d (%s [%d, %d]): compile the artifact again", w.Name, at, n, f, w.Rows, w.Cols)
	}
	switch {
	case w.Interleave == 0:
	case w.Interleave == wformat.Group && f.Interleaves():
		if err := wformat.InterleaveTo(f, w.Rows, w.Cols, dst[:n], plain); err != nil {
			return fmt.Errorf("weight %s: %w", w.Name, err)
		}
	default:
		return fmt.Errorf("weight %s: rows interleaved by %d in %s: this runtime interleaves q4_0, q8_0 and q4_k by %d", w.Name, w.Interleave, f, wformat.Group)
	}
	return nil
}
