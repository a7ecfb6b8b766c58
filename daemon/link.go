package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"fxd.dev/fxd/api"
)

// linkHeartbeat is how often each side of a node link says it is alive;
// a link silent for linkTimeout is dropped.
const (
	linkHeartbeat = 5 * time.Second
	linkTimeout   = 3 * linkHeartbeat
)

// nodeLink is the daemon's end of one node's link: frames to send, batched
// by its writer.
type nodeLink struct {
	mu       sync.Mutex
	out      []*api.LinkFrame
	wake     chan struct{}
	stop     chan struct{} // closed, by close, to end the link
	stopOnce sync.Once
}

// close ends the link: the daemon stops, or has dropped the node.
func (l *nodeLink) close() { l.stopOnce.Do(func() { close(l.stop) }) }

// queue adds f to what the writer sends next.
func (l *nodeLink) queue(f *api.LinkFrame) {
	l.mu.Lock()
	l.out = append(l.out, f)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// batch merges the queued frames into one, or returns nil.
func (l *nodeLink) batch() *api.LinkFrame {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.out) == 0 {
		return nil
	}
	f := &api.LinkFrame{}
	for _, o := range l.out {
		f.Run = append(f.Run, o.Run...)
		f.Cancel = append(f.Cancel, o.Cancel...)
		f.Stage = append(f.Stage, o.Stage...)
		f.Forget = append(f.Forget, o.Forget...)
		f.Upload = append(f.Upload, o.Upload...)
		f.Drain = f.Drain || o.Drain
	}
	l.out = nil
	return f
}

// handleLink serves one node agent's link (api.LinkPath): the request
// body brings the node's frames, the response body takes the daemon's.
// The agent authenticates with its block's credential.
func (d *Daemon) handleLink(w http.ResponseWriter, r *http.Request) {
	// The body never ends: an answer that refuses the link closes the
	// connection, or the server would wait to discard the body before
	// answering.
	refuse := func(err error) {
		w.Header().Set("Connection", "close")
		d.writeError(w, r, fmt.Errorf("node link: %w", err))
	}
	cred, ok := d.nodeCredential(r)
	if !ok {
		refuse(fmt.Errorf("unknown or expired node credential; a block's agents link with the credential the daemon gave the block (fxd nodes credential BLOCK for one started by hand): %w", api.ErrUnauthenticated))
		return
	}
	rd := bufio.NewReaderSize(r.Body, 64<<10)
	first, err := api.ReadFrame(rd)
	if err == nil && (first.Hello == nil || first.Hello.Node == "" || first.Hello.Block != cred.Block) {
		err = fmt.Errorf("the first frame must be a hello with the node's name and its block %q: %w", cred.Block, api.ErrInvalid)
	}
	if err != nil {
		refuse(err)
		return
	}
	l := &nodeLink{wake: make(chan struct{}, 1), stop: make(chan struct{})}
	n, err := d.nodes.attach(first.Hello, l, first.Running)
	if err != nil {
		refuse(err)
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		d.nodes.detach(n, l, err)
		refuse(err)
		return
	}
	w.Header().Set("Content-Type", "application/x-fxd-link")
	w.WriteHeader(http.StatusOK)
	rc.Flush()

	done := make(chan error, 2)
	go func() { done <- d.readLink(n, rd, rc) }()
	go func() { done <- writeLink(r, w, rc, l) }()
	err = <-done
	d.nodes.detach(n, l, err)
	r.Body.Close() // ends the other side
}

// nodeCredential returns what the node credential r carries as its
// bearer token admits.
func (d *Daemon) nodeCredential(r *http.Request) (blockCred, bool) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return d.nodes.credential(strings.TrimSpace(tok))
}

// readLink reads n's frames until the link ends.
func (d *Daemon) readLink(n *node, rd *bufio.Reader, rc *http.ResponseController) error {
	for {
		rc.SetReadDeadline(time.Now().Add(linkTimeout))
		f, err := api.ReadFrame(rd)
		if errors.Is(err, io.EOF) {
			return errors.New("the node closed its link")
		}
		if err != nil {
			return err
		}
		if len(f.Results) > 0 {
			d.nodes.deliver(n, f.Results)
		}
		if f.Held != nil {
			d.nodes.setHeld(n, *f.Held)
		}
		for _, st := range f.Unsent {
			if d.peers.asked(n.block, peerKey{st.Digest, st.Account}) {
				d.peers.finish(peerKey{st.Digest, st.Account}, fmt.Errorf("data %s: %w", st.Digest, api.ErrNotFound))
			}
		}
	}
}

// writeLink sends l's frames, batched, and a heartbeat when there is
// nothing to send.
func writeLink(r *http.Request, w io.Writer, rc *http.ResponseController, l *nodeLink) error {
	tick := time.NewTicker(linkHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return r.Context().Err()
		case <-l.stop:
			return errors.New("the daemon closed the link")
		case <-l.wake:
		case <-tick.C:
			l.queue(&api.LinkFrame{})
		}
		f := l.batch()
		if f == nil {
			continue
		}
		if len(f.Run) == 0 && len(f.Cancel) == 0 && len(f.Stage) == 0 && len(f.Forget) == 0 && len(f.Upload) == 0 && !f.Drain {
			f.Heartbeat = true
		}
		rc.SetWriteDeadline(time.Now().Add(linkTimeout))
		if err := api.WriteFrame(w, f); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
	}
}
