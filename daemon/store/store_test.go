package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// openAt opens the store at path and closes it when the test ends.
func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "tasks.db"))
}

// taskID returns a time-sortable ID: IDs sort as their numbers do.
func taskID(prefix string, i int) string { return fmt.Sprintf("t%s%08d", prefix, i) }

func queued(id string) api.Task {
	return api.Task{ID: id, Function: "alice/echo", FunctionVersion: 1, Owner: "alice", State: api.StateQueued,
		ReceivedAt: time.Now().UTC().Round(0)}
}

func finished(t api.Task, state api.State, expires time.Time) api.Task {
	t.State, t.Output, t.FinishedAt, t.ExpiresAt = state, []byte("out:"+t.ID), time.Now().UTC(), expires
	return t
}

func mustCreate(t testing.TB, s *Store, recs ...Record) {
	t.Helper()
	if err := s.CreateTasks(context.Background(), recs); err != nil {
		t.Fatalf("CreateTasks = %v", err)
	}
}

func mustUpdate(t testing.TB, s *Store, tasks ...api.Task) {
	t.Helper()
	if err := s.UpdateTasks(context.Background(), tasks); err != nil {
		t.Fatalf("UpdateTasks = %v", err)
	}
}

func mustGet(t testing.TB, s *Store, id string) api.Task {
	t.Helper()
	got, err := s.GetTask(id)
	if err != nil {
		t.Fatalf("GetTask(%s) = %v", id, err)
	}
	return got
}

func wantCounts(t *testing.T, s *Store, want map[api.State]int) {
	t.Helper()
	got, err := s.Counts()
	if err != nil {
		t.Fatalf("Counts = %v", err)
	}
	for _, st := range api.States {
		if got[st] != want[st] {
			t.Errorf("Counts()[%s] = %d, want %d (all: %v)", st, got[st], want[st], got)
		}
	}
}

func TestCreateGetUpdate(t *testing.T) {
	s := newStore(t)
	id := taskID("a", 1)
	task := queued(id)
	mustCreate(t, s, Record{Task: task, Identity: "cn=alice", Input: []byte(`{"x":1}`)})

	got := mustGet(t, s, id)
	if got.ID != id || got.Owner != "alice" || got.State != api.StateQueued || !got.ReceivedAt.Equal(task.ReceivedAt) {
		t.Errorf("GetTask(%s) = %+v, want %+v", id, got, task)
	}
	in, err := s.GetInput(id)
	if err != nil || string(in) != `{"x":1}` {
		t.Errorf("GetInput(%s) = %q, %v, want {\"x\":1}", id, in, err)
	}
	wantCounts(t, s, map[api.State]int{api.StateQueued: 1})

	task.State, task.Attempts = api.StateRunning, 1
	mustUpdate(t, s, task)
	if got := mustGet(t, s, id); got.State != api.StateRunning || got.Attempts != 1 {
		t.Errorf("after update GetTask(%s) = %+v, want running, attempt 1", id, got)
	}
	if in, err := s.GetInput(id); err != nil || string(in) != `{"x":1}` {
		t.Errorf("GetInput(%s) while running = %q, %v, want the input", id, in, err)
	}

	done := finished(task, api.StateSucceeded, time.Now().Add(time.Hour))
	mustUpdate(t, s, done)
	got = mustGet(t, s, id)
	if got.State != api.StateSucceeded || string(got.Output) != "out:"+id {
		t.Errorf("final GetTask(%s) = %+v, want succeeded with output", id, got)
	}
	if _, err := s.GetInput(id); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("GetInput(%s) of a final task = %v, want ErrNotFound", id, err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketInputs).Get([]byte(id)); v != nil {
			t.Errorf("input of final task %s still stored: %q", id, v)
		}
		if v := tx.Bucket(bucketActive).Get([]byte(id)); v != nil {
			t.Errorf("final task %s still in active", id)
		}
		return nil
	})
	wantCounts(t, s, map[api.State]int{api.StateSucceeded: 1})

	recs := unfinished(t, s)
	if len(recs) != 0 {
		t.Errorf("Unfinished after final = %d records, want 0", len(recs))
	}
}

func TestIdentityKept(t *testing.T) {
	s := newStore(t)
	task := queued(taskID("a", 1))
	mustCreate(t, s, Record{Task: task, Identity: "cn=alice,o=lab"})
	task.State = api.StateRunning
	mustUpdate(t, s, task)
	recs := unfinished(t, s)
	if len(recs) != 1 || recs[0].Identity != "cn=alice,o=lab" || recs[0].Task.State != api.StateRunning {
		t.Fatalf("Unfinished = %+v, want one running record of cn=alice,o=lab", recs)
	}
}

func TestCreateFinal(t *testing.T) {
	s := newStore(t)
	id := taskID("s", 1)
	mustCreate(t, s, Record{Task: finished(queued(id), api.StateFailed, time.Now().Add(time.Hour)), Input: []byte("x")})
	if got := mustGet(t, s, id); got.State != api.StateFailed {
		t.Errorf("GetTask(%s).State = %s, want failed", id, got.State)
	}
	if _, err := s.GetInput(id); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("GetInput(%s) = %v, want ErrNotFound", id, err)
	}
	if n, err := s.Expire(time.Now().Add(2 * time.Hour)); n != 1 || err != nil {
		t.Errorf("Expire = %d, %v, want 1", n, err)
	}
}

func TestErrors(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, Record{Task: queued(taskID("e", 1))})
	final := finished(queued(taskID("e", 2)), api.StateSucceeded, time.Now().Add(time.Hour))
	mustCreate(t, s, Record{Task: final})
	noExpiry := final
	noExpiry.ExpiresAt = time.Time{}
	badState := queued(taskID("e", 3))
	badState.State = "sleeping"
	back := final
	back.State = api.StateQueued

	ctx := context.Background()
	tests := []struct {
		name string
		do   func() error
		kind error
	}{
		{"get absent task", func() error { _, err := s.GetTask("nope"); return err }, api.ErrNotFound},
		{"get absent input", func() error { _, err := s.GetInput("nope"); return err }, api.ErrNotFound},
		{"create without id", func() error { return s.CreateTasks(ctx, []Record{{Task: api.Task{State: api.StateQueued}}}) }, api.ErrInvalid},
		{"create long id", func() error {
			return s.CreateTasks(ctx, []Record{{Task: queued(strings.Repeat("x", maxIDLen+1))}})
		}, api.ErrInvalid},
		{"create unknown state", func() error { return s.CreateTasks(ctx, []Record{{Task: badState}}) }, api.ErrInvalid},
		{"create final without expiry", func() error { return s.CreateTasks(ctx, []Record{{Task: noExpiry}}) }, api.ErrInvalid},
		{"create existing id", func() error { return s.CreateTasks(ctx, []Record{{Task: queued(taskID("e", 1))}}) }, api.ErrConflict},
		{"create same id twice", func() error {
			return s.CreateTasks(ctx, []Record{{Task: queued(taskID("e", 9))}, {Task: queued(taskID("e", 9))}})
		}, api.ErrConflict},
		{"update final without expiry", func() error { return s.UpdateTasks(ctx, []api.Task{noExpiry}) }, api.ErrInvalid},
		{"update final back to queued", func() error { return s.UpdateTasks(ctx, []api.Task{back}) }, api.ErrConflict},
		{"get function absent", func() error { _, err := s.GetFunction("alice", "nope"); return err }, api.ErrNotFound},
		{"get function bad owner", func() error { _, err := s.GetFunction("", "x"); return err }, api.ErrInvalid},
		{"delete function absent", func() error { return s.DeleteFunction(ctx, "alice", "nope") }, api.ErrNotFound},
		{"put function with NUL", func() error {
			_, err := s.PutFunction(ctx, api.Function{Owner: "al\x00ice", FunctionSpec: api.FunctionSpec{Name: "f"}})
			return err
		}, api.ErrInvalid},
		{"shared with nobody", func() error { _, err := s.SharedWith(""); return err }, api.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.kind) {
				t.Errorf("err = %v, want kind %v", err, tc.kind)
			}
		})
	}
	// Nothing of a refused call was stored.
	if _, err := s.GetTask(taskID("e", 9)); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("GetTask of a refused create = %v, want ErrNotFound", err)
	}
	if got := mustGet(t, s, final.ID); got.State != api.StateSucceeded {
		t.Errorf("GetTask(%s).State after refused update = %s, want succeeded", final.ID, got.State)
	}
	wantCounts(t, s, map[api.State]int{api.StateQueued: 1, api.StateSucceeded: 1})
}

func TestUpdateUnknownSkipped(t *testing.T) {
	s := newStore(t)
	known := queued(taskID("k", 1))
	mustCreate(t, s, Record{Task: known})
	known.State = api.StateRunning
	mustUpdate(t, s, queued(taskID("k", 99)), known)
	if _, err := s.GetTask(taskID("k", 99)); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("GetTask of an unknown updated id = %v, want ErrNotFound", err)
	}
	if got := mustGet(t, s, known.ID); got.State != api.StateRunning {
		t.Errorf("GetTask(%s).State = %s, want running", known.ID, got.State)
	}
}

func unfinished(t *testing.T, s *Store) []Record {
	t.Helper()
	var recs []Record
	if err := s.Unfinished(func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatalf("Unfinished = %v", err)
	}
	return recs
}

func TestUnfinishedOrder(t *testing.T) {
	s := newStore(t)
	const n = 2*scanChunk + 345 // several chunks
	order := rand.Perm(n)
	for start := 0; start < n; start += 400 {
		var recs []Record
		for _, i := range order[start:min(start+400, n)] {
			recs = append(recs, Record{Task: queued(taskID("u", i)), Input: []byte(fmt.Sprint(i))})
		}
		mustCreate(t, s, recs...)
	}
	// Every third task finishes; every fifth runs.
	var upd []api.Task
	for i := 0; i < n; i++ {
		switch {
		case i%3 == 0:
			upd = append(upd, finished(queued(taskID("u", i)), api.StateSucceeded, time.Now().Add(time.Hour)))
		case i%5 == 0:
			r := queued(taskID("u", i))
			r.State = api.StateRunning
			upd = append(upd, r)
		}
	}
	mustUpdate(t, s, upd...)

	recs := unfinished(t, s)
	want := 0
	for i := 0; i < n; i++ {
		if i%3 != 0 {
			want++
		}
	}
	if len(recs) != want {
		t.Fatalf("Unfinished gave %d records, want %d", len(recs), want)
	}
	prev := ""
	for _, r := range recs {
		if r.Task.ID <= prev {
			t.Fatalf("Unfinished: %s after %s, want ID order", r.Task.ID, prev)
		}
		prev = r.Task.ID
		var i int
		fmt.Sscanf(r.Task.ID, "tu%d", &i)
		if string(r.Input) != fmt.Sprint(i) || r.Task.State.Final() {
			t.Errorf("Unfinished record %s: input %q state %s, want input %d, not final", r.Task.ID, r.Input, r.Task.State, i)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err := s.Unfinished(func(Record) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Unfinished with a failing fn = %v after %d calls, want stop after 1", err, calls)
	}
}

func TestExpire(t *testing.T) {
	s := newStore(t)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []Record
	for i := range 10 {
		recs = append(recs, Record{Task: queued(taskID("x", i)), Input: []byte("in")})
	}
	mustCreate(t, s, recs...)
	// Tasks 0-5 finish, expiring at base+i minutes; 6-9 stay queued.
	for i := range 6 {
		mustUpdate(t, s, finished(queued(taskID("x", i)), api.StateSucceeded, base.Add(time.Duration(i)*time.Minute)))
	}
	// Task 0's retention is extended: its old index entry must not delete it.
	mustUpdate(t, s, finished(queued(taskID("x", 0)), api.StateSucceeded, base.Add(time.Hour)))

	tests := []struct {
		name string
		now  time.Time
		want int
		gone []int
	}{
		{"before any", base.Add(-time.Second), 0, nil},
		{"inclusive", base.Add(2 * time.Minute), 2, []int{1, 2}},
		{"again", base.Add(2 * time.Minute), 0, []int{1, 2}},
		{"rest but extended", base.Add(30 * time.Minute), 3, []int{1, 2, 3, 4, 5}},
		{"extended", base.Add(time.Hour), 1, []int{0, 1, 2, 3, 4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.Expire(tc.now)
			if n != tc.want || err != nil {
				t.Fatalf("Expire(%v) = %d, %v, want %d", tc.now, n, err, tc.want)
			}
			for i := range 10 {
				_, err := s.GetTask(taskID("x", i))
				gone := errors.Is(err, api.ErrNotFound)
				if gone != bytes.Contains(intsKey(tc.gone), []byte{byte(i)}) {
					t.Errorf("after Expire(%v) GetTask(%d) = %v, want gone=%v", tc.now, i, err, !gone)
				}
			}
		})
	}
	wantCounts(t, s, map[api.State]int{api.StateQueued: 4})
	if len(unfinished(t, s)) != 4 {
		t.Errorf("Unfinished after expiry: want the 4 queued tasks")
	}
	s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketExpiry).Stats().KeyN; n != 0 {
			t.Errorf("expiry index has %d keys left, want 0", n)
		}
		return nil
	})
}

func intsKey(is []int) []byte {
	b := make([]byte, len(is))
	for i, v := range is {
		b[i] = byte(v)
	}
	return b
}

func TestExpireMany(t *testing.T) {
	s := newStore(t)
	const n = 3*scanChunk + 7
	exp := time.Now().Add(-time.Minute)
	var recs []Record
	for i := range n {
		recs = append(recs, Record{Task: finished(queued(taskID("m", i)), api.StateFailed, exp)})
	}
	mustCreate(t, s, recs...)
	if got, err := s.Expire(time.Now()); got != n || err != nil {
		t.Fatalf("Expire = %d, %v, want %d", got, err, n)
	}
	wantCounts(t, s, nil)
}

func TestFunctions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	fn := func(owner, name string, shared ...string) api.Function {
		return api.Function{Owner: owner, FunctionSpec: api.FunctionSpec{Name: name, Command: []string{"cat"}, SharedWith: shared}}
	}
	put := func(f api.Function) api.Function {
		t.Helper()
		got, err := s.PutFunction(ctx, f)
		if err != nil {
			t.Fatalf("PutFunction(%s) = %v", f.Ref(), err)
		}
		return got
	}
	before := time.Now()
	v1 := put(fn("alice", "echo"))
	v2 := put(fn("alice", "echo", "bob"))
	if v1.Version != 1 || v2.Version != 2 || v1.CreatedAt.Before(before.Add(-time.Second)) {
		t.Errorf("versions = %d, %d (created %v), want 1, 2 (now)", v1.Version, v2.Version, v1.CreatedAt)
	}
	put(fn("alice", "resize", "carol"))
	put(fn("alicea", "other", "bob")) // prefix of another owner
	put(fn("bob", "mine", "bob"))     // own functions are not "shared with"
	put(fn("carol", "x", "bobby"))    // a longer name is no match

	got, err := s.GetFunction("alice", "echo")
	if err != nil || got.Version != 2 || !got.CreatedAt.Equal(v2.CreatedAt) || got.SharedWith[0] != "bob" {
		t.Errorf("GetFunction(alice, echo) = %+v, %v, want %+v", got, err, v2)
	}

	names := func(fs []api.Function) string {
		var ss []string
		for _, f := range fs {
			ss = append(ss, f.Ref())
		}
		return strings.Join(ss, " ")
	}
	tests := []struct {
		name string
		list func() ([]api.Function, error)
		want string
	}{
		{"list alice", func() ([]api.Function, error) { return s.ListFunctions("alice") }, "alice/echo alice/resize"},
		{"list nobody", func() ([]api.Function, error) { return s.ListFunctions("dave") }, ""},
		{"shared with bob", func() ([]api.Function, error) { return s.SharedWith("bob") }, "alice/echo alicea/other"},
		{"shared with carol", func() ([]api.Function, error) { return s.SharedWith("carol") }, "alice/resize"},
		{"shared with dave", func() ([]api.Function, error) { return s.SharedWith("dave") }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := tc.list()
			if got := names(fs); err != nil || got != tc.want {
				t.Errorf("got %q, %v, want %q", got, err, tc.want)
			}
		})
	}

	if err := s.DeleteFunction(ctx, "alice", "echo"); err != nil {
		t.Fatalf("DeleteFunction = %v", err)
	}
	if _, err := s.GetFunction("alice", "echo"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("GetFunction after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteFunction(ctx, "alice", "echo"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("DeleteFunction twice = %v, want ErrNotFound", err)
	}
	if v3 := put(fn("alice", "echo")); v3.Version != 3 {
		t.Errorf("version after delete and re-register = %d, want 3 (never reused)", v3.Version)
	}
}

func TestOpen(t *testing.T) {
	t.Run("new file is private", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tasks.db")
		openAt(t, path)
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("mode of %s = %v, %v, want 0600", path, fi.Mode().Perm(), err)
		}
	})
	t.Run("loose mode is tightened", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tasks.db")
		s := openAt(t, path)
		s.Close()
		os.Chmod(path, 0o644)
		openAt(t, path)
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("mode of %s = %v, %v, want 0600", path, fi.Mode().Perm(), err)
		}
	})
	t.Run("in use", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tasks.db")
		openAt(t, path)
		_, err := Open(path, zerolog.Nop())
		want := fmt.Sprintf("is in use by another fxd (pid %d)", os.Getpid())
		if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Errorf("second Open = %v, want ErrUnavailable saying %q", err, want)
		}
	})
	t.Run("newer schema refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tasks.db")
		s := openAt(t, path)
		s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, schemaVersion+1))
		})
		s.Close()
		_, err := Open(path, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "newer than this fxd knows") {
			t.Errorf("Open of a newer schema = %v, want it refused as newer", err)
		}
	})
	t.Run("reopen keeps data", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tasks.db")
		s := openAt(t, path)
		mustCreate(t, s, Record{Task: queued("t1"), Input: []byte("in")})
		s.Close()
		s = openAt(t, path)
		if got := mustGet(t, s, "t1"); got.State != api.StateQueued {
			t.Errorf("GetTask after reopen = %+v", got)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		_, err := Open(filepath.Join(t.TempDir(), "nope", "tasks.db"), zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "open task store") {
			t.Errorf("Open in a missing dir = %v, want an error naming the store", err)
		}
	})
}

func TestClosedAndCancelled(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled caller gets ctx.Err() or, if the committer took the op
	// first, its result; it must never hang.
	if err := s.CreateTasks(ctx, []Record{{Task: queued("t1")}}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTasks with a cancelled ctx = %v, want nil or context.Canceled", err)
	}
	s.Close()
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.CreateTasks(context.Background(), []Record{{Task: queued("t2")}}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("CreateTasks after Close = %v, want ErrUnavailable", err)
	}
}

// TestCreateTasksOnce: a batch sent again stores only its new tasks and
// leaves the stored ones as they are, even when two calls race.
func TestCreateTasksOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	first := queued(taskID("o", 1))
	done := finished(queued(taskID("o", 2)), api.StateSucceeded, time.Now().Add(time.Hour))
	mustCreate(t, s, Record{Task: first, Input: []byte("in1")}, Record{Task: done})

	again := queued(taskID("o", 1))
	again.Owner = "mallory" // must not replace what is stored
	fresh := queued(taskID("o", 3))
	existed, err := s.CreateTasksOnce(ctx, []Record{{Task: again}, {Task: queued(taskID("o", 2))}, {Task: fresh, Input: []byte("in3")}})
	if err != nil {
		t.Fatalf("CreateTasksOnce = %v", err)
	}
	if want := []bool{true, true, false}; fmt.Sprint(existed) != fmt.Sprint(want) {
		t.Fatalf("existed = %v, want %v", existed, want)
	}
	if got := mustGet(t, s, first.ID); got.Owner != "alice" {
		t.Errorf("task 1 owner = %q, want the stored alice", got.Owner)
	}
	if got := mustGet(t, s, done.ID); got.State != api.StateSucceeded {
		t.Errorf("task 2 state = %s, want succeeded kept", got.State)
	}
	if in, err := s.GetInput(fresh.ID); err != nil || string(in) != "in3" {
		t.Errorf("GetInput(3) = %q, %v", in, err)
	}
	wantCounts(t, s, map[api.State]int{api.StateQueued: 2, api.StateSucceeded: 1})

	// Racing calls with the same IDs: each ID is stored once.
	const racers = 8
	errs := make(chan error, racers)
	created := make(chan int, racers)
	for range racers {
		go func() {
			recs := []Record{{Task: queued(taskID("r", 1))}, {Task: queued(taskID("r", 2))}}
			ex, err := s.CreateTasksOnce(ctx, recs)
			n := 0
			for _, e := range ex {
				if !e {
					n++
				}
			}
			errs <- err
			created <- n
		}()
	}
	total := 0
	for range racers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		total += <-created
	}
	if total != 2 {
		t.Errorf("racing calls created %d tasks, want 2", total)
	}
	wantCounts(t, s, map[api.State]int{api.StateQueued: 4, api.StateSucceeded: 1})
}
