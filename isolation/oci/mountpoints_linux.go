package oci

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
)

// checkMountpoints reports every mount of g whose destination the runtime
// would have to create in the read-only image root rootfs, which fails
// there with a bare EROFS. A destination under an earlier mount of g
// (/dev, /tmp, /sys, a bind) lies outside the image and is not checked. Paths are resolved inside
// rootfs (openat2 RESOLVE_IN_ROOT), so an image's symlinks never reach the
// host. It fails with api.ErrInvalid naming the missing paths.
func checkMountpoints(rootfs string, g *specs.Spec) error {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open image root %s: %w", rootfs, err)
	}
	defer unix.Close(root)
	var shadowed, missing []string
	for _, m := range g.Mounts {
		if !under(m.Destination, shadowed) {
			fd, err := unix.Openat2(root, strings.TrimPrefix(m.Destination, "/"), &unix.OpenHow{
				Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT,
			})
			switch {
			case err == nil:
				unix.Close(fd)
			case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
				missing = append(missing, m.Destination)
			default:
				return fmt.Errorf("look up %s in image root %s: %w", m.Destination, rootfs, err)
			}
		}
		shadowed = append(shadowed, m.Destination)
	}
	if len(missing) > 0 {
		return fmt.Errorf("mount points %s are not in the image, whose root is read-only; create them in the image or change the site's bind destinations: %w",
			strings.Join(missing, ", "), api.ErrInvalid)
	}
	return nil
}

// under reports whether p lies strictly below one of dirs.
func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}
