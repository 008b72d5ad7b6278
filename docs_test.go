package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDesignNames keeps docs/design.md true to the code: every Go name it
// writes in backticks as package.Name or package.Type.Method exists in that
// package (exported or not), every camelCase name it writes alone is declared
// somewhere, and every repository path it names exists.
func TestDesignNames(t *testing.T) {
	decl := declarations(t)
	doc, err := os.ReadFile("docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range inlineCode(string(doc)) {
		switch {
		case isPath(name):
			checked++
			if _, err := os.Stat(strings.TrimSuffix(name, "/")); err != nil {
				t.Errorf("docs/design.md names `%s`, which is not in the repository", name)
			}
		case qualified.MatchString(name) && decl.packages[strings.SplitN(name, ".", 2)[0]]:
			checked++
			if !decl.names[name] {
				t.Errorf("docs/design.md names `%s`, which its package does not declare", name)
			}
		case camelCase.MatchString(name):
			checked++
			if !decl.bare[name] {
				t.Errorf("docs/design.md names `%s`, which no package declares", name)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d names checked in docs/design.md: is the page or this test broken?", checked)
	}
}

// TestDocLinks: every relative link of the README and docs/ leads to a file
// or directory of the repository.
func TestDocLinks(t *testing.T) {
	pages, _ := filepath.Glob("docs/*.md")
	pages = append(pages, "README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(page), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", page, target)
			}
		}
	}
}

var (
	qualified = regexp.MustCompile(`^[a-z][a-z0-9]*(\.[A-Za-z][A-Za-z0-9]*){1,2}$`)
	camelCase = regexp.MustCompile(`^[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*$`)
)

// isPath reports whether s reads as a repository path: a file with a known
// extension, or a path whose first element is at the repository's top.
func isPath(s string) bool {
	if strings.ContainsAny(s, " <>{}*\"'") {
		return false
	}
	for _, ext := range []string{".go", ".lua", ".yaml", ".md", ".mod"} {
		if strings.HasSuffix(s, ext) {
			return true
		}
	}
	first, _, ok := strings.Cut(s, "/")
	if !ok {
		return false
	}
	_, err := os.Stat(first)
	return err == nil
}

// inlineCode returns the `code spans` of a Markdown page outside its fenced
// blocks.
func inlineCode(page string) []string {
	var out []string
	fenced := false
	span := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range span.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

type declared struct {
	packages map[string]bool // package names
	names    map[string]bool // pkg.Name and pkg.Type.Method
	bare     map[string]bool // every declared name, alone
}

// declarations parses every Go file of the repository (tests included, for
// the names of test functions) and lists what each package declares at its
// top level, with the methods of its types.
func declarations(t *testing.T) declared {
	t.Helper()
	d := declared{packages: map[string]bool{}, names: map[string]bool{}, bare: map[string]bool{}}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && path != "." && (strings.HasPrefix(e.Name(), ".") || e.Name() == "node_modules" || e.Name() == "testdata") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := strings.TrimSuffix(f.Name.Name, "_test")
		d.packages[pkg] = true
		add := func(name string) { d.names[pkg+"."+name] = true; d.bare[name] = true }
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil {
					add(decl.Name.Name)
					continue
				}
				typ := decl.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if idx, ok := typ.(*ast.IndexExpr); ok {
					typ = idx.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					add(id.Name + "." + decl.Name.Name)
					d.bare[decl.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						add(spec.Name.Name)
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							add(n.Name)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
