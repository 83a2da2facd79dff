package ir_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/llmc-dev/llmc/ir"
)

// FuzzParse feeds arbitrary text to Parse. Parse must never panic and must
// fail with a *ParseError pointing at a line of the input (or, for text
// holding several graphs, say so). When it succeeds, Verify must not panic,
// and the printed form must be a fixed point: Print(Parse(Print(g))) ==
// Print(g), also for g.Clone().
//
// The seed corpus is testdata/fuzz/FuzzParse (small valid graphs and near
// misses; crashers found by the fuzzer stay there as regression cases) plus
// the in.ir of every testdata/roundtrip/*.txtar.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "roundtrip", "*.txtar"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if in := section(ar, "in.ir"); in != nil {
			f.Add(string(in.Data))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		g, err := ir.Parse(src)
		if err != nil {
			var pe *ir.ParseError
			switch {
			case errors.As(err, &pe):
				if lines := strings.Count(src, "\n") + 1; pe.Line < 1 || pe.Line > lines {
					t.Fatalf("error at line %d of a %d-line input: %v", pe.Line, lines, err)
				}
			case !strings.Contains(err.Error(), "want exactly one graph"):
				t.Fatalf("Parse failed with %T, not *ir.ParseError: %v", err, err)
			}
			return
		}
		verr := ir.Verify(g)
		if verr != nil && len(g.Outputs) > 0 {
			// The parser checks everything the verifier does, except that
			// the graph returns something.
			t.Fatalf("Parse accepted a graph that Verify rejects: %v\ninput:\n%s", verr, src)
		}
		text := ir.Print(g)
		g2, err := ir.Parse(text)
		if err != nil {
			t.Fatalf("cannot parse the printed graph: %v\ninput:\n%s\nprinted:\n%s", err, src, text)
		}
		if text2 := ir.Print(g2); text2 != text {
			t.Fatalf("Print(Parse(Print(g))) != Print(g)\ninput:\n%s\nfirst:\n%s\nsecond:\n%s", src, text, text2)
		}
		if (ir.Verify(g2) == nil) != (verr == nil) {
			t.Fatalf("Verify disagrees on the reparsed graph: %v vs %v", ir.Verify(g2), verr)
		}
		if c := ir.Print(g.Clone()); c != text {
			t.Fatalf("Print(g.Clone()) != Print(g)\nclone:\n%s\noriginal:\n%s", c, text)
		}
	})
}
