package daemon

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
)

func testNodes(t *testing.T) *nodeSet {
	return newNodeSet(30*time.Second, zerolog.New(zerolog.NewTestWriter(t)))
}

func newLink() *nodeLink { return &nodeLink{wake: make(chan struct{}, 1), stop: make(chan struct{})} }

func TestNodeCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testNodes(t)
		tok := s.mint("blk1", time.Hour)
		if c, ok := s.credential(tok); !ok || c.block != "blk1" {
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
		tok2 := s.mint("blk2", time.Hour)
		s.revoke("blk2")
		if _, ok := s.credential(tok2); ok {
			t.Error("credential of a revoked block admitted")
		}
	})
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
	if n := s.take("busybox", 0); n != nil {
		t.Errorf("take(a runtime no node has) = %s", n.name)
	}
	n := s.take(api.RuntimeHost, 0)
	if n != a {
		t.Fatalf("take = %v, want node a", n)
	}
	if n := s.take(api.RuntimeHost, 0); n != nil {
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
	if n := s.take(api.RuntimeHost, 0); n != a {
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
			s.take(api.RuntimeHost, 0)
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
