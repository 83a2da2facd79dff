package compiler

import (
	"fmt"
	"strings"

	"github.com/llmc-dev/llmc/ir"
)

// Dot renders graphs in Graphviz's language: one cluster per entry point,
// and inside it one cluster per fused kernel holding the ops it owns.
func Dot(graphs []*ir.Graph) string {
	var b strings.Builder
	b.WriteString("digraph llmc {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n")
	for gi, g := range graphs {
		d := &dotWriter{b: &b, prefix: fmt.Sprintf("g%d_", gi), ids: map[*ir.Value]string{}}
		fmt.Fprintf(&b, "  subgraph cluster_%s {\n    label=%q;\n", d.prefix, g.Name)
		for _, in := range g.Inputs {
			id := d.id(in)
			fmt.Fprintf(&b, "    %s [label=%q, shape=ellipse];\n", id, in.String())
		}
		d.nodes(g.Nodes, "    ")
		for _, o := range g.Outputs {
			fmt.Fprintf(&b, "    %sout [label=\"return\", shape=ellipse];\n    %s -> %sout;\n", d.prefix, d.id(o), d.prefix)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

type dotWriter struct {
	b      *strings.Builder
	prefix string
	ids    map[*ir.Value]string
	n      int
}

func (d *dotWriter) id(v *ir.Value) string {
	if id, ok := d.ids[v]; ok {
		return id
	}
	d.n++
	id := fmt.Sprintf("%sv%d", d.prefix, d.n)
	d.ids[v] = id
	return id
}

func (d *dotWriter) nodes(nodes []*ir.Node, indent string) {
	for _, n := range nodes {
		if n.Op == ir.OpKernel {
			d.n++
			fmt.Fprintf(d.b, "%ssubgraph cluster_%sk%d {\n%s  label=%q; style=filled; fillcolor=\"#eef4ff\";\n",
				indent, d.prefix, d.n, indent, "kernel "+n.StringAttr("name"))
			d.nodes(n.Body.Nodes, indent+"  ")
			fmt.Fprintf(d.b, "%s}\n", indent)
			if n.Result != nil {
				// The kernel's result is its body's yield.
				d.ids[n.Result] = d.id(n.Body.Outputs[0])
			}
			continue
		}
		var id, label string
		if n.Result != nil {
			id = d.id(n.Result)
			label = fmt.Sprintf("%s = %s\n%s", n.Result.Ref(), n.Op, n.Result.Type)
		} else {
			d.n++
			id = fmt.Sprintf("%se%d", d.prefix, d.n)
			label = n.Op.String()
		}
		var weights []string
		for _, a := range n.Args {
			switch a.Kind {
			case ir.KindWeight, ir.KindState:
				weights = append(weights, a.Ref())
			default:
				fmt.Fprintf(d.b, "%s%s -> %s;\n", indent, d.id(a), id)
			}
		}
		if len(weights) > 0 {
			label += "\n" + strings.Join(weights, "\n")
		}
		fmt.Fprintf(d.b, "%s%s [label=%q];\n", indent, id, label)
	}
}
