package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// TestConcurrent has 50 goroutines create and update tasks at once; after
// a reopen every task is there in its last state.
func TestConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.db")
	s := openAt(t, path)
	const workers, rounds, batch = 50, 10, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				recs := make([]Record, batch)
				for i := range recs {
					recs[i] = Record{Task: queued(taskID(fmt.Sprintf("%02d-%02d-", w, r), i)), Input: []byte("in")}
				}
				if err := s.CreateTasks(context.Background(), recs); err != nil {
					errs <- err
					return
				}
				for i, rec := range recs {
					task := rec.Task
					if i%2 == 0 {
						task.State = api.StateRunning
					} else {
						task = finished(task, api.StateSucceeded, time.Now().Add(time.Hour))
					}
					if err := s.UpdateTasks(context.Background(), []api.Task{task}); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, path)
	for w := range workers {
		for r := range rounds {
			for i := range batch {
				id := taskID(fmt.Sprintf("%02d-%02d-", w, r), i)
				want := api.StateRunning
				if i%2 == 1 {
					want = api.StateSucceeded
				}
				if got := mustGet(t, s, id); got.State != want {
					t.Errorf("GetTask(%s).State = %s, want %s", id, got.State, want)
				}
			}
		}
	}
	total := workers * rounds * batch
	wantCounts(t, s, map[api.State]int{api.StateRunning: total / 2, api.StateSucceeded: total / 2})
	if n := len(unfinished(t, s)); n != total/2 {
		t.Errorf("Unfinished = %d tasks, want %d", n, total/2)
	}
}

// crashEnv names the store file for the helper process of TestCrash.
const crashEnv = "FXD_STORE_CRASH_HELPER"

// TestCrashHelper is not a test: TestCrash runs the test binary again
// with crashEnv set, and this writes tasks until it is killed. It prints
// "created <id>" once a create is acknowledged and "finished <id>" once
// its final update is.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrash")
	}
	s, err := Open(path, zerolog.Nop())
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(lines []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			os.Stdout.WriteString(l + "\n") // one small write per line: whole or absent
		}
	}
	deadline := time.Now().Add(time.Minute) // bounded even if nobody kills it
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for r := 0; time.Now().Before(deadline); r++ {
				recs := make([]Record, 1+r%20)
				lines := make([]string, len(recs))
				for i := range recs {
					id := taskID(fmt.Sprintf("%d-%06d-", w, r), i)
					recs[i] = Record{Task: queued(id), Input: []byte("input of " + id)}
					lines[i] = "created " + id
				}
				if err := s.CreateTasks(context.Background(), recs); err != nil {
					say([]string{"error " + err.Error()})
					return
				}
				say(lines)
				task := finished(recs[0].Task, api.StateSucceeded, time.Now().Add(time.Hour))
				if err := s.UpdateTasks(context.Background(), []api.Task{task}); err != nil {
					say([]string{"error " + err.Error()})
					return
				}
				say([]string{"finished " + task.ID})
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

// TestCrash kills a writing process with SIGKILL and checks that every
// task it had acknowledged is in the store.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process; skipped with -short")
	}
	path := filepath.Join(t.TempDir(), "tasks.db")
	cmd, out := testenv.StartHelper(t, "TestCrashHelper", crashEnv+"="+path)
	killed := false

	created, finishedIDs := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch verb, id, _ := strings.Cut(line, " "); verb {
		case "created":
			created[id] = true
		case "finished":
			finishedIDs[id] = true
		default:
			t.Fatalf("helper said %q", line)
		}
		if len(created) >= 3000 && !killed {
			cmd.Process.Kill() // SIGKILL, mid-commit as likely as not
			killed = true
		}
	}
	// The lines written before the kill are still in the pipe: read them all.
	cmd.Wait()
	if !killed {
		t.Fatalf("helper ended after %d acknowledged tasks before it was killed", len(created))
	}

	s := openAt(t, path)
	lost := 0
	for id := range created {
		got, err := s.GetTask(id)
		if err != nil {
			if lost++; lost <= 5 {
				t.Errorf("acknowledged task %s lost: %v", id, err)
			}
			continue
		}
		if finishedIDs[id] && got.State != api.StateSucceeded {
			t.Errorf("task %s acknowledged as finished is %s", id, got.State)
		}
		if !got.State.Final() {
			if in, err := s.GetInput(id); err != nil || string(in) != "input of "+id {
				t.Errorf("GetInput(%s) = %q, %v, want its input", id, in, err)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged tasks lost", lost, len(created))
	}
	n := 0
	if err := s.Unfinished(func(r Record) error {
		if finishedIDs[r.Task.ID] {
			t.Errorf("Unfinished lists %s, acknowledged as finished", r.Task.ID)
		}
		n++
		return nil
	}); err != nil {
		t.Fatalf("Unfinished = %v", err)
	}
	t.Logf("%d tasks acknowledged (%d finished) before SIGKILL; %d unfinished after reopen", len(created), len(finishedIDs), n)
}
