package daemon

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/atomicfile"
)

// nodeSet is the compute nodes linked to the daemon, and the credentials
// that blocks link with. Safe for concurrent use.
type nodeSet struct {
	log   zerolog.Logger
	lease time.Duration

	// waiting counts tasks waiting for a slot on a node: the demand that
	// makes the pools add blocks.
	waiting atomic.Int64

	credFile string // keeps creds across restarts; "" keeps them in memory only

	mu        sync.Mutex
	wanted    chan struct{}          // closed, and replaced, when tasks start to wait
	creds     map[[32]byte]blockCred // by sha256 of the token
	nodes     map[string]*node       // by node name
	blockEnds map[string]time.Time   // by block: when its walltime ends
	free      chan struct{}          // closed, and replaced, when a slot may have come free
}

// blockCred is what a credential admits: the nodes of one block, until
// it expires.
type blockCred struct {
	Block   string    `json:"block"`
	Expires time.Time `json:"expires"`
}

// node is one linked node agent. Its fields are guarded by nodeSet.mu.
type node struct {
	name, block string
	hello       api.NodeHello // as it last said it: its runtime kinds and arch for placement, all of it for fxd nodes
	slots       int
	queue       int // tasks it takes beyond slots
	busy        int
	pending     map[string]*remoteRun // task id → the run waiting for it
	link        *nodeLink             // nil while the link is down
	lost        *time.Timer           // runs out the lease while link is nil
	ends        time.Time             // its block's end; zero when none is known
	draining    bool                  // takes no more tasks
	data        map[string]bool       // digests of the cache entries it holds, or was sent
	staging     map[string]bool       // digests it was asked to fetch ahead of tasks
	idleSince   time.Time             // when busy last fell to 0
	ran         int                   // tasks it has returned results for
}

// remoteRun is a task sent to a node, waiting for its result.
type remoteRun struct {
	task api.NodeTask
	done chan api.NodeResult // gets the result, once
	lost chan struct{}       // closed when the node is given up
}

// newNodeSet returns a set with no nodes whose nodes keep their tasks
// for lease after their link drops: if they dial again in time, they
// report them; if not, the tasks are requeued and run elsewhere (at least
// once). The credentials credFile holds admit nodes again, so that
// blocks outlive a restart of the daemon.
func newNodeSet(lease time.Duration, credFile string, log zerolog.Logger) (*nodeSet, error) {
	s := &nodeSet{log: log, lease: lease, credFile: credFile, creds: map[[32]byte]blockCred{}, nodes: map[string]*node{},
		blockEnds: map[string]time.Time{}, free: make(chan struct{}), wanted: make(chan struct{})}
	if credFile == "" {
		return s, nil
	}
	data, err := os.ReadFile(credFile)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	var saved map[string]blockCred
	if err == nil {
		err = json.Unmarshal(data, &saved)
	}
	if err != nil {
		return nil, fmt.Errorf("read node credentials %s: %w; remove the file to start with none (blocks running now then cannot link)", credFile, err)
	}
	for h, c := range saved {
		var k [32]byte
		if b, err := hex.DecodeString(h); err == nil && len(b) == len(k) {
			copy(k[:], b)
			s.creds[k] = c
		}
	}
	return s, nil
}

// mint returns a new credential for the nodes of block, valid for ttl.
// Only its hash is kept.
func (s *nodeSet) mint(block string, ttl time.Duration) (string, error) {
	tok := "fxdn_" + rand.Text() + rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for h, c := range s.creds {
		if now.After(c.Expires) {
			delete(s.creds, h)
		}
	}
	s.creds[sha256.Sum256([]byte(tok))] = blockCred{Block: block, Expires: now.Add(ttl)}
	return tok, s.saveCredsLocked()
}

// revoke ends the credentials of block: its nodes cannot link again.
func (s *nodeSet) revoke(block string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, c := range s.creds {
		if c.Block == block {
			delete(s.creds, h)
		}
	}
	if err := s.saveCredsLocked(); err != nil {
		s.log.Error().Err(err).Str("block", block).Msg("record revoked node credential; a restarted daemon would admit it until it expires")
	}
}

// saveCredsLocked writes the credentials' hashes to credFile. The
// caller holds mu.
func (s *nodeSet) saveCredsLocked() error {
	if s.credFile == "" {
		return nil
	}
	out := make(map[string]blockCred, len(s.creds))
	for h, c := range s.creds {
		out[hex.EncodeToString(h[:])] = c
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.credFile, data, 0o600); err != nil {
		return fmt.Errorf("record node credentials: %w", err)
	}
	return nil
}

// credential returns what tok admits.
func (s *nodeSet) credential(tok string) (blockCred, bool) {
	h := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.creds { // few; constant time per comparison
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 && time.Now().Before(c.Expires) {
			return c, true
		}
	}
	return blockCred{}, false
}

// attach makes l the link of the node hello names, and returns the tasks
// it had under way that it no longer runs: the caller fails them over.
// A node that is linked already is refused.
func (s *nodeSet) attach(hello *api.NodeHello, l *nodeLink, running []string) (*node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[hello.Node]
	switch {
	case n != nil && n.link != nil:
		return nil, fmt.Errorf("node %q is linked already; give each agent its own node name: %w", hello.Node, api.ErrConflict)
	case n != nil && n.block != hello.Block:
		// The host now serves another block (the next job on the same
		// node): the old one's tasks run again elsewhere.
		s.dropLocked(n, "its host linked for another block")
		n = nil
	}
	if n == nil {
		n = &node{name: hello.Node, block: hello.Block, pending: map[string]*remoteRun{}, idleSince: time.Now(), ends: s.blockEnds[hello.Block]}
		s.nodes[n.name] = n
	}
	if n.lost != nil {
		n.lost.Stop()
		n.lost = nil
	}
	n.hello = *hello
	n.hello.Data = nil // kept in n.data
	n.data, n.staging = make(map[string]bool, len(hello.Data)), map[string]bool{}
	for _, d := range hello.Data {
		n.data[d] = true
	}
	n.hello.Runtimes = slices.Clone(hello.Runtimes)
	n.slots, n.queue, n.link = max(hello.Slots, 1), min(max(hello.Queue, 0), maxNodeQueue), l
	// Tasks sent before the link dropped that the node no longer knows
	// ended unreported: they run again elsewhere.
	for id, r := range n.pending {
		if !slices.Contains(running, id) {
			delete(n.pending, id)
			n.unbusy()
			close(r.lost)
		}
	}
	s.signalFree()
	s.log.Info().Str("node", n.name).Str("block", n.block).Int("slots", n.slots).Strs("runtimes", n.hello.Runtimes).Msg("node linked")
	return n, nil
}

// detach marks n's link l as gone and starts its lease.
func (s *nodeSet) detach(n *node, l *nodeLink, why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.link != l {
		return
	}
	n.link = nil
	s.log.Warn().Err(why).Str("node", n.name).Str("block", n.block).Int("tasks", len(n.pending)).Msg("node link lost; its tasks wait for it to dial again")
	n.lost = time.AfterFunc(s.lease, func() { s.giveUp(n) })
}

// giveUp forgets a node whose lease ran out: its tasks are requeued.
func (s *nodeSet) giveUp(n *node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.link != nil || s.nodes[n.name] != n {
		return
	}
	s.dropLocked(n, "its lease ran out")
}

// dropLocked forgets n, for why: its link is closed and its tasks are
// requeued. The caller holds mu.
func (s *nodeSet) dropLocked(n *node, why string) {
	if n.lost != nil {
		n.lost.Stop()
	}
	if n.link != nil {
		n.link.close()
	}
	for _, r := range n.pending {
		close(r.lost)
	}
	delete(s.nodes, n.name)
	s.log.Warn().Str("node", n.name).Str("block", n.block).Int("tasks", len(n.pending)).Str("why", why).Msg("node gone; its tasks run again elsewhere")
}

// endBlock forgets block, whose job has ended: its credentials are
// revoked, its nodes dropped and their tasks requeued.
func (s *nodeSet) endBlock(block string) {
	s.revoke(block)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blockEnds, block)
	for _, n := range s.nodes {
		if n.block == block {
			s.dropLocked(n, "its block ended")
		}
	}
}

// addWaiting counts n more (or, negative, fewer) tasks waiting for a
// node; when some start to wait, the pools are woken.
func (s *nodeSet) addWaiting(n int64) {
	if s.waiting.Add(n) == n && n > 0 {
		s.mu.Lock()
		close(s.wanted)
		s.wanted = make(chan struct{})
		s.mu.Unlock()
	}
}

// demand returns a channel closed when tasks start to wait for nodes.
func (s *nodeSet) demand() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wanted
}

// need is what a task asks of the node that runs it.
type need struct {
	kind string // the kind of its runtime: api.RuntimeKindHost or RuntimeKindSIF
	arch string // for an image: its architecture
	// timeout is the task's declared timeout, which the node's block must
	// outlast; 0 when none was declared.
	timeout time.Duration
	// data are the digests of the cache entries it reads.
	data []string
	// queue lets it wait in a node's queue, beyond its slots: when the
	// daemon's own node takes no tasks. Else a busy node's queue would
	// hold it while the daemon's node idles.
	queue bool
}

// holds says whether n holds (or was sent) every entry of data.
func (n *node) holds(data []string) bool {
	for _, d := range data {
		if !n.data[d] {
			return false
		}
	}
	return true
}

// fits says whether n can take a task that needs nd now.
func (n *node) fits(nd need, now time.Time) bool {
	room := n.busy < n.slots || nd.queue && n.busy < n.capacity()
	return room && n.serves(nd, now, n.queueWait(nd.timeout))
}

// serves says whether n, linked and not draining, runs what nd needs and
// its block lasts for a task that starts after wait and runs nd.timeout.
func (n *node) serves(nd need, now time.Time, wait time.Duration) bool {
	return n.link != nil && !n.draining && slices.Contains(n.hello.Runtimes, nd.kind) &&
		(nd.arch == "" || n.hello.Arch == "" || nd.arch == n.hello.Arch) &&
		(n.ends.IsZero() || !now.Add(wait+nd.timeout).After(n.ends))
}

// queueWait is how long a task taken now may wait in n's queue at worst:
// a round of its slots for each slotful of tasks ahead of it, each of
// timeout (0 when no timeout was declared: then nothing is known).
func (n *node) queueWait(timeout time.Duration) time.Duration {
	if n.busy < n.slots {
		return 0
	}
	return time.Duration((n.busy-n.slots)/n.slots+1) * timeout
}

// capacity is how many tasks n takes at once: its slots and its queue.
func (n *node) capacity() int { return n.slots + n.queue }

// maxNodeQueue bounds the queue a node asks for: tasks held on one node
// wait there even when another has room.
const maxNodeQueue = 1024

// take reserves room on a linked node that fits nd, the one with most
// room, preferring those that hold nd's data; with holdersOnly, only
// those. hit says the node holds the data. nil when none has room.
func (s *nodeSet) take(nd need, holdersOnly bool) (best *node, hit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, n := range s.nodes {
		if !n.fits(nd, now) {
			continue
		}
		h := n.holds(nd.data)
		if holdersOnly && !h {
			continue
		}
		if best == nil || h && !hit || h == hit && n.capacity()-n.busy > best.capacity()-best.busy {
			best, hit = n, h
		}
	}
	if best != nil {
		best.busy++
		for _, d := range nd.data { // it fetches what it lacks: tasks placed meanwhile find it there
			best.data[d] = true
		}
	}
	return best, hit
}

// held says whether a linked node that runs nd's kind of runtime holds
// all of nd's data, busy or not: a task may wait for room there.
func (s *nodeSet) held(nd need) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, n := range s.nodes {
		if n.serves(nd, now, 0) && n.holds(nd.data) {
			return true
		}
	}
	return false
}

// blockNeeds says whether a node of block has a task under way whose
// image or data is digest, or was asked to stage it: that node may fetch
// it.
func (s *nodeSet) blockNeeds(block, digest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.block != block {
			continue
		}
		if n.staging[digest] {
			return true
		}
		for _, r := range n.pending {
			if r.task.Image != nil && r.task.Image.Digest == digest ||
				slices.ContainsFunc(r.task.Data, func(d api.NodeData) bool { return d.Digest == digest }) {
				return true
			}
		}
	}
	return false
}

// stage asks the linked nodes named (all of them for "*") to fetch st
// ahead of the tasks that read it, and returns those asked. Unknown names
// are refused before any node is asked.
func (s *nodeSet) stage(names []string, st api.NodeStage) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var targets []*node
	for _, name := range names {
		if name == "*" {
			for _, n := range s.nodes {
				if n.link != nil {
					targets = append(targets, n)
				}
			}
			continue
		}
		n := s.nodes[name]
		if n == nil || n.link == nil {
			return nil, fmt.Errorf("node %q is not linked; fxd nodes lists the nodes (or give \"*\" for all): %w", name, api.ErrNotFound)
		}
		targets = append(targets, n)
	}
	var asked []string
	for _, n := range targets {
		if slices.Contains(asked, n.name) {
			continue
		}
		n.staging[st.Digest], n.data[st.Digest] = true, true
		n.link.queue(&api.LinkFrame{Stage: []api.NodeStage{st}})
		asked = append(asked, n.name)
	}
	slices.Sort(asked)
	return asked, nil
}

// upload asks a linked node that holds st's entry to send it to the
// daemon for st.Account, and returns the node's block; api.ErrNotFound
// when no linked node holds it.
func (s *nodeSet) upload(st api.NodeStage) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.link != nil && n.data[st.Digest] {
			n.link.queue(&api.LinkFrame{Upload: []api.NodeStage{st}})
			return n.block, nil
		}
	}
	return "", fmt.Errorf("data %s: %w: neither this node's cache nor a linked node's holds it; stage it again", st.Digest, api.ErrNotFound)
}

// holdsAnywhere says whether a linked node holds digest.
func (s *nodeSet) holdsAnywhere(digest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.link != nil && n.data[digest] {
			return true
		}
	}
	return false
}

// forget tells the linked nodes that may hold st's entry that its
// account no longer reads it.
func (s *nodeSet) forget(st api.NodeStage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.link != nil && n.data[st.Digest] {
			n.link.queue(&api.LinkFrame{Forget: []api.NodeStage{st}})
		}
	}
}

// setHeld records what n's cache holds now, as it reported: entries it
// evicted are no longer taken to be there. Entries its tasks under way
// read, and those it was asked to stage, stay: they may be on their way.
func (s *nodeSet) setHeld(n *node, held []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := make(map[string]bool, len(held))
	for _, d := range held {
		data[d] = true
		delete(n.staging, d) // arrived
	}
	for d := range n.staging {
		data[d] = true
	}
	for _, r := range n.pending {
		for _, d := range r.task.Data {
			data[d.Digest] = true
		}
	}
	n.data = data
}

// freed returns a channel closed when a slot may have come free.
func (s *nodeSet) freed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.free
}

// send hands t to n, whose slot the caller took, and returns its run.
func (s *nodeSet) send(n *node, t api.NodeTask) *remoteRun {
	r := &remoteRun{task: t, done: make(chan api.NodeResult, 1), lost: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	n.pending[t.ID] = r
	if n.link == nil {
		return r // sent when it links again, or lost with it
	}
	n.link.queue(&api.LinkFrame{Run: []api.NodeTask{t}})
	return r
}

// cancel asks n to stop task id.
func (s *nodeSet) cancel(n *node, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.link != nil {
		n.link.queue(&api.LinkFrame{Cancel: []string{id}})
	}
}

// deliver passes results from n to their runs and frees their slots.
func (s *nodeSet) deliver(n *node, results []api.NodeResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, res := range results {
		r := n.pending[res.ID]
		if r == nil || r.task.Attempt != res.Attempt {
			s.log.Debug().Str("node", n.name).Str("task", res.ID).Msg("result for no task sent to this node; dropped")
			continue
		}
		delete(n.pending, res.ID)
		n.unbusy()
		n.ran++
		if res.State == api.StateFailed && res.StartedAt.IsZero() {
			// It never began: its data may not have reached the node.
			for _, d := range r.task.Data {
				delete(n.data, d.Digest)
			}
		}
		r.done <- res
	}
	s.signalFree()
}

// unbusy frees one of n's slots. The caller holds nodeSet.mu.
func (n *node) unbusy() {
	n.busy--
	if n.busy == 0 {
		n.idleSince = time.Now()
	}
}

// release frees the slot of a run that ended without a result (given up
// or cancelled unanswered).
func (s *nodeSet) release(n *node, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := n.pending[id]; ok {
		delete(n.pending, id)
		n.unbusy()
	}
	s.signalFree()
}

// signalFree wakes the dispatchers waiting for a slot. The caller holds
// mu.
func (s *nodeSet) signalFree() {
	close(s.free)
	s.free = make(chan struct{})
}

// closeLinks ends every link, so that a stopping daemon need not wait for
// its nodes: they dial again, to the next daemon.
func (s *nodeSet) closeLinks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.link != nil {
			n.link.close()
		}
	}
}

// linked lists the linked nodes, for `fxd blocks` and metrics.
func (s *nodeSet) linked() []api.NodeHello {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.NodeHello
	for _, n := range s.nodes {
		if n.link != nil {
			h := n.hello
			h.Slots, h.Queue, h.Runtimes = n.slots, n.queue, slices.Clone(h.Runtimes)
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b api.NodeHello) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// setBlockEnd records when block's walltime ends, for its nodes now and
// those that link later: take gives them only tasks that end before.
func (s *nodeSet) setBlockEnd(block string, ends time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blockEnds[block] = ends
	for _, n := range s.nodes {
		if n.block == block {
			n.ends = ends
		}
	}
}

// drainBlock stops giving block's nodes tasks and tells them to leave
// once theirs have ended.
func (s *nodeSet) drainBlock(block string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.block == block && !n.draining {
			n.draining = true
			if n.link != nil {
				n.link.queue(&api.LinkFrame{Drain: true})
			}
		}
	}
}

// blockUse is what a block's nodes are doing.
type blockUse struct {
	linked    int       // nodes linked now
	slots     int       // their slots
	busy      int       // tasks they run
	ran       int       // tasks they have run
	idleSince time.Time // since when none of its nodes has run a task; zero while one does
}

// use reports what block's nodes are doing.
func (s *nodeSet) use(block string) blockUse {
	s.mu.Lock()
	defer s.mu.Unlock()
	var u blockUse
	for _, n := range s.nodes {
		if n.block != block {
			continue
		}
		u.busy += n.busy
		u.ran += n.ran
		if n.link != nil {
			u.linked++
			u.slots += n.slots
			if n.busy == 0 && (u.idleSince.IsZero() || n.idleSince.After(u.idleSince)) {
				u.idleSince = n.idleSince
			}
		}
	}
	if u.busy > 0 {
		u.idleSince = time.Time{}
	}
	return u
}

// queued counts the tasks that wait on nodes for a worker (taken
// beyond their slots): demand for more nodes, as much as tasks waiting
// here.
func (s *nodeSet) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := 0
	for _, n := range s.nodes {
		q += max(n.busy-n.slots, 0)
	}
	return q
}

// totals counts the linked nodes, their slots and the busy ones.
func (s *nodeSet) totals() (linked, slots, busy int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.link != nil {
			linked++
			slots += n.slots
			busy += min(n.busy, n.slots)
		}
	}
	return linked, slots, busy
}
