package artifact

// Entry point names of compiled programs: llmc compile builds them, the
// run side calls them by these names.
const (
	EntryDecode     = "decode"      // static: one token, last logits
	EntryPrefill    = "prefill"     // static: a padded chunk, last real token's logits
	EntryPrefillAll = "prefill_all" // static: a padded chunk, every token's logits
	// EntryDecodeBatch is one step for several sequences at once
	// (compiled with --slots > 1, with a row per slot): row i is a token
	// of the sequence in slot Slots[i], at its own position, and gets its
	// own logits; every weight is read once for all the rows. Rows of one
	// sequence (at most a prefill chunk of them) run as a prefill does.
	EntryDecodeBatch = "decode_batch"
	// EntryPrefillBatch is a batched step with a prefill chunk's rows
	// more than EntryDecodeBatch (Slots + PrefillChunk), for steps that
	// carry a piece of some slot's prompt beside the others' decode
	// steps; it returns only the logits after the last row of each run
	// of one slot's rows (RowOutputs), at most Slots of them.
	EntryPrefillBatch = "prefill_batch"
	EntryForward      = "forward"     // dynamic: any number of tokens, last logits
	EntryForwardAll   = "forward_all" // dynamic: any number of tokens, all logits
)

// Backends a manifest records (Manifest.Backend): what ran the optimised
// program into the artifact, and so what loads it.
const (
	// BackendInterp artifacts hold only the optimised IR, which the
	// runtime interprets.
	BackendInterp = "interp"
	// BackendGo artifacts hold an executable (BackendInfo.Binary) with
	// the generated Go kernels linked in, which runs them.
	BackendGo = "go"
	// BackendLLVM artifacts hold a shared object (BackendInfo.Library)
	// and its layout (LayoutName), which the runtime loads.
	BackendLLVM = "llvm"
)

// A step's rows: an entry point of Seq rows reads its tokens buffer as
// RowFields arrays of Seq int32s, the token ids, then each row's position,
// then each row's slot, the sequence whose KV cache the row reads and
// writes (slot s holds cache rows [s·R, (s+1)·R) of every state of R rows
// per slot), then the outputs: the index of the last row of each run of
// consecutive rows in one slot, in order (the rows whose logits a batched
// step returns). Rows past the step's length are padding: their tokens
// are 0 and their position and slot those of the last real row, and
// outputs past the runs repeat the last.
const (
	RowTokens = iota
	RowPositions
	RowSlots
	RowOutputs
	RowFields
)

// FillRows writes a step's rows for an entry point of seq rows into dst
// (RowFields·seq int32s): tokens, then positions, then slots, one per
// token; the padding rows after them get token 0 and the last real row's
// position and slot. slots may be nil: every row is slot 0.
func FillRows(dst []int32, seq int, tokens, positions, slots []int32) {
	n := len(tokens)
	ids, pos, sl := dst[:seq], dst[RowPositions*seq:][:seq], dst[RowSlots*seq:][:seq]
	copy(ids, tokens)
	clear(ids[n:])
	copy(pos, positions[:n])
	if slots != nil {
		copy(sl, slots[:n])
	} else {
		clear(sl[:n])
	}
	for i := n; i < seq; i++ {
		pos[i], sl[i] = pos[n-1], sl[n-1]
	}
	outs := dst[RowOutputs*seq:][:seq]
	k := 0
	for i := range n {
		if i == n-1 || sl[i+1] != sl[i] {
			outs[k], k = int32(i), k+1
		}
	}
	for ; k < seq; k++ {
		outs[k] = int32(n - 1)
	}
}

// Consecutive returns n positions from pos on: the rows of one sequence.
func Consecutive(pos, n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(pos + i)
	}
	return p
}
