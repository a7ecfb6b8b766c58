package images

import (
	"fmt"
	"strings"

	"fxd.dev/fxd/api"
)

// maxName is the longest image or owner name.
const maxName = 64

// checkName refuses a name that is not 1-64 of [a-z0-9._-] starting with a
// letter or digit; what says what the name is for messages ("image name").
func checkName(what, name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("%s %q: %w: want 1-%d characters of a-z 0-9 . _ -", what, name, api.ErrInvalid, maxName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%s %q: %w: character %q at %d; use a-z 0-9 . _ - and start with a letter or digit", what, name, api.ErrInvalid, c, i+1)
		}
	}
	return nil
}

// parseRef splits a reference into owner and name: "python" is the site
// image (owner ""), "alice/python" is alice's.
func parseRef(ref string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(ref, "/")
	if !ok {
		owner, name = "", ref
	} else if err := checkName("image owner", owner); err != nil {
		return "", "", fmt.Errorf("image %q: %w (references are name or owner/name)", ref, err)
	}
	if err := checkName("image name", name); err != nil {
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
