// Package safetensors reads and writes the Hugging Face safetensors format,
// the usual container for the weights that llmc compiles against.
//
// # Format
//
// A safetensors file has three parts:
//
//	+---------+-----------------------+----------------------------+
//	| N (u64) | header: N bytes JSON  | data section               |
//	+---------+-----------------------+----------------------------+
//
// N is an unsigned 64-bit little-endian integer. The header is a UTF-8 JSON
// object that maps each tensor name to an entry
//
//	{"dtype": "BF16", "shape": [4096, 1024], "data_offsets": [begin, end]}
//
// plus an optional "__metadata__" key holding a string-to-string map. The
// offsets are byte offsets relative to the start of the data section; a
// tensor's bytes are data[begin:end], stored row-major and little-endian.
// Writers pad the header with trailing spaces so that the data section starts
// at a multiple of 8 bytes, which is what [Write] does too.
//
// # Reading
//
// [Open] memory-maps a file read-only (on Unix; elsewhere it reads the file
// into memory) and hands out [Tensor] values whose Data aliases the mapping,
// so opening a large checkpoint costs no copy. The mapping lives until
// [File.Close]; byte slices and [Tensor.Float32View] results must not be used
// after that. [OpenDir] opens a model directory, including checkpoints
// sharded with a model.safetensors.index.json, as one [Set].
//
// # Validation
//
// Open checks the whole header before returning, so that later stages can
// trust every tensor it returns. It rejects, with a [*FormatError] that names
// the file and, where there is one, the tensor:
//
//   - a file shorter than the 8-byte length prefix;
//   - a header length beyond the end of the file or above 100 MiB;
//   - a header that is not UTF-8, not JSON, not a single JSON object, or that
//     repeats a key;
//   - an unknown dtype, a shape that is not an array of non-negative
//     integers, or data_offsets that are not two non-negative integers with
//     begin <= end;
//   - a tensor that ends beyond the data section (a truncated file);
//   - a tensor whose byte length differs from its element count times its
//     dtype size, or whose size computation overflows;
//   - two tensors whose byte ranges overlap;
//   - a "__metadata__" value that is not a map of strings.
//
// Unlike the reference implementation, gaps between tensors and bytes after
// the last tensor are allowed: they cannot make a tensor read wrong data.
// No input makes Open panic; FuzzOpen checks this.
//
// # Conversions
//
// [Tensor.Float32] and [Tensor.DecodeFloat32] widen the floating-point and
// integer dtypes to float32. The single-value helpers [F16ToFloat32],
// [BF16ToFloat32], [Float32ToF16] and [Float32ToBF16] are exact where the
// target can hold the value and otherwise round to nearest, ties to even.
package safetensors
