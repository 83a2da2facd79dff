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
// one after another, since every row is its own blocks. A weight the
// kernels read with interleaved rows (w.Interleave) is moved into that
// layout as it is copied: each part straight from the mapped file when
// its rows are whole groups, else through a buffer of the plain weight.
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
	switch {
	case w.Interleave == 0:
	case w.Interleave == wformat.Group && f.Interleaves():
	default:
		return fmt.Errorf("weight %s: rows interleaved by %d in %s: this runtime interleaves q4_0, q8_0 and q4_k by %d", w.Name, w.Interleave, f, wformat.Group)
	}
	release := func(string) {}
	if r, ok := ws.(Releaser); ok {
		release = r.Release
	}
	parts := w.Parts()
	datas := make([][]byte, len(parts))
	at := 0
	for i, name := range parts {
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
		datas[i], at = data, at+len(data)
	}
	if at != n {
		return fmt.Errorf("weight %s has %d bytes, the artifact expects %d (%s [%d, %d]): compile the artifact again", w.Name, at, n, f, w.Rows, w.Cols)
	}
	if w.Interleave == 0 {
		at = 0
		for _, data := range datas {
			at += copy(dst[at:], data)
		}
		return nil
	}
	rowBytes := f.RowBytes(w.Cols)
	if wholeGroups(datas, rowBytes) {
		at = 0
		for _, data := range datas {
			if err := wformat.InterleaveTo(f, len(data)/rowBytes, w.Cols, dst[at:at+len(data)], data); err != nil {
				return fmt.Errorf("weight %s: %w", w.Name, err)
			}
			at += len(data)
		}
		return nil
	}
	// A group straddles two parts: gather them first.
	plain := make([]byte, 0, n)
	for _, data := range datas {
		plain = append(plain, data...)
	}
	if err := wformat.InterleaveTo(f, w.Rows, w.Cols, dst[:n], plain); err != nil {
		return fmt.Errorf("weight %s: %w", w.Name, err)
	}
	return nil
}

// wholeGroups reports whether every part is whole rows of rowBytes, a
// multiple of wformat.Group of them: then each part interleaves alone.
func wholeGroups(parts [][]byte, rowBytes int) bool {
	for _, p := range parts {
		if rowBytes == 0 || len(p)%rowBytes != 0 || (len(p)/rowBytes)%wformat.Group != 0 {
			return false
		}
	}
	return true
}
