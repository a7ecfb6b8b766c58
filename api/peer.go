package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"time"
)

// PeerPath is the prefix, after "/v1", of the peer endpoint's routes,
// served on federation.listen to peer sites only (mutual TLS 1.3).
const PeerPath = "/peer"

// SiteAny in TaskSpec.Site lets the site route the task: to a peer that
// offers the function, preferring one whose cache holds the task's data,
// then the least loaded.
const SiteAny = "any"

// Peer permissions (conf.FederationPeer.Allow).
const (
	AllowRun      = "run"      // forward tasks here
	AllowDiscover = "discover" // read this site's offers
)

// ForwardedTask is one task a site forwards to a peer.
type ForwardedTask struct {
	// ID is the task's ID at the forwarding site. The peer keeps one task
	// per (site, ID): a batch sent again creates nothing twice.
	ID string `json:"id"`
	// User is the caller's account at the forwarding site. The peer sees
	// the identity "User@site", the site taken from the link's
	// certificate, and maps it by its own [[auth.map]] rules.
	User string   `json:"user"`
	Spec TaskSpec `json:"spec"`
	// ReceivedAt is when the forwarding site accepted the task.
	ReceivedAt time.Time `json:"received_at,omitzero"`
}

// ForwardRequest is the body of POST /v1/peer/tasks.
type ForwardRequest struct {
	Tasks []ForwardedTask `json:"tasks"`
}

// ForwardResult answers one forwarded task: its ID at the peer, or why
// the peer refused it. A refusal is final: the task fails with it.
type ForwardResult struct {
	ID    string       `json:"id,omitempty"`
	Error *ErrorDetail `json:"error,omitempty"`
}

// ForwardResponse answers POST /v1/peer/tasks once every accepted task is
// durable at the peer, in request order.
type ForwardResponse struct {
	Results []ForwardResult `json:"results"`
}

// KnownState is a forwarded task's ID at the peer and the state its
// forwarding site last saw.
type KnownState struct {
	ID    string `json:"id"`
	State State  `json:"state"`
}

// PeerQuery is the body of POST /v1/peer/tasks/query: the peer answers
// with the tasks whose state differs from the known one, waiting up to
// Wait for one to differ.
type PeerQuery struct {
	Tasks []KnownState `json:"tasks"`
	Wait  Duration     `json:"wait,omitempty"`
}

// PeerQueryResponse holds the tasks that changed, final ones with their
// outputs. A task the peer does not have (never received, or expired)
// comes back failed, saying so. More is set when more changed than one
// answer carries: ask again at once.
type PeerQueryResponse struct {
	Tasks []Task `json:"tasks"`
	More  bool   `json:"more,omitempty"`
}

// PeerCancelRequest is the body of POST /v1/peer/tasks/cancel: the
// forwarded tasks (IDs at the peer) to cancel; their new states come back
// through queries.
type PeerCancelRequest struct {
	IDs []string `json:"ids"`
}

// Offers answers GET /v1/peer/offers: what a site offers its peers.
type Offers struct {
	Site    string `json:"site"`
	Version string `json:"version"`
	// Functions are those their owners shared with the federation.
	Functions []OfferedFunction `json:"functions"`
	// Runtimes are the digests of the site's images.
	Runtimes []string `json:"runtimes"`
	// Capacity is the site's load now.
	Capacity Capacity `json:"capacity"`
	// Data are digests of cache entries the site holds.
	Data []string `json:"data"`
}

// OfferedFunction is a function a site offers to its peers.
type OfferedFunction struct {
	Ref         string `json:"ref"` // "owner/name"
	Runtime     string `json:"runtime"`
	Kind        Kind   `json:"kind"`
	Description string `json:"description,omitempty"`
}

// Capacity is a site's load.
type Capacity struct {
	Slots   int `json:"slots"`   // workers it can run at once on its nodes
	Running int `json:"running"` // tasks running
	Queued  int `json:"queued"`  // tasks waiting
}

// PeerStatus is one peer as its site sees it: GET /v1/sites lists them.
type PeerStatus struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
	// Healthy is whether its last contact succeeded; Error says why not.
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
	// Latency is the round trip of its last offers request.
	Latency  Duration  `json:"latency,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Forwarded counts tasks forwarded to it and not final yet.
	Forwarded int `json:"forwarded"`
	// Offers is what it offered last, when it lets this site discover.
	Offers *Offers `json:"offers,omitempty"`
}

// SitesResponse answers GET /v1/sites.
type SitesResponse struct {
	Site  string       `json:"site"`
	Peers []PeerStatus `json:"peers"`
}

// Forward sends tasks to the peer (POST /v1/peer/tasks).
func (c *Client) Forward(ctx context.Context, req ForwardRequest) ([]ForwardResult, error) {
	var resp ForwardResponse
	if err := c.doJSON(ctx, "POST", PeerPath+"/tasks", req, &resp, 0); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// PeerTasks asks the peer which forwarded tasks changed
// (POST /v1/peer/tasks/query).
func (c *Client) PeerTasks(ctx context.Context, q PeerQuery) (PeerQueryResponse, error) {
	var resp PeerQueryResponse
	err := c.doJSON(ctx, "POST", PeerPath+"/tasks/query", q, &resp, q.Wait.D())
	return resp, err
}

// PeerCancel asks the peer to cancel forwarded tasks
// (POST /v1/peer/tasks/cancel).
func (c *Client) PeerCancel(ctx context.Context, ids []string) error {
	return c.doJSON(ctx, "POST", PeerPath+"/tasks/cancel", PeerCancelRequest{IDs: ids}, nil, 0)
}

// Offers asks the peer what it offers (GET /v1/peer/offers).
func (c *Client) Offers(ctx context.Context) (Offers, error) {
	var o Offers
	err := c.doJSON(ctx, "GET", PeerPath+"/offers", nil, &o, 0)
	return o, err
}

// Sites lists this site's peers (GET /v1/sites).
func (c *Client) Sites(ctx context.Context) (SitesResponse, error) {
	var s SitesResponse
	err := c.doJSON(ctx, "GET", "/sites", nil, &s, 0)
	return s, err
}

// PeerOutput streams the output of a forwarded task that the peer kept in
// its data cache (GET /v1/peer/tasks/{id}/output). The caller closes it.
func (c *Client) PeerOutput(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, cancel, err := c.doStream(ctx, http.MethodGet, PeerPath+"/tasks/"+url.PathEscape(id)+"/output", "", nil, 0)
	if err != nil {
		return nil, err
	}
	return cancelOnClose{resp.Body, cancel}, nil
}

// PeerRun runs one forwarded task on the peer's synchronous path and
// returns it ended (POST /v1/peer/run). runFor is the longest the task
// may run there, on top of the client's timeout.
func (c *Client) PeerRun(ctx context.Context, t ForwardedTask, runFor time.Duration) (Task, error) {
	var out Task
	err := c.doJSON(ctx, "POST", PeerPath+"/run", t, &out, runFor)
	return out, err
}
