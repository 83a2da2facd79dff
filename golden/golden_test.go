package golden

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"

	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
)

var (
	update       = flag.Bool("update", false, "rewrite the expected sections (out.ir, error, skipped) of testdata/*/*.txtar")
	regenInputs  = flag.Bool("regen-inputs", false, "rewrite the generated cases of testdata/*/*.txtar (comment and in.ir) from gen_test.go, then their expected sections")
	casesPattern = filepath.Join("testdata", "*", "*.txtar")
)

// Section names of a golden file.
const (
	secIn      = "in.ir"
	secOut     = "out.ir"
	secError   = "error"
	secSkipped = "skipped"
)

// caseOptions is the first line of a golden file's comment, such as
// "kv=static max-seq=32 seq=1 entry=decode".
type caseOptions struct {
	KV        passes.KVMode
	MaxSeq    int
	MaxTokens int // passes.Options.MaxTokens: the prefill chunk of the whole program
	Seq       int
	Entry     string
}

func (o caseOptions) String() string {
	s := fmt.Sprintf("kv=%s", o.KV)
	if o.MaxSeq != 0 {
		s += fmt.Sprintf(" max-seq=%d", o.MaxSeq)
	}
	if o.MaxTokens != 0 {
		s += fmt.Sprintf(" max-tokens=%d", o.MaxTokens)
	}
	return s + fmt.Sprintf(" seq=%d entry=%s", o.Seq, o.Entry)
}

func (o caseOptions) passOptions() *passes.Options {
	return &passes.Options{KV: o.KV, MaxSeq: o.MaxSeq, MaxTokens: o.MaxTokens}
}

func parseOptions(line string) (caseOptions, error) {
	var o caseOptions
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return o, fmt.Errorf("option %q is not key=value", f)
		}
		var err error
		switch k {
		case "kv":
			o.KV = passes.KVMode(v)
		case "max-seq":
			o.MaxSeq, err = strconv.Atoi(v)
		case "max-tokens":
			o.MaxTokens, err = strconv.Atoi(v)
		case "seq":
			o.Seq, err = strconv.Atoi(v)
		case "entry":
			o.Entry = v
		default:
			return o, fmt.Errorf("unknown option %q (want kv, max-seq, max-tokens, seq, entry)", k)
		}
		if err != nil {
			return o, fmt.Errorf("option %s: %w", k, err)
		}
	}
	if o.KV != passes.Static && o.KV != passes.Dynamic {
		return o, fmt.Errorf("kv=%q: want kv=static or kv=dynamic", o.KV)
	}
	if o.Entry == "" {
		return o, fmt.Errorf("entry= is missing")
	}
	return o, nil
}

// result is what running a case's pass produced, as the sections of its
// golden file hold it.
type result struct {
	in      string // the input as printed before the pass
	out     string // the graph after the pass, "" on error
	err     string // the pass's error, "" on success
	skipped string // why the pass did nothing, if it said so
}

// runCase parses in, runs pass on it alone with opts and returns what
// happened. Problems with the case itself (bad input) are returned as err.
func runCase(pass string, opts caseOptions, in string) (*result, error) {
	g, err := ir.Parse(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", secIn, err)
	}
	if g.Name != opts.Entry {
		return nil, fmt.Errorf("%s: graph is named %s, but the options say entry=%s", secIn, g.Name, opts.Entry)
	}
	r := &result{in: ir.Print(g)}
	e := &passes.Entry{Name: opts.Entry, Graph: g, Seq: opts.Seq}
	st, err := passes.RunOne(pass, e, opts.passOptions())
	if st == nil && err != nil {
		return nil, err // no such pass, or an invalid input
	}
	if err != nil {
		r.err = err.Error()
		return r, nil
	}
	r.out, r.skipped = ir.Print(g), st.Skipped
	return r, nil
}

// goldenFile is one parsed case.
type goldenFile struct {
	path, pass, name string
	opts             caseOptions
	ar               *txtar.Archive
}

func (f *goldenFile) section(name string) (string, bool) {
	for _, s := range f.ar.Files {
		if s.Name == name {
			return string(s.Data), true
		}
	}
	return "", false
}

func readGolden(path string) (*goldenFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &goldenFile{
		path: path,
		pass: filepath.Base(filepath.Dir(path)),
		name: strings.TrimSuffix(filepath.Base(path), ".txtar"),
		ar:   txtar.Parse(data),
	}
	first, _, _ := strings.Cut(string(f.ar.Comment), "\n")
	if f.opts, err = parseOptions(first); err != nil {
		return nil, fmt.Errorf("%s: first comment line: %w", path, err)
	}
	seen := map[string]bool{}
	for _, s := range f.ar.Files {
		switch s.Name {
		case secIn, secOut, secError, secSkipped:
		default:
			return nil, fmt.Errorf("%s: unknown section %q (want %s, %s, %s or %s)", path, s.Name, secIn, secOut, secError, secSkipped)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%s: section %s appears twice", path, s.Name)
		}
		seen[s.Name] = true
	}
	if !seen[secIn] {
		return nil, fmt.Errorf("%s: no %s section", path, secIn)
	}
	return f, nil
}

// setResult replaces f's expected sections with r's.
func (f *goldenFile) setResult(r *result) {
	in, _ := f.section(secIn)
	files := []txtar.File{{Name: secIn, Data: []byte(in)}}
	if r.skipped != "" {
		files = append(files, txtar.File{Name: secSkipped, Data: []byte(r.skipped + "\n")})
	}
	if r.err != "" {
		files = append(files, txtar.File{Name: secError, Data: []byte(r.err + "\n")})
	} else {
		files = append(files, txtar.File{Name: secOut, Data: []byte(r.out)})
	}
	f.ar.Files = files
}

func (f *goldenFile) write() error {
	data := txtar.Format(f.ar)
	if old, err := os.ReadFile(f.path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(f.path, data, 0o644)
}

func TestGolden(t *testing.T) {
	if *regenInputs {
		regenerate(t)
	}
	paths, err := filepath.Glob(casesPattern)
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no golden files match %s", casesPattern)
	for _, path := range paths {
		f, err := readGolden(path)
		require.NoError(t, err)
		t.Run(f.pass+"/"+f.name, func(t *testing.T) {
			in, _ := f.section(secIn)
			r, err := runCase(f.pass, f.opts, in)
			require.NoError(t, err, "%s", path)
			if *update {
				f.setResult(r)
				require.NoError(t, f.write())
				return
			}
			checkResult(t, f, r)
		})
	}
}

// checkResult compares r with f's expected sections.
func checkResult(t *testing.T, f *goldenFile, r *result) {
	t.Helper()
	const hint = "(if the change is intended, run go test ./golden/ -update and review the diff)"
	wantErr, hasErr := f.section(secError)
	wantOut, hasOut := f.section(secOut)
	wantSkip, _ := f.section(secSkipped)
	switch {
	case r.err != "" && !hasErr:
		t.Fatalf("%s: pass %s failed: %s\n%s", f.path, f.pass, r.err, hint)
	case r.err == "" && hasErr:
		t.Fatalf("%s: pass %s succeeded, want error %q\n%s", f.path, f.pass, strings.TrimSpace(wantErr), hint)
	case r.err != "":
		if got, want := r.err, strings.TrimSpace(wantErr); got != want {
			t.Errorf("%s: wrong error\nhave: %s\nwant: %s\n%s", f.path, got, want, hint)
		}
		return
	case !hasOut:
		t.Fatalf("%s: no %s section %s", f.path, secOut, hint)
	}
	if got, want := r.skipped, strings.TrimSpace(wantSkip); got != want {
		t.Errorf("%s: skipped reason\nhave: %q\nwant: %q\n%s", f.path, got, want, hint)
	}
	if r.out != wantOut {
		t.Errorf("%s: %s differs %s\n%s", f.path, secOut, hint, diff("want "+secOut, wantOut, "have", r.out))
	}
	if r.skipped != "" && r.out != r.in {
		t.Errorf("%s: pass %s skipped (%s) but changed the graph:\n%s", f.path, f.pass, r.skipped, diff(secIn, r.in, "have", r.out))
	}
	// What a pass writes must read back: artifacts store it as text.
	g, err := ir.Parse(r.out)
	require.NoError(t, err, "%s: output does not parse", f.path)
	if again := ir.Print(g); again != r.out {
		t.Errorf("%s: output does not print back identically:\n%s", f.path, diff("printed", r.out, "reparsed", again))
	}
}

// diff returns a unified diff of two texts, line by line.
func diff(aName, a, bName, b string) string {
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: aName, ToFile: bName, Context: 3,
	})
	if err != nil {
		return err.Error()
	}
	return d
}

// TestGoldenCoverage checks that every pass of the pipeline has golden
// cases: one with a static cache that produces output, and one with a
// dynamic cache that leaves the graph as it was (skipped with the reason
// for static-only passes), and that every case directory names a pass.
func TestGoldenCoverage(t *testing.T) {
	paths, err := filepath.Glob(casesPattern)
	require.NoError(t, err)
	type seen struct{ static, dynamic int }
	byPass := map[string]*seen{}
	nErrors := 0
	for _, p := range passes.Pipeline() {
		byPass[p.Name] = &seen{}
	}
	for _, path := range paths {
		f, err := readGolden(path)
		require.NoError(t, err)
		s, ok := byPass[f.pass]
		if !ok {
			t.Errorf("%s: directory %s names no pass (passes: %s)", path, f.pass, strings.Join(passes.PassNames(), ", "))
			continue
		}
		in, _ := f.section(secIn)
		out, hasOut := f.section(secOut)
		skipped, _ := f.section(secSkipped)
		if _, ok := f.section(secError); ok {
			nErrors++
		}
		switch f.opts.KV {
		case passes.Static:
			if hasOut && skipped == "" {
				s.static++
			}
		case passes.Dynamic:
			g, err := ir.Parse(in)
			require.NoError(t, err, path)
			if hasOut && out == ir.Print(g) && (skipped == "" || strings.Contains(skipped, "KV cache is dynamic")) {
				s.dynamic++
			}
		}
	}
	for _, p := range passes.Pipeline() {
		s := byPass[p.Name]
		if s.static == 0 {
			t.Errorf("pass %s has no golden case with kv=static that runs (add one under testdata/%s)", p.Name, p.Name)
		}
		if s.dynamic == 0 {
			t.Errorf("pass %s has no golden case with kv=dynamic that leaves the graph unchanged (add one under testdata/%s)", p.Name, p.Name)
		}
	}
	if nErrors == 0 {
		t.Errorf("no golden case expects an error")
	}
}
