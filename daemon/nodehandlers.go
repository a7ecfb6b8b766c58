package daemon

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"fxd.dev/fxd/api"
)

// maxCredentialTTL bounds a node credential: a block's walltime at most.
const maxCredentialTTL = 14 * 24 * time.Hour

func (d *Daemon) handleNodeCredential(w http.ResponseWriter, r *http.Request) error {
	var req api.NodeCredentialRequest
	if err := d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := api.CheckName("block name", req.Block); err != nil {
		return err
	}
	ttl := req.TTL.D()
	if ttl <= 0 || ttl > maxCredentialTTL {
		return fmt.Errorf("ttl %v: %w: give a duration up to %v, like \"12h\"", ttl, api.ErrInvalid, maxCredentialTTL)
	}
	tok, err := d.nodes.mint(req.Block, ttl)
	if err != nil {
		return err
	}
	d.log.Info().Str("block", req.Block).Dur("ttl", ttl).Msg("node credential minted")
	return writeJSON(w, http.StatusCreated, api.NodeCredential{Block: req.Block, Token: tok, Expires: time.Now().Add(ttl).UTC()})
}

// handleRevokeNodeCredentials ends the credentials of a block the admin
// minted by hand: its nodes are unlinked (their tasks run elsewhere) and
// cannot link again. A pool's live block ends with its job instead.
func (d *Daemon) handleRevokeNodeCredentials(w http.ResponseWriter, r *http.Request) error {
	block := r.PathValue("block")
	if err := api.CheckName("block name", block); err != nil {
		return err
	}
	for _, s := range d.scalers {
		for _, b := range s.Blocks() {
			if b.Name == block && b.State != "done" {
				return fmt.Errorf("block %s is pool %s's (job %s): it ends with its job; cancel the job with the scheduler, or let the pool give it back when idle: %w",
					block, b.Pool, b.Job, api.ErrConflict)
			}
		}
	}
	d.nodes.endBlock(block)
	d.log.Info().Str("block", block).Msg("node credentials revoked; the block's nodes are unlinked")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) handleBlocks(w http.ResponseWriter, r *http.Request) error {
	blocks := []api.Block{}
	for _, s := range d.scalers {
		blocks = append(blocks, s.Blocks()...)
	}
	return writeJSON(w, http.StatusOK, api.BlocksResponse{Blocks: blocks})
}

func (d *Daemon) handleNodes(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.NodesResponse{Nodes: d.nodes.linked()})
}

// handleNodeImage sends a node agent the image of a task the daemon sent
// to a node of its block (api.NodeImagePath + digest).
func (d *Daemon) handleNodeImage(w http.ResponseWriter, r *http.Request) {
	d.serveToNode(w, r, "image", func(digest string) (*os.File, error) {
		if d.images == nil {
			return nil, fmt.Errorf("this site runs no containers: %w", api.ErrNotFound)
		}
		return d.images.OpenDigest(digest)
	})
}

// handleNodeData sends a node agent a cache entry a task the daemon sent
// to a node of its block reads (api.NodeDataPath + digest).
func (d *Daemon) handleNodeData(w http.ResponseWriter, r *http.Request) {
	d.serveToNode(w, r, "data", func(digest string) (*os.File, error) {
		path, release, err := d.cache.Pin(digest, "")
		if err != nil {
			return nil, err
		}
		defer release() // the open file keeps the bytes, whatever the cache does
		f, err := os.Open(path)
		if err == nil {
			if fi, serr := f.Stat(); serr == nil {
				d.metrics.nodeFetches.Inc()
				d.metrics.nodeFetchBytes.Add(float64(fi.Size()))
			}
		}
		return f, err
	})
}

// serveToNode sends a node agent, which authenticates with its block's
// credential, the file open gives for the digest in the path, if a task
// under way on a node of that block needs it. Other digests do not exist
// for it: a credential reads only what its block runs.
func (d *Daemon) serveToNode(w http.ResponseWriter, r *http.Request, what string, open func(digest string) (*os.File, error)) {
	err := func() error {
		cred, ok := d.nodeCredential(r)
		if !ok {
			return fmt.Errorf("unknown or expired node credential: %w", api.ErrUnauthenticated)
		}
		digest := r.PathValue("digest")
		if !d.nodes.blockNeeds(cred.Block, digest) {
			return fmt.Errorf("%s %q: no task of block %s needs it: %w", what, digest, cred.Block, api.ErrNotFound)
		}
		f, err := open(digest)
		if err != nil {
			return err
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
		return nil
	}()
	if err != nil {
		d.writeError(w, r, fmt.Errorf("node %s: %w", what, err))
	}
}
