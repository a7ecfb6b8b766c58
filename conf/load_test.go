package conf

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite the golden testdata/bad/*.err files")

// check loads and validates a file, as `fxd config check` does.
func check(path string) error {
	c, err := Load(path)
	if err != nil {
		return err
	}
	return c.Validate()
}

func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/bad/*.toml: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			err := check(file)
			if err == nil {
				t.Fatalf("check(%s) = nil, want problems", file)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("check(%s) = %v, does not wrap ErrInvalid", file, err)
			}
			var p *Problem
			if !errors.As(err, &p) || p.File != file {
				t.Errorf("check(%s): first problem %+v does not name the file", file, p)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".toml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test ./conf -update to write it): %v", err)
			}
			if got != string(want) {
				t.Errorf("check(%s) =\n%s\nwant\n%s", file, got, want)
			}
		})
	}
}

func TestGoodConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/good/*.toml: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if err := check(file); err != nil {
				t.Errorf("check(%s) = %v, want nil", file, err)
			}
		})
	}
}

// A good config keeps the defaults it does not set, and an array it sets
// replaces the default one.
func TestParseOverDefaults(t *testing.T) {
	c, err := Load("testdata/good/socket_only.toml")
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if len(c.Auth.Map) != 3 || c.Auth.Map[2] != (MapRule{Match: "CN=robot,O=Lab", Account: "5001"}) {
		t.Errorf("auth.map = %+v, want the file's 3 rules", c.Auth.Map)
	}
	if c.Limits.MaxInputBytes != 1<<20 || c.Limits.MaxResultBytes != 1e9 || c.Tenants.Default.CPUs != 1 {
		t.Errorf("limits %+v, default quota %+v: not as in the file", c.Limits, c.Tenants.Default)
	}
	if q := c.Tenants.Account["bob.smith"]; q.Pids != 4096 {
		t.Errorf("quoted account key: %+v", c.Tenants.Account)
	}

	// A pool takes what it leaves out from [batch.defaults], as the file
	// changes them; an array it sets replaces the default's.
	b, err := Load("testdata/pools.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Batch.Pool) != 2 {
		t.Fatalf("batch.pool = %+v, want the file's 2 pools", b.Batch.Pool)
	}
	cpu, debug := b.Batch.Pool[0], b.Batch.Pool[1]
	if cpu.Provider != "slurm" || cpu.Walltime.D() != 2*time.Hour || cpu.MaxNodes != 8 || cpu.Nodes != 1 ||
		cpu.Slurm != (SlurmPool{Partition: "regular", Account: "m1234"}) || !slices.Equal(cpu.WorkerInit, []string{"module load apptainer"}) {
		t.Errorf("pool cpu = %+v, want slurm, 2h, 8 nodes at most, 1 by default, regular/m1234, the defaults' worker_init", cpu)
	}
	if debug.Provider != "local" || debug.Walltime.D() != 30*time.Minute || len(debug.WorkerInit) != 0 || debug.IdleTimeout != def.Batch.Defaults.IdleTimeout {
		t.Errorf("pool debug = %+v, want local, 30m, no worker_init, the default idle_timeout", debug)
	}
	cpu.WorkerInit[0] = "changed"
	if b.Batch.Defaults.WorkerInit[0] != "module load apptainer" {
		t.Errorf("a pool's worker_init shares its array with [batch.defaults]")
	}

	m, err := Load("testdata/good/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	m.src, def.src = nil, nil
	def.Site.Name = "alcf"
	if !reflect.DeepEqual(m, def) {
		t.Errorf("minimal.toml = %+v, want the defaults with site.name alcf", m)
	}

	in, err := Load("testdata/good/inline.toml")
	if err != nil {
		t.Fatal(err)
	}
	if in.Endpoint.DrainGrace.D().Seconds() != 10 || len(in.Auth.Map) != 2 || in.Tenants.QuotaFor("carol").MaxWorkers != 1 ||
		in.Tenants.Default.MaxRunning != 4 || in.Log.Level != "warn" {
		t.Errorf("inline.toml decoded to %+v", in)
	}
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	dir := t.TempDir()
	d := Dev(dir)
	if err := d.Validate(); err != nil {
		t.Errorf("Dev(%s).Validate() = %v", dir, err)
	}
	if d.Endpoint.Socket != filepath.Join(dir, "fxd.sock") || d.Site.StateDir != dir || d.Workers.CgroupParent != "fxd-dev" || d.Log.Format != "auto" {
		t.Errorf("Dev(%s) = %+v", dir, d)
	}
	if Default().Site.StateDir != "/var/lib/fxd" {
		t.Error("Dev changed the defaults")
	}
}

// The embedded default.toml, as printed, decodes to Default(); and Default()
// encoded again decodes to the same.
func TestDefaultRoundTrip(t *testing.T) {
	def := Default()
	c, err := Parse(DefaultTOML(), "default.toml")
	if err != nil {
		t.Fatalf("Parse(default.toml) = %v", err)
	}
	c.src = nil
	if !reflect.DeepEqual(c, def) {
		t.Errorf("Parse(default.toml) = %+v, want %+v", c, def)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(def); err != nil {
		t.Fatal(err)
	}
	c, err = Parse(buf.Bytes(), "encoded.toml")
	if err != nil {
		t.Fatalf("Parse(encoded Default()) = %v\n%s", err, buf.String())
	}
	c.src = nil
	if !reflect.DeepEqual(c, def) {
		t.Errorf("Parse(encoded Default()) = %+v, want %+v", c, def)
	}
}

// Every key of Config has a commented line in default.toml.
func TestDefaultTOMLDocumentsEveryKey(t *testing.T) {
	lines := keyLines(string(defaultTOML))
	text := strings.Split(string(defaultTOML), "\n")
	keys := knownKeys()
	for i, k := range keys {
		if strings.Contains(k, "NAME") || strings.HasPrefix(k, "auth.map") {
			continue // documented in the comment blocks above [[auth.map]] and the account example
		}
		if table, rest, ok := commentedTable(k); ok {
			// documented in the comment block of [[containers.bind]] or [[federation.peer]]
			field := strings.TrimPrefix(rest, "[N].")
			if field == "" {
				field = "[[" + table + "]]"
			}
			if !strings.Contains(string(defaultTOML), "#   "+field) && !strings.Contains(string(defaultTOML), "# "+field) {
				t.Errorf("default.toml: no commented example of %s", k)
			}
			continue
		}
		if i+1 < len(keys) && strings.HasPrefix(keys[i+1], k+".") {
			continue // a table
		}
		if k == "batch.pool" {
			if !strings.Contains(string(defaultTOML), "#   [[batch.pool]]") {
				t.Errorf("default.toml: no commented example of [[batch.pool]]")
			}
			continue
		}
		if rest, ok := strings.CutPrefix(k, "batch.pool[N]."); ok {
			k = "batch.defaults." + rest // a pool's keys are documented once, in [batch.defaults]
		}
		n, ok := lines[k]
		if !ok {
			t.Errorf("default.toml has no key %s", k)
			continue
		}
		if n < 2 || !strings.HasPrefix(strings.TrimSpace(text[n-2]), "#") {
			t.Errorf("default.toml:%d: key %s has no comment line above it", n, k)
		}
	}
}

// commentedTable splits a key of an array table that default.toml shows
// only in comments ("federation.peer[N].url") into the table and the rest.
func commentedTable(k string) (table, rest string, ok bool) {
	for _, table := range []string{"containers.bind", "federation.peer"} {
		if rest, ok := strings.CutPrefix(k, table); ok {
			return table, rest, true
		}
	}
	return "", "", false
}

func TestTokenFile(t *testing.T) {
	c := Default()
	if got := c.TokenFile(); got != "/var/lib/fxd/tokens" {
		t.Errorf("TokenFile() = %q, want /var/lib/fxd/tokens", got)
	}
	c.Auth.TokenFile = "/etc/fxd/tokens"
	if got := c.TokenFile(); got != "/etc/fxd/tokens" {
		t.Errorf("TokenFile() = %q, want /etc/fxd/tokens", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}
