//go:build goexperiment.simd && amd64

package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"simd/archsimd"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/wformat"
)

// The vector helpers against their portable twins, bit for bit (Exp8 to
// within an ulp): the Go backend's AVX2 and AVX-512 kernels must compute
// what its portable ones (and kir.Machine) do.

func needAVX2(t *testing.T) {
	t.Helper()
	if !archsimd.X86.AVX2() || !archsimd.X86.FMA() {
		t.Skip("skipping: this CPU has no AVX2 and FMA")
	}
}

func needAVX512(t *testing.T) {
	t.Helper()
	if !archsimd.X86.AVX512() {
		t.Skip("skipping: this CPU has no AVX-512")
	}
}

func load(v V8) archsimd.Float32x8 { return archsimd.LoadFloat32x8((*[8]float32)(&v)) }

func store(x archsimd.Float32x8) (v V8) {
	x.Store((*[8]float32)(&v))
	return
}

// bitsEqual compares lanes as bits, so that NaNs and signed zeros count.
func bitsEqual[V V8 | V16](t *testing.T, wantV, gotV V, msg string, args ...any) {
	t.Helper()
	want, got := lanes(&wantV), lanes(&gotV)
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			t.Fatalf("lane %d: got %v, want %v: %s", i, got, want, fmt.Sprintf(msg, args...))
		}
	}
}

// specials are values the helpers must keep: zeros of both signs,
// infinities, NaN, subnormals, the edges of float16 and of exp's range.
var specials = []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, 65504, 65520, -65536, 6e-8, 1e-40,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 88.7, -87.4, -104, 1e30}

// vectors are random vectors of wide range, then the specials in every lane.
func vectors(r *rand.Rand, n int) []V8 {
	var out []V8
	for range n {
		var v V8
		for i := range v {
			v[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(7)-3)))
		}
		out = append(out, v)
	}
	for i := 0; i < len(specials); i += 8 {
		var v V8
		for j := range v {
			v[j] = specials[(i+j)%len(specials)]
		}
		out = append(out, v)
	}
	return out
}

// lanes is v's lanes as a slice.
func lanes[V V8 | V16](v *V) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(v)), unsafe.Sizeof(*v)/4)
}

func TestReductions(t *testing.T) {
	needAVX2(t)
	r := rand.New(rand.NewPCG(1, 2))
	vs := vectors(r, 200)
	for i, v := range vs {
		if v != v { // NaN lanes: sums and maxima of NaN are not compared
			continue
		}
		require.Equal(t, Splat8(Hsum8g(v)), store(Hsum8(load(v))), "Hsum8 of %v", v)
		require.Equal(t, Splat8(Hmax8g(v)), store(Hmax8(load(v))), "Hmax8 of %v", v)
		if i+8 <= len(vs) {
			var x [8]archsimd.Float32x8
			for j := range x {
				x[j] = load(vs[i+j])
			}
			got := store(Hsums8(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]))
			bitsEqual(t, Hsums8g(vs[i:i+8]...), got, "Hsums8 of vectors %d..%d", i, i+7)
		}
	}
}

// TestExp8 is within an ulp of runtime.Expf (Exp8g), whose
// reduction and polynomial it computes with fused multiply-adds where Go
// rounds each operation: the clamp, NaN and the ends of the range exact.
func TestExp8(t *testing.T) {
	needAVX2(t)
	r := rand.New(rand.NewPCG(3, 4))
	vs := vectors(r, 500)
	var v V8
	for x := float32(-90); x < 90; x += 0.037 {
		for i := range v {
			v[i] = x + float32(i)*0.001
		}
		vs = append(vs, v)
	}
	worst := 0
	for _, v := range vs {
		want, got := Exp8g(v), store(Exp8(load(v)))
		for i := range v {
			if math.IsNaN(float64(v[i])) {
				require.True(t, math.IsNaN(float64(got[i])), "Exp8(NaN) = %v", got[i])
				continue
			}
			if v[i] <= -87.3 || v[i] >= 88 {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "Exp8(%v)", v[i])
				continue
			}
			d := int(math.Float32bits(want[i])) - int(math.Float32bits(got[i]))
			worst = max(worst, d, -d)
			require.LessOrEqual(t, max(d, -d), 1, "Exp8(%v) = %v, Expf %v", v[i], got[i], want[i])
		}
	}
	t.Logf("largest difference from runtime.Expf: %d ulp", worst)
}

func TestSelect(t *testing.T) {
	needAVX2(t)
	for _, x := range specials {
		for _, y := range specials {
			gt := Gt8(archsimd.BroadcastFloat32x8(x), archsimd.BroadcastFloat32x8(y))
			require.Equal(t, x > y, gt, "Gt8(%v, %v)", x, y)
			got := store(Selgt8(archsimd.BroadcastFloat32x8(x), archsimd.BroadcastFloat32x8(y), archsimd.BroadcastFloat32x8(1), archsimd.BroadcastFloat32x8(2)))
			require.Equal(t, Splat8(Selgt(x, y, 1, 2)), got, "Selgt8(%v, %v)", x, y)
		}
	}
	got := store(Scalar8(archsimd.BroadcastFloat32x8(0.75), math.Tanh))
	require.Equal(t, float32(math.Tanh(0.75)), got[0])
}

// TestHalves widens every float16 and bfloat16 bit pattern as the
// portable loads do, and rounds values to them as wformat does.
func TestHalves(t *testing.T) {
	needAVX2(t)
	h := make([]uint16, 1<<16+16)
	for i := range 1 << 16 {
		h[i] = uint16(i)
	}
	p := unsafe.Pointer(&h[0])
	for i := 0; i < 1<<16; i += 8 {
		bitsEqual(t, Load8h(h, i), store(Loadh8(p, i)), "Loadh8 of %#04x..", i)
		bitsEqual(t, Load8bf(h, i), store(Loadbf8(p, i)), "Loadbf8 of %#04x..", i)
		bitsEqual(t, Splat8(wformat.BF16ToF32(h[i+3])), store(Bf16u(h[i+3])), "Bf16u(%#04x)", h[i+3])
	}
	r := rand.New(rand.NewPCG(5, 6))
	want, got := make([]uint16, 8), make([]uint16, 8)
	for _, v := range vectors(r, 500) {
		Store8h(want, 0, v)
		Storeh8(unsafe.Pointer(&got[0]), 0, load(v))
		require.Equal(t, want, got, "Storeh8 of %v", v)
		Store8bf(want, 0, v)
		Storebf8(unsafe.Pointer(&got[0]), 0, load(v))
		require.Equal(t, want, got, "Storebf8 of %v", v)
		require.Equal(t, math.Float32bits(v[0]), Bits0(load(v)))
	}
	// A float16 tie rounds to even: 1 + 2^-11 lies halfway between 1 and
	// the next float16.
	Storeh8(unsafe.Pointer(&got[0]), 0, archsimd.BroadcastFloat32x8(1+1.0/2048))
	require.Equal(t, wformat.F32ToF16(1), got[0])
}

func TestQuantLoads(t *testing.T) {
	needAVX2(t)
	b := make([]byte, 256+16) // 16 readable bytes past the last 8 loaded
	for i := range 256 {
		b[i] = byte(i)
	}
	p := unsafe.Pointer(&b[0])
	for i := 0; i < 256; i += 8 {
		require.Equal(t, Load8i8g(b, i), store(Load8i8(p, i)), "Load8i8 at %d", i)
		require.Equal(t, Load8u4log(b, i), store(Load8u4lo(p, i)), "Load8u4lo at %d", i)
		require.Equal(t, Load8u4hig(b, i), store(Load8u4hi(p, i)), "Load8u4hi at %d", i)
	}
}

// TestIntDots: the four integer dots over random blocks, weights over
// all 256 byte values and activations over -127..127 (what wformat.QuantI8
// gives; VPMADDUBSW's pairs cannot saturate there).
func TestIntDots(t *testing.T) {
	needAVX2(t)
	r := rand.New(rand.NewPCG(7, 8))
	w, x := make([]byte, 64), make([]byte, 64)
	wp, xp := unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0])
	for n := range 2000 {
		for k := range w {
			w[k] = byte(r.IntN(256))
			x[k] = byte(int8(r.IntN(255) - 127))
		}
		if n == 0 { // the extremes: -128 weights against ±127
			for k := range w {
				w[k], x[k] = 0x80, byte(int8(127-254*(k%2)))
			}
		}
		wo, xo := r.IntN(33), r.IntN(33)
		require.Equal(t, Doti8g(w, wo, x, xo), store(Doti8(wp, wo, xp, xo)), "Doti8, round %d", n)
		require.Equal(t, Doti4g(w, wo, x, xo), store(Doti4(wp, wo, xp, xo)), "Doti4, round %d", n)
		require.Equal(t, Doti4log(w, wo, x, xo), store(Doti4lo(wp, wo, xp, xo)), "Doti4lo, round %d", n)
		require.Equal(t, Doti4hig(w, wo, x, xo), store(Doti4hi(wp, wo, xp, xo)), "Doti4hi, round %d", n)
	}
}

func TestStoreI8(t *testing.T) {
	needAVX2(t)
	r := rand.New(rand.NewPCG(9, 10))
	want, got, one := make([]byte, 12), make([]byte, 12), make([]byte, 2)
	for n := range 2000 {
		var v V8
		for i := range v {
			v[i] = float32(r.NormFloat64() * 100)
			if n%3 == 0 {
				v[i] = float32(r.IntN(400)-200) + 0.5 // ties, and past ±127
			}
		}
		Storei8g(want, 4, v)
		Storei8x8(unsafe.Pointer(&got[0]), 4, load(v))
		require.Equal(t, want, got, "Storei8x8 of %v", v)
		Storei8x1(unsafe.Pointer(&one[0]), 1, load(v))
		require.Equal(t, []byte{0, byte(wformat.QuantI8(v[0]))}, one, "Storei8x1 of %v", v[0])
	}
}

func TestStoref(t *testing.T) {
	needAVX2(t)
	s := make([]float32, 4)
	for _, x := range specials {
		Storef(s, 2, archsimd.BroadcastFloat32x8(x))
		require.Equal(t, math.Float32bits(x), math.Float32bits(s[2]))
	}
}

func TestSixteenLanes(t *testing.T) {
	needAVX512(t)
	r := rand.New(rand.NewPCG(11, 12))
	vs := vectors(r, 100)
	for i := 0; i+1 < len(vs); i += 2 {
		var w V16
		copy(w[:8], vs[i][:])
		copy(w[8:], vs[i+1][:])
		got := store(Hsum16(archsimd.LoadFloat32x16((*[16]float32)(&w))))
		if w == w {
			require.Equal(t, Splat8(Hsum16g(w)), got, "Hsum16 of %v", w)
		}
	}
	h := make([]uint16, 1<<16+16)
	for i := range 1 << 16 {
		h[i] = uint16(i)
	}
	p := unsafe.Pointer(&h[0])
	var got V16
	for i := 0; i < 1<<16; i += 16 {
		Loadh16(p, i).Store((*[16]float32)(&got))
		bitsEqual(t, Load16h(h, i), got, "Loadh16 of %#04x..", i)
		Loadbf16(p, i).Store((*[16]float32)(&got))
		bitsEqual(t, Load16bf(h, i), got, "Loadbf16 of %#04x..", i)
	}
}
