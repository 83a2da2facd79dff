package llvm

import (
	"fmt"
	"strings"

	"github.com/llir/llvm/ir"
	"github.com/llir/llvm/ir/constant"
	"github.com/llir/llvm/ir/enum"
	"github.com/llir/llvm/ir/types"
	"github.com/llir/llvm/ir/value"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
)

// One call per step (see artifact/abi.go): @llmc_step_<entry> runs the
// plan and every phase of the entry point, and a team of native threads,
// made once by @llmc_threads_start, runs the split phases with it. The
// loader crosses from Go into the shared object once per step, and nothing
// inside a step goes through the Go runtime.
//
// All threads of a team run the same body, @llmc.body.<entry>(ctx, plan,
// tid, nt, team): for each phase it reads the trip count and work from the
// plan and decides, as every thread does alike, whether the phase is split;
// a split phase runs range tid of nt, any other phase only on thread 0. The
// threads meet at @llmc.barrier before and after each split phase; between
// two phases that thread 0 runs alone they do not meet at all.
//
// Waiting (@llmc.wait) polls the awaited word, then yields the processor,
// then sleeps on the team's condition variable, so a
// descheduled thread does not hold the others in a spin for a whole time
// slice, and an idle team costs no CPU. The waker (@llmc.wake) takes the
// mutex and broadcasts only when a sleeper has announced itself; the
// sleeper's announcement and the waker's store are sequentially consistent,
// so one of them always sees the other.

// Wait tuning: plain polls (a few microseconds), then yields (tens of
// microseconds when the processor is otherwise idle, less than a time
// slice when it is not), before a waiting thread sleeps. The polls have no
// pause hint: in a virtual machine a loop of PAUSE instructions triggers
// pause-loop exits (KVM's PLE, AMD's pause filter) that deschedule the
// waiting virtual CPU; measured on a KVM guest (AMD EPYC), prefill with two
// threads ran three times slower with it.
const (
	waitSpins  = 1 << 12
	waitYields = 64
)

// The team block's fields, in %llmc.team's order. The words threads poll
// are each on a cache line of their own.
const (
	teamN        = iota // i64: threads, the caller's included
	teamStarted         // i64: worker threads created
	teamBody            // the running step's body
	teamCtx             // its ctx
	teamPlan            // its plan
	teamQuit            // i64: 1 once the team is stopping
	teamPad0            // to 64 bytes
	teamGen             // i64: step generation, bumped to start a step
	teamPad1            //
	teamBarCount        // i64: threads arrived at the barrier
	teamPad2            //
	teamBarGen          // i64: barrier generation
	teamPad3            //
	teamSleepers        // i64: threads asleep (or about to sleep) on cond
	teamPad4            //
	teamMutex           // pthread_mutex_t, opaque (128 bytes: more than any libc's)
	teamCond            // pthread_cond_t, opaque
)

// sigset is opaque storage for a sigset_t (glibc's is 128 bytes, the
// largest).
var sigset = types.NewArray(16, i64)

type team struct {
	t, worker        *types.StructType
	ptr              *types.PointerType
	bodyT            *types.FuncType
	wait, wake, bar  *ir.Func
	run, workerMain  *ir.Func
	start, stop      *ir.Func
	lock, unlock     *ir.Func
	condWait, bcast  *ir.Func
	sigBlock, sigSet int64
}

func (g *gen) teamTypes() {
	pad := func(n uint64) types.Type { return types.NewArray(n, i64) }
	t := &team{}
	t.t = types.NewStruct()
	t.ptr = types.NewPointer(t.t)
	g.m.NewTypeDef("llmc.team", t.t)
	t.bodyT = types.NewFunc(types.Void, g.ctxPtr, types.NewPointer(i64), i64, i64, t.ptr)
	t.t.Fields = []types.Type{
		teamN: i64, teamStarted: i64, teamBody: types.NewPointer(t.bodyT), teamCtx: g.ctxPtr,
		teamPlan: types.NewPointer(i64), teamQuit: i64, teamPad0: pad(2),
		teamGen: i64, teamPad1: pad(7), teamBarCount: i64, teamPad2: pad(7),
		teamBarGen: i64, teamPad3: pad(7), teamSleepers: i64, teamPad4: pad(7),
		teamMutex: pad(16), teamCond: pad(16),
	}
	// A worker thread's start argument: its team, its thread index, and
	// its pthread_t.
	t.worker = types.NewStruct(t.ptr, i64, i64)
	g.m.NewTypeDef("llmc.worker", t.worker)
	g.team = t
}

// field returns &team->field i.
func (t *team) field(b *ir.Block, team value.Value, i int) value.Value {
	p := b.NewGetElementPtr(t.t, team, constant.NewInt(i32, 0), constant.NewInt(i32, int64(i)))
	p.InBounds = true
	return p
}

func (t *team) opaque(b *ir.Block, team value.Value, i int) value.Value {
	return b.NewBitCast(t.field(b, team, i), types.I8Ptr)
}

func atomicLoad(b *ir.Block, p value.Value, o enum.AtomicOrdering) value.Value {
	ld := b.NewLoad(i64, p)
	ld.Atomic, ld.Ordering, ld.Align = true, o, 8
	return ld
}

func atomicStore(b *ir.Block, v, p value.Value, o enum.AtomicOrdering) {
	st := b.NewStore(v, p)
	st.Atomic, st.Ordering, st.Align = true, o, 8
}

func load8(b *ir.Block, t types.Type, p value.Value) value.Value {
	ld := b.NewLoad(t, p)
	ld.Align = 8
	return ld
}

func store8(b *ir.Block, v, p value.Value) {
	st := b.NewStore(v, p)
	st.Align = 8
}

func i64c(n int64) *constant.Int { return constant.NewInt(i64, n) }

// signalConstants are SIG_BLOCK and SIG_SETMASK for the target: Linux's
// unless the triple names a BSD-derived system.
func signalConstants(triple string) (block, set int64) {
	for _, os := range []string{"darwin", "macos", "freebsd", "netbsd", "openbsd"} {
		if strings.Contains(triple, os) {
			return 1, 3
		}
	}
	return 0, 2
}

// teamRuntime defines the team's functions.
func (g *gen) teamRuntime() {
	t := g.team
	vp := types.I8Ptr
	t.lock = g.declare("pthread_mutex_lock", i32, vp)
	t.unlock = g.declare("pthread_mutex_unlock", i32, vp)
	t.condWait = g.declare("pthread_cond_wait", i32, vp, vp)
	t.bcast = g.declare("pthread_cond_broadcast", i32, vp)
	t.sigBlock, t.sigSet = signalConstants(g.o.Triple)
	internal := func(name string, ret types.Type, params ...*ir.Param) *ir.Func {
		f := g.m.NewFunc(name, ret, params...)
		f.Linkage = enum.LinkageInternal
		f.FuncAttrs = append(f.FuncAttrs, enum.FuncAttrNoUnwind)
		return f
	}

	// wait(team, word, old): returns once *word != old.
	{
		tm, word, old := ir.NewParam("team", t.ptr), ir.NewParam("word", types.NewPointer(i64)), ir.NewParam("old", i64)
		f := internal("llmc.wait", types.Void, tm, word, old)
		entry, spin, spinNext := f.NewBlock("entry"), f.NewBlock("spin"), f.NewBlock("spin.next")
		yield, yieldNext, park := f.NewBlock("yield"), f.NewBlock("yield.next"), f.NewBlock("park")
		check, sleep, woke, done := f.NewBlock("park.check"), f.NewBlock("park.sleep"), f.NewBlock("park.end"), f.NewBlock("done")
		entry.NewBr(spin)

		i := spin.NewPhi(ir.NewIncoming(i64c(0), entry))
		i.SetName("i")
		changed := spin.NewICmp(enum.IPredNE, atomicLoad(spin, word, enum.AtomicOrderingAcquire), old)
		spin.NewCondBr(changed, done, spinNext)
		in := spinNext.NewAdd(i, i64c(1))
		in.SetName("i.next")
		i.Incs = append(i.Incs, ir.NewIncoming(in, spinNext))
		spinNext.NewCondBr(spinNext.NewICmp(enum.IPredSLT, in, i64c(waitSpins)), spin, yield)

		j := yield.NewPhi(ir.NewIncoming(i64c(0), spinNext))
		j.SetName("j")
		yield.NewCall(g.declare("sched_yield", i32))
		changed = yield.NewICmp(enum.IPredNE, atomicLoad(yield, word, enum.AtomicOrderingAcquire), old)
		yield.NewCondBr(changed, done, yieldNext)
		jn := yieldNext.NewAdd(j, i64c(1))
		jn.SetName("j.next")
		j.Incs = append(j.Incs, ir.NewIncoming(jn, yieldNext))
		yieldNext.NewCondBr(yieldNext.NewICmp(enum.IPredSLT, jn, i64c(waitYields)), yield, park)

		mu, cond := t.opaque(park, tm, teamMutex), t.opaque(park, tm, teamCond)
		park.NewCall(t.lock, mu)
		park.NewAtomicRMW(enum.AtomicOpAdd, t.field(park, tm, teamSleepers), i64c(1), enum.AtomicOrderingSequentiallyConsistent)
		park.NewBr(check)
		changed = check.NewICmp(enum.IPredNE, atomicLoad(check, word, enum.AtomicOrderingSequentiallyConsistent), old)
		check.NewCondBr(changed, woke, sleep)
		sleep.NewCall(t.condWait, cond, mu)
		sleep.NewBr(check)
		woke.NewAtomicRMW(enum.AtomicOpSub, t.field(woke, tm, teamSleepers), i64c(1), enum.AtomicOrderingSequentiallyConsistent)
		woke.NewCall(t.unlock, mu)
		woke.NewBr(done)
		done.NewRet(nil)
		t.wait = f
	}

	// wake(team): wakes the sleepers, if any, after a word they may wait
	// on has changed (stored seq_cst).
	{
		tm := ir.NewParam("team", t.ptr)
		f := internal("llmc.wake", types.Void, tm)
		entry, bcast, done := f.NewBlock("entry"), f.NewBlock("broadcast"), f.NewBlock("done")
		s := atomicLoad(entry, t.field(entry, tm, teamSleepers), enum.AtomicOrderingSequentiallyConsistent)
		entry.NewCondBr(entry.NewICmp(enum.IPredEQ, s, i64c(0)), done, bcast)
		mu := t.opaque(bcast, tm, teamMutex)
		bcast.NewCall(t.lock, mu)
		bcast.NewCall(t.bcast, t.opaque(bcast, tm, teamCond))
		bcast.NewCall(t.unlock, mu)
		bcast.NewBr(done)
		done.NewRet(nil)
		t.wake = f
	}

	// barrier(team): returns once all the team's threads have called it.
	// The last to arrive resets the count, then bumps the generation.
	{
		tm := ir.NewParam("team", t.ptr)
		f := internal("llmc.barrier", types.Void, tm)
		entry, last, wait := f.NewBlock("entry"), f.NewBlock("last"), f.NewBlock("wait")
		n := load8(entry, i64, t.field(entry, tm, teamN))
		genP := t.field(entry, tm, teamBarGen)
		gen := atomicLoad(entry, genP, enum.AtomicOrderingAcquire)
		cnt := t.field(entry, tm, teamBarCount)
		arrived := entry.NewAtomicRMW(enum.AtomicOpAdd, cnt, i64c(1), enum.AtomicOrderingAcquireRelease)
		entry.NewCondBr(entry.NewICmp(enum.IPredEQ, arrived, entry.NewSub(n, i64c(1))), last, wait)
		atomicStore(last, i64c(0), cnt, enum.AtomicOrderingMonotonic)
		atomicStore(last, last.NewAdd(gen, i64c(1)), genP, enum.AtomicOrderingSequentiallyConsistent)
		last.NewCall(t.wake, tm)
		last.NewRet(nil)
		wait.NewCall(t.wait, tm, genP, gen)
		wait.NewRet(nil)
		t.bar = f
	}

	// run(team, body, ctx, plan): one step on every thread of the team.
	{
		tm, body := ir.NewParam("team", t.ptr), ir.NewParam("body", types.NewPointer(t.bodyT))
		ctx, plan := ir.NewParam("ctx", g.ctxPtr), ir.NewParam("plan", types.NewPointer(i64))
		f := internal("llmc.run", types.Void, tm, body, ctx, plan)
		b := f.NewBlock("entry")
		store8(b, body, t.field(b, tm, teamBody))
		store8(b, ctx, t.field(b, tm, teamCtx))
		store8(b, plan, t.field(b, tm, teamPlan))
		genP := t.field(b, tm, teamGen)
		gen := atomicLoad(b, genP, enum.AtomicOrderingMonotonic)
		atomicStore(b, b.NewAdd(gen, i64c(1)), genP, enum.AtomicOrderingSequentiallyConsistent)
		b.NewCall(t.wake, tm)
		b.NewCall(body, ctx, plan, i64c(0), load8(b, i64, t.field(b, tm, teamN)), tm)
		b.NewCall(t.bar, tm)
		b.NewRet(nil)
		t.run = f
	}

	// worker(arg): a worker thread's loop, one step per generation.
	{
		arg := ir.NewParam("arg", types.I8Ptr)
		f := internal("llmc.worker", types.I8Ptr, arg)
		entry, loop, run, exit := f.NewBlock("entry"), f.NewBlock("loop"), f.NewBlock("run"), f.NewBlock("exit")
		w := entry.NewBitCast(arg, types.NewPointer(t.worker))
		wf := func(i int64) value.Value {
			p := entry.NewGetElementPtr(t.worker, w, constant.NewInt(i32, 0), constant.NewInt(i32, i))
			p.InBounds = true
			return p
		}
		tm := load8(entry, t.ptr, wf(0))
		tid := load8(entry, i64, wf(1))
		entry.NewBr(loop)
		seen := loop.NewPhi(ir.NewIncoming(i64c(0), entry))
		seen.SetName("seen")
		genP := t.field(loop, tm, teamGen)
		loop.NewCall(t.wait, tm, genP, seen)
		gen := atomicLoad(loop, genP, enum.AtomicOrderingAcquire)
		quit := atomicLoad(loop, t.field(loop, tm, teamQuit), enum.AtomicOrderingAcquire)
		loop.NewCondBr(loop.NewICmp(enum.IPredNE, quit, i64c(0)), exit, run)
		body := load8(run, types.NewPointer(t.bodyT), t.field(run, tm, teamBody))
		run.NewCall(body, load8(run, g.ctxPtr, t.field(run, tm, teamCtx)), load8(run, types.NewPointer(i64), t.field(run, tm, teamPlan)),
			tid, load8(run, i64, t.field(run, tm, teamN)), tm)
		run.NewCall(t.bar, tm)
		run.NewBr(loop)
		seen.Incs = append(seen.Incs, ir.NewIncoming(gen, run))
		exit.NewRet(constant.NewNull(types.I8Ptr))
		t.workerMain = f
	}

	workers := func(b *ir.Block, tm value.Value) value.Value {
		end := b.NewGetElementPtr(t.t, tm, i64c(1))
		end.InBounds = true
		return b.NewBitCast(end, types.NewPointer(t.worker))
	}
	workerField := func(b *ir.Block, ws, i value.Value, f int64) value.Value {
		p := b.NewGetElementPtr(t.worker, ws, i, constant.NewInt(i32, f))
		p.InBounds = true
		return p
	}

	// llmc_threads_stop(team): ends the workers and frees the team.
	{
		tm := ir.NewParam("team", t.ptr)
		f := g.m.NewFunc(artifact.SymThreadsStop, types.Void, tm)
		f.FuncAttrs = append(f.FuncAttrs, enum.FuncAttrNoUnwind)
		entry, stop, loop, join, done, ret := f.NewBlock("entry"), f.NewBlock("stop"), f.NewBlock("join.cond"), f.NewBlock("join"), f.NewBlock("free"), f.NewBlock("ret")
		entry.NewCondBr(entry.NewICmp(enum.IPredEQ, tm, constant.NewNull(t.ptr)), ret, stop)
		atomicStore(stop, i64c(1), t.field(stop, tm, teamQuit), enum.AtomicOrderingSequentiallyConsistent)
		genP := t.field(stop, tm, teamGen)
		atomicStore(stop, stop.NewAdd(atomicLoad(stop, genP, enum.AtomicOrderingMonotonic), i64c(1)), genP, enum.AtomicOrderingSequentiallyConsistent)
		stop.NewCall(t.wake, tm)
		started := load8(stop, i64, t.field(stop, tm, teamStarted))
		ws := workers(stop, tm)
		stop.NewBr(loop)
		i := loop.NewPhi(ir.NewIncoming(i64c(0), stop))
		i.SetName("i")
		loop.NewCondBr(loop.NewICmp(enum.IPredSLT, i, started), join, done)
		th := load8(join, i64, workerField(join, ws, i, 2))
		join.NewCall(g.declare("pthread_join", i32, i64, types.NewPointer(types.I8Ptr)), th, constant.NewNull(types.NewPointer(types.I8Ptr)))
		in := join.NewAdd(i, i64c(1))
		i.Incs = append(i.Incs, ir.NewIncoming(in, join))
		join.NewBr(loop)
		done.NewCall(g.declare("pthread_mutex_destroy", i32, vp), t.opaque(done, tm, teamMutex))
		done.NewCall(g.declare("pthread_cond_destroy", i32, vp), t.opaque(done, tm, teamCond))
		done.NewCall(g.declare("free", types.Void, vp), done.NewBitCast(tm, vp))
		done.NewBr(ret)
		ret.NewRet(nil)
		t.stop = f
	}

	// llmc_threads_start(n): a team of n threads, or null.
	{
		n := ir.NewParam("n", i64)
		f := g.m.NewFunc(artifact.SymThreadsStart, t.ptr, n)
		f.FuncAttrs = append(f.FuncAttrs, enum.FuncAttrNoUnwind)
		entry, init, loop, create, next := f.NewBlock("entry"), f.NewBlock("init"), f.NewBlock("create.cond"), f.NewBlock("create"), f.NewBlock("create.next")
		done, ok, failed, oom := f.NewBlock("done"), f.NewBlock("ok"), f.NewBlock("failed"), f.NewBlock("oom")
		mem := entry.NewAlloca(types.I8Ptr)
		mem.SetName("mem")
		all, old := entry.NewAlloca(sigset), entry.NewAlloca(sigset)
		all.SetName("all")
		old.SetName("old")
		sizeOf := func(st types.Type) constant.Constant {
			end := constant.NewGetElementPtr(st, constant.NewNull(types.NewPointer(st)), i64c(1))
			return constant.NewPtrToInt(end, i64)
		}
		nw := entry.NewSub(n, i64c(1))
		nw.SetName("nworkers")
		size := entry.NewAdd(sizeOf(t.t), entry.NewMul(nw, sizeOf(t.worker)))
		size.SetName("size")
		rc := entry.NewCall(g.declare("posix_memalign", i32, types.NewPointer(types.I8Ptr), i64, i64), mem, i64c(64), size)
		entry.NewCondBr(entry.NewICmp(enum.IPredNE, rc, constant.NewInt(i32, 0)), oom, init)

		raw := load8(init, types.I8Ptr, mem)
		init.NewCall(g.declare("llvm.memset.p0i8.i64", types.Void, vp, types.I8, i64, types.I1), raw, constant.NewInt(types.I8, 0), size, constant.False)
		tm := init.NewBitCast(raw, t.ptr)
		tm.SetName("team")
		store8(init, n, t.field(init, tm, teamN))
		init.NewCall(g.declare("pthread_mutex_init", i32, vp, vp), t.opaque(init, tm, teamMutex), constant.NewNull(vp))
		init.NewCall(g.declare("pthread_cond_init", i32, vp, vp), t.opaque(init, tm, teamCond), constant.NewNull(vp))
		// The workers start with every signal blocked (they inherit the
		// mask), so that the host's handlers never run on them.
		sigmask := g.declare("pthread_sigmask", i32, i32, vp, vp)
		allP, oldP := init.NewBitCast(all, vp), init.NewBitCast(old, vp)
		init.NewCall(g.declare("sigfillset", i32, vp), allP)
		init.NewCall(sigmask, constant.NewInt(i32, t.sigBlock), allP, oldP)
		ws := workers(init, tm)
		init.NewBr(loop)

		i := loop.NewPhi(ir.NewIncoming(i64c(0), init))
		i.SetName("i")
		loop.NewCondBr(loop.NewICmp(enum.IPredSLT, i, nw), create, done)
		tid := create.NewAdd(i, i64c(1))
		tid.SetName("tid")
		store8(create, tm, workerField(create, ws, i, 0))
		store8(create, tid, workerField(create, ws, i, 1))
		wp := create.NewGetElementPtr(t.worker, ws, i)
		wp.InBounds = true
		pthreadCreate := g.declare("pthread_create", i32, types.NewPointer(i64), vp, types.NewPointer(t.workerMain.Sig), vp)
		rc = create.NewCall(pthreadCreate, workerField(create, ws, i, 2), constant.NewNull(vp), t.workerMain, create.NewBitCast(wp, vp))
		create.NewCondBr(create.NewICmp(enum.IPredEQ, rc, constant.NewInt(i32, 0)), next, done)
		store8(next, tid, t.field(next, tm, teamStarted))
		i.Incs = append(i.Incs, ir.NewIncoming(tid, next))
		next.NewBr(loop)

		done.NewCall(sigmask, constant.NewInt(i32, t.sigSet), oldP, constant.NewNull(vp))
		started := load8(done, i64, t.field(done, tm, teamStarted))
		done.NewCondBr(done.NewICmp(enum.IPredSGE, started, nw), ok, failed)
		ok.NewRet(tm)
		failed.NewCall(t.stop, tm)
		failed.NewRet(constant.NewNull(t.ptr))
		oom.NewRet(constant.NewNull(t.ptr))
		t.start = f
	}
}

// BodySymbol is the function that runs an entry point's phases on one
// thread of a team; StepSymbol the entry point's step function.
func BodySymbol(e *kir.Entry) string { return "llmc.body." + e.Name }
func StepSymbol(e *kir.Entry) string { return artifact.StepPrefix + e.Name }

// step defines an entry point's body and step functions; phases are the
// functions to call for its phases in order (a phase's own, or the one
// whose body it shares: see dedupe), names the phases' symbols, plan its
// plan function.
func (g *gen) step(e *kir.Entry, plan *ir.Func, phases []*ir.Func, names []string, infos []*kir.Phase) {
	t := g.team
	planT := types.NewPointer(i64)

	// The body: hidden (not exported from the shared object) but not
	// internal, so that Split deals it to one part like the phases.
	ctx, pl, tid, nt, tm := ir.NewParam("ctx", g.ctxPtr), ir.NewParam("plan", planT), ir.NewParam("tid", i64), ir.NewParam("nt", i64), ir.NewParam("team", t.ptr)
	body := g.m.NewFunc(BodySymbol(e), types.Void, ctx, pl, tid, nt, tm)
	body.Visibility = enum.VisibilityHidden
	body.FuncAttrs = append(body.FuncAttrs, enum.FuncAttrNoUnwind)
	b := body.NewBlock("entry")
	first := b.NewICmp(enum.IPredEQ, tid, i64c(0))
	first.SetName("first")
	many := b.NewICmp(enum.IPredSGT, nt, i64c(1))
	many.SetName("many")
	var prevSplit value.Value // nil: thread 0 alone ran the previous phase
	for i, ph := range infos {
		name := names[i]
		var cnt, split value.Value
		if ph.Parallel {
			cnt, split = splitsAt(b, pl, i, many)
			cnt.(value.Named).SetName(fmt.Sprintf("n%d", i))
			split.(value.Named).SetName(fmt.Sprintf("split%d", i))
		}
		// Nothing ran before the first phase: the workers start the step
		// after thread 0 has written the plan.
		if need := or(b, prevSplit, split); need != nil && i > 0 {
			bar, run := body.NewBlock(name+".barrier"), body.NewBlock(name)
			b.NewCondBr(need, bar, run)
			bar.NewCall(t.bar, tm)
			bar.NewBr(run)
			b = run
		}
		if !ph.Parallel {
			call, next := body.NewBlock(name+".call"), body.NewBlock(name+".done")
			b.NewCondBr(first, call, next)
			call.NewCall(phases[i], ctx, i64c(0), i64c(1))
			call.NewBr(next)
			b, prevSplit = next, nil
			continue
		}
		whole, call := body.NewBlock(name+".whole"), body.NewBlock(name+".call")
		chunk, callc := body.NewBlock(name+".chunk"), body.NewBlock(name+".call.chunk")
		next := body.NewBlock(name + ".done")
		b.NewCondBr(split, chunk, whole)
		// Unsplit: thread 0 runs [0, n).
		whole.NewCondBr(whole.NewAnd(first, whole.NewICmp(enum.IPredSGT, cnt, i64c(0))), call, next)
		call.NewCall(phases[i], ctx, i64c(0), cnt)
		call.NewBr(next)
		// Split: thread tid runs range tid of min(nt, units) ranges of
		// grain-sized units.
		lo, hi, active := chunkBounds(chunk, cnt, tid, nt, max(ph.Grain, 1))
		lo.(value.Named).SetName(name + ".lo")
		hi.(value.Named).SetName(name + ".hi")
		chunk.NewCondBr(active, callc, next)
		callc.NewCall(phases[i], ctx, lo, hi)
		callc.NewBr(next)
		b, prevSplit = next, split
	}
	b.NewRet(nil)

	// The step function: the plan, then the body on the team if some
	// phase is split, else on the caller alone.
	ctx, pl = ir.NewParam("ctx", g.ctxPtr), ir.NewParam("plan", planT)
	f := g.m.NewFunc(StepSymbol(e), types.Void, ctx, pl)
	f.FuncAttrs = append(f.FuncAttrs, enum.FuncAttrNoUnwind)
	entry, check, alone, together := f.NewBlock("entry"), f.NewBlock("check"), f.NewBlock("alone"), f.NewBlock("together")
	entry.NewCall(plan, ctx, pl)
	tp := entry.NewGetElementPtr(g.ctxT, ctx, constant.NewInt(i32, 0), constant.NewInt(i32, artifact.CtxTeam))
	tp.InBounds = true
	team := load8(entry, t.ptr, tp)
	team.(value.Named).SetName("team")
	entry.NewCondBr(entry.NewICmp(enum.IPredEQ, team, constant.NewNull(t.ptr)), alone, check)
	var any value.Value
	n := load8(check, i64, t.field(check, team, teamN))
	tmany := check.NewICmp(enum.IPredSGT, n, i64c(1))
	for i, ph := range infos {
		if ph.Parallel {
			_, s := splitsAt(check, pl, i, tmany)
			any = or(check, any, s)
		}
	}
	if any == nil {
		any = constant.False
	}
	check.NewCondBr(any, together, alone)
	alone.NewCall(body, ctx, pl, i64c(0), i64c(1), constant.NewNull(t.ptr))
	alone.NewRet(nil)
	together.NewCall(t.run, team, body, ctx, pl)
	together.NewRet(nil)
}

// chunkBounds is thread tid's range [lo, hi) of [0, cnt) split into
// chunks = min(nt, units) ranges of units of grain indices, as evenly as
// possible with the first units%chunks ranges taking one more (the last
// ends at cnt), and whether tid has a range (tid < chunks).
func chunkBounds(c *ir.Block, cnt, tid, nt value.Value, grain int) (lo, hi, active value.Value) {
	units := cnt
	if grain > 1 {
		units = c.NewSDiv(c.NewAdd(cnt, i64c(int64(grain-1))), i64c(int64(grain)))
	}
	chunks := c.NewSelect(c.NewICmp(enum.IPredSLT, nt, units), nt, units)
	base, extra := c.NewSDiv(units, chunks), c.NewSRem(units, chunks)
	before := c.NewICmp(enum.IPredSLT, tid, extra)
	u := c.NewAdd(c.NewMul(tid, base), c.NewSelect(before, tid, extra))
	end := c.NewAdd(c.NewAdd(u, base), c.NewZExt(before, i64))
	lo, hi = u, value.Value(end)
	if grain > 1 {
		lo, hi = c.NewMul(u, i64c(int64(grain))), c.NewMul(end, i64c(int64(grain)))
	}
	hi = c.NewSelect(c.NewICmp(enum.IPredEQ, tid, c.NewSub(chunks, i64c(1))), cnt, hi)
	return lo, hi, c.NewICmp(enum.IPredSLT, tid, chunks)
}

// splitsAt loads phase i's trip count from the plan and tests whether the
// phase is split: many threads, two iterations and kir.ParallelMinWork.
func splitsAt(b *ir.Block, pl value.Value, i int, many value.Value) (cnt, split value.Value) {
	at := func(k int) value.Value {
		p := b.NewGetElementPtr(i64, pl, i64c(int64(k)))
		p.InBounds = true
		return load8(b, i64, p)
	}
	cnt, work := at(2*i), at(2*i+1)
	split = b.NewAnd(many, b.NewAnd(b.NewICmp(enum.IPredSGE, cnt, i64c(2)), b.NewICmp(enum.IPredSGE, work, i64c(kir.ParallelMinWork))))
	return cnt, split
}

// or is x || y, where nil is false.
func or(b *ir.Block, x, y value.Value) value.Value {
	switch {
	case x == nil:
		return y
	case y == nil:
		return x
	}
	return b.NewOr(x, y)
}
