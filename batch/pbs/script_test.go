package pbs

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/conf"
)

// The directives ask for whole nodes for the walltime rounded up to the
// minute, where the config says, with output nowhere; the options follow
// on qsub's command line, split at white space, in order.
func TestDirectives(t *testing.T) {
	for _, tc := range []struct {
		name     string
		c        conf.PBSPool
		walltime time.Duration
		want     []string
	}{
		{"queue and account", conf.PBSPool{Queue: "workq", Account: "m1234"}, time.Hour,
			[]string{"-N fxd-x", "-l select=3", "-l place=scatter:exclhost", "-l walltime=01:00:00", "-q workq", "-A m1234", "-S /bin/bash", "-j oe", "-o /dev/null", "-m n", "-r n"}},
		{"server defaults", conf.PBSPool{}, 90 * time.Second,
			[]string{"-N fxd-x", "-l select=3", "-l place=scatter:exclhost", "-l walltime=00:02:00", "-S /bin/bash", "-j oe", "-o /dev/null", "-m n", "-r n"}},
		{"over a day", conf.PBSPool{}, 25*time.Hour + time.Second,
			[]string{"-N fxd-x", "-l select=3", "-l place=scatter:exclhost", "-l walltime=25:01:00", "-S /bin/bash", "-j oe", "-o /dev/null", "-m n", "-r n"}},
		{"log dir", conf.PBSPool{}, time.Hour,
			[]string{"-N fxd-x", "-l select=3", "-l place=scatter:exclhost", "-l walltime=01:00:00", "-S /bin/bash", "-j oe", "-o /var/log/fxd/blocks/", "-m n", "-r n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, tc.c)
			b := batch.Block{Name: "fxd-x", Nodes: 3, Walltime: tc.walltime}
			if tc.name == "log dir" {
				b.LogDir = "/var/log/fxd/blocks"
			}
			got := p.directives(b)
			if !slices.Equal(got, tc.want) {
				t.Errorf("directives = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubmitArgs(t *testing.T) {
	dir := fake(t)
	p := newProvider(t, conf.PBSPool{})
	b := batch.Block{Name: "fxd-x", Nodes: 1, Walltime: time.Hour, Command: []string{"/bin/true"},
		Options: []string{"-l place=scatter", "-W", "group_list=hpc", "-l  select=1:ncpus=128"}}
	if _, err := p.Submit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	want := "-f\n-l\nplace=scatter\n-W\ngroup_list=hpc\n-l\nselect=1:ncpus=128\n"
	if got := read(t, filepath.Join(dir, "jobs/1000/args")); got != want {
		t.Errorf("qsub args = %q, want %q", got, want)
	}
}

// Run as PBS runs it, on the first host with pbs_tmrsh at hand, the job
// script writes the node script, starts it once on each distinct host of
// $PBS_NODEFILE in the bare environment the task manager gives, where the
// block's environment (quotes, newlines, $, backticks and all), init lines
// and command come from the node script alone; and it leaves nothing
// behind. The values are never on a command line: qsub gets the script
// on stdin, and pbs_tmrsh the node script's path.
func TestScriptRuns(t *testing.T) {
	fake(t)
	home, out := t.TempDir(), t.TempDir()
	env := map[string]string{
		"QUOTES":    `it's "quoted" '' '\''`,
		"NEWLINES":  "line 1\nline 2\n\n",
		"DOLLARS":   "$HOME ${PATH} $(id) $((1+1)) `id` \\ \\n %s %%",
		"EMPTY":     "",
		"UNICODE":   "žluťoučký kůň ☃",
		"FXD_OUT":   out,
		"PBS_QUEUE": "shadowed",
	}
	b := batch.Block{Name: "fxd-x", Nodes: 2, Walltime: time.Hour, Env: env,
		Init: []string{`echo "init on $FXD_PBS_FAKE_HOST" >> "$FXD_OUT/init"`, "export EXTRA=from-init"},
		Command: []string{"/bin/bash", "-c", `h=$FXD_PBS_FAKE_HOST
for k in QUOTES NEWLINES DOLLARS EMPTY UNICODE PBS_QUEUE; do printf '%s\0' "${!k}"; done > "$FXD_OUT/env.$h"
printf %s "$EXTRA $1" > "$FXD_OUT/arg.$h"
stat -c %a "$HOME/.fxd/pbs/$PBS_JOBID" > "$FXD_OUT/mode.$h"`, "fxd-node", "it's an arg"}}
	p := newProvider(t, conf.PBSPool{})
	script := filepath.Join(t.TempDir(), "job.sh")
	write(t, script, p.jobScript(b))
	nodefile := filepath.Join(t.TempDir(), "nodefile")
	write(t, nodefile, "cn001\ncn001\ncn002.example.org\ncn001\n\ncn002.example.org\n")

	cmd := exec.Command("/bin/bash", script)
	cmd.Env = append(os.Environ(), "HOME="+home, "PBS_JOBID=42.pbs01", "PBS_NODEFILE="+nodefile, "PBS_ENVIRONMENT=PBS_BATCH")
	if outb, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("job script: %v\n%s", err, outb)
	}

	want := []string{env["QUOTES"], env["NEWLINES"], env["DOLLARS"], "", env["UNICODE"], "shadowed", ""}
	for _, h := range []string{"cn001", "cn002.example.org"} {
		if got := strings.Split(read(t, filepath.Join(out, "env."+h)), "\x00"); !slices.Equal(got, want) {
			t.Errorf("host %s: environment = %q, want %q", h, got, want)
		}
		if got := read(t, filepath.Join(out, "arg."+h)); got != "from-init it's an arg" {
			t.Errorf("host %s: init variable and argument = %q", h, got)
		}
		if got := read(t, filepath.Join(out, "mode."+h)); got != "700\n" {
			t.Errorf("host %s: node script directory mode = %q, want 700", h, got)
		}
	}
	if got := read(t, filepath.Join(out, "init")); got != "init on cn001\ninit on cn002.example.org\n" &&
		got != "init on cn002.example.org\ninit on cn001\n" {
		t.Errorf("init lines ran %q, want once on each host", got)
	}
	if ents, _ := filepath.Glob(filepath.Join(out, "env.*")); len(ents) != 2 {
		t.Errorf("the command ran on %v, want the 2 distinct hosts", ents)
	}
	if _, err := os.Stat(filepath.Join(home, ".fxd/pbs/42.pbs01")); !os.IsNotExist(err) {
		t.Errorf("the job left its node script directory behind: %v", err)
	}
}

// The job ends with the status of a host whose command failed.
func TestScriptStatus(t *testing.T) {
	fake(t)
	b := batch.Block{Name: "fxd-x", Nodes: 2, Walltime: time.Hour,
		Command: []string{"/bin/bash", "-c", `[[ $FXD_PBS_FAKE_HOST == cn002 ]] && exit 3; exit 0`}}
	script := filepath.Join(t.TempDir(), "job.sh")
	write(t, script, newProvider(t, conf.PBSPool{}).jobScript(b))
	nodefile := filepath.Join(t.TempDir(), "nodefile")
	write(t, nodefile, "cn001\ncn002\n")
	cmd := exec.Command("/bin/bash", script)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "PBS_JOBID=43.pbs01", "PBS_NODEFILE="+nodefile)
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("job script = %v, want exit status 3", err)
	}
}
