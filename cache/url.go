package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"fxd.dev/fxd/api"
)

// IsURL says whether source names an http or https URL rather than a
// path.
func IsURL(source string) bool {
	return strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://")
}

// OpenURL starts the download of source, an http or https URL, with
// client (whose Timeout bounds the whole download, and whose
// CheckRedirect decides which redirects to follow; one that refuses with
// api.ErrDenied makes the download so refused), and returns its body
// and its size when the server gave one (-1 when not). A server that
// answers other than 200, or announces more than maxSize bytes (> 0), is
// refused before any byte is read; the caller bounds the rest while it
// reads (PutOptions.MaxSize). The caller closes the body.
func OpenURL(ctx context.Context, client *http.Client, source string, maxSize int64) (io.ReadCloser, int64, error) {
	u, err := url.Parse(source)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, 0, fmt.Errorf("url %q: want http://host/path or https://host/path: %w", source, api.ErrInvalid)
	}
	if u.User != nil {
		return nil, 0, fmt.Errorf("url %q: credentials in a URL would be kept as the entry's source; use a URL without them: %w", redact(u), api.ErrInvalid)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("url %s: %v: %w", source, err, api.ErrInvalid)
	}
	resp, err := client.Do(req)
	if errors.Is(err, api.ErrDenied) { // the client's redirect policy refused
		return nil, 0, fmt.Errorf("download %s: %w", source, err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("download %s: %w: %w", source, err, api.ErrUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("download %s: the server answered %s; check the URL: %w", source, resp.Status, api.ErrInvalid)
	}
	if maxSize > 0 && resp.ContentLength > maxSize {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("download %s: %d bytes is more than cache.max_entry_size (%d): %w", source, resp.ContentLength, maxSize, api.ErrTooLarge)
	}
	return resp.Body, resp.ContentLength, nil
}

// redact is u without its password, for messages.
func redact(u *url.URL) string { return u.Redacted() }
