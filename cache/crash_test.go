package cache

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/internal/testenv"
)

// crashEnv names the cache directory TestPutKilledHelper puts into; the
// helper runs only when it is set.
const crashEnv = "FXD_CACHE_CRASH_DIR"

// TestPutKilledHelper is not a test: TestPutKilled runs the test binary
// with it as a child that stores one entry, then starts a put whose
// reader gives some bytes and then blocks, and says so on stdout.
func TestPutKilledHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process for TestPutKilled")
	}
	s, err := Open(Config{Dir: dir}, zerolog.New(os.Stderr).Level(zerolog.WarnLevel))
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	e, err := s.Put(t.Context(), "alice", strings.NewReader("committed before the kill"), PutOptions{})
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("committed " + e.Digest + "\n")
	r := &stallingReader{first: strings.Repeat("x", 1<<16)}
	_, err = s.Put(t.Context(), "alice", r, PutOptions{Source: "a stream that stalls"})
	os.Stdout.WriteString("error put ended: " + err.Error() + "\n")
	os.Exit(1)
}

// stallingReader gives first, then says "staging" on stdout and stalls
// for a minute (bounded even if nobody kills the process).
type stallingReader struct {
	first string
	done  bool
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if !r.done {
		r.done = true
		return copy(p, r.first), nil
	}
	os.Stdout.WriteString("staging\n")
	time.Sleep(time.Minute)
	return 0, io.ErrUnexpectedEOF
}

// TestPutKilled kills a process with SIGKILL while it writes a put and
// checks that, reopened, the cache shows no trace of that put and keeps
// the entry committed before.
func TestPutKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process; skipped with -short")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	cmd, out := testenv.StartHelper(t, "TestPutKilledHelper", crashEnv+"="+dir)

	var committed string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		if verb == "committed" {
			committed = arg
			continue
		}
		if verb != "staging" {
			t.Fatalf("helper said %q", sc.Text())
		}
		// the put's private copy holds the first bytes, not yet an entry
		tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil || len(tmp) != 1 {
			t.Fatalf("tmp while the put is under way = %v, %v; want one private copy", tmp, err)
		}
		if fi, err := tmp[0].Info(); err != nil || fi.Size() != 1<<16 {
			t.Fatalf("private copy while the put is under way: %v, %v; want the first %d bytes in it", fi, err, 1<<16)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill helper: %v", err)
		}
		break
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want killed by SIGKILL", err)
	}
	if committed == "" {
		t.Fatal("helper committed nothing before the kill")
	}

	s := newStore(t, Config{Dir: dir})
	if got := entries(t, s); len(got) != 1 || got[0] != committed {
		t.Errorf("entries after the kill = %v, want only %s", got, committed)
	}
	if tmp := files(t, s, "tmp"); len(tmp) > 0 {
		t.Errorf("tmp after reopen holds %v, want nothing", tmp)
	}
	if blobs := files(t, s, "blobs/sha256"); len(blobs) != 1 || blobs[0] != hexOf(committed) {
		t.Errorf("blobs after reopen = %v, want only %s", blobs, hexOf(committed))
	}
}
