package images

import (
	"fmt"
	"strings"

	"fxd.dev/fxd/api"
)

// checkOwner refuses an owner that cannot be part of a reference: owners
// are account names, which NSS allows more of than image names.
func checkOwner(owner string) error {
	if owner == "" || strings.ContainsAny(owner, "/\x00") {
		return fmt.Errorf("image owner %q: not an account name: %w", owner, api.ErrInvalid)
	}
	return nil
}

// parseRef splits a reference into owner and name: "python" is the site
// image (owner ""), "alice/python" is alice's.
func parseRef(ref string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(ref, "/")
	if !ok {
		owner, name = "", ref
	} else if err := checkOwner(owner); err != nil {
		return "", "", fmt.Errorf("image %q: %w (references are name or owner/name)", ref, err)
	}
	if err := api.CheckName("image name", name); err != nil {
		return "", "", fmt.Errorf("image %q: %w (references are name or owner/name)", ref, err)
	}
	return owner, name, nil
}

// refOf is the reference of the image name owned by owner: the key of its
// record and Image.Name.
func refOf(owner, name string) string {
	if owner == "" {
		return name
	}
	return owner + "/" + name
}

// parseDigest returns the hex part of "sha256:<64 lowercase hex>", the only
// digest form fxd makes; nothing else becomes part of a path.
func parseDigest(d string) (string, error) {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || !isHex64(hex) {
		return "", fmt.Errorf("image digest %q: %w: want sha256: and 64 lowercase hex digits, as fx runtimes shows", d, api.ErrInvalid)
	}
	return hex, nil
}

// isHex64 reports whether s is 64 lowercase hex digits.
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
