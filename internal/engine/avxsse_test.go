package engine

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
)

// TestNoAVXSSETransitions proves structurally what timing cannot show on an
// AMD CPU: that the vector kernels never run a legacy SSE instruction (a
// non-VEX MOVSS, ADDSS, MOVD, PXOR, XORPS, CVTSS2SD ... on an XMM register)
// while the upper halves of the YMM/ZMM registers are dirty, which costs
// tens of cycles per transition, or a false dependency per instruction, on
// Intel CPUs (the rule is explained in codegen/golang's package comment).
//
// It builds stories260K with the Go backend, disassembles the executable
// and checks every function of the generated kernels package, and the
// interpreter's vector kernels (runtime.dot256Body, dot512Body), which the
// executable links too.
//
// The scan is straight-line, in address order, per function: 256-bit or
// 512-bit VEX/EVEX code makes the state dirty, VZEROUPPER/VZEROALL makes it
// clean, and a legacy SSE instruction, a RET from a Program method or a
// call to a function outside the checked set while dirty is a failure. It
// does not follow branches: a loop whose back edge carries dirty state to a
// legacy instruction placed above the vector code would pass. Calls to the
// stack-growth stub are ignored (the compiler places them after the body,
// but they run from the prologue, before any vector code). It uses GNU
// objdump: go tool objdump decodes three-byte VEX forms (VFMADD231PS and
// others) as unrelated instructions and loses instruction boundaries after
// them, which would hide or invent legacy instructions.
func TestNoAVXSSETransitions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an executable")
	}
	objdump := requireObjdump(t)
	// stories260K (F32, and Q8_0: int8 and float16 loads), a bfloat16
	// model and gemma2 (tanh soft-capping, which has no vector form) cover
	// every kind of scalar code; KV caches stored in f16 and bf16 add their
	// widening loads and rounding stores.
	for _, c := range []struct{ model, weights, kv string }{
		{"stories260K", "", ""}, {"stories260K", "q8_0", ""}, {"stories260K", "q4_0", ""}, {"stories260K", "q4_k", ""}, {"llama-tiny-bf16", "", ""}, {"gemma2-tiny", "", ""},
		{"stories260K", "", "f16"}, {"stories260K", "", "bf16"},
	} {
		m := c.model
		name := m
		if c.weights != "" {
			name += "-" + c.weights
		}
		if c.kv != "" {
			name += "-kv-" + c.kv
		}
		t.Run(name, func(t *testing.T) {
			art := filepath.Join(t.TempDir(), name+".llmc")
			_, err := compiler.Compile(testshared.Path(t, "models", m), art, compiler.Options{
				KV: passes.Static, MaxSeq: 64, PrefillChunk: 8, Backend: "go",
				Weights: compiler.WeightOptions{Format: c.weights}, KVDtype: c.kv,
			})
			require.NoError(t, err)
			bin := filepath.Join(art, compiler.GoBinary)
			// The kernels, and runtime/vec's helpers where they are not
			// inlined.
			fns := checkTransitions(t, objdump, bin, `kernels\.|/llmc/runtime/vec\.`)
			require.Greater(t, fns, 10, "no kernel functions found in the disassembly")
			// The artifact's executable is built with GOEXPERIMENT=simd, so
			// it links the interpreter's vector kernels too.
			fns = checkTransitions(t, objdump, bin, `^github\.com/llmc-dev/llmc/runtime\.dot(256|512)Body$`)
			require.Equal(t, 2, fns, "runtime.dot256Body and dot512Body not found in the disassembly")
		})
	}
	// Rows 1,024 long take sixteen-lane dots (ZMM registers) where the CPU
	// has AVX-512 (TestGoWide); their scalar code must keep the rule too.
	shape, err := synth.LookupShape("tinyllama-1.1b")
	require.NoError(t, err)
	for _, dtype := range []synth.DType{"f32", "bf16"} {
		t.Run("tinyllama-small-"+string(dtype), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			_, err := synth.Write(dir, synth.Options{Shape: shape.Small(), Seed: 5, DType: dtype})
			require.NoError(t, err)
			art := filepath.Join(t.TempDir(), "m.llmc")
			_, err = compiler.Compile(dir, art, compiler.Options{KV: passes.Static, MaxSeq: 64, PrefillChunk: 8, Backend: "go"})
			require.NoError(t, err)
			fns := checkTransitions(t, objdump, filepath.Join(art, compiler.GoBinary), `kernels\.|/llmc/runtime/vec\.`)
			require.Greater(t, fns, 10, "no kernel functions found in the disassembly")
		})
	}
}

// checkTransitions disassembles bin and fails t for every transition in
// the functions whose names match pattern; it returns how many it checked.
func checkTransitions(t *testing.T, objdump, bin, pattern string) int {
	t.Helper()
	cmd := exec.Command(objdump, "-d", "--no-show-raw-insn", bin)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	fns, bad, err := scanTransitions(out, regexp.MustCompile(pattern))
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	if len(bad) > 0 {
		if len(bad) > 40 {
			bad = append(bad[:40], fmt.Sprintf("... and %d more", len(bad)-40))
		}
		t.Errorf("legacy SSE after 256-bit code without VZEROUPPER in %s:\n%s", bin, strings.Join(bad, "\n"))
	}
	return fns
}

var objdumpLabel = regexp.MustCompile(`^[0-9a-f]+ <(.*)>:$`)

// scanTransitions reads objdump -d output and reports the functions
// matching fn it checked and each transition found in them.
func scanTransitions(r io.Reader, fn *regexp.Regexp) (checked int, bad []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	name, on, dirty, method := "", false, false, false
	for sc.Scan() {
		line := sc.Text()
		if m := objdumpLabel.FindStringSubmatch(line); m != nil {
			name, on, dirty = m[1], fn.MatchString(m[1]), false
			method = strings.Contains(name, ").")
			if on {
				checked++
			}
			continue
		}
		if !on {
			continue
		}
		// "  addr:\tmnemonic operands"
		_, ins, ok := strings.Cut(line, ":\t")
		if !ok {
			continue
		}
		mn, ops, _ := strings.Cut(strings.TrimSpace(ins), " ")
		mn = strings.TrimSuffix(mn, ".s")
		vex := strings.HasPrefix(mn, "v")
		switch {
		case mn == "vzeroupper" || mn == "vzeroall":
			dirty = false
		case vex && writesWide(ops):
			dirty = true
		case !dirty:
		case !vex && strings.Contains(ops, "%xmm"):
			bad = append(bad, fmt.Sprintf("  %s: %s", name, strings.TrimSpace(ins)))
		case strings.HasPrefix(mn, "ret") && method:
			bad = append(bad, fmt.Sprintf("  %s: returns with dirty upper halves", name))
		case strings.HasPrefix(mn, "call"):
			callee := ops[strings.Index(ops, "<")+1:]
			callee = strings.TrimSuffix(callee, ">")
			if !fn.MatchString(strings.SplitN(callee, "+", 2)[0]) && !strings.Contains(callee, "morestack") && !strings.Contains(callee, "panic") {
				bad = append(bad, fmt.Sprintf("  %s: calls %s with dirty upper halves", name, callee))
			}
		}
	}
	return checked, bad, sc.Err()
}

// writesWide reports whether an AT&T operand list ends in a YMM or ZMM
// register: a VEX.256 or EVEX.512 instruction that writes one dirties the
// upper halves (reading one, or writing an XMM register with a VEX.128
// form, does not).
func writesWide(ops string) bool {
	ops = strings.TrimSpace(ops)
	if i := strings.Index(ops, "{"); i >= 0 { // AVX-512 masking: %zmm1{%k1}
		ops = strings.TrimSpace(ops[:i])
	}
	i := strings.LastIndex(ops, ",")
	last := ops[i+1:]
	return strings.HasPrefix(last, "%ymm") || strings.HasPrefix(last, "%zmm")
}

// TestScanTransitions shows the scan catches what it is for.
func TestScanTransitions(t *testing.T) {
	const dis = `
0000000000401000 <k.(*Program).bad>:
  401000:	vaddps %ymm1,%ymm2,%ymm3
  401004:	movss  0x10(%rip),%xmm2
  401008:	retq
0000000000401010 <k.(*Program).good>:
  401010:	xorps  %xmm1,%xmm1
  401014:	vfmadd231ps %ymm1,%ymm2,%ymm3
  401018:	vmovss (%rax),%xmm4
  40101a:	vmovups %ymm3,(%rax)
  40101c:	vzeroupper
  401020:	mulss  %xmm1,%xmm2
  401024:	retq
0000000000401030 <k.(*Program).leaks>:
  401030:	vmulps %ymm1,%ymm2,%ymm3
  401034:	retq
0000000000401038 <k.(*Program).reads>:
  401038:	vextractf128 $0x1,%ymm0,%xmm1
  40103c:	addss  %xmm1,%xmm2
  40103e:	retq
0000000000401040 <other>:
  401040:	vaddps %ymm1,%ymm2,%ymm3
  401044:	addss  %xmm1,%xmm2
`
	n, bad, err := scanTransitions(strings.NewReader(dis), regexp.MustCompile(`^k\.`))
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Equal(t, []string{
		"  k.(*Program).bad: movss  0x10(%rip),%xmm2",
		"  k.(*Program).bad: returns with dirty upper halves",
		"  k.(*Program).leaks: returns with dirty upper halves",
	}, bad)
}
