package oci

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/validate"
	"github.com/xeipuuv/gojsonschema"

	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

// schemaDir finds the JSON schema of the runtime-spec version in go.mod,
// in the Go module cache (go list -m), so the check runs offline.
func schemaDir(t *testing.T) string {
	t.Helper()
	// go test puts its own go first on PATH
	out, err := exec.Command(testenv.RequireCommand(t, "go"), "list", "-m", "-f", "{{.Dir}}", "github.com/opencontainers/runtime-spec").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "schema")
	if err != nil || strings.TrimSpace(string(out)) == "" {
		testenv.Unavailable(t, "needs github.com/opencontainers/runtime-spec in the Go module cache (go mod download): "+errText(err))
	}
	if _, err := os.Stat(filepath.Join(dir, "config-schema.json")); err != nil {
		testenv.Unavailable(t, "needs the runtime-spec JSON schema in the module cache: "+err.Error())
	}
	return dir
}

func errText(err error) string {
	if err == nil {
		return "no module directory"
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}

// writeBundle writes g as bundle/config.json, with the root file system at
// bundle/rootfs as the runtime-spec wants ("artifacts in a single dir").
func writeBundle(t *testing.T, g *specs.Spec) string {
	t.Helper()
	bundle := t.TempDir()
	g.Root.Path = filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(g.Root.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(g, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// validateBundle checks bundle/config.json against the JSON schema in
// schema and runtime-tools' semantic rules (all of CheckAll but its
// schema download), and returns the problems.
func validateBundle(t *testing.T, schema, bundle string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	res, err := gojsonschema.Validate(gojsonschema.NewReferenceLoader("file://"+filepath.Join(schema, "config-schema.json")), gojsonschema.NewBytesLoader(raw))
	if err != nil {
		t.Fatalf("load schema %s: %v", schema, err)
	}
	for _, e := range res.Errors() {
		problems = append(problems, "schema: "+e.String())
	}
	var g specs.Spec
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("decode config.json: %v", err)
	}
	v, err := validate.NewValidator(&g, bundle, false, "linux")
	if err != nil {
		t.Fatalf("runtime-tools validator: %v", err)
	}
	for name, check := range map[string]func() error{
		"platform": v.CheckPlatform, "root": v.CheckRoot, "mandatory": v.CheckMandatoryFields,
		"semver": v.CheckSemVer, "mounts": v.CheckMounts, "process": v.CheckProcess,
		"linux": v.CheckLinux, "annotations": v.CheckAnnotations, "hooks": v.CheckHooks,
	} {
		err := check()
		if err == nil {
			continue
		}
		// a go-multierror list: "N errors occurred:\n\t* one\n\t* two", possibly
		// with no entries; each entry may be followed by "Refer to: URL".
		for _, line := range strings.Split(err.Error(), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
			if line == "" || strings.HasSuffix(line, "occurred:") || strings.HasPrefix(line, "Refer to:") {
				continue
			}
			problems = append(problems, name+": "+line)
		}
	}
	return problems
}

func TestSpecValidates(t *testing.T) {
	schema := schemaDir(t)
	for _, tc := range []struct {
		name    string
		runtime string
		site    func(*Site)
		binds   []isolation.Bind // the Spec's own
	}{
		{"host network", "crun", func(*Site) {}, nil},
		{"host network, runc", "runc", func(*Site) {}, nil},
		{"no network", "crun", func(s *Site) { s.Network = NetworkNone }, nil},
		{"no shim or binds, work dir /tmp", "crun", func(s *Site) { s.Shim, s.Binds, s.WorkDir = "", nil, "/tmp" }, nil},
		{"task data bind", "crun", func(*Site) {}, []isolation.Bind{taskData}},
		{"task data bind, runc", "runc", func(*Site) {}, []isolation.Bind{taskData}},
		{"task data bind, work dir /tmp", "crun", func(s *Site) { s.WorkDir = "/tmp" },
			[]isolation.Bind{{Source: taskData.Source, Destination: "/tmp/data", ReadOnly: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := testSite()
			tc.site(&site)
			s := testSpec()
			s.Binds = tc.binds
			s.Rootfs = "/placeholder" // replaced below by bundle/rootfs
			g, err := buildSpecFor(s, site, tc.runtime)
			if err != nil {
				t.Fatal(err)
			}
			// The config claims 1.0.2 for crun 1.8 (see specVersion);
			// the validator knows only the schema and rules of the
			// module's version, which hold every 1.0 config too (minor
			// versions only add optional fields).
			if !strings.HasPrefix(g.Version, "1.0.") {
				t.Fatalf("Version = %q, want 1.0.x", g.Version)
			}
			g.Version = specs.Version
			bundle := writeBundle(t, g)
			for _, p := range validateBundle(t, schema, bundle) {
				t.Errorf("config.json: %s", p)
			}
		})
	}
}

// TestValidatorCatches proves the validation above can fail: a spec the
// schema and runtime-tools refuse is reported.
func TestValidatorCatches(t *testing.T) {
	schema := schemaDir(t)
	g, err := buildSpec(testSpec(), testSite())
	if err != nil {
		t.Fatal(err)
	}
	g.Process.Cwd = "relative"                       // runtime-tools: cwd must be absolute
	g.Linux.Namespaces[0].Type = "nosuch"            // schema: enum
	g.Process.Rlimits[0].Type = "RLIMIT_NOSUCHTHING" // runtime-tools: unknown rlimit
	bundle := writeBundle(t, g)
	problems := strings.Join(validateBundle(t, schema, bundle), "\n")
	t.Logf("problems found, as wanted:\n%s", problems)
	for _, want := range []string{"schema:", "cwd", "RLIMIT_NOSUCHTHING"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems of a broken config.json lack %q:\n%s", want, problems)
		}
	}
}
