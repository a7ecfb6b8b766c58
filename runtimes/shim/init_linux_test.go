package shim

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs Init in place of the tests when the test binary is started
// as one: Init reaps every child of its process, so it cannot run in the
// process of the other tests.
func TestMain(m *testing.M) {
	if os.Getenv("FXD_SHIM_TEST_INIT") == "1" {
		os.Exit(Init(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// initCmd is the test binary running Init on argv.
func initCmd(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	c := exec.CommandContext(t.Context(), os.Args[0], argv...)
	c.Env = append(os.Environ(), "FXD_SHIM_TEST_INIT=1")
	c.WaitDelay = 5 * time.Second
	return c
}

// runInit runs Init on argv and returns its exit code, stdout and stderr.
func runInit(t *testing.T, argv ...string) (int, string, string) {
	t.Helper()
	c := initCmd(t, argv...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run init: %v", err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

func TestInitExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		argv   []string
		code   int
		stderr string
	}{
		{"exit code", []string{"--", "sh", "-c", "echo out; exit 3"}, 3, ""},
		{"success", []string{"--", "true"}, 0, ""},
		{"killed", []string{"--", "sh", "-c", "kill -9 $$"}, 128 + 9, "sh killed by signal 9 (killed)"},
		{"no command", []string{"--"}, 2, "no command; usage: fxd-shim init -- COMMAND"},
		{"no such command", []string{"--", "nosuchcommand"}, 127, `command "nosuchcommand": no such file on PATH`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runInit(t, tc.argv...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("init %q = exit %d, stderr %q; want %d, %q", tc.argv, code, stderr, tc.code, tc.stderr)
			}
		})
	}
}

// The child keeps Init's stdin and stdout: a servable's pipes.
func TestInitStreams(t *testing.T) {
	c := initCmd(t, "--", "cat")
	c.Stdin = strings.NewReader("framed bytes")
	out, err := c.Output()
	if err != nil || string(out) != "framed bytes" {
		t.Errorf("init -- cat = %q, %v; want the input back", out, err)
	}
}

// An orphan of the child is adopted by Init and reaped when it ends: no
// zombie stays. The child checks, as a process of the container would.
func TestInitReapsOrphans(t *testing.T) {
	const script = `
children() { # prints "pid state comm" for each process whose parent is Init
	for f in /proc/[0-9]*/stat; do
		read -r pid comm state ppid rest < "$f" 2>/dev/null || continue
		[ "$ppid" = "$PPID" ] && [ "$pid" != $$ ] && echo "$pid $state $comm"
	done
}
(sleep 0.3 &)
echo "adopted: $(children)"
sleep 1
echo "left: $(children)"
`
	code, out, stderr := runInit(t, "--", "sh", "-c", script)
	if code != 0 {
		t.Fatalf("init = exit %d, stderr %q", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	var adopted, left string
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "adopted: "); ok {
			adopted = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "left: "); ok {
			left = v
		}
	}
	if !strings.Contains(adopted, "(sleep)") {
		t.Errorf("Init's children while the orphan sleeps = %q, want the orphan sleep", adopted)
	}
	if left != "" {
		t.Errorf("Init's children after the orphan ended = %q, want none (a Z is an unreaped zombie)", left)
	}
}

// A signal to Init reaches the child.
func TestInitForwardsSignals(t *testing.T) {
	c := initCmd(t, "--", "sh", "-c", `trap "exit 7" TERM; echo ready; while :; do sleep 0.05; done`)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		c.Process.Kill()
		c.Wait()
		t.Fatalf("child said %q, %v; want ready", line, err)
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	if code := c.ProcessState.ExitCode(); code != 7 {
		t.Errorf("init after SIGTERM = exit %d, want 7 (the child's trap)", code)
	}
}
