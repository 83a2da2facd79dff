package wformat

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
)

// Q4_0, Q8_0 and Q4_K weights can be kept with the rows of Group output
// columns interleaved, so that one 512-bit vector holds a block's quants
// of all of them and a kernel sums the group's columns in the lanes of
// one vector (one column a 32-bit lane) instead of a row at a time. The
// group of rows Group·G..Group·G+15 takes the bytes those rows take in
// the plain layout, at the same place; block b of the group (Group times
// the row's block b, a partial Q4_K block as short as the row's) holds,
// row 16G+c's parts at:
//
//	Q4_0, Q8_0: [0, 32)    the float16 scales, row c's at 2c
//	Q4_K:       [0, 32)    the float16 d, at 2c (Q4_KGroupScale)
//	            [32, 64)   the float16 dmin, at 32+2c (Q4_KGroupMin)
//	            [64, 256)  scale byte k of the twelve at 64+16k+c
//	                       (Q4_KGroupScales)
//	then, from GroupQuants(f), chunks of 64 bytes: chunk k holds bytes
//	4k..4k+3 of the sixteen rows' quant bytes, row c's at 4c.
//
// Q4_0 has four chunks (its 16 quant bytes): chunk k's low nibbles are
// quants 4k..4k+3 of each row and its high nibbles quants 16+4k..16+4k+3
// (see Q4_0Nibble); Q8_0 has eight, chunk k quants 4k..4k+3. Q4_K has
// eight for each pair of sub-blocks 2p, 2p+1 (its 32 bytes from 32p,
// Q4_KNibble): chunk 8p+k's low nibbles are quants 4k..4k+3 of sub-block
// 2p and its high nibbles those of sub-block 2p+1.
const (
	Group       = 16
	GroupScales = 0
	GroupQuants = 2 * Group // Q4_0's and Q8_0's chunks of quants

	Q4_KGroupScale  = 0
	Q4_KGroupMin    = 2 * Group
	Q4_KGroupScales = 4 * Group
	Q4_KGroupQuants = 16 * Group
)

// Interleaves reports whether f's rows can be interleaved in groups.
func (f Format) Interleaves() bool { return f == Q4_0 || f == Q8_0 || f == Q4_K }

// GroupBytes is the size of one whole block of a group of interleaved
// rows: 288 for Q4_0, 544 for Q8_0, 2304 for Q4_K (Group blocks); 0 for
// other formats.
func (f Format) GroupBytes() int {
	if !f.Interleaves() {
		return 0
	}
	return Group * f.BlockBytes()
}

// GroupQuantsAt is the offset of the chunks of quants in a group block
// of f: GroupQuants, or Q4_KGroupQuants.
func (f Format) GroupQuantsAt() int {
	if f == Q4_K {
		return Q4_KGroupQuants
	}
	return GroupQuants
}

// GroupChunks is how many chunks of 64 quant bytes a whole group block
// of f has.
func (f Format) GroupChunks() int { return (f.GroupBytes() - f.GroupQuantsAt()) / 64 }

// Interleave returns the Q4_0, Q8_0 or Q4_K tensor src (rows × cols, rows
// a multiple of Group) in the interleaved layout above.
func Interleave(f Format, rows, cols int, src []byte) ([]byte, error) {
	dst := make([]byte, len(src))
	return dst, InterleaveTo(f, rows, cols, dst, src)
}

// InterleaveTo is Interleave into dst, which holds as many bytes as src
// and does not overlap it. The groups are split among the CPUs: loading a
// model moves every interleaved weight.
func InterleaveTo(f Format, rows, cols int, dst, src []byte) error {
	if err := interleaveShape(f, rows, cols, src); err != nil {
		return err
	}
	if len(dst) != len(src) {
		return fmt.Errorf("interleaving a %s [%d, %d] tensor into %d bytes, want %d", f, rows, cols, len(dst), len(src))
	}
	n := rows / Group
	workers := min(runtime.NumCPU(), max(1, len(src)>>20)) // a MiB or more each
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { moveGroups(f, cols, dst, src, w*n/workers, (w+1)*n/workers, false) })
	}
	wg.Wait()
	return nil
}

// Deinterleave undoes Interleave.
func Deinterleave(f Format, rows, cols int, src []byte) ([]byte, error) {
	if err := interleaveShape(f, rows, cols, src); err != nil {
		return nil, err
	}
	dst := make([]byte, len(src))
	moveGroups(f, cols, src, dst, 0, rows/Group, true)
	return dst, nil
}

// moveGroups moves groups lo..hi-1 of a tensor of cols columns from the
// plain layout to the interleaved one, or back.
func moveGroups(f Format, cols int, ilv, plain []byte, lo, hi int, back bool) {
	rb, bb, be := f.RowBytes(cols), f.BlockBytes(), f.BlockElems()
	nb := f.Blocks(cols)
	for g := lo; g < hi; g++ {
		for b := range nb {
			size := bb
			if b == nb-1 && cols%be != 0 {
				size = f.TailBytes(cols % be)
			}
			grp := ilv[g*Group*rb+b*Group*bb:][:Group*size]
			for c := range Group {
				blk := plain[(g*Group+c)*rb+b*bb:][:size]
				if back {
					moveBlock(f, grp, blk, c, back)
				} else {
					putBlock(f, grp, blk, c)
				}
			}
		}
	}
}

// moveBlock moves one row's block blk into row c's places in the group
// block grp, or back.
func moveBlock(f Format, grp, blk []byte, c int, back bool) {
	move := func(at, from, n int) {
		if back {
			copy(blk[from:from+n], grp[at:])
		} else {
			copy(grp[at:at+n], blk[from:])
		}
	}
	quants, q0 := 2, GroupQuants
	if f == Q4_K {
		move(Q4_KGroupScale+2*c, Q4_KScale, 2)
		move(Q4_KGroupMin+2*c, Q4_KMin, 2)
		for k := range Q4_KQuants - Q4_KScales {
			move(Q4_KGroupScales+Group*k+c, Q4_KScales+k, 1)
		}
		quants, q0 = Q4_KQuants, Q4_KGroupQuants
	} else {
		move(GroupScales+2*c, 0, 2)
	}
	// Four bytes at a time, in the order the interleaved side is read
	// or written.
	le := binary.LittleEndian
	q := blk[quants:]
	for k := 0; 4*k < len(q); k++ {
		at := grp[q0+64*k+4*c:]
		if back {
			le.PutUint32(q[4*k:], le.Uint32(at))
		} else {
			le.PutUint32(at, le.Uint32(q[4*k:]))
		}
	}
}

// putBlock is moveBlock forward, which every load runs over every
// interleaved weight: row c's block blk into its places in the group
// block grp, without moveBlock's closure and per-move direction.
func putBlock(f Format, grp, blk []byte, c int) {
	le := binary.LittleEndian
	quants, q0 := 2, GroupQuants
	if f == Q4_K {
		le.PutUint16(grp[Q4_KGroupScale+2*c:], le.Uint16(blk[Q4_KScale:]))
		le.PutUint16(grp[Q4_KGroupMin+2*c:], le.Uint16(blk[Q4_KMin:]))
		scales := blk[Q4_KScales:Q4_KQuants]
		for k, x := range scales {
			grp[Q4_KGroupScales+Group*k+c] = x
		}
		quants, q0 = Q4_KQuants, Q4_KGroupQuants
	} else {
		le.PutUint16(grp[GroupScales+2*c:], le.Uint16(blk))
	}
	q := blk[quants:]
	dst := grp[q0+4*c:]
	for k := 0; k+4 <= len(q); k += 4 {
		le.PutUint32(dst[16*k:], le.Uint32(q[k:]))
	}
}

func interleaveShape(f Format, rows, cols int, src []byte) error {
	if !f.Interleaves() {
		return fmt.Errorf("interleaving %s rows: only q4_0, q8_0 and q4_k rows interleave", f)
	}
	if rows%Group != 0 {
		return fmt.Errorf("interleaving %s rows in groups of %d: %d rows", f, Group, rows)
	}
	if n := f.Bytes(rows, cols); len(src) != n {
		return fmt.Errorf("interleaving a %s [%d, %d] tensor: %d bytes, want %d", f, rows, cols, len(src), n)
	}
	return nil
}
