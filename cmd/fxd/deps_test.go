package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "fxd.dev/fxd/"

// domainRule is what a domain package (and its subpackages) may import
// from the module besides its own subtree: STYLE.md's "Imports, one way".
var domainRule = map[string][]string{
	"api":        {},
	"conf":       {},
	"isolation":  {"api", "conf"},
	"cache":      {"api", "conf"},
	"batch":      {"api", "conf"},
	"federation": {"api", "conf"},
	"runtimes":   {"api", "conf", "isolation", "cache"},
	"daemon":     {"api", "conf", "isolation", "cache", "batch", "federation", "runtimes"},
	// helpers that are not design words: test support (testenv, whose
	// servable speaks runtimes/wire) and boltfile
	"internal": {"api", "conf", "isolation", "runtimes"},
}

// sharedHelpers are internal packages every domain may import: they hold
// no design word of their own.
var sharedHelpers = map[string]bool{"internal/boltfile": true, "internal/units": true, "internal/atomicfile": true, "internal/privdir": true}

// providers are the plugin implementations; none imports another.
var providers = map[string]bool{
	"isolation/plain": true, "isolation/oci": true,
	"batch/local": true, "batch/slurm": true, "batch/pbs": true,
}

// TestImportDirection checks every package's imports (not its tests')
// against STYLE.md, so that layering mistakes fail CI instead of review.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "fxd.dev/fxd/...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		checked++
		for _, imp := range p.Imports {
			if why := importViolation(strings.TrimPrefix(p.ImportPath, module), imp); why != "" {
				t.Errorf("%s imports %s: %s", p.ImportPath, imp, why)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list found %d packages; expected the whole module", checked)
	}
}

// importViolation says why pkg (relative to the module) must not import
// imp, or "" when it may.
func importViolation(pkg, imp string) string {
	dep, ok := strings.CutPrefix(imp, module)
	if !ok {
		return "" // the standard library and third-party modules
	}
	domain, depDomain := first(pkg), first(dep)
	if domain == "cmd" {
		return ""
	}
	if strings.HasPrefix(dep, "cmd/") {
		return "nothing imports a command"
	}
	if providers[second(pkg)] && providers[second(dep)] && second(pkg) != second(dep) {
		return "a provider never imports a sibling provider; move what they share to the parent package"
	}
	if depDomain == domain {
		return ""
	}
	if sharedHelpers[dep] {
		return ""
	}
	if depDomain == "internal" && strings.HasSuffix(pkg, "test") {
		return "" // conformance suites (isolationtest, batchtest) use the test helpers
	}
	allowed, known := domainRule[domain]
	if !known {
		return "package outside STYLE.md's layout; add its rule to domainRule"
	}
	for _, a := range allowed {
		if depDomain == a {
			return ""
		}
	}
	return domain + " may import only " + strings.Join(append(allowed, domain), ", ") + " (STYLE.md, Imports, one way)"
}

func first(p string) string { d, _, _ := strings.Cut(p, "/"); return d }

// second is the first two path elements, e.g. "isolation/plain".
func second(p string) string {
	parts := strings.SplitN(p, "/", 3)
	if len(parts) < 2 {
		return p
	}
	return parts[0] + "/" + parts[1]
}

func TestImportViolation(t *testing.T) {
	for _, tc := range []struct {
		pkg, imp string
		ok       bool
	}{
		{"runtimes", module + "isolation", true},
		{"runtimes/shim", module + "runtimes/wire", true},
		{"isolation/plain", module + "isolation/cgroup", true},
		{"isolation/isolationtest", module + "internal/testenv", true},
		{"daemon", module + "runtimes", true},
		{"cmd/fxd", module + "daemon", true},
		{"api", module + "conf", false},
		{"isolation", module + "runtimes", false},
		{"runtimes", module + "daemon", false},
		{"daemon", module + "cmd/fx", false},
		{"batch/slurm", module + "batch/pbs", false},
		{"isolation/plain", module + "internal/testenv", false},
	} {
		if got := importViolation(tc.pkg, tc.imp) == ""; got != tc.ok {
			t.Errorf("importViolation(%s, %s) allows = %v, want %v", tc.pkg, tc.imp, got, tc.ok)
		}
	}
}
