package daemon

import (
	"fmt"
	"net/http"
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
// to a node of its block (api.NodeImagePath + digest); the agent
// authenticates with its block's credential. Other images do not exist
// for it: a credential reads only what its block runs.
func (d *Daemon) handleNodeImage(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		cred, ok := d.nodeCredential(r)
		if !ok {
			return fmt.Errorf("unknown or expired node credential: %w", api.ErrUnauthenticated)
		}
		digest := r.PathValue("digest")
		if d.images == nil || !d.nodes.blockRuns(cred.Block, digest) {
			return fmt.Errorf("image %q: no task of block %s runs in it: %w", digest, cred.Block, api.ErrNotFound)
		}
		f, err := d.images.OpenDigest(digest)
		if err != nil {
			return err
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
		return nil
	}()
	if err != nil {
		d.writeError(w, r, fmt.Errorf("node image: %w", err))
	}
}
