package tokenizer

// postProcessor adds the special tokens of a single sequence. It is only
// called when Encode is asked to add special tokens; all the supported
// post-processors leave the ids alone otherwise.
type postProcessor interface {
	process(ids []int) []int
}

// templatePost is TemplateProcessing with its "single" template: a list of
// parts, each either the sequence itself or the ids of a special token.
type templatePost struct{ single []templatePart }

type templatePart struct {
	sequence bool
	ids      []int
}

func (p templatePost) process(ids []int) []int {
	n := 0
	for _, part := range p.single {
		if part.sequence {
			n += len(ids)
		} else {
			n += len(part.ids)
		}
	}
	out := make([]int, 0, n)
	for _, part := range p.single {
		if part.sequence {
			out = append(out, ids...)
		} else {
			out = append(out, part.ids...)
		}
	}
	return out
}

// clsSepPost is BertProcessing and RobertaProcessing for one sequence:
// cls, the sequence, sep.
type clsSepPost struct{ cls, sep int }

func (p clsSepPost) process(ids []int) []int {
	out := make([]int, 0, len(ids)+2)
	out = append(out, p.cls)
	out = append(out, ids...)
	return append(out, p.sep)
}

// nopPost is the ByteLevel post-processor, which only trims offsets.
type nopPost struct{}

func (nopPost) process(ids []int) []int { return ids }

type seqPost struct{ items []postProcessor }

func (p seqPost) process(ids []int) []int {
	for _, it := range p.items {
		ids = it.process(ids)
	}
	return ids
}
