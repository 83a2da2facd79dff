package kir_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
)

// FuzzParse: Parse never panics, and a program that parses and verifies
// prints as text that parses back to the same print. The seeds are
// printed programs: testdata/valid.kir, a Q4_0 linear (its nibble loads)
// in testdata/q4_0-linear.kir, a Q8_0 linear with integer dot products
// (storei8, doti8, prefetch) in testdata/q8_0-intdot.kir, and the programs of the shared
// models (when ../shared is there).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"valid.kir", "q4_0-linear.kir", "q8_0-intdot.kir"} {
		src, err := os.ReadFile("testdata/" + name)
		require.NoError(f, err)
		f.Add(string(src))
	}
	for _, model := range []string{"stories260K", "gemma2-tiny"} {
		if _, err := os.Stat("../../../shared/models/" + model); err != nil {
			continue
		}
		// A few kernels of each entry: whole models are too large for the
		// fuzzer to mutate and minimise quickly.
		p := lowerShared(f, model, 16, false)
		for _, e := range p.Entries {
			e.Kernels = e.Kernels[:min(len(e.Kernels), 4)]
		}
		f.Add(kir.Print(p))
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := kir.Parse(src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kir: ") {
				t.Fatalf("parse error without position prefix: %v", err)
			}
			return
		}
		if kir.Verify(p) != nil {
			return
		}
		text := kir.Print(p)
		q, err := kir.Parse(text)
		if err != nil {
			t.Fatalf("the print of a verified program does not parse: %v\n%s", err, text)
		}
		if again := kir.Print(q); again != text {
			t.Fatalf("print, parse, print changed the text:\n%s\nthen\n%s", text, again)
		}
	})
}

func TestParseErrors(t *testing.T) {
	valid, err := os.ReadFile("testdata/valid.kir")
	require.NoError(t, err)
	lines := strings.Split(string(valid), "\n")
	edit := func(line int, text string) string {
		ls := append([]string(nil), lines...)
		ls[line-1] = text
		return strings.Join(ls, "\n")
	}
	for _, c := range []struct{ src, want string }{
		{"bogus", "kir: 1:1: expected slots, weight, state, table, buffer or entry, found \"bogus\""},
		{"slots 1", "kir: 1:8: slots 1: a program of one sequence has no slots line"},
		{"slots 2\nslots 2", "kir: 2:1: slots must come first, once"},
		{"weight #0 w f32[1, 1]\nslots 2", "kir: 2:1: slots must come first, once"},
		{"weight #1 w f32[1, 1]", "kir: 1:9: weight #1 out of order: want #0"},
		{"  weight #0 w f32[1, 1]", "1:3: unexpected indentation"},
		{"weight #0 w f16[1, 1]", "1:13: unknown weight type \"f16\""},
		{"buffer a arena [4]\nbuffer a arena [4]", "2:8: buffer a is declared twice"},
		{"buffer a heap [4]", "1:10: unknown buffer kind \"heap\""},
		{"table t [1] = {x}", "1:16: bad number \"x\""},
		{edit(10, "entry step (seq 2, len, arena 40, scratch 16) -> heap[0 : +[4]]"), "10:50: undefined buffer heap"},
		{edit(13, "      var acc4 f32x9 = bcast(0f)"), "13:16: unknown type \"f32x9\""},
		{edit(13, "      var acc4 f32x8 = bcast(0f"), "13:32: expected \")\""},
		{edit(13, "      var acc4 f32x8 = bcast(y)"), "13:30: undefined variable y"},
		{edit(13, "      var acc4 f32x8 = erf(0f)"), "13:24: unknown function erf"},
		{edit(13, "      var acc4 f32x8 = (1f ^ 2f)"), "13:28: expected an operator"},
		{edit(13, "      var acc4 f32x8 = bcast(0f) x"), "13:34: unexpected \"x\" at the end of the line"},
		{edit(13, "       var acc4 f32x8 = bcast(0f)"), "13:8: unexpected indentation"},
		{edit(17, "      store8 arena[(16 + n1)] = (s6 > 0f ? s6 : (s6 * 0.01f))"), "17:7: store8 of a f32 value"},
		{edit(12, "    parallel n1 in [1, 2) work (%len * 32):"), "12:20: expected \"[0,\""},
		{edit(12, "    sequential:"), "12:5: expected serial or parallel, found \"sequential\""},
		{edit(11, "  kern step_k0_ops ops -> %ops  (linear, add)"), "11:3: expected \"kernel\""},
		{edit(24, "        store st_0[((max(id7, 0) * 4) + i2)] = fma(x5, x5, 1e99f)"), "24:60: bad float \"1e99f\""},
		{edit(19, "      var i2 f32 = 1f"), "20:11: i2 is declared as f32 and as int"},
	} {
		_, err := kir.Parse(c.src)
		require.Error(t, err, c.want)
		require.Contains(t, err.Error(), c.want)
	}
}
