package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
)

func testNodes(t *testing.T) *nodeSet {
	s, err := newNodeSet(30*time.Second, "", zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustMint mints a credential for block, valid for ttl.
func mustMint(t *testing.T, s *nodeSet, block string, ttl time.Duration) string {
	t.Helper()
	tok, err := s.mint(block, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// take is s.take(nd, false) without its hit.
func take(s *nodeSet, nd need) *node {
	n, _ := s.take(nd, false)
	return n
}

// hostNeed is what a host task with no declared timeout needs.
var hostNeed = need{kind: api.RuntimeKindHost}

func newLink() *nodeLink { return &nodeLink{wake: make(chan struct{}, 1), stop: make(chan struct{})} }

func TestNodeCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testNodes(t)
		tok := mustMint(t, s, "blk1", time.Hour)
		if c, ok := s.credential(tok); !ok || c.Block != "blk1" {
			t.Fatalf("credential(minted) = %+v, %v; want blk1", c, ok)
		}
		if _, ok := s.credential(tok + "x"); ok {
			t.Error("credential(another token) admitted")
		}
		for h := range s.creds {
			if string(h[:]) == tok {
				t.Error("the token itself is kept, want only its hash")
			}
		}
		time.Sleep(time.Hour + time.Second)
		if _, ok := s.credential(tok); ok {
			t.Error("credential past its ttl admitted")
		}
		tok2 := mustMint(t, s, "blk2", time.Hour)
		s.revoke("blk2")
		if _, ok := s.credential(tok2); ok {
			t.Error("credential of a revoked block admitted")
		}
	})
}

// Credentials outlive the daemon in their file, so that blocks outlive
// it; revoked ones do not.
func TestNodeCredentialsKept(t *testing.T) {
	file := filepath.Join(t.TempDir(), "creds.json")
	log := zerolog.New(zerolog.NewTestWriter(t))
	s, err := newNodeSet(time.Second, file, log)
	if err != nil {
		t.Fatal(err)
	}
	kept, gone := mustMint(t, s, "blk1", time.Hour), mustMint(t, s, "blk2", time.Hour)
	s.revoke("blk2")
	if data, _ := os.ReadFile(file); strings.Contains(string(data), kept) {
		t.Error("the credential file holds a token; want only its hash")
	}
	again, err := newNodeSet(time.Second, file, log)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := again.credential(kept); !ok || c.Block != "blk1" {
		t.Errorf("after a restart credential(kept) = %+v, %v; want blk1", c, ok)
	}
	if _, ok := again.credential(gone); ok {
		t.Error("after a restart a revoked credential admitted")
	}
	os.WriteFile(file, []byte("not json"), 0o600)
	if _, err := newNodeSet(time.Second, file, log); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Errorf("newNodeSet(garbage file) = %v; want an error that says what to do", err)
	}
}

// A host that links for a new block while its node of an old block is
// unlinked replaces it: the old node's tasks run again elsewhere.
func TestNodeMovesToNewBlock(t *testing.T) {
	s := testNodes(t)
	hello := &api.NodeHello{Node: "h", Block: "old", Slots: 1, Runtimes: []string{api.RuntimeHost}}
	l := newLink()
	n, err := s.attach(hello, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if take(s, hostNeed) != n {
		t.Fatal("no slot on the node")
	}
	r := s.send(n, api.NodeTask{ID: "t1"})
	s.detach(n, l, errors.New("agent killed"))
	if _, err := s.attach(&api.NodeHello{Node: "h", Block: "new", Slots: 1, Runtimes: []string{api.RuntimeHost}}, newLink(), nil); err != nil {
		t.Fatalf("attach for a new block = %v; want the old node replaced", err)
	}
	select {
	case <-r.lost:
	default:
		t.Error("the old node's task was not given up")
	}
	if u := s.use("new"); u.linked != 1 {
		t.Errorf("new block's use = %+v; want 1 linked", u)
	}
}

// Slots go to the node with most room; results free them; a second link
// under a linked node's name is refused.
func TestNodeSlots(t *testing.T) {
	s := testNodes(t)
	a, err := s.attach(&api.NodeHello{Node: "a", Block: "b", Slots: 1, Runtimes: []string{api.RuntimeHost}}, newLink(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.attach(&api.NodeHello{Node: "a", Block: "b", Slots: 1}, newLink(), nil); err == nil {
		t.Error("a second link for a linked node was taken")
	}
	if n := take(s, need{kind: api.RuntimeKindSIF}); n != nil {
		t.Errorf("take(a runtime kind no node has) = %s", n.name)
	}
	n := take(s, hostNeed)
	if n != a {
		t.Fatalf("take = %v, want node a", n)
	}
	if n := take(s, hostNeed); n != nil {
		t.Fatalf("take with a's one slot busy = %s, want none", n.name)
	}
	r := s.send(a, api.NodeTask{ID: "t1", Attempt: 1})
	s.deliver(a, []api.NodeResult{{ID: "t1", Attempt: 2, State: api.StateSucceeded}}) // a stale attempt
	select {
	case <-r.done:
		t.Fatal("a result of another attempt was delivered")
	default:
	}
	s.deliver(a, []api.NodeResult{{ID: "t1", Attempt: 1, State: api.StateSucceeded}})
	if res := <-r.done; res.State != api.StateSucceeded {
		t.Errorf("result = %+v", res)
	}
	if n := take(s, hostNeed); n != a {
		t.Errorf("take after the result = %v, want a again", n)
	}
}

// A node whose link drops keeps its tasks for the lease: one it still
// runs when it links again stays; one it does not know is lost at once;
// when the lease runs out, the rest are lost.
func TestNodeLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testNodes(t)
		hello := &api.NodeHello{Node: "a", Block: "b", Slots: 4, Runtimes: []string{api.RuntimeHost}}
		l := newLink()
		a, _ := s.attach(hello, l, nil)
		var runs []*remoteRun
		for _, id := range []string{"t1", "t2"} {
			take(s, hostNeed)
			runs = append(runs, s.send(a, api.NodeTask{ID: id, Attempt: 1}))
		}
		s.detach(a, l, nil)
		time.Sleep(10 * time.Second)
		if _, err := s.attach(hello, newLink(), []string{"t1"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case <-runs[1].lost:
		default:
			t.Error("t2, which the node no longer runs, is not lost when it links again")
		}
		select {
		case <-runs[0].lost:
			t.Error("t1, which the node still runs, is lost")
		default:
		}
		s.detach(a, a.link, nil)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		select {
		case <-runs[0].lost:
		default:
			t.Error("t1 not lost after the lease ran out")
		}
		if len(s.linked()) != 0 || s.nodes["a"] != nil {
			t.Errorf("node a still known after its lease ran out")
		}
	})
}

// Frames queued on a link go out as one.
func TestLinkBatches(t *testing.T) {
	l := newLink()
	for i := range 100 {
		l.queue(&api.LinkFrame{Run: []api.NodeTask{{ID: string(rune('a' + i%26))}}})
	}
	l.queue(&api.LinkFrame{Cancel: []string{"x"}})
	f := l.batch()
	if len(f.Run) != 100 || len(f.Cancel) != 1 {
		t.Errorf("batch = %d runs, %d cancels; want 100 and 1", len(f.Run), len(f.Cancel))
	}
	if l.batch() != nil {
		t.Error("a second batch with nothing queued is not nil")
	}
}

// An image task goes only to a node that runs containers of its
// architecture; an agent that did not say its architecture takes any.
func TestNodeFitsImage(t *testing.T) {
	now := time.Now()
	sif := need{kind: api.RuntimeKindSIF, arch: "amd64"}
	tests := []struct {
		name string
		n    node
		nd   need
		want bool
	}{
		{"host task, host node", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1}, hostNeed, true},
		{"image task, host-only node", node{hello: api.NodeHello{Runtimes: []string{"host"}, Arch: "amd64"}, slots: 1}, sif, false},
		{"image task, sif node", node{hello: api.NodeHello{Runtimes: []string{"host", "sif"}, Arch: "amd64"}, slots: 1}, sif, true},
		{"image task, other arch", node{hello: api.NodeHello{Runtimes: []string{"host", "sif"}, Arch: "arm64"}, slots: 1}, sif, false},
		{"image task, arch unknown", node{hello: api.NodeHello{Runtimes: []string{"host", "sif"}}, slots: 1}, sif, true},
		{"full node", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, busy: 1}, hostNeed, false},
		{"room in its queue", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, queue: 1, busy: 1}, need{kind: "host", queue: true}, true},
		{"its queue, not for this task", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, queue: 1, busy: 1}, hostNeed, false},
		{"queue full too", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, queue: 1, busy: 2}, need{kind: "host", queue: true}, false},
		{"queued past the block's end", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, queue: 4, busy: 2, ends: now.Add(50 * time.Minute)},
			need{kind: "host", queue: true, timeout: 20 * time.Minute}, false}, // waits 2 × 20 min, then runs 20
		{"queued within the block", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 2, queue: 4, busy: 2, ends: now.Add(50 * time.Minute)},
			need{kind: "host", queue: true, timeout: 20 * time.Minute}, true}, // waits 20 min, then runs 20
		{"draining node", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, draining: true}, hostNeed, false},
		{"block ends first", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, ends: now.Add(time.Minute)}, need{kind: "host", timeout: time.Hour}, false},
		{"block outlasts it", node{hello: api.NodeHello{Runtimes: []string{"host"}}, slots: 1, ends: now.Add(time.Hour)}, need{kind: "host", timeout: time.Minute}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.n.link = newLink()
			if got := tt.n.fits(tt.nd, now); got != tt.want {
				t.Errorf("fits(%+v) = %v, want %v", tt.nd, got, tt.want)
			}
		})
	}
}

// A block's credential fetches only the images of tasks sent to its
// nodes, while they are under way.
func TestBlockRuns(t *testing.T) {
	s := testNodes(t)
	a, err := s.attach(&api.NodeHello{Node: "a", Block: "b", Slots: 2, Runtimes: []string{"host", "sif"}}, newLink(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const digest = "sha256:0123"
	take(s, need{kind: api.RuntimeKindSIF})
	s.send(a, api.NodeTask{ID: "t1", Attempt: 1, Image: &api.NodeImage{Digest: digest, Size: 1}})
	if !s.blockNeeds("b", digest) {
		t.Error("blockNeeds(b, the image of its task) = false")
	}
	if s.blockNeeds("other", digest) || s.blockNeeds("b", "sha256:4567") {
		t.Error("blockNeeds is true for another block, or another image")
	}
	s.deliver(a, []api.NodeResult{{ID: "t1", Attempt: 1, State: api.StateSucceeded}})
	if s.blockNeeds("b", digest) {
		t.Error("blockNeeds after the task ended = true")
	}
}

// A node takes tasks beyond its slots, up to its queue; those wait there
// for a worker and count as demand for nodes, as do tasks waiting here.
func TestNodeQueueIsDemand(t *testing.T) {
	s := testNodes(t)
	if _, err := s.attach(&api.NodeHello{Node: "a", Block: "b", Slots: 2, Queue: 3, Runtimes: []string{"host"}}, newLink(), nil); err != nil {
		t.Fatal(err)
	}
	queued := need{kind: "host", queue: true}
	for i := range 5 {
		if take(s, queued) == nil {
			t.Fatalf("take %d of 5 (2 slots + 3 queued) found no room", i+1)
		}
	}
	if n := take(s, queued); n != nil {
		t.Fatal("take past slots and queue found room")
	}
	if q := s.queued(); q != 3 {
		t.Errorf("queued = %d, want 3 (5 taken, 2 slots)", q)
	}
	s.addWaiting(2)
	if w := (poolNodes{s: s}).Waiting(); w != 5 {
		t.Errorf("Waiting = %d, want 5: 2 here and 3 queued on the node", w)
	}
	if w := (poolNodes{s: s, others: func() int { return 4 }}).Waiting(); w != 1 {
		t.Errorf("Waiting with 4 slots on their way from other pools = %d, want 1", w)
	}
	if w := (poolNodes{s: s, others: func() int { return 9 }}).Waiting(); w != 0 {
		t.Errorf("Waiting with more than enough on its way = %d, want 0", w)
	}
	if _, slots, busy := s.totals(); slots != 2 || busy != 2 {
		t.Errorf("totals: %d slots, %d busy; want 2 and 2 (queued tasks hold no slot)", slots, busy)
	}
}

// A task that reads data goes to a node that holds it when one has room,
// even with less room than another; holdersOnly takes only those. A node
// that took a task with data holds it from then on.
func TestTakePrefersData(t *testing.T) {
	s := testNodes(t)
	attach := func(name string, slots int, data ...string) *node {
		t.Helper()
		n, err := s.attach(&api.NodeHello{Node: name, Block: "b", Slots: slots, Runtimes: []string{"host"}, Data: data}, newLink(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := attach("a", 8)
	b := attach("b", 1, "sha256:d1")
	nd := need{kind: "host", data: []string{"sha256:d1"}}
	if n, hit := s.take(nd, false); n != b || !hit {
		t.Fatalf("take(data on b) = %v, %v; want b, a hit", n, hit)
	}
	if n, _ := s.take(nd, true); n != nil {
		t.Fatalf("take(holders only) with b full = %v, want none", n.name)
	}
	if !s.held(nd) {
		t.Error("held = false, though b holds the data")
	}
	if n, hit := s.take(nd, false); n != a || hit {
		t.Fatalf("take(any) with b full = %v, %v; want a, a miss", n, hit)
	}
	if n, hit := s.take(nd, true); n != a || !hit {
		t.Errorf("take(holders only) once a took a task with the data = %v, %v; want a, a hit", n, hit)
	}
	s.send(b, api.NodeTask{ID: "t1", Attempt: 1, Data: []api.NodeData{{Digest: "sha256:d1", Size: 1, Name: "x"}}})
	if !s.blockNeeds("b", "sha256:d1") || s.blockNeeds("b", "sha256:d2") {
		t.Error("blockNeeds does not follow the data of the tasks sent")
	}
}

// A task that reads data waits up to locality_wait for room on a node
// that holds it, without counting as demand for blocks, and then goes to
// any node; one that no linked node holds goes anywhere at once; with no
// room anywhere it counts as demand until it is placed.
func TestWaitForNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testNodes(t)
		d := &dispatcher{nodes: s, localityWait: 3 * time.Second}
		holder, err := s.attach(&api.NodeHello{Node: "holder", Block: "b", Slots: 1, Runtimes: []string{"host"}, Data: []string{"sha256:d"}}, newLink(), nil)
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.attach(&api.NodeHello{Node: "other", Block: "b", Slots: 1, Runtimes: []string{"host"}}, newLink(), nil)
		if err != nil {
			t.Fatal(err)
		}
		nd := need{kind: "host", data: []string{"sha256:d"}, queue: true}
		setBusy := func(n *node, busy int) {
			s.mu.Lock()
			n.busy = busy
			s.signalFree()
			s.mu.Unlock()
		}
		setBusy(holder, 1) // the holder is full, the other node has room
		type placed struct {
			n   *node
			err error
		}
		wait := func() chan placed {
			ch := make(chan placed, 1)
			go func() {
				n, err := d.waitForNode(t.Context(), nd)
				ch <- placed{n, err}
			}()
			return ch
		}

		// Room frees on the holder within the wait: it goes there.
		ch := wait()
		synctest.Wait()
		if s.waiting.Load() != 0 {
			t.Errorf("a task waiting for its data's node counts as demand: %d", s.waiting.Load())
		}
		time.Sleep(time.Second)
		setBusy(holder, 0)
		if p := <-ch; p.n != holder {
			t.Fatalf("placed on %v, %v; want the holder, freed within the wait", p.n, p.err)
		}

		// The holder stays full: after the wait, any node.
		ch = wait()
		synctest.Wait()
		select {
		case p := <-ch:
			t.Fatalf("placed on %v at once; want a wait for the holder", p.n.name)
		default:
		}
		time.Sleep(3 * time.Second)
		if p := <-ch; p.n != other {
			t.Fatalf("placed on %v, %v after the wait; want the other node", p.n, p.err)
		}

		// No room anywhere, nothing held: demand, until placed.
		ch = wait()
		synctest.Wait()
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if s.waiting.Load() != 1 {
			t.Errorf("a task with no room anywhere counts %d as demand, want 1", s.waiting.Load())
		}
		setBusy(other, 0)
		if p := <-ch; p.n != other {
			t.Fatalf("placed on %v, %v; want the node that freed", p.n, p.err)
		}
		if s.waiting.Load() != 0 {
			t.Errorf("demand after the task was placed = %d, want 0", s.waiting.Load())
		}
	})
}

// A task its node could not start (its data or image not to be had
// there) runs again, up to maxUnstarted attempts; then it fails with
// the node's reason.
func TestUnstartedRunsAgain(t *testing.T) {
	for _, tt := range []struct {
		attempt  int
		wantLost bool
	}{{1, true}, {maxUnstarted - 1, true}, {maxUnstarted, false}} {
		s := testNodes(t)
		n, err := s.attach(&api.NodeHello{Node: "a", Block: "b", Slots: 1, Runtimes: []string{"host"}}, newLink(), nil)
		if err != nil {
			t.Fatal(err)
		}
		d := &dispatcher{nodes: s, log: zerolog.New(zerolog.NewTestWriter(t))}
		j := &job{task: api.Task{ID: "t1", Attempts: tt.attempt}}
		take(s, hostNeed)
		go func() {
			for {
				s.mu.Lock()
				_, sent := n.pending["t1"]
				s.mu.Unlock()
				if sent {
					break
				}
				time.Sleep(time.Millisecond)
			}
			s.deliver(n, []api.NodeResult{{ID: "t1", Attempt: tt.attempt, State: api.StateFailed, ExitCode: -1,
				Error: "on node a: fetch data sha256:…: no space", Unstarted: true}})
		}()
		res, lost := d.runRemote(t.Context(), n, j, nil, conf.Quota{})
		if lost != tt.wantLost || !lost && (res.State != api.StateFailed || !strings.Contains(res.Error, "no space")) {
			t.Errorf("attempt %d: runRemote = %s %q, lost %v; want lost %v (else failed with the node's reason)", tt.attempt, res.State, res.Error, lost, tt.wantLost)
		}
	}
}

// What a node reports holding replaces what it was taken to hold, but
// for the entries its tasks under way read and those it was asked to
// stage and has not reported yet; a forget goes to the nodes that may
// hold the entry.
func TestNodeHeld(t *testing.T) {
	s := testNodes(t)
	l := newLink()
	n, err := s.attach(&api.NodeHello{Node: "a", Block: "b", Slots: 2, Runtimes: []string{"host"}, Data: []string{"sha256:old"}}, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	take(s, hostNeed)
	s.send(n, api.NodeTask{ID: "t1", Attempt: 1, Data: []api.NodeData{{Digest: "sha256:running", Name: "x"}}})
	if _, err := s.stage([]string{"a"}, api.NodeStage{Digest: "sha256:staging", Account: "alice"}); err != nil {
		t.Fatal(err)
	}
	s.setHeld(n, []string{"sha256:new"})
	for d, want := range map[string]bool{"sha256:old": false, "sha256:new": true, "sha256:running": true, "sha256:staging": true} {
		if got := n.holds([]string{d}); got != want {
			t.Errorf("after the node reported its cache, holds(%s) = %v, want %v", d, got, want)
		}
	}
	s.setHeld(n, []string{"sha256:staging"}) // it arrived: no longer 'on its way'
	if n.staging["sha256:staging"] {
		t.Error("a staged entry the node reported is still taken as on its way")
	}
	l.batch() // drop what was queued so far
	s.forget(api.NodeStage{Digest: "sha256:staging", Account: "alice"})
	s.forget(api.NodeStage{Digest: "sha256:elsewhere", Account: "alice"})
	if f := l.batch(); f == nil || len(f.Forget) != 1 || f.Forget[0].Digest != "sha256:staging" {
		t.Errorf("frames to the node after two forgets = %+v, want one forget, of the entry it holds", f)
	}
}
