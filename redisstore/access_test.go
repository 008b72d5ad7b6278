package redisstore

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// clientPaths are the only functions that touch the Redis client itself;
// every other store method goes through the batcher (run, do, doWrite,
// revoke, batch.run), which sends each call by runPipelined.
var clientPaths = map[string]string{
	"runPipelined":  "the batcher's one way out: pipelines, EVALSHA with EVAL fallback, replicas' WAIT",
	"walkSortedSet": "the ZSCAN walker (walk.go)",
	"walkSet":       "the SSCAN walker (walk.go)",
	"checkReplicas": "durability: INFO replication from each node",
	"Ping":          "health: every node answers",
	"Close":         "the store closes the client it opened",
	"Client":        "the client, for tests and health checks",
}

// TestOneRedisAccessPath keeps bare client calls (s.rdb, script.Run,
// Pipelined) out of the store's methods: a new method that reaches Redis
// another way fails here.
func TestOneRedisAccessPath(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			checked++
			if _, ok := clientPaths[fn.Name.Name]; ok {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if bare := sel.Sel.Name == "rdb" ||
					slices.Contains([]string{"Run", "RunRO", "Eval", "EvalSha", "EvalRO", "EvalShaRO", "Pipelined", "TxPipelined"}, sel.Sel.Name); bare {
					t.Errorf("%s: %s uses %s directly; go through the batcher (run, do, doWrite) or a walker",
						fset.Position(sel.Pos()), fn.Name.Name, sel.Sel.Name)
				}
				return true
			})
		}
	}
	if checked < 50 {
		t.Fatalf("checked %d functions: the test does not see the package", checked)
	}
}
