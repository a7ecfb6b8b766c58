package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/internal/testenv"
)

// runScript runs a maintainer script with args in a mount namespace of its
// own whose /run is a new tmpfs (with /run/systemd/system when systemd is
// to seem running), with fake systemctl, deb-systemd-invoke (when deb)
// and deb-systemd-helper that log their arguments, and returns their log
// ("" when nothing was called) and the script's exit code.
func runScript(t *testing.T, script string, systemd, deb bool, args ...string) (calls string, code int) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "unshare")
	dir := t.TempDir()
	bin, log := filepath.Join(dir, "bin"), filepath.Join(dir, "log")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fakes := []string{"systemctl", "deb-systemd-helper"}
	if deb {
		fakes = append(fakes, "deb-systemd-invoke")
	}
	for _, f := range fakes {
		body := "#!/bin/sh\necho \"" + f + " $*\" >>" + log + "\n"
		if err := os.WriteFile(filepath.Join(bin, f), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/bin/rm", filepath.Join(bin, "rm")); err != nil {
		t.Fatal(err)
	}
	setup := "/bin/mount -t tmpfs fxd-test /run\n"
	if systemd {
		setup += "/bin/mkdir -p /run/systemd/system\n"
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", setup+`exec /bin/sh "$@"`, "sh",
		filepath.Join("scripts", script))
	cmd.Args = append(cmd.Args, args...)
	cmd.Env = []string{"PATH=" + bin}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v\n%s", script, args, err, out)
	}
	b, _ := os.ReadFile(log)
	return strings.TrimSpace(string(b)), code
}

// The maintainer scripts do, for each of dpkg's and rpm's arguments, what
// packaging/scripts says: reload systemd where it runs, never start or
// enable on install, restart what ran on upgrade, stop on removal only.
func TestMaintainerScripts(t *testing.T) {
	const (
		reload  = "systemctl daemon-reload"
		restart = "deb-systemd-invoke try-restart fxd.service fxd-node.service"
	)
	for _, c := range []struct {
		name    string
		script  string
		deb     bool
		args    []string
		want    string // the calls, one per line
		noSysd  bool   // systemd does not run: nothing is called
		wantErr bool
	}{
		{name: "deb install", script: "postinstall.sh", deb: true, args: []string{"configure", ""}, want: reload},
		{name: "deb upgrade", script: "postinstall.sh", deb: true, args: []string{"configure", "0.1.0"}, want: reload + "\n" + restart},
		{name: "deb upgrade without systemd", script: "postinstall.sh", deb: true, args: []string{"configure", "0.1.0"}, noSysd: true},
		{name: "deb abort-upgrade", script: "postinstall.sh", deb: true, args: []string{"abort-upgrade", "0.2.0"}},
		{name: "rpm install", script: "postinstall.sh", args: []string{"1"}, want: reload},
		{name: "rpm upgrade, new package", script: "postinstall.sh", args: []string{"2"}, want: reload},
		{name: "deb remove", script: "preremove.sh", deb: true, args: []string{"remove"}, want: "deb-systemd-invoke stop fxd.socket fxd.service fxd-node.service"},
		{name: "deb remove without systemd", script: "preremove.sh", deb: true, args: []string{"remove"}, noSysd: true},
		{name: "deb upgrade, old package", script: "preremove.sh", deb: true, args: []string{"upgrade", "0.2.0"}},
		{name: "rpm erase", script: "preremove.sh", args: []string{"0"}, want: "systemctl --no-reload disable --now fxd.socket fxd.service fxd-node.service"},
		{name: "rpm upgrade, old package", script: "preremove.sh", args: []string{"1"}},
		{name: "deb remove, after", script: "postremove.sh", deb: true, args: []string{"remove"}, want: reload},
		{name: "deb upgrade, old package's postrm", script: "postremove.sh", deb: true, args: []string{"upgrade", "0.2.0"}},
		{name: "rpm erase, after", script: "postremove.sh", args: []string{"0"}, want: reload},
		{name: "rpm upgrade, old package's postun", script: "postremove.sh", args: []string{"1"}, want: reload + "\nsystemctl try-restart fxd.service fxd-node.service"},
		{name: "unknown argument", script: "postremove.sh", deb: true, args: []string{"sideways"}, wantErr: true},
		{name: "no argument", script: "postinstall.sh", deb: true, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls, code := runScript(t, c.script, !c.noSysd, c.deb, c.args...)
			if (code != 0) != c.wantErr {
				t.Errorf("%s %q: exit code %d, want an error: %v", c.script, c.args, code, c.wantErr)
			}
			if calls != c.want {
				t.Errorf("%s %q called:\n%s\nwant:\n%s", c.script, c.args, calls, c.want)
			}
		})
	}
}
