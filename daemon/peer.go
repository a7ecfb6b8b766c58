package daemon

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/isolation"
)

// peerWait bounds how long a task waits for a node to send back an entry
// the daemon's cache evicted.
const peerWait = 10 * time.Minute

// peers brings back, from the caches of the nodes, entries the daemon's
// cache no longer holds: a node that holds one for an account sends it
// when asked (LinkFrame.Upload), and the daemon keeps it again for that
// account. Safe for concurrent use.
type peers struct {
	mu      sync.Mutex
	waiting map[peerKey]*peerFetch
}

// peerKey is an entry asked back for an account.
type peerKey struct{ digest, account string }

// peerFetch is one entry asked of a node: err is set and done closed
// when the node has sent it, or failed to.
type peerFetch struct {
	block string // the asked node's block: only its credential may send it
	done  chan struct{}
	err   error
}

// recoverEntry asks a linked node that holds digest to send it back for
// account and waits until it is in the daemon's cache again. It fails
// with api.ErrNotFound when no node holds it (or the node does not keep
// it for account).
func (d *Daemon) recoverEntry(ctx context.Context, a isolation.Account, digest string) error {
	k := peerKey{digest, a.Name}
	d.peers.mu.Lock()
	f := d.peers.waiting[k]
	if f == nil {
		block, err := d.nodes.upload(api.NodeStage{Digest: digest, Account: a.Name})
		if err != nil {
			d.peers.mu.Unlock()
			return err
		}
		f = &peerFetch{block: block, done: make(chan struct{})}
		d.peers.waiting[k] = f
		go func() { // a node that never answers frees the key
			select {
			case <-f.done:
			case <-time.After(peerWait):
				d.peers.finish(k, fmt.Errorf("the node did not send it within %v: %w", peerWait, api.ErrUnavailable))
			}
		}()
	}
	d.peers.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish ends the fetch of k with err.
func (p *peers) finish(k peerKey, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.waiting[k]; f != nil {
		f.err = err
		close(f.done)
		delete(p.waiting, k)
	}
}

// asked says whether the daemon asked block's node for k.
func (p *peers) asked(block string, k peerKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.waiting[k]
	return f != nil && f.block == block
}

// handleNodeUpload takes back an entry the daemon asked a node for
// (PUT api.NodeDataPath + digest?account=…), with the node's block's
// credential: the bytes must hash to the digest.
func (d *Daemon) handleNodeUpload(w http.ResponseWriter, r *http.Request) {
	k := peerKey{r.PathValue("digest"), r.URL.Query().Get("account")}
	err := func() error {
		cred, ok := d.nodeCredential(r)
		if !ok {
			return fmt.Errorf("unknown or expired node credential: %w", api.ErrUnauthenticated)
		}
		if !d.peers.asked(cred.Block, k) {
			return fmt.Errorf("data %q for %q: not asked of block %s: %w", k.digest, k.account, cred.Block, api.ErrNotFound)
		}
		_, err := d.cache.Put(r.Context(), k.account, r.Body, cache.PutOptions{Want: k.digest, Source: "node of block " + cred.Block,
			Size: r.ContentLength, MaxSize: int64(d.cfg.Cache.MaxEntrySize), Quota: d.cacheQuota(k.account)})
		d.peers.finish(k, err)
		if err == nil {
			d.log.Info().Str("digest", k.digest).Str("account", k.account).Str("block", cred.Block).Msg("data brought back from a node's cache")
		}
		return err
	}()
	if err != nil {
		d.writeError(w, r, fmt.Errorf("node upload: %w", err))
		return
	}
	w.WriteHeader(http.StatusCreated)
}
