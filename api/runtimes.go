package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Runtime kinds.
const (
	RuntimeKindHost = "host" // the node's own file system
	RuntimeKindSIF  = "sif"  // a SIF image in the site's repository
)

// Runtime is one runtime a caller may name in a function: "host", or an
// image of the site's repository: a site image ("python") or the caller's
// own ("alice/tools").
type Runtime struct {
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`            // RuntimeKindHost or RuntimeKindSIF
	Owner   string    `json:"owner,omitempty"` // "" for site images
	Digest  string    `json:"digest,omitempty"`
	Size    int64     `json:"size,omitempty"`
	Arch    string    `json:"arch,omitempty"`
	Signers []string  `json:"signers,omitempty"` // fingerprints of the keys that signed it, when verified
	Source  string    `json:"source,omitempty"`  // the path it was added from
	Added   time.Time `json:"added,omitzero"`
}

// RuntimesResponse answers GET /v1/runtimes.
type RuntimesResponse struct {
	Runtimes []Runtime `json:"runtimes"`
}

// AddRuntimeRequest is the body of POST /v1/runtimes: a SIF image on a path
// of the site that the caller's account can read (fxd reads it with that
// account's permissions), to be stored as "<account>/<name>".
type AddRuntimeRequest struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Runtimes lists the runtimes the caller may use.
func (c *Client) Runtimes(ctx context.Context) ([]Runtime, error) {
	var r RuntimesResponse
	err := c.doJSON(ctx, http.MethodGet, "/runtimes", nil, &r, 0)
	return r.Runtimes, err
}

// AddRuntime stores the SIF image at path (on the site, readable by the
// caller's account) as the caller's image name. Reading and checking a
// large image takes a while: ctx should allow minutes.
func (c *Client) AddRuntime(ctx context.Context, name, path string) (Runtime, error) {
	var r Runtime
	err := c.doJSON(ctx, http.MethodPost, "/runtimes", AddRuntimeRequest{Name: name, Path: path}, &r, 0)
	return r, err
}

// DeleteRuntime removes one of the caller's images ("name" or
// "account/name").
func (c *Client) DeleteRuntime(ctx context.Context, ref string) error {
	return c.doJSON(ctx, http.MethodDelete, "/runtimes/"+url.PathEscape(ref), nil, nil, 0)
}

// AdminRuntimes lists every image of the repository. Only root on the
// daemon's unix socket may call it.
func (c *Client) AdminRuntimes(ctx context.Context) ([]Runtime, error) {
	var r RuntimesResponse
	err := c.doJSON(ctx, http.MethodGet, "/admin/runtimes", nil, &r, 0)
	return r.Runtimes, err
}

// AdminAddRuntime stores the SIF image at path (read by the daemon as root)
// as the site image name. Only root on the daemon's unix socket may call it.
func (c *Client) AdminAddRuntime(ctx context.Context, name, path string) (Runtime, error) {
	var r Runtime
	err := c.doJSON(ctx, http.MethodPost, "/admin/runtimes", AddRuntimeRequest{Name: name, Path: path}, &r, 0)
	return r, err
}

// AdminDeleteRuntime removes any image ("name" for a site image,
// "account/name" for a user's). Only root on the daemon's unix socket may
// call it.
func (c *Client) AdminDeleteRuntime(ctx context.Context, ref string) error {
	return c.doJSON(ctx, http.MethodDelete, "/admin/runtimes/"+url.PathEscape(ref), nil, nil, 0)
}
