package wformat

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
)

// Q4_0 and Q8_0 weights can be kept with the rows of Group output columns
// interleaved, so that one 512-bit vector holds a block's quants of all of
// them and a kernel sums the group's columns in the lanes of one vector
// (one column a 32-bit lane) instead of a row at a time. Rows
// Group·G..Group·G+15 (group G) and block b of each are f.GroupBytes()
// bytes at (G·blocks + b)·f.GroupBytes():
//
//	[0, 32)               the sixteen float16 scales, row 16G+c's at 2c
//	[32+64k, 32+64(k+1))  bytes 4k..4k+3 of the sixteen rows' quant
//	                      bytes, row 16G+c's at 4c (chunk k)
//
// Q4_0 has four chunks (its 16 quant bytes): chunk k's low nibbles are
// quants 4k..4k+3 of each row and its high nibbles quants 16+4k..16+4k+3
// (see Q4_0Nibble); Q8_0 has eight, chunk k quants 4k..4k+3. The bytes
// are the plain layout's, moved: a tensor takes what it took.
const (
	Group       = 16
	GroupScales = 0
	GroupQuants = 2 * Group // the chunks of quants
)

// Interleaves reports whether f's rows can be interleaved in groups.
func (f Format) Interleaves() bool { return f == Q4_0 || f == Q8_0 }

// GroupBytes is the size of one block of a group of interleaved rows:
// 288 for Q4_0, 544 for Q8_0 (Group blocks); 0 for other formats.
func (f Format) GroupBytes() int {
	if !f.Interleaves() {
		return 0
	}
	return Group * f.BlockBytes()
}

// GroupChunks is how many chunks of 64 quant bytes a group block of f
// has.
func (f Format) GroupChunks() int { return (f.GroupBytes() - GroupQuants) / 64 }

// Interleave returns the Q4_0 or Q8_0 tensor src (rows × cols, rows a
// multiple of Group) in the interleaved layout above.
func Interleave(f Format, rows, cols int, src []byte) ([]byte, error) {
	dst := make([]byte, len(src))
	return dst, InterleaveTo(f, rows, cols, dst, src)
}

// InterleaveTo is Interleave into dst, which holds as many bytes as src
// and does not overlap it. The groups are split among the CPUs: loading a
// model moves every interleaved weight.
func InterleaveTo(f Format, rows, cols int, dst, src []byte) error {
	nb, err := interleaveShape(f, rows, cols, src)
	if err != nil {
		return err
	}
	if len(dst) != len(src) {
		return fmt.Errorf("interleaving a %s [%d, %d] tensor into %d bytes, want %d", f, rows, cols, len(dst), len(src))
	}
	bb, gb, chunks := f.BlockBytes(), f.GroupBytes(), f.GroupChunks()
	groups := func(lo, hi int) {
		// In the order dst is written, four bytes at a time.
		le := binary.LittleEndian
		for g := lo; g < hi; g++ {
			for b := range nb {
				out := dst[(g*nb+b)*gb:][:gb]
				for c := range Group {
					blk := src[((g*Group+c)*nb+b)*bb:][:bb]
					le.PutUint16(out[GroupScales+2*c:], le.Uint16(blk))
					for k := range chunks {
						le.PutUint32(out[GroupQuants+64*k+4*c:], le.Uint32(blk[2+4*k:]))
					}
				}
			}
		}
	}
	n := rows / Group
	workers := min(runtime.NumCPU(), max(1, len(src)>>20)) // a MiB or more each
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { groups(w*n/workers, (w+1)*n/workers) })
	}
	wg.Wait()
	return nil
}

// Deinterleave undoes Interleave.
func Deinterleave(f Format, rows, cols int, src []byte) ([]byte, error) {
	nb, err := interleaveShape(f, rows, cols, src)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, len(src))
	bb, gb, chunks := f.BlockBytes(), f.GroupBytes(), f.GroupChunks()
	for r := range rows {
		for b := range nb {
			blk := dst[(r*nb+b)*bb:][:bb]
			g, c := r/Group, r%Group
			in := src[(g*nb+b)*gb:]
			copy(blk[:2], in[GroupScales+2*c:])
			for k := range chunks {
				copy(blk[2+4*k:2+4*k+4], in[GroupQuants+64*k+4*c:])
			}
		}
	}
	return dst, nil
}

func interleaveShape(f Format, rows, cols int, src []byte) (blocks int, err error) {
	if !f.Interleaves() {
		return 0, fmt.Errorf("interleaving %s rows: only q4_0 and q8_0 rows interleave", f)
	}
	if rows%Group != 0 {
		return 0, fmt.Errorf("interleaving %s rows in groups of %d: %d rows", f, Group, rows)
	}
	if n := f.Bytes(rows, cols); len(src) != n {
		return 0, fmt.Errorf("interleaving a %s [%d, %d] tensor: %d bytes, want %d", f, rows, cols, len(src), n)
	}
	return f.Blocks(cols), nil
}
