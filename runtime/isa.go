package runtime

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// Instruction sets a kernel can be specialised for, best first. The Go
// backend's generated kernels and the interpreter's hand-written ones pick
// the best one the CPU has (kernels built with GOEXPERIMENT=simd on amd64;
// otherwise only the portable code exists), unless LLMC_ISA caps it:
//
//	LLMC_ISA=avx512|avx2|scalar
//
// forces that instruction set or a lower one, so that every path can be
// tested and benchmarked on one machine. LLMC_NO_SIMD=1, the older switch,
// means LLMC_ISA=scalar. Commands refuse any other LLMC_ISA value
// (CheckISAEnv) before they compile or run anything.
const (
	ISAAVX512 = "avx512" // 512-bit vectors: AVX-512 F, CD, BW, DQ and VL
	ISAAVX2   = "avx2"   // 256-bit vectors: AVX2 and FMA
	ISAScalar = "scalar" // portable Go, no vector instructions
)

// ISAEnv is the environment variable that caps the instruction set.
const ISAEnv = "LLMC_ISA"

var isaRank = map[string]int{ISAScalar: 0, ISAAVX2: 1, ISAAVX512: 2}

var isaCap = sync.OnceValue(envISACap)

// envISACap is the rank of the best instruction set the environment
// allows now.
func envISACap() int {
	if os.Getenv("LLMC_NO_SIMD") != "" {
		return 0
	}
	if r, ok := isaRank[envISA()]; ok {
		return r
	}
	return isaRank[ISAAVX512]
}

// envISA is LLMC_ISA as the functions here read it: case and surrounding
// space aside.
func envISA() string { return strings.ToLower(strings.TrimSpace(os.Getenv(ISAEnv))) }

// CheckISAEnv returns an error naming LLMC_ISA and the values it takes
// when it is set to something else (case and surrounding space aside, as
// the rest of this file reads it), nil when it is unset, empty or valid.
// The functions below let an unknown value cap nothing; the commands that
// compile or run a model call this first, so that a misspelt cap is not
// ignored silently.
func CheckISAEnv() error {
	if _, ok := isaRank[envISA()]; ok || envISA() == "" {
		return nil
	}
	return fmt.Errorf("%s=%q: want %s, %s or %s", ISAEnv, os.Getenv(ISAEnv), ISAAVX512, ISAAVX2, ISAScalar)
}

// ISALimit is the best instruction set LLMC_ISA (or LLMC_NO_SIMD) allows
// now, read afresh on each call: ISAAVX512 when it caps nothing. The LLVM
// backend reads it at compile time to choose the form of its integer dot
// products, the kernels it prints being fixed once compiled.
func ISALimit() string {
	c := envISACap()
	for isa, r := range isaRank {
		if r == c {
			return isa
		}
	}
	return ISAAVX512
}

// PickISA returns the best of the instruction sets a kernel set was built
// for and the CPU has (any order) that LLMC_ISA allows, or ISAScalar.
// An unknown LLMC_ISA value caps nothing (CheckISAEnv refuses it).
func PickISA(have ...string) string {
	best := ISAScalar
	for _, h := range have {
		if r, ok := isaRank[h]; ok && r <= isaCap() && r > isaRank[best] {
			best = h
		}
	}
	return best
}

// eagerKernels are the interpreter's kernel sets by instruction set: the
// portable one, and those of dot_simd.go that this CPU runs.
var eagerKernels = map[string]eagerKernelSet{ISAScalar: {dot: dotScalar, dotBF16: dotBF16Scalar}}

// eagerKernelSet is one instruction set's kernels: dot of two float32
// vectors, and dotBF16 of a float32 vector with bfloat16 weights.
type eagerKernelSet struct {
	dot     func(a, b []float32) float32
	dotBF16 func(x []float32, w []uint16) float32
}

var eagerISA = ISAScalar

// init runs after dot_simd.go's, which registers the vector kernels (a
// package's files initialise in file name order).
func init() {
	have := make([]string, 0, len(eagerKernels))
	for isa := range eagerKernels {
		have = append(have, isa)
	}
	useEagerISA(PickISA(have...))
}

func useEagerISA(isa string) {
	eagerISA, dotKernel, dotBF16Kernel = isa, eagerKernels[isa].dot, eagerKernels[isa].dotBF16
}

// EagerISA is the instruction set of the interpreter's kernels in this
// process: the best one built in (GOEXPERIMENT=simd on amd64) that the CPU
// has and LLMC_ISA allows.
func EagerISA() string { return eagerISA }

// ForceEagerISA switches the interpreter's kernels to isa, for tests and
// benchmarks that compare them in one process, and returns the previous
// one. It reports false, changing nothing, when this binary or CPU has no
// kernels for isa. Not safe while a program runs.
func ForceEagerISA(isa string) (previous string, ok bool) {
	previous = eagerISA
	if _, ok := eagerKernels[isa]; !ok {
		return previous, false
	}
	useEagerISA(isa)
	return previous, true
}
