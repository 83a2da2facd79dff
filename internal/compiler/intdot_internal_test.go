package compiler

import (
	"testing"

	"github.com/llmc-dev/llmc/codegen/kir"
)

// TestHasIntDot: a program whose only integer dots are DotCols (every
// Q4_0 linear on interleaved rows, as TinyLlama's are) still gets the
// integer-dot form chosen for it; without it the LLVM emitter printed
// them in the portable form (TinyLlama Q4_0 prefill 213 tok/s, against
// 456 with VNNI's).
func TestHasIntDot(t *testing.T) {
	for _, c := range []struct {
		src  string
		want bool
	}{
		{`weight #0 w q4_0[16, 32] interleaved 16
buffer arena arena [48]
buffer scratch scratch [8]
buffer w_0 weight #0 q4_0 [288]

entry step (seq 1, arena 48, scratch 8) -> arena[32 : +[16]]
  kernel step_k0_matmul matmul -> ""  ()
    serial:
      store16 arena[32] = dotcols(w_0[32], scratch[0])
`, true},
		{`buffer arena arena [48]

entry step (seq 1, arena 48, scratch 0) -> arena[32 : +[16]]
  kernel step_k0_matmul matmul -> ""  ()
    serial:
      store8 arena[32] = load8 arena[0]
`, false},
	} {
		p, err := kir.Parse(c.src)
		if err != nil {
			t.Fatal(err)
		}
		if err := kir.Verify(p); err != nil {
			t.Fatal(err)
		}
		if got := hasIntDot(p); got != c.want {
			t.Errorf("hasIntDot = %v, want %v:\n%s", got, c.want, c.src)
		}
	}
}
