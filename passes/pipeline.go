// Package passes is llmc's optimisation pipeline: a fixed, ordered table of
// named passes that rewrite one entry point's graph, with the verifier run
// after every pass.
//
// Most passes are only legal when the KV cache is static: then every shape
// in a step is a constant and the compiler may specialise and fuse. On a
// graph with a dynamic cache they change nothing and say why.
package passes

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/wformat"
)

// KVMode is how the KV cache is laid out.
type KVMode string

const (
	// Static: preallocated to MaxSeq positions, written in place.
	Static KVMode = "static"
	// Dynamic: grows by one row per token; shapes stay symbolic.
	Dynamic KVMode = "dynamic"
)

// Entry is one entry point to compile.
type Entry struct {
	Name  string
	Graph *ir.Graph
	// Seq is the number of tokens the entry point takes per call once
	// shapes are specialised (1 for decode, the chunk size for prefill).
	Seq int
	// Batch says that the rows belong to several sequences
	// (artifact.EntryDecodeBatch), at most MaxTokens of any one.
	Batch bool
}

// Options configure a pipeline run.
type Options struct {
	KV     KVMode
	MaxSeq int
	// MaxTokens is the most tokens any entry point takes in one call (the
	// prefill chunk); window-kv sizes rings with it.
	MaxTokens int
	// KVFormat is how the static KV cache stores its elements (f32, f16
	// or bf16; the backend's kernels round and widen): it sizes the cache
	// in the notes and --stats, the graph's states stay f32 values.
	KVFormat wformat.Format
	// Disabled names passes not to run (only passes that are not required).
	Disabled []string
	// Needs are passes that are not Required by the pipeline itself but
	// that what follows it needs (the chosen backend's lowering, for
	// example): CheckOptions refuses to disable them, saying why.
	Needs []Need
	// PrintAfter names passes after which to print the graph to Log;
	// PrintAfterAll prints after every pass.
	PrintAfter    []string
	PrintAfterAll bool
	// DumpDir, when set, receives the graph after every pass as
	// ENTRY/NN__PASS.ir.
	DumpDir string
	Log     io.Writer
}

// Need is a pass that something after the pipeline cannot do without.
type Need struct {
	Pass string
	By   string // who needs it, worded as the flag that chose it: "--backend go"
	Why  string // what it establishes that By relies on
}

// Pass is one entry of the pipeline table.
type Pass struct {
	Name string
	// Required passes cannot be disabled: later passes or the runtime
	// depend on what they establish.
	Required bool
	Doc      string
	fn       func(c *Context, g *ir.Graph) error
}

// Pipeline returns the pass table in execution order.
func Pipeline() []Pass {
	return []Pass{
		{Name: "static-kv", Required: true, fn: staticKV,
			Doc: "turn the growing KV cache into a preallocated [max-seq] cache written in place at the current position"},
		{Name: "specialize-shapes", Required: true, fn: specializeShapes,
			Doc: "substitute the constant token count of the entry point for seq; no symbolic dimension remains"},
		{Name: "check-static", Required: true, fn: checkStatic,
			Doc: "check that no symbolic dimension remains once the cache is static"},
		{Name: "simplify", fn: simplify,
			Doc: "remove reshapes to the same shape, fold reshape chains and one-row 'last' ops"},
		{Name: "cse", fn: cse,
			Doc: "merge nodes that compute the same op on the same arguments"},
		{Name: "dce", fn: dce,
			Doc: "remove nodes whose results are unused, and unused weights"},
		{Name: "fuse-attention", fn: fuseAttention,
			Doc: "attention scores, soft-cap, causal mask, softmax and value weighting become one attention op (online softmax)"},
		{Name: "window-kv", fn: windowKV,
			Doc: "shrink the cache of sliding-window layers to window + chunk - 1 rows, used as a ring (position j in row j mod rows)"},
		{Name: "fuse-linears", fn: fuseLinears,
			Doc: "linears reading the same input become one matmul over concatenated weights (q/k/v, gate/up)"},
		{Name: "fuse-kernels", fn: fuseKernels,
			Doc: "form kernels: RMSNorm into the following matmul, elementwise epilogues (bias, RoPE, cache write, SiLU×mul, residual add) into the producer"},
		{Name: "form-kernels", fn: formKernels,
			Doc: "wrap every remaining computing op in a kernel of its own, so a backend sees only kernels"},
		{Name: "dce-late", fn: dce,
			Doc: "dce again after fusion"},
		{Name: "plan-memory", fn: planMemory,
			Doc: "give every kernel result an offset in one arena, reusing space whose value is dead (liveness-based)"},
		{Name: "check-planned", fn: checkPlanned,
			Doc: "check that every buffer has an aligned offset and that no two live buffers overlap"},
	}
}

// orderConstraints are pairs (a, b): a must run before b. Checked by a test.
var orderConstraints = [][2]string{
	{"static-kv", "specialize-shapes"},    // specialisation needs constant cache shapes
	{"specialize-shapes", "check-static"}, // the check verifies specialisation
	{"specialize-shapes", "simplify"},     // simplify folds ops specialisation made trivial
	{"fuse-attention", "fuse-kernels"},    // kernels are formed around the fused attention op
	{"fuse-attention", "window-kv"},       // only the fused attention op reads a ring
	{"window-kv", "fuse-kernels"},         // rings are marked on ops before they move into kernels
	{"fuse-linears", "fuse-kernels"},      // prologue fusion wants a single consumer per norm
	{"fuse-kernels", "form-kernels"},      // form-kernels wraps what fusion left
	{"form-kernels", "plan-memory"},       // the plan covers kernel results
	{"plan-memory", "check-planned"},      // the check verifies the plan
}

// Context is what a pass sees besides the graph.
type Context struct {
	Opts  *Options
	Entry *Entry
	stat  *PassStat
}

// Changed records that the pass changed n things.
func (c *Context) Changed(n int) { c.stat.Changes += n }

// Skip records why the pass did nothing.
func (c *Context) Skip(reason string) { c.stat.Skipped = reason }

// Note records a line of detail for --stats.
func (c *Context) Note(format string, args ...any) {
	c.stat.Notes = append(c.stat.Notes, fmt.Sprintf(format, args...))
}

// requireStatic skips the pass unless the cache is static; it returns
// whether the pass may go on.
func (c *Context) requireStatic() bool {
	if c.Opts.KV != Static {
		c.Skip("KV cache is dynamic")
		return false
	}
	return true
}

// PassStat is what one pass did to one entry point.
type PassStat struct {
	Pass     string
	Time     time.Duration
	Changes  int
	Skipped  string // why it did nothing, if it did nothing on purpose
	Disabled bool
	Notes    []string
}

// Report is what a pipeline run did to one entry point.
type Report struct {
	Entry  string
	Passes []PassStat
	Before Counts
	After  Counts
	// KVFormat is the cache's storage format After.KVBytes counts.
	KVFormat wformat.Format
}

func (r *Report) kvNote() string {
	note := ""
	if r.KVFormat != wformat.F32 {
		note = " stored as " + r.KVFormat.String()
	}
	for _, p := range r.Passes {
		if p.Pass == "window-kv" && p.Changes > 0 {
			note += " (sliding-window layers hold only their window)"
		}
	}
	return note
}

// OptionError is an Options value that cannot work: a mistake in how the
// compiler was called, worded as the llmc compile flag it comes from.
type OptionError struct{ Msg string }

func (e *OptionError) Error() string { return e.Msg }

// OptionErrorf returns an *OptionError.
func OptionErrorf(format string, args ...any) error {
	return &OptionError{Msg: fmt.Sprintf(format, args...)}
}

// CheckOptions validates pass names in o against the table.
func CheckOptions(o *Options) error {
	table := map[string]Pass{}
	for _, p := range Pipeline() {
		table[p.Name] = p
	}
	for _, name := range o.Disabled {
		p, ok := table[name]
		if !ok {
			return OptionErrorf("--disable-pass: no pass named %q (see --list-passes)", name)
		}
		if p.Required {
			return OptionErrorf("--disable-pass: %s is required and cannot be disabled", name)
		}
		for _, n := range o.Needs {
			if n.Pass == name {
				return OptionErrorf("--disable-pass: %s is needed by %s and cannot be disabled: %s", name, n.By, n.Why)
			}
		}
	}
	for _, name := range o.PrintAfter {
		if _, ok := table[name]; !ok {
			return OptionErrorf("--print-after: no pass named %q (see --list-passes)", name)
		}
	}
	if o.KV != Static && o.KV != Dynamic {
		return OptionErrorf("--kv is %q, want static or dynamic", o.KV)
	}
	if o.KV == Static && o.MaxSeq <= 0 {
		return OptionErrorf("a static KV cache needs --max-seq > 0")
	}
	return nil
}

// Run runs the pipeline on e's graph in place, verifying after every pass.
func Run(e *Entry, o *Options) (*Report, error) {
	if err := CheckOptions(o); err != nil {
		return nil, err
	}
	disabled := map[string]bool{}
	for _, n := range o.Disabled {
		disabled[n] = true
	}
	printAfter := map[string]bool{}
	for _, n := range o.PrintAfter {
		printAfter[n] = true
	}
	g := e.Graph
	if err := ir.Verify(g); err != nil {
		return nil, fmt.Errorf("input graph %s: %w", e.Name, err)
	}
	rep := &Report{Entry: e.Name, Before: CountOps(g)}
	for i, p := range Pipeline() {
		st := PassStat{Pass: p.Name}
		if disabled[p.Name] {
			st.Disabled = true
			rep.Passes = append(rep.Passes, st)
			continue
		}
		c := &Context{Opts: o, Entry: e, stat: &st}
		start := time.Now()
		err := runPass(p, c, g)
		st.Time = time.Since(start)
		rep.Passes = append(rep.Passes, st)
		if err != nil {
			return rep, fmt.Errorf("pass %s on %s: %w", p.Name, e.Name, err)
		}
		if err := ir.Verify(g); err != nil {
			return rep, fmt.Errorf("pass %s on %s left an invalid graph: %w", p.Name, e.Name, err)
		}
		if (o.PrintAfterAll || printAfter[p.Name]) && o.Log != nil {
			fmt.Fprintf(o.Log, "# %s after %s\n%s\n", e.Name, p.Name, ir.Print(g))
		}
		if o.DumpDir != "" {
			dir := filepath.Join(o.DumpDir, e.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return rep, err
			}
			name := fmt.Sprintf("%02d__%s.ir", i+1, p.Name)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(ir.Print(g)), 0o644); err != nil {
				return rep, err
			}
		}
	}
	rep.After = CountOps(g)
	rep.After.KVBytes, rep.KVFormat = StateBytes(g, o.KVFormat), o.KVFormat
	return rep, nil
}

// StateBytes is the bytes g's KV cache states take stored in format f
// (their shapes must be constant; 0 otherwise), for one slot.
func StateBytes(g *ir.Graph, f wformat.Format) int {
	n := 0
	for _, s := range g.States {
		if !s.Type.Shape.IsConst() {
			return 0
		}
		elems := 1
		for _, d := range s.Type.Shape {
			elems *= d.N
		}
		n += elems * f.BlockBytes()
	}
	return n
}

// RunOne runs the named pass alone on e's graph in place, with the
// verifier before and after: what golden tests of a single pass need.
func RunOne(name string, e *Entry, o *Options) (*PassStat, error) {
	for _, p := range Pipeline() {
		if p.Name != name {
			continue
		}
		if err := ir.Verify(e.Graph); err != nil {
			return nil, fmt.Errorf("input graph %s: %w", e.Name, err)
		}
		st := &PassStat{Pass: name}
		if err := runPass(p, &Context{Opts: o, Entry: e, stat: st}, e.Graph); err != nil {
			return st, fmt.Errorf("pass %s on %s: %w", name, e.Name, err)
		}
		if err := ir.Verify(e.Graph); err != nil {
			return st, fmt.Errorf("pass %s on %s left an invalid graph: %w", name, e.Name, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("no pass named %q", name)
}

// runPass runs one pass, turning a panic into an error that names it.
func runPass(p Pass, c *Context, g *ir.Graph) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return p.fn(c, g)
}

// Counts summarises a graph for --stats.
type Counts struct {
	Ops      int // top-level nodes that compute (not reshape views)
	Kernels  int // of which kernels
	PerLayer int // computing top-level nodes of layer 0
	Arena    int // planned arena bytes, 0 when unplanned
	Buffers  int // bytes of all intermediate results without reuse
	KVBytes  int // bytes of the KV cache states, when their shapes are constant
}

// CountOps counts g's computing nodes.
func CountOps(g *ir.Graph) Counts {
	var c Counts
	for _, n := range g.Nodes {
		if n.Op == ir.OpReshape {
			continue
		}
		c.Ops++
		if n.Op == ir.OpKernel {
			c.Kernels++
		}
		if layerOf(n) == 0 {
			c.PerLayer++
		}
		if n.Result != nil && n.Result.Type.Shape.IsConst() {
			c.Buffers += bufferSize(n.Result.Type)
		}
	}
	if plan, err := liveBuffers(g); err == nil && plan.planned {
		c.Arena = plan.arena
	}
	for _, s := range g.States {
		if s.Type.Shape.IsConst() {
			c.KVBytes += bufferSize(s.Type)
		}
	}
	return c
}

// layerOf returns the layer a node belongs to by the l<N>. prefix of its
// result (or, for effect-only nodes, its state argument), or -1.
func layerOf(n *ir.Node) int {
	name := ""
	if n.Result != nil {
		name = n.Result.Name
	} else if len(n.Args) > 0 {
		name = n.Args[len(n.Args)-1].Name
		for _, a := range n.Args {
			if a.Kind == ir.KindNode {
				name = a.Name
			}
		}
	}
	var l int
	if _, err := fmt.Sscanf(name, "l%d.", &l); err == nil && strings.HasPrefix(name, fmt.Sprintf("l%d.", l)) {
		return l
	}
	return -1
}

// WriteStats prints reports as a table.
func WriteStats(w io.Writer, reps []*Report) {
	for _, r := range reps {
		fmt.Fprintf(w, "entry %s\n", r.Entry)
		fmt.Fprintf(w, "  %-18s %9s %8s  %s\n", "pass", "time", "changes", "")
		for _, p := range r.Passes {
			note := ""
			switch {
			case p.Disabled:
				note = "disabled"
			case p.Skipped != "":
				note = "skipped: " + p.Skipped
			}
			fmt.Fprintf(w, "  %-18s %9s %8d  %s\n", p.Pass, fmtDur(p.Time), p.Changes, note)
			for _, n := range p.Notes {
				fmt.Fprintf(w, "  %-18s %9s %8s    %s\n", "", "", "", n)
			}
		}
		fmt.Fprintf(w, "  ops: %d → %d (%d kernels); layer 0: %d → %d\n", r.Before.Ops, r.After.Ops, r.After.Kernels, r.Before.PerLayer, r.After.PerLayer)
		if r.After.Arena > 0 {
			fmt.Fprintf(w, "  arena: %d bytes for %d bytes of intermediate results\n", r.After.Arena, r.After.Buffers)
		}
		if r.After.KVBytes > 0 {
			fmt.Fprintf(w, "  KV cache: %d bytes%s\n", r.After.KVBytes, r.kvNote())
		}
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}

// PassNames lists the table's names, for help texts.
func PassNames() []string {
	var names []string
	for _, p := range Pipeline() {
		names = append(names, p.Name)
	}
	return names
}

// sortedKeys is a helper for deterministic iteration.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
