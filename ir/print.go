package ir

import (
	"io"
	"strings"
)

// Print returns the text form of g. Parse reads it back to an identical
// graph.
func Print(g *Graph) string {
	var b strings.Builder
	writeGraph(&b, g)
	return b.String()
}

// PrintModule prints several graphs (the entry points of one model),
// separated by blank lines.
func PrintModule(gs []*Graph) string {
	var b strings.Builder
	for i, g := range gs {
		if i > 0 {
			b.WriteByte('\n')
		}
		writeGraph(&b, g)
	}
	return b.String()
}

// Fprint writes the text form of g to w.
func Fprint(w io.Writer, g *Graph) error {
	_, err := io.WriteString(w, Print(g))
	return err
}

func writeGraph(b *strings.Builder, g *Graph) {
	b.WriteString("graph ")
	b.WriteString(g.Name)
	if len(g.Syms) > 0 {
		b.WriteString("[" + strings.Join(g.Syms, ", ") + "]")
	}
	b.WriteByte('(')
	for i, in := range g.Inputs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(in.String())
	}
	b.WriteString(") {\n")
	for _, w := range g.Weights {
		b.WriteString("  weight " + w.String())
		if d := w.Derive; d != nil {
			b.WriteString(" = " + d.Op)
			for i, a := range d.Args {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(" " + a.Ref())
			}
		}
		b.WriteByte('\n')
	}
	for _, s := range g.States {
		b.WriteString("  state " + s.String() + "\n")
	}
	if len(g.Weights)+len(g.States) > 0 && len(g.Nodes) > 0 {
		b.WriteByte('\n')
	}
	writeNodes(b, g.Nodes, "  ")
	writeReturn(b, "return", g.Outputs, "  ")
	b.WriteString("}\n")
}

func writeReturn(b *strings.Builder, word string, outs []*Value, indent string) {
	if len(outs) == 0 {
		return
	}
	b.WriteString(indent + word + " ")
	for i, o := range outs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(refOf(o))
	}
	b.WriteByte('\n')
}

func writeNodes(b *strings.Builder, nodes []*Node, indent string) {
	for _, n := range nodes {
		b.WriteString(indent)
		writeNodeHead(b, n)
		if n.Body != nil {
			b.WriteString(" {\n")
			writeNodes(b, n.Body.Nodes, indent+"  ")
			writeReturn(b, "yield", n.Body.Outputs, indent+"  ")
			b.WriteString(indent + "}")
		}
		b.WriteByte('\n')
	}
}

// writeNodeHead writes "%r = op args {attrs} : type". A kernel prints its
// name instead of its arguments, which are implied by its body.
func writeNodeHead(b *strings.Builder, n *Node) {
	if n.Result != nil {
		b.WriteString(n.Result.Ref() + " = ")
	}
	b.WriteString(n.Op.String())
	attrs := n.Attrs
	if n.Op == OpKernel {
		b.WriteString(" " + n.Attrs.String("name", "?"))
		attrs = attrs.Clone()
		delete(attrs, "name")
	} else {
		for i, a := range n.Args {
			if i == 0 {
				b.WriteByte(' ')
			} else {
				b.WriteString(", ")
			}
			if a == nil {
				b.WriteString("<nil>")
			} else {
				b.WriteString(a.Ref())
			}
		}
	}
	if s := attrs.Format(); s != "" {
		b.WriteString(" " + s)
	}
	if n.Result != nil {
		b.WriteString(" : " + n.Result.Type.String())
	}
}
