package wformat

import (
	"encoding/binary"
	"fmt"
)

// Q4_0 weights can be kept with the rows of Q4_0Group output columns
// interleaved, so that one 512-bit vector holds a block's quants of all of
// them and a kernel sums the group's columns in the lanes of one vector
// (one column a 32-bit lane) instead of a row at a time. Rows 16G..16G+15
// (group G) and block b of each are Q4_0GroupBytes bytes at
// (G·blocks + b)·Q4_0GroupBytes:
//
//	[0, 32)               the sixteen float16 scales, row 16G+c's at 2c
//	[32+64g, 32+64(g+1))  bytes 4g..4g+3 of the sixteen rows' 16 quant
//	                      bytes, row 16G+c's at 4c (g = 0..3)
//
// so that chunk g's low nibbles are quants 4g..4g+3 of each row and its
// high nibbles quants 16+4g..16+4g+3 (see Q4_0Nibble). The bytes are the
// plain layout's, moved: a tensor takes what it took.
const (
	Q4_0Group       = 16
	Q4_0GroupScales = 0
	Q4_0GroupQuants = 2 * Q4_0Group                  // the four chunks of quants
	Q4_0GroupBytes  = Q4_0GroupQuants + 16*Q4_0Group // 288: sixteen blocks of 18
)

// InterleaveQ4_0 returns the Q4_0 tensor src (rows × cols, rows a multiple
// of Q4_0Group) in the interleaved layout above.
func InterleaveQ4_0(rows, cols int, src []byte) ([]byte, error) {
	nb, err := interleaveShape(rows, cols, src)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, len(src))
	// In the order dst is written, four bytes at a time.
	le := binary.LittleEndian
	for g := range rows / Q4_0Group {
		for b := range nb {
			out := dst[(g*nb+b)*Q4_0GroupBytes:][:Q4_0GroupBytes]
			for c := range Q4_0Group {
				blk := src[((g*Q4_0Group+c)*nb+b)*18:][:18]
				le.PutUint16(out[Q4_0GroupScales+2*c:], le.Uint16(blk[Q4_0Scale:]))
				for k := range 4 {
					le.PutUint32(out[Q4_0GroupQuants+64*k+4*c:], le.Uint32(blk[Q4_0Quants+4*k:]))
				}
			}
		}
	}
	return dst, nil
}

// DeinterleaveQ4_0 undoes InterleaveQ4_0.
func DeinterleaveQ4_0(rows, cols int, src []byte) ([]byte, error) {
	nb, err := interleaveShape(rows, cols, src)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, len(src))
	for r := range rows {
		for b := range nb {
			blk := dst[(r*nb+b)*18:]
			g, c := r/Q4_0Group, r%Q4_0Group
			in := src[(g*nb+b)*Q4_0GroupBytes:]
			copy(blk[Q4_0Scale:Q4_0Scale+2], in[Q4_0GroupScales+2*c:])
			for k := range 4 {
				copy(blk[Q4_0Quants+4*k:Q4_0Quants+4*k+4], in[Q4_0GroupQuants+64*k+4*c:])
			}
		}
	}
	return dst, nil
}

func interleaveShape(rows, cols int, src []byte) (blocks int, err error) {
	if rows%Q4_0Group != 0 {
		return 0, fmt.Errorf("interleaving q4_0 rows in groups of %d: %d rows", Q4_0Group, rows)
	}
	if n := Q4_0.Bytes(rows, cols); len(src) != n {
		return 0, fmt.Errorf("interleaving a q4_0 [%d, %d] tensor: %d bytes, want %d", rows, cols, len(src), n)
	}
	return Q4_0.Blocks(cols), nil
}
