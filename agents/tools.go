package agents

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"strconv"
	"time"
)

// ErrExpression means a calculator expression is malformed or uses something other
// than numbers, arithmetic operators, parentheses and the listed functions.
var ErrExpression = errors.New("agents: invalid expression")

// maxExpression bounds the length of a calculator expression.
const maxExpression = 512

// Calculator is a tool that evaluates arithmetic expressions: numbers, + - * / %,
// parentheses, and the functions sqrt, abs, pow, min, max, floor, ceil, round. The
// expression is parsed into a syntax tree and only those nodes are evaluated; nothing
// is ever executed.
func Calculator() Tool {
	return Tool{
		Name:        "calculator",
		Description: "Evaluates an arithmetic expression, e.g. (2 + 3) * pow(2, 10) / 7.",
		Args:        []byte(`{"type":"object","properties":{"expression":{"type":"string"}},"required":["expression"]}`),
		Call: func(_ context.Context, args map[string]any) (string, error) {
			expr, _ := args["expression"].(string)
			v, err := Evaluate(expr)
			if err != nil {
				return "", err
			}
			return strconv.FormatFloat(v, 'g', -1, 64), nil
		},
	}
}

// Evaluate computes the value of an arithmetic expression (see Calculator).
func Evaluate(expr string) (float64, error) {
	if len(expr) > maxExpression {
		return 0, fmt.Errorf("%w: longer than %d characters", ErrExpression, maxExpression)
	}
	node, err := parser.ParseExpr(expr)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", ErrExpression, expr, err)
	}
	v, err := eval(node)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %q has no finite value", ErrExpression, expr)
	}
	return v, nil
}

var functions = map[string]struct {
	arity int
	fn    func(a []float64) float64
}{
	"sqrt":  {1, func(a []float64) float64 { return math.Sqrt(a[0]) }},
	"abs":   {1, func(a []float64) float64 { return math.Abs(a[0]) }},
	"floor": {1, func(a []float64) float64 { return math.Floor(a[0]) }},
	"ceil":  {1, func(a []float64) float64 { return math.Ceil(a[0]) }},
	"round": {1, func(a []float64) float64 { return math.Round(a[0]) }},
	"pow":   {2, func(a []float64) float64 { return math.Pow(a[0], a[1]) }},
	"min":   {2, func(a []float64) float64 { return math.Min(a[0], a[1]) }},
	"max":   {2, func(a []float64) float64 { return math.Max(a[0], a[1]) }},
}

func eval(n ast.Expr) (float64, error) {
	switch n := n.(type) {
	case *ast.BasicLit:
		if n.Kind != token.INT && n.Kind != token.FLOAT {
			return 0, fmt.Errorf("%w: %s is not a number", ErrExpression, n.Value)
		}
		return strconv.ParseFloat(n.Value, 64)
	case *ast.ParenExpr:
		return eval(n.X)
	case *ast.UnaryExpr:
		x, err := eval(n.X)
		switch {
		case err != nil:
			return 0, err
		case n.Op == token.SUB:
			return -x, nil
		case n.Op == token.ADD:
			return x, nil
		}
		return 0, fmt.Errorf("%w: operator %s", ErrExpression, n.Op)
	case *ast.BinaryExpr:
		x, err := eval(n.X)
		if err != nil {
			return 0, err
		}
		y, err := eval(n.Y)
		if err != nil {
			return 0, err
		}
		switch n.Op {
		case token.ADD:
			return x + y, nil
		case token.SUB:
			return x - y, nil
		case token.MUL:
			return x * y, nil
		case token.QUO:
			if y == 0 {
				return 0, fmt.Errorf("%w: division by zero", ErrExpression)
			}
			return x / y, nil
		case token.REM:
			if y == 0 {
				return 0, fmt.Errorf("%w: division by zero", ErrExpression)
			}
			return math.Mod(x, y), nil
		}
		return 0, fmt.Errorf("%w: operator %s (use pow(x, y) for powers)", ErrExpression, n.Op)
	case *ast.CallExpr:
		name, ok := n.Fun.(*ast.Ident)
		if !ok {
			return 0, fmt.Errorf("%w: only named functions can be called", ErrExpression)
		}
		f, ok := functions[name.Name]
		if !ok {
			return 0, fmt.Errorf("%w: unknown function %s", ErrExpression, name.Name)
		}
		if len(n.Args) != f.arity || n.Ellipsis.IsValid() {
			return 0, fmt.Errorf("%w: %s takes %d arguments", ErrExpression, name.Name, f.arity)
		}
		args := make([]float64, len(n.Args))
		for i, a := range n.Args {
			v, err := eval(a)
			if err != nil {
				return 0, err
			}
			args[i] = v
		}
		return f.fn(args), nil
	}
	return 0, fmt.Errorf("%w: unsupported syntax %T", ErrExpression, n)
}

// Clock is a tool that tells the current time in UTC (RFC 3339), read from now.
func Clock(now func() time.Time) Tool {
	return Tool{
		Name:        "clock",
		Description: "Returns the current date and time in UTC (RFC 3339).",
		Args:        []byte(`{"type":"object","properties":{}}`),
		Call: func(context.Context, map[string]any) (string, error) {
			return now().UTC().Format(time.RFC3339), nil
		},
	}
}
