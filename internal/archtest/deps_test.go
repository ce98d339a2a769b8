// Package archtest checks routelab's package layering (ARCHITECTURE.md):
// imports flow downward only, the value types are a leaf, and storage does
// not depend on policies or the decision core.
package archtest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/routelab/routelab/"

// allowed lists, per package, the routelab packages it may import directly.
// A package missing here fails the test: adding one is a deliberate design
// decision, made here and in the package docs.
var allowed = map[string][]string{
	"decision":         {},
	"mask":             {},
	"policy":           {"decision"},
	"policy/neural":    {"decision", "policy"},
	"route":            {"decision", "policy"},
	"decisionlog":      {"decision"},
	"logship":          {"decisionlog"},
	"replay":           {"decision", "policy"},
	"replay/opebench":  {"decision", "offline", "policy", "replay", "sim"},
	"artifact":         {"decision", "policy"},
	"sim":              {"decision", "policy", "route"},
	"sim/fromlogs":     {"decision", "decisionlog", "policy", "replay", "sim"},
	"offline":          {"decision", "decisionlog", "policy", "policy/neural", "replay"},
	"datasets":         {"decision", "policy", "route"},
	"experiments":      {"decision", "policy", "route", "sim"},
	"gateway/provider": {"decision"},
	"sharedstate":      {"policy"},
	"gateway":          {"artifact", "decision", "gateway/provider", "mask", "policy", "route", "sharedstate"},
	"bench/gateway":    {"decisionlog", "gateway", "policy"},
	"cmd/routelab": {"artifact", "datasets", "decision", "decisionlog", "experiments", "gateway", "gateway/grpcapi", "offline",
		"policy", "policy/neural", "logship", "replay", "replay/opebench", "route", "sim", "sim/fromlogs"},

	// The gRPC API (beside the gateway, which it drives through
	// gateway.Server.Chat); its protoc-generated code imports nothing of
	// the project.
	"gateway/grpcapi":            {"gateway", "gateway/grpcapi/routelabv1", "gateway/provider"},
	"gateway/grpcapi/routelabv1": {},

	// The chaos suite drives the binary over HTTP; it reads the decision
	// log it left behind.
	"cmd/routelab-chaos": {"decision", "decisionlog"},
}

// leafOnly are packages whose whole dependency closure (not just direct
// imports) must stay within the listed routelab packages.
var leafOnly = map[string][]string{
	"decision":    {},
	"decisionlog": {"decision"},
	"mask":        {},
	"policy":      {"decision"},
}

type pkg struct {
	path    string
	imports []string
	deps    []string
}

func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "github.com/routelab/routelab/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Skipf("go list unavailable: %v", err)
	}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			t.Fatalf("go list line %q", line)
		}
		pkgs = append(pkgs, pkg{path: strings.TrimPrefix(f[0], module), imports: own(f[1]), deps: own(f[2])})
	}
	return pkgs
}

// own keeps routelab's packages, without the module prefix.
func own(s string) []string {
	var r []string
	for _, p := range strings.Fields(s) {
		if strings.HasPrefix(p, module) {
			r = append(r, strings.TrimPrefix(p, module))
		}
	}
	return r
}

func TestImportsFlowDownward(t *testing.T) {
	pkgs := list(t)
	if len(pkgs) < len(allowed) {
		t.Fatalf("go list found %d packages, want at least %d", len(pkgs), len(allowed))
	}
	for _, p := range pkgs {
		if strings.Contains(p.path, "internal/") || strings.HasPrefix(p.path, "internal") {
			continue // test-only helpers
		}
		ok, known := allowed[p.path]
		if !known {
			t.Errorf("%s: not in the layering table of internal/archtest; add it deliberately", p.path)
			continue
		}
		for _, imp := range p.imports {
			if strings.HasPrefix(imp, "internal/") || strings.Contains(imp, "/internal/") {
				continue
			}
			if !slices.Contains(ok, imp) {
				t.Errorf("%s imports %s, which its layer does not allow (allowed: %v)", p.path, imp, ok)
			}
		}
	}
}

func TestLeavesStayLeaves(t *testing.T) {
	for _, p := range list(t) {
		want, ok := leafOnly[p.path]
		if !ok {
			continue
		}
		for _, d := range p.deps {
			if strings.HasPrefix(d, "internal/atomicfile") {
				continue // a standard-library-only helper (the one atomic file write)
			}
			if !slices.Contains(want, d) {
				t.Errorf("%s depends (transitively) on %s; it may depend only on %v", p.path, d, want)
			}
		}
	}
}
