package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"fxd.dev/fxd/api"
)

// fetchTimeout bounds one fetch of an image or a data entry from the
// daemon.
const fetchTimeout = 30 * time.Minute

// image makes sure this node holds img, fetching it from the daemon if
// not. Tasks that need the same image at once share one fetch, which
// goes on when one of them is cancelled.
func (a *agent) image(ctx context.Context, img *api.NodeImage) error {
	if a.c.Images == nil {
		return fmt.Errorf("image %s: this node runs no containers (no OCI runtime)", img.Digest)
	}
	if _, ok := a.c.Images.HasDigest(img.Digest); ok {
		return nil
	}
	ch := a.fetches.DoChan(img.Digest, func() (any, error) {
		if _, ok := a.c.Images.HasDigest(img.Digest); ok {
			return nil, nil // a fetch that ended just before brought it
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		return nil, a.fetch(fctx, img)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch receives img from the daemon into the node's image store, which
// checks that its bytes hash to its digest.
func (a *agent) fetch(ctx context.Context, img *api.NodeImage) error {
	start := time.Now()
	body, err := a.download(ctx, api.NodeImagePath, img.Digest)
	if err != nil {
		return fmt.Errorf("fetch image %s: %w", img.Digest, err)
	}
	defer body.Close()
	if _, err := a.c.Images.AddDigest(ctx, img.Digest, body, img.Size, a.c.Daemon, a.c.ImageLimits); err != nil {
		return err
	}
	a.log.Info().Str("runtime", img.Digest).Int64("size", img.Size).Dur("dur", time.Since(start)).Msg("image fetched from the daemon")
	return nil
}

// download asks the daemon for path + digest with the node's credential
// and returns the body of a 200 answer; the caller closes it.
func (a *agent) download(ctx context.Context, path, digest string) (io.ReadCloser, error) {
	url := strings.TrimSuffix(a.c.Daemon, "/") + path + digest
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.c.Token)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s answered %s: %s", a.c.Daemon, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.Body, nil
}
