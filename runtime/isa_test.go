package runtime

import (
	"math"
	"testing"
)

// TestDotKernels checks every interpreter dot kernel this binary and CPU
// have against the portable one, at lengths around each vector width: dot
// of float32 vectors, and of float32 by bfloat16 weights.
func TestDotKernels(t *testing.T) {
	a, b := make([]float32, 300), make([]float32, 300)
	for i := range a {
		a[i], b[i] = float32(math.Sin(float64(i))), float32(math.Cos(float64(3*i)))
	}
	// b's elements rounded to bfloat16 (the high half of their bits), as
	// bits and widened back.
	h, hw := make([]uint16, len(b)), make([]float32, len(b))
	for i, v := range b {
		h[i] = uint16(math.Float32bits(v) >> 16)
		hw[i] = math.Float32frombits(uint32(h[i]) << 16)
	}
	for isa, k := range eagerKernels {
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 288, 300} {
			want, got := dotScalar(a[:n], b[:n]), k.dot(a[:n], b[:n])
			if math.Abs(float64(got-want)) > 1e-4 {
				t.Errorf("%s dot of %d: %v, want %v", isa, n, got, want)
			}
			// Against dot of the widened weights: a kernel that read the
			// bits wrong (unshifted, sign-extended, the other half) is far off.
			want, got = dotScalar(a[:n], hw[:n]), k.dotBF16(a[:n], h[:n])
			if math.Abs(float64(got-want)) > 1e-4 {
				t.Errorf("%s dotBF16 of %d: %v, want %v", isa, n, got, want)
			}
		}
	}
}

func TestPickISA(t *testing.T) {
	if isaCap() != isaRank[ISAAVX512] {
		t.Skip("LLMC_ISA or LLMC_NO_SIMD is set")
	}
	for _, c := range []struct {
		have []string
		want string
	}{
		{nil, ISAScalar},
		{[]string{ISAAVX2}, ISAAVX2},
		{[]string{ISAAVX2, ISAAVX512}, ISAAVX512},
		{[]string{"sve", ISAScalar}, ISAScalar},
	} {
		if got := PickISA(c.have...); got != c.want {
			t.Errorf("PickISA(%q) = %s, want %s", c.have, got, c.want)
		}
	}
}

func TestISALimit(t *testing.T) {
	for _, c := range []struct{ isa, noSIMD, want string }{
		{"", "", ISAAVX512}, {"avx2", "", ISAAVX2}, {" Scalar ", "", ISAScalar}, {"sse9", "", ISAAVX512}, {"avx512", "1", ISAScalar},
	} {
		t.Setenv(ISAEnv, c.isa)
		t.Setenv("LLMC_NO_SIMD", c.noSIMD)
		if got := ISALimit(); got != c.want {
			t.Errorf("LLMC_ISA=%q LLMC_NO_SIMD=%q: ISALimit() = %s, want %s", c.isa, c.noSIMD, got, c.want)
		}
	}
}

// TestCheckISAEnv: every value the cap reads is accepted, anything else is
// an error naming the variable, the value and the values it takes.
func TestCheckISAEnv(t *testing.T) {
	for _, c := range []struct {
		isa string
		ok  bool
	}{
		{"", true}, {"  ", true}, {"avx512", true}, {"avx2", true}, {"scalar", true}, {" Scalar ", true}, {"AVX2", true},
		{"sse9", false}, {"avx", false}, {"avx-512", false}, {"none", false},
	} {
		t.Setenv(ISAEnv, c.isa)
		err := CheckISAEnv()
		if c.ok {
			if err != nil {
				t.Errorf("LLMC_ISA=%q: %v, want no error", c.isa, err)
			}
			continue
		}
		want := `LLMC_ISA="` + c.isa + `": want avx512, avx2 or scalar`
		if err == nil || err.Error() != want {
			t.Errorf("LLMC_ISA=%q: error %v, want %q", c.isa, err, want)
		}
	}
}
