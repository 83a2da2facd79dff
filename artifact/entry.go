package artifact

// Entry point names of compiled programs: llmc compile builds them, the
// run side calls them by these names.
const (
	EntryDecode     = "decode"      // static: one token, last logits
	EntryPrefill    = "prefill"     // static: a padded chunk, last real token's logits
	EntryPrefillAll = "prefill_all" // static: a padded chunk, every token's logits
	EntryForward    = "forward"     // dynamic: any number of tokens, last logits
	EntryForwardAll = "forward_all" // dynamic: any number of tokens, all logits
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
