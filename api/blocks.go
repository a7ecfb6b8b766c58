package api

import (
	"context"
	"net/http"
	"time"
)

// Block is one pilot job of a pool, as `fxd blocks` shows it.
type Block struct {
	Pool string `json:"pool"`
	Name string `json:"name"`
	// Job is the scheduler's id of the block's job.
	Job string `json:"job"`
	// State is pending, running, draining, cancelling or done.
	State string `json:"state"`
	// Nodes and Walltime are what was asked for; Shaped says they were
	// fitted to a backfill window that was free when it was submitted.
	Nodes    int      `json:"nodes"`
	Walltime Duration `json:"walltime"`
	Shaped   bool     `json:"shaped"`
	// Hosts are the job's nodes, once it runs; Linked how many of their
	// agents are linked now.
	Hosts  []string `json:"hosts,omitempty"`
	Linked int      `json:"linked"`
	// Ran is how many tasks its nodes have returned.
	Ran       int       `json:"ran"`
	Submitted time.Time `json:"submitted"`
	Started   time.Time `json:"started,omitzero"`
	Ends      time.Time `json:"ends,omitzero"`
	Ended     time.Time `json:"ended,omitzero"`
	// Reason is why it pends (the scheduler's words), or how and why it
	// ended.
	Reason string `json:"reason,omitempty"`
}

// BlocksResponse lists the blocks of every pool.
type BlocksResponse struct {
	Blocks []Block `json:"blocks"`
}

// AdminBlocks lists the blocks of every pool, those that ended in the
// last minutes included. Only root on the daemon's unix socket may call
// it.
func (c *Client) AdminBlocks(ctx context.Context) ([]Block, error) {
	var r BlocksResponse
	err := c.doJSON(ctx, http.MethodGet, "/admin/blocks", nil, &r, 0)
	return r.Blocks, err
}
