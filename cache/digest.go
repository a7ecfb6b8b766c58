package cache

import "fxd.dev/fxd/api"

// ParseDigest returns the hex part of digest (api.DigestHex): the only
// form the cache makes, and the only input that becomes part of a path.
// Anything else fails with api.ErrInvalid.
func ParseDigest(digest string) (string, error) { return api.DigestHex(digest) }

// clip shortens s, from outside, for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
