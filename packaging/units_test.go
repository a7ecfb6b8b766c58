package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/conf"
)

// unitKeys reads the Key=value lines of a unit in systemd/ (the last of
// a key wins, as in systemd).
func unitKeys(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// The units and the default config name the same socket, directories and
// config file, and fxd.service gives the drain its time.
func TestUnitsMatchDefaultConfig(t *testing.T) {
	def := conf.Default()
	svc, sock := unitKeys(t, "fxd.service"), unitKeys(t, "fxd.socket")
	checks := []struct{ what, got, want string }{
		{"fxd.socket ListenStream", sock["ListenStream"], def.Endpoint.Socket},
		{"fxd.socket SocketMode", sock["SocketMode"], "0666"},
		{"fxd.socket DirectoryMode", sock["DirectoryMode"], svc["RuntimeDirectoryMode"]},
		{"fxd.service /run/RuntimeDirectory", "/run/" + svc["RuntimeDirectory"], filepath.Dir(def.Endpoint.Socket)},
		{"fxd.service /var/lib/StateDirectory", "/var/lib/" + svc["StateDirectory"], def.Site.StateDir},
		{"fxd.service StateDirectoryMode", svc["StateDirectoryMode"], "0711"}, // daemon.New makes it so
		{"fxd.service ExecStart", svc["ExecStart"], "/usr/bin/fxd serve --config /etc/fxd/fxd.toml"},
		{"fxd.service Type", svc["Type"], "notify"},
		{"fxd.service NotifyAccess", svc["NotifyAccess"], "main"},
		{"fxd.service KillMode", svc["KillMode"], "mixed"},
		{"fxd-node.service ExecStart", unitKeys(t, "fxd-node.service")["ExecStart"], "/usr/bin/fxd node --config /etc/fxd/fxd.toml"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if def.Endpoint.SocketMode != 0o666 {
		t.Errorf("default endpoint.socket_mode = %o; make fxd.socket's SocketMode agree", def.Endpoint.SocketMode)
	}
	stop, err := time.ParseDuration(svc["TimeoutStopSec"])
	if err != nil {
		t.Fatalf("fxd.service TimeoutStopSec=%q: %v", svc["TimeoutStopSec"], err)
	}
	if grace := def.Endpoint.DrainGrace.D(); stop < grace+30*time.Second {
		t.Errorf("fxd.service TimeoutStopSec=%v leaves the drain (drain_grace %v) less than 30s to stop the workers and close the store", stop, grace)
	}
}

// The node agent runs tasks as the daemon does: its unit has the same
// sandbox and limits.
func TestNodeUnitHasTheDaemonsSandbox(t *testing.T) {
	svc, node := unitKeys(t, "fxd.service"), unitKeys(t, "fxd-node.service")
	for k, v := range svc {
		if !sandboxing(k) && !strings.HasPrefix(k, "Limit") && !strings.HasPrefix(k, "StateDirectory") && k != "TasksMax" && k != "KillMode" {
			continue
		}
		if node[k] != v {
			t.Errorf("fxd-node.service %s=%q, fxd.service has %q", k, node[k], v)
		}
	}
	for k := range node {
		if _, ok := svc[k]; !ok && sandboxing(k) {
			t.Errorf("fxd-node.service sets %s, which fxd.service does not", k)
		}
	}
}
