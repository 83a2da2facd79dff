package llvm

import (
	"fmt"
	"sort"

	"github.com/llir/llvm/ir"
	"github.com/llir/llvm/ir/enum"
	"github.com/llir/llvm/ir/value"

	"github.com/llmc-dev/llmc/codegen/kir"
)

// Split prints p as up to n modules that together define what Emit's
// module does, so that opt and llc can compile them in parallel: the phase
// and plan functions are dealt out by size (instructions), and every part
// carries the type, tables, helpers and declarations its functions may
// refer to, and a declaration of each function it calls that another part
// defines (a step function calls its plan and phases); the first also
// carries the ABI globals. Linking the parts'
// objects gives the same shared object as the whole module's.
func (o Options) Split(p *kir.Program, n int) ([]string, error) {
	_, parts, err := o.EmitSplit(p, n)
	return parts, err
}

// EmitSplit returns both Emit's module and Split's parts of it, building
// the module once.
func (o Options) EmitSplit(p *kir.Program, n int) (whole string, parts []string, err error) {
	m, err := o.Module(p)
	if err != nil {
		return "", nil, err
	}
	parts, err = split(m, n)
	if err != nil {
		return "", nil, err
	}
	return Header + "\n" + m.String(), parts, nil
}

func split(m *ir.Module, n int) ([]string, error) {
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
			switch {
			case i == 0 || g.Linkage == enum.LinkagePrivate:
				pm.Globals = append(pm.Globals, g)
			case g.Visibility == enum.VisibilityHidden:
				// A table: defined in the first part.
				d := ir.NewGlobal(g.Name(), g.ContentType)
				d.Linkage, d.Immutable, d.Visibility, d.UnnamedAddr, d.Align = enum.LinkageExternal, true, g.Visibility, g.UnnamedAddr, g.Align
				pm.Globals = append(pm.Globals, d)
			}
		}
		pm.Funcs = append(pm.Funcs, shared...)
		parts[i] = pm
	}
	part := map[*ir.Func]*ir.Module{}
	for _, f := range work {
		k := 0
		for i := range load {
			if load[i] < load[k] {
				k = i
			}
		}
		parts[k].Funcs = append(parts[k].Funcs, f)
		part[f] = parts[k]
		load[k] += size(f)
	}
	// An alias (a phase whose body another phase's definition is) goes
	// with the function it names.
	for _, a := range m.Aliases {
		f, ok := a.Aliasee.(*ir.Func)
		if !ok || part[f] == nil {
			return nil, fmt.Errorf("llvm: alias %s names no function of the module", a.Name())
		}
		part[f].Aliases = append(part[f].Aliases, a)
	}
	for _, pm := range parts {
		declareOthers(pm)
	}
	out := make([]string, n)
	for i, pm := range parts {
		out[i] = Header + "\n" + pm.String()
	}
	return out, nil
}

// declareOthers adds to pm a declaration of every function its functions
// use but it does not define.
func declareOthers(pm *ir.Module) {
	have := map[*ir.Func]bool{}
	for _, f := range pm.Funcs {
		have[f] = true
	}
	var decls []*ir.Func
	use := func(v value.Value) {
		f, ok := v.(*ir.Func)
		if !ok || have[f] {
			return
		}
		have[f] = true
		var ps []*ir.Param
		for _, p := range f.Params {
			ps = append(ps, ir.NewParam(p.Name(), p.Typ))
		}
		d := ir.NewFunc(f.Name(), f.Sig.RetType, ps...)
		d.Sig.Variadic, d.Visibility, d.FuncAttrs = f.Sig.Variadic, f.Visibility, f.FuncAttrs
		decls = append(decls, d)
	}
	type user interface{ Operands() []*value.Value }
	for _, f := range pm.Funcs {
		for _, b := range f.Blocks {
			for _, inst := range b.Insts {
				if u, ok := inst.(user); ok {
					for _, op := range u.Operands() {
						use(*op)
					}
				}
			}
		}
	}
	pm.Funcs = append(decls, pm.Funcs...)
}
