package artifact

// The native ABI between the code codegen/llvm generates and its loader,
// runtime/native. A shared object built by llmc compile --backend llvm
// exports:
//
//	i64 llmc_abi                          ABIVersion
//	[N x i8] llmc_build_id                the manifest's build ID, NUL-terminated
//	void llmc_plan_<entry>(ctx*, i64* plan)
//	void <phase>(ctx*, i64 lo, i64 hi)    one per phase of every kernel
//
// ctx points to CtxWords 8-byte words (see the Ctx constants): pointers to
// the arena, scratch, token and plan memory and to arrays of weight and
// state pointers, and the step's scalar inputs pos and len. A phase reads
// ctx but never writes it; a parallel phase runs its outer loop for
// lo <= i < hi, a serial phase ignores lo and hi (the loader passes 0, 1).
//
// llmc_plan_<entry> evaluates, for the ctx's pos and len, what the loader
// needs to schedule the entry point: for phase i (in Layout order)
// plan[2i] is the parallel loop's trip count and plan[2i+1] its work
// estimate (multiply-adds; 1 and 0 for serial phases), and plan[2P] is the
// output's element offset in the arena.

// ABIVersion changes whenever the contract above does.
const ABIVersion = 1

// Words of the context block.
const (
	CtxArena   = iota // float*
	CtxScratch        // float*
	CtxTokens         // i32*: the step's tokens, zero-padded to the entry's Seq
	CtxPos            // i64: positions already in the KV cache
	CtxLen            // i64: real tokens in this step
	CtxWeights        // float**: Layout.Weights' data, in order
	CtxStates         // float**: Layout.States' data, in order
	CtxWords
)

// Symbols of the shared object.
const (
	SymABI     = "llmc_abi"
	SymBuildID = "llmc_build_id"
	PlanPrefix = "llmc_plan_"
)
