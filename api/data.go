package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DataEntry is one entry of a node's data cache, as a reader of it sees
// it: its bytes are stored once per node whoever staged them, but only
// the accounts that staged it, or proved they may read its source, see it.
type DataEntry struct {
	Digest   string    `json:"digest"` // "sha256:<64 hex>": the ref tasks name
	Size     int64     `json:"size"`
	Source   string    `json:"source,omitempty"` // where it was staged from: a path, a URL, "upload"
	Added    time.Time `json:"added"`
	LastUsed time.Time `json:"last_used,omitzero"`
	// StagedOn are the nodes a stage with Nodes asked to fetch it.
	StagedOn []string `json:"staged_on,omitempty"`
}

// DataResponse answers GET /v1/data.
type DataResponse struct {
	Data []DataEntry `json:"data"`
}

// StageRequest is the body of POST /v1/data/stage: stage Source, a file
// under one of the site's cache.paths (read with the caller's own
// permissions) or an http(s) URL, into the cache. When Digest is given
// the bytes must hash to it.
type StageRequest struct {
	Source string `json:"source"`
	Digest string `json:"digest,omitempty"`
	// Nodes, when given, are linked nodes to fetch the entry into their
	// caches now, ahead of the tasks that will read it ("*": every
	// linked node). Source may then be a digest the caller reads.
	Nodes []string `json:"nodes,omitempty"`
}

// DataUsage is one account's use of the cache, for admins.
type DataUsage struct {
	Account string `json:"account"`
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"` // each entry counted in full
}

// DataUsageResponse answers GET /v1/admin/data.
type DataUsageResponse struct {
	Total   int64       `json:"total_bytes"` // on disk: shared bytes once
	Entries int         `json:"entries"`
	Usage   []DataUsage `json:"usage"`
}

// DataRef is data a task names: Ref is the digest of a cache entry the
// caller may read, or a source to stage first (a path under cache.paths or
// an http(s) URL). Path is where it appears: a relative name ("frames.h5",
// "run1/frames.h5") under the directory $FXD_DATA, read-only, on the host
// runtime and in containers alike.
type DataRef struct {
	Ref  string `json:"ref"`
	Path string `json:"path"`
}

// IsDigest says whether ref names a cache entry by digest rather than a
// source.
func IsDigest(ref string) bool { return strings.HasPrefix(ref, "sha256:") }

// PutData uploads size bytes from r into the cache (fx data put). A
// digest, when given, is checked against the bytes.
func (c *Client) PutData(ctx context.Context, r io.Reader, size int64, digest string) (DataEntry, error) {
	p := "/data"
	if digest != "" {
		p += "?digest=" + url.QueryEscape(digest)
	}
	resp, cancel, err := c.doStream(ctx, http.MethodPost, p, "application/octet-stream", r, size)
	if err != nil {
		return DataEntry{}, err
	}
	defer cancel()
	var e DataEntry
	return e, c.decode(resp, http.MethodPost, p, &e)
}

// StageData stages a source into the cache and returns its entry.
func (c *Client) StageData(ctx context.Context, req StageRequest) (DataEntry, error) {
	var e DataEntry
	err := c.doJSON(ctx, http.MethodPost, "/data/stage", req, &e, time.Hour)
	return e, err
}

// Data lists the cache entries the caller may read.
func (c *Client) Data(ctx context.Context) ([]DataEntry, error) {
	var r DataResponse
	err := c.doJSON(ctx, http.MethodGet, "/data", nil, &r, 0)
	return r.Data, err
}

// DataEntry returns one entry the caller may read.
func (c *Client) DataEntry(ctx context.Context, digest string) (DataEntry, error) {
	var e DataEntry
	err := c.doJSON(ctx, http.MethodGet, "/data/"+url.PathEscape(digest), nil, &e, 0)
	return e, err
}

// DataContent returns the bytes of an entry the caller may read; the
// caller closes the reader.
func (c *Client) DataContent(ctx context.Context, digest string) (io.ReadCloser, error) {
	p := "/data/" + url.PathEscape(digest) + "/content"
	resp, cancel, err := c.doStream(ctx, http.MethodGet, p, "", nil, 0)
	if err != nil {
		return nil, err
	}
	return cancelOnClose{resp.Body, cancel}, nil
}

// RemoveData removes the caller's access to an entry; its bytes go when
// no account may read it any more.
func (c *Client) RemoveData(ctx context.Context, digest string) error {
	return c.doJSON(ctx, http.MethodDelete, "/data/"+url.PathEscape(digest), nil, nil, 0)
}

// AdminDataUsage returns the cache's use per account (admin).
func (c *Client) AdminDataUsage(ctx context.Context) (DataUsageResponse, error) {
	var r DataUsageResponse
	err := c.doJSON(ctx, http.MethodGet, "/admin/data", nil, &r, 0)
	return r, err
}

// cancelOnClose is a response body whose Close also ends its request's
// context.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// CheckDigest refuses a digest that is not "sha256:" and 64 lowercase
// hex digits, the one form fxd takes (ErrInvalid).
func CheckDigest(d string) error {
	_, err := DigestHex(d)
	return err
}

// DigestHex returns the hex part of d, which must be "sha256:" and 64
// lowercase hex digits: the only digest form fxd makes (of images and
// cache entries alike), and so the only one that may become part of a
// path. Anything else fails with ErrInvalid.
func DigestHex(d string) (string, error) {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		if len(d) > 80 { // from outside: keep the message short
			d = d[:77] + "..."
		}
		return "", fmt.Errorf("digest %q: want sha256: and 64 lowercase hex digits, as fx runtimes and fx data ls show: %w", d, ErrInvalid)
	}
	return hex, nil
}
