package api

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// LinkPath is where a node agent dials the daemon: one long POST whose
// request body carries the node's frames and whose response body carries
// the daemon's (HTTP/1.1, full duplex). It authenticates with the block's
// credential as a bearer token.
const LinkPath = "/" + Version + "/node/link"

// MaxLinkFrame bounds one frame on a node link: a batch of tasks with
// their inputs, or of results with their outputs.
const MaxLinkFrame = 256 << 20

// LinkFrame is one message on a node link. Any of its parts may be set;
// a sender batches what it has into one frame.
type LinkFrame struct {
	// Hello is the node's first frame: what it is and has.
	Hello *NodeHello `json:"hello,omitempty"`
	// Run (daemon → node) are tasks to run.
	Run []NodeTask `json:"run,omitempty"`
	// Cancel (daemon → node) are task ids to stop.
	Cancel []string `json:"cancel,omitempty"`
	// Results (node → daemon) are tasks that ended.
	Results []NodeResult `json:"results,omitempty"`
	// Running (node → daemon, with heartbeats) are the tasks the node has
	// under way, so that a link dialled again resumes them.
	Running []string `json:"running,omitempty"`
	// Stage (daemon → node) are cache entries to fetch ahead of the tasks
	// that will read them.
	Stage []NodeStage `json:"stage,omitempty"`
	// Upload (daemon → node) are cache entries to send to the daemon, for
	// their Account, which the daemon's cache no longer holds (PUT
	// NodeDataPath + digest?account=…); a node sends only what the
	// account reads in its cache.
	Upload []NodeStage `json:"upload,omitempty"`
	// Unsent (node → daemon) are entries asked back (Upload) that the
	// node does not keep for their Account.
	Unsent []NodeStage `json:"unsent,omitempty"`
	// Forget (daemon → node) are cache entries an account no longer
	// reads (fx data rm): the node drops its access too.
	Forget []NodeStage `json:"forget,omitempty"`
	// Held (node → daemon, with a heartbeat when it changed) are the
	// digests of the cache entries the node holds now: tasks that read
	// them go there. nil: unchanged.
	Held *[]string `json:"held,omitempty"`
	// Drain (daemon → node): take no more tasks, finish these, and leave.
	Drain bool `json:"drain,omitempty"`
	// Heartbeat is set on a frame sent only to say the sender is alive.
	Heartbeat bool `json:"heartbeat,omitempty"`
}

// NodeHello describes a node agent.
type NodeHello struct {
	Node   string `json:"node"`  // its host name in the block
	Block  string `json:"block"` // the block it belongs to
	CPUs   int    `json:"cpus"`
	Memory int64  `json:"memory_bytes"`
	Slots  int    `json:"slots"` // tasks it runs at once
	// Queue is how many tasks it takes beyond Slots, to wait on the node
	// for a worker: they hide the link's round trip between tasks.
	Queue int `json:"queue,omitempty"`
	// Runtimes are the kinds of runtime it runs: RuntimeKindHost, and
	// RuntimeKindSIF when it has an OCI runtime.
	Runtimes []string `json:"runtimes"`
	// Data are the digests of the cache entries it holds, so that tasks
	// that read them go to it.
	Data []string `json:"data,omitempty"`
	// Arch is its architecture, GOARCH-style: it runs only images of it.
	Arch    string `json:"arch,omitempty"`
	Version string `json:"version"`
}

// NodeTask is one task a node runs, with everything it needs: the daemon
// has mapped the identity and capped the limits.
type NodeTask struct {
	ID       string               `json:"id"`
	Attempt  int                  `json:"attempt"`
	Function Function             `json:"function"`
	Account  string               `json:"account"` // the node resolves it and checks the UID
	UID      uint32               `json:"uid"`
	Limits   specs.LinuxResources `json:"limits"`
	// Image is the image the function's runtime names, resolved by the
	// daemon; nil for the host runtime. A node that lacks it fetches it
	// from NodeImagePath.
	Image *NodeImage `json:"image,omitempty"`
	// Data are the cache entries the task reads, resolved (and staged)
	// by the daemon; a node that lacks one fetches it from NodeDataPath,
	// within CacheQuota bytes of entries the account reads there.
	Data       []NodeData    `json:"data,omitempty"`
	CacheQuota int64         `json:"cache_quota,omitempty"`
	Input      []byte        `json:"input,omitempty"`
	Timeout    time.Duration `json:"timeout_ns,omitempty"`
	MaxOutput  int64         `json:"max_output"`
}

// NodeImage is a SIF image a node task runs in.
type NodeImage struct {
	Digest string `json:"digest"` // "sha256:<hex>": what the node must receive
	Size   int64  `json:"size"`
}

// NodeData is a cache entry a node task reads at $FXD_DATA/<Name>.
type NodeData struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Name   string `json:"name"`
}

// NodeStage asks a node to fetch a cache entry for account before any
// task needs it (Stage), or to drop account's access to it (Forget).
type NodeStage struct {
	Digest  string `json:"digest"`
	Size    int64  `json:"size"`
	Account string `json:"account"`
	// CacheQuota bounds the bytes of the entries account reads in the
	// node's cache (its tenants' cache_bytes); 0 bounds nothing.
	CacheQuota int64 `json:"cache_quota,omitempty"`
}

// NodeDataPath is where a node agent fetches a cache entry: GET
// NodeDataPath + digest, with its block's credential, for entries of tasks
// the daemon has sent to a node of that block.
const NodeDataPath = "/" + Version + "/node/data/"

// NodeImagePath is where a node agent fetches an image: GET
// NodeImagePath + digest, with its block's credential. The daemon serves
// only images of tasks it has sent to a node of that block.
const NodeImagePath = "/" + Version + "/node/images/"

// NodeResult is how a task ended on a node.
type NodeResult struct {
	ID       string `json:"id"`
	Attempt  int    `json:"attempt"`
	State    State  `json:"state"`
	ExitCode int    `json:"exit_code"`
	Output   []byte `json:"output,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	Error    string `json:"error,omitempty"`
	Cold     bool   `json:"cold,omitempty"`
	// Unstarted says the task never reached a worker on the node: its
	// account, image or data could not be had there (Error says why).
	// The daemon may run it again, elsewhere.
	Unstarted bool      `json:"unstarted,omitempty"`
	Worker    string    `json:"worker,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
}

// WriteFrame writes f to w: its JSON length as 4 big-endian bytes, then
// the JSON.
func WriteFrame(w io.Writer, f *LinkFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode link frame: %w", err)
	}
	if len(b) > MaxLinkFrame {
		return fmt.Errorf("link frame of %d bytes: %w (at most %d); send fewer tasks or results at once", len(b), ErrTooLarge, MaxLinkFrame)
	}
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], uint32(len(b)))
	if _, err := w.Write(head[:]); err != nil {
		return fmt.Errorf("write link frame: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write link frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame WriteFrame wrote. It returns io.EOF when r
// ends cleanly between frames, and an error wrapping ErrInvalid for a
// frame that is too large, cut short or not a LinkFrame.
func ReadFrame(r *bufio.Reader) (*LinkFrame, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read link frame: cut short in its length: %w", ErrInvalid)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > MaxLinkFrame {
		return nil, fmt.Errorf("read link frame: %d bytes is more than %d: %w", n, MaxLinkFrame, ErrInvalid)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read link frame: cut short (%v): %w", err, ErrInvalid)
	}
	var f LinkFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read link frame: %v: %w", err, ErrInvalid)
	}
	return &f, nil
}

// NodeCredentialRequest asks the daemon for a credential that the agents
// of one block (or one agent started by hand) link with.
type NodeCredentialRequest struct {
	Block string   `json:"block"`
	TTL   Duration `json:"ttl"` // how long it admits new links
}

// NodeCredential is a minted credential; the daemon keeps only its hash.
type NodeCredential struct {
	Block   string    `json:"block"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// NodesResponse lists the linked nodes.
type NodesResponse struct {
	Nodes []NodeHello `json:"nodes"`
}

// AdminNodeCredential mints a credential for the agents of block, valid
// for ttl. Only root on the daemon's unix socket may call it.
func (c *Client) AdminNodeCredential(ctx context.Context, block string, ttl time.Duration) (NodeCredential, error) {
	var r NodeCredential
	err := c.doJSON(ctx, http.MethodPost, "/admin/nodes/credentials", NodeCredentialRequest{Block: block, TTL: Duration(ttl)}, &r, 0)
	return r, err
}

// AdminRevokeNodeCredentials ends every credential of block and unlinks
// its nodes. Only root on the daemon's unix socket may call it.
func (c *Client) AdminRevokeNodeCredentials(ctx context.Context, block string) error {
	return c.doJSON(ctx, http.MethodDelete, "/admin/nodes/credentials/"+url.PathEscape(block), nil, nil, 0)
}

// AdminNodes lists the linked nodes. Only root on the daemon's unix socket
// may call it.
func (c *Client) AdminNodes(ctx context.Context) ([]NodeHello, error) {
	var r NodesResponse
	err := c.doJSON(ctx, http.MethodGet, "/admin/nodes", nil, &r, 0)
	return r.Nodes, err
}
