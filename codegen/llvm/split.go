package llvm

import (
	"sort"

	"github.com/llir/llvm/ir"
	"github.com/llir/llvm/ir/enum"

	"github.com/llmc-dev/llmc/codegen/kir"
)

// Split prints p as up to n modules that together define what Emit's
// module does, so that opt and llc can compile them in parallel: the phase
// and plan functions are dealt out by size (instructions), and every part
// carries the type, tables, helpers and declarations its functions may
// refer to; the first also carries the ABI globals. Linking the parts'
// objects gives the same shared object as the whole module's.
func (o Options) Split(p *kir.Program, n int) ([]string, error) {
	m, err := o.Module(p)
	if err != nil {
		return nil, err
	}
	var shared, work []*ir.Func
	for _, f := range m.Funcs {
		if len(f.Blocks) == 0 || f.Linkage == enum.LinkageInternal {
			shared = append(shared, f) // declarations and helpers
		} else {
			work = append(work, f)
		}
	}
	n = max(1, min(n, len(work)))
	size := func(f *ir.Func) int {
		s := 0
		for _, b := range f.Blocks {
			s += len(b.Insts) + 1
		}
		return s
	}
	// Largest first, each to the lightest part.
	sort.SliceStable(work, func(i, j int) bool { return size(work[i]) > size(work[j]) })
	parts := make([]*ir.Module, n)
	load := make([]int, n)
	for i := range parts {
		pm := ir.NewModule()
		pm.TargetTriple, pm.DataLayout, pm.TypeDefs = m.TargetTriple, m.DataLayout, m.TypeDefs
		for _, g := range m.Globals {
			if i == 0 || g.Linkage == enum.LinkagePrivate {
				pm.Globals = append(pm.Globals, g)
			}
		}
		pm.Funcs = append(pm.Funcs, shared...)
		parts[i] = pm
	}
	for _, f := range work {
		k := 0
		for i := range load {
			if load[i] < load[k] {
				k = i
			}
		}
		parts[k].Funcs = append(parts[k].Funcs, f)
		load[k] += size(f)
	}
	out := make([]string, n)
	for i, pm := range parts {
		out[i] = Header + "\n" + pm.String()
	}
	return out, nil
}
