package artifact

// The native ABI between the code codegen/llvm generates and its loader,
// runtime/native. A shared object built by llmc compile --backend llvm
// exports:
//
//	i64 llmc_abi                          ABIVersion
//	[N x i8] llmc_build_id                the manifest's build ID, NUL-terminated
//	void llmc_plan_<entry>(ctx*, i64* plan)
//	void llmc_step_<entry>(ctx*, i64* plan) one whole step of the entry point
//	team* llmc_threads_start(i64 n)       a team of n threads, the caller's included
//	void llmc_threads_stop(team*)         ends and frees a team
//	void <phase>(ctx*, i64 lo, i64 hi)    one per phase of every kernel
//
// ctx points to CtxWords 8-byte words (see the Ctx constants): pointers to
// the arena, scratch, token and plan memory and to arrays of weight and
// state pointers, the step's scalar inputs pos and len, and the thread team
// (or 0). The token memory holds the step's rows (RowFields): token ids,
// positions, slots and outputs (the outputs only where the layout's Tokens
// has room for them: a loader fills them for every entry point, and only
// one whose logits are "runs" reads them, so older layouts without them
// still load); pos is the largest position of a row, which only
// the plan's work estimates read. A phase reads ctx but never writes it; a parallel phase runs its
// outer loop for lo <= i < hi, a serial phase ignores lo and hi.
//
// llmc_step_<entry> is the one call a loader makes per step: it calls the
// plan function into plan, then every phase of every kernel in order. With
// a team in ctx, the team's threads run the step together: each parallel
// phase with at least two iterations and kir.ParallelMinWork (2^15
// multiply-adds) of work is split into one contiguous range per thread
// (units of the phase's grain, shared out as evenly as possible, the first
// ones taking one more), the other phases run on the calling thread, and
// the threads meet at a barrier wherever a split phase begins or ends, and
// before the call returns. A step in which no phase is split runs on the
// calling thread alone.
//
// llmc_threads_start creates n-1 threads (signals blocked, so that the
// host's signal handlers run on its own threads only) that wait for steps:
// they spin briefly, yield, then sleep on a condition variable, so an idle
// team costs no CPU. It returns 0 if memory or a thread could not be had.
// A team serves one step at a time, and must not be stopped during one.
//
// llmc_plan_<entry> evaluates, for the ctx's pos and len, what the loader
// needs to schedule the entry point: for phase i (in Layout order)
// plan[2i] is the parallel loop's trip count and plan[2i+1] its work
// estimate (multiply-adds; 1 and 0 for serial phases), and plan[2P] is the
// output's element offset in the arena.

// ABIVersion changes whenever the contract above does. Version 1 had no
// step or thread functions: its loader called every phase itself. Before
// version 3 the token memory held token ids only, and row i sat at
// position pos+i of the one sequence.
// MinABIVersion is the oldest version a loader still runs (version 1's
// shared objects, phase by phase from Go, so that a benchmark can set them
// beside current ones).
//
// Version 4 is version 3 with KV cache states stored in 16 bits (State.Dtype
// f16 or bf16: the state memory holds 2-byte elements). A program whose
// states are all float32 is still written as version 3, so that a loader of
// version 3 runs it; one with a 16-bit state is version 4, which such a
// loader refuses instead of allocating its states at the wrong size.
const (
	ABIVersion     = 4
	ABIVersionKV16 = 4
	MinABIVersion  = 1
)

// ABIFor is the native ABI version of a program with states: ABIVersionKV16
// when a state is stored in 16 bits, else 3.
func ABIFor(states []State) int {
	if Has16BitStates(states) {
		return ABIVersionKV16
	}
	return 3
}

// Words of the context block.
const (
	CtxArena   = iota // float*
	CtxScratch        // float*
	CtxTokens         // i32*: the step's rows (RowFields × the entry's Seq)
	CtxPos            // i64: the largest row position (before ABI 3: positions already cached)
	CtxLen            // i64: real tokens in this step
	CtxWeights        // float**: Layout.Weights' data, in order
	CtxStates         // float**: Layout.States' data, in order
	CtxTeam           // team*: from llmc_threads_start, or 0 to run on the caller alone (ABI 2)
	CtxWords
)

// Symbols of the shared object.
const (
	SymABI     = "llmc_abi"
	SymBuildID = "llmc_build_id"
	PlanPrefix = "llmc_plan_"
	StepPrefix = "llmc_step_"

	SymThreadsStart = "llmc_threads_start"
	SymThreadsStop  = "llmc_threads_stop"
)
