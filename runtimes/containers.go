package runtimes

import (
	"fmt"
	"strings"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/runtimes/images"
)

// Containers lets Pools run functions whose runtime is a SIF image.
type Containers struct {
	Exec   isolation.Executor // starts containers (isolation/oci)
	Images *images.Store
	// ShimPath is where fxd-shim appears inside every container.
	ShimPath string
	// WorkDir is the container's private work dir, where tasks start.
	WorkDir string
	// HomeBound says the site binds each account's home directory at its
	// own path: HOME is then the account's home, else WorkDir.
	HomeBound bool
}

// image resolves the runtime of j's function to the digest of an image:
// j.Image when the daemon resolved it already (on a node agent), else
// the image the function's owner sees in the repository (a function
// shared with other tenants runs in its owner's image).
func (p *Pools) image(j Job) (string, error) {
	if p.ctr == nil {
		return "", fmt.Errorf("runtime %q: this node runs no containers (no OCI runtime: install crun or runc, or set containers.runtime); use runtime %q: %w",
			j.Function.Runtime, api.RuntimeHost, api.ErrUnavailable)
	}
	if j.Image != "" {
		return j.Image, nil
	}
	if j.Function.Owner == "" { // "" would see every tenant's images
		return "", fmt.Errorf("function %s has no owner: %w", j.Function.Name, api.ErrInvalid)
	}
	img, err := p.ctr.Images.Get(j.Function.Runtime, j.Function.Owner)
	if err != nil {
		return "", fmt.Errorf("runtime of %s: %w", j.Function.Ref(), err)
	}
	return img.Digest, nil
}

// containerEnv is env with HOME where it is inside the container.
func (c *Containers) containerEnv(env []string) []string {
	if c.HomeBound {
		return env
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			kv = "HOME=" + c.WorkDir
		}
		out = append(out, kv)
	}
	return out
}
