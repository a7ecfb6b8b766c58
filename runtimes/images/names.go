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

// parseDigest returns the hex part of d (api.DigestHex): the only digest
// form fxd makes; nothing else becomes part of a path.
func parseDigest(d string) (string, error) { return api.DigestHex(d) }
