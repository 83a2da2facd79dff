package golang

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
)

// TestLinearExpr prints random integer expressions in linear form and
// evaluates the printed Go against the kernel IR expression, with Go's
// int arithmetic on both sides, for random operands: the form must keep
// every value, wrapping products included, and print / and % (which are
// not linear) with their operands intact.
func TestLinearExpr(t *testing.T) {
	vars := []*kir.Var{{Name: "a", T: kir.Int}, {Name: "b", T: kir.Int}, {Name: "jb", T: kir.Int}, {Name: "t", T: kir.Int}}
	rng := rand.New(rand.NewPCG(1, 2))
	var random func(depth int) kir.Expr
	random = func(depth int) kir.Expr {
		if depth == 0 || rng.IntN(4) == 0 {
			if rng.IntN(3) == 0 {
				return kir.IntConst{N: rng.IntN(200) - 100}
			}
			return vars[rng.IntN(len(vars))]
		}
		switch rng.IntN(8) {
		case 0, 1:
			return &kir.Bin{Op: kir.Add, A: random(depth - 1), B: random(depth - 1)}
		case 2:
			return &kir.Bin{Op: kir.Sub, A: random(depth - 1), B: random(depth - 1)}
		case 3:
			return &kir.Bin{Op: kir.Mul, A: random(depth - 1), B: kir.IntConst{N: rng.IntN(64) - 8}}
		case 4:
			return &kir.Bin{Op: kir.Mul, A: random(depth - 1), B: random(depth - 1)}
		case 5:
			return &kir.Bin{Op: kir.Div, A: random(depth - 1), B: kir.IntConst{N: 1 + rng.IntN(16)}}
		case 6:
			return &kir.Bin{Op: kir.Rem, A: random(depth - 1), B: kir.IntConst{N: 1 + rng.IntN(16)}}
		}
		return &kir.Bin{Op: kir.Min, A: random(depth - 1), B: random(depth - 1)}
	}
	for i := 0; i < 2000; i++ {
		e := random(5)
		g := &gen{}
		// Half of the cases print t as the variable of an unrolled loop.
		env := map[string]int{}
		for _, v := range vars {
			env[v.Name] = rng.IntN(1<<20) - 1<<19
		}
		if i%2 == 1 {
			env["t"] = rng.IntN(8)
			g.unrolledVars = map[*kir.Var]int{vars[3]: env["t"]}
		}
		src := fmt.Sprintf("%#v", g.expr(e, false))
		x, err := parser.ParseExpr(src)
		require.NoError(t, err, "%s printed as %s", e, src)
		if i%2 == 1 {
			require.NotContains(t, identifiers(x), "t", "%s printed as %s: the unrolled loop's variable is left in", e, src)
		}
		require.Equal(t, evalKIR(e, env), evalGo(t, x, env), "%s printed as %s, operands %v", e, src, env)
	}
}

// TestLinearExprShape pins the form the Go compiler's CSE needs: the rows
// of a block share one parenthesised base, and the row's constant comes
// last.
func TestLinearExprShape(t *testing.T) {
	jb, kh := &kir.Var{Name: "jb", T: kir.Int}, &kir.Var{Name: "kh", T: kir.Int}
	row := func(r int) kir.Expr {
		return &kir.Bin{Op: kir.Add,
			A: &kir.Bin{Op: kir.Mul, A: &kir.Bin{Op: kir.Add, A: jb, B: kir.IntConst{N: r}}, B: kir.IntConst{N: 32}},
			B: &kir.Bin{Op: kir.Mul, A: kh, B: kir.IntConst{N: 8}}}
	}
	g := &gen{}
	for _, c := range []struct {
		e    kir.Expr
		want string
	}{
		{row(0), "((jb * 32) + (kh * 8))"},
		{row(3), "(((jb * 32) + (kh * 8)) + 96)"},
		{&kir.Bin{Op: kir.Sub, A: &kir.Bin{Op: kir.Add, A: kir.IntConst{N: 1}, B: jb}, B: kh}, "((jb - kh) + 1)"},
		{&kir.Bin{Op: kir.Sub, A: jb, B: jb}, "0"},
	} {
		require.Equal(t, c.want, fmt.Sprintf("%#v", g.expr(c.e, false)), "%s", c.e)
	}
}

func identifiers(x ast.Expr) []string {
	var ids []string
	ast.Inspect(x, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			ids = append(ids, id.Name)
		}
		return true
	})
	return ids
}

// evalKIR evaluates an integer kernel IR expression with Go's int
// arithmetic, as the generated code and kir.Machine compute it.
func evalKIR(e kir.Expr, env map[string]int) int {
	return kir.EvalInt(e, func(x kir.Expr) int { return env[x.(*kir.Var).Name] })
}

// evalGo evaluates a printed integer expression.
func evalGo(t *testing.T, x ast.Expr, env map[string]int) int {
	switch x := x.(type) {
	case *ast.ParenExpr:
		return evalGo(t, x.X, env)
	case *ast.BasicLit:
		n, err := strconv.Atoi(x.Value)
		require.NoError(t, err)
		return n
	case *ast.Ident:
		v, ok := env[x.Name]
		require.True(t, ok, "unknown identifier %s", x.Name)
		return v
	case *ast.UnaryExpr:
		require.Equal(t, token.SUB, x.Op)
		return -evalGo(t, x.X, env)
	case *ast.BinaryExpr:
		a, b := evalGo(t, x.X, env), evalGo(t, x.Y, env)
		switch x.Op {
		case token.ADD:
			return a + b
		case token.SUB:
			return a - b
		case token.MUL:
			return a * b
		case token.QUO:
			return a / b
		case token.REM:
			return a % b
		}
	case *ast.CallExpr:
		a, b := evalGo(t, x.Args[0], env), evalGo(t, x.Args[1], env)
		switch x.Fun.(*ast.Ident).Name {
		case "min":
			return min(a, b)
		case "max":
			return max(a, b)
		}
	}
	t.Fatalf("evalGo: unexpected %T", x)
	return 0
}
