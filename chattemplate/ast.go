package chattemplate

// Every node records the byte offset of the token it starts at, so errors
// can name a line and column.
type at struct{ pos int }

func (a at) position() int { return a.pos }

type node interface{ position() int }

type expr interface{ position() int }

// Statements.
type (
	textNode struct {
		at
		text string
	}
	outputNode struct {
		at
		x expr
	}
	ifNode struct {
		at
		conds  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		at
		target target
		iter   expr
		cond   expr // optional "if" filter on the items
		body   []node
		els    []node
	}
	setNode struct {
		at
		target target
		x      expr
	}
	setBlockNode struct {
		at
		target  target
		filters []*filterExpr // applied to the body, arg nil
		body    []node
	}
	macroNode struct {
		at
		name     string
		params   []string
		defaults []expr // aligned with params, nil when required
		body     []node
	}
	filterBlockNode struct {
		at
		filters []*filterExpr
		body    []node
	}
	// blockNode is a body rendered in place in a scope of its own, e.g.
	// {% generation %}.
	blockNode struct {
		at
		body []node
	}
	breakNode    struct{ at }
	continueNode struct{ at }
)

// target is the left side of a set or the variables of a for.
type target struct {
	names []string // one name, or several for tuple unpacking
	tuple bool     // unpack even when there is one name ("a," = x)
	attr  string   // set ns.attr: names[0] is the namespace
}

// Expressions.
type (
	constExpr struct {
		at
		v any
	}
	nameExpr struct {
		at
		name string
	}
	attrExpr struct {
		at
		x    expr
		name string
	}
	itemExpr struct {
		at
		x   expr
		key expr
	}
	sliceExpr struct {
		at
		x              expr
		lo, hi, stride expr // each optional
	}
	callExpr struct {
		at
		fn     expr
		args   []expr
		kwargs []kwargExpr
	}
	filterExpr struct {
		at
		x      expr
		name   string
		fn     filterFunc
		args   []expr
		kwargs []kwargExpr
	}
	testExpr struct {
		at
		x    expr
		name string
		fn   testFunc
		args []expr
	}
	unaryExpr struct {
		at
		op string // "-", "+", "not"
		x  expr
	}
	binaryExpr struct {
		at
		op   string // arithmetic, "and", "or", "in", "not in"
		l, r expr
	}
	concatExpr struct {
		at
		parts []expr
	}
	compareExpr struct {
		at
		first expr
		ops   []string
		rest  []expr
	}
	condExpr struct {
		at
		cond, then, els expr // els optional
	}
	listExpr struct {
		at
		items []expr
		tuple bool
	}
	dictExpr struct {
		at
		keys, vals []expr
	}
)

type kwargExpr struct {
	name string
	x    expr
}
