package daemon

import (
	"fmt"
	"net/http"
	"strings"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/runtimes/images"
)

// adminOnly runs h for root on the unix socket only: the site's admin
// (fxd runtime add …). Tokens and certificates never reach it.
func (d *Daemon) adminOnly(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return d.counted(func(w http.ResponseWriter, r *http.Request) {
		uid, local := r.Context().Value(peerUIDKey).(uint32)
		err := fmt.Errorf("%s is for the site's admin: run it as root on this host (fxd runtime …): %w", r.URL.Path, api.ErrDenied)
		if local && uid == 0 && r.Header.Get("Authorization") == "" {
			err = h(w, r)
		}
		if err != nil {
			d.writeError(w, r, err)
		}
	})
}

// repository returns the image repository, or why there is none.
func (d *Daemon) repository() (*images.Store, error) {
	if d.images == nil {
		return nil, fmt.Errorf("this site runs no containers (no OCI runtime installed, or containers.runtime = \"none\"), so it keeps no images: %w", api.ErrUnavailable)
	}
	return d.images, nil
}

// runtimesFor lists the runtimes account may name: host, then the site's
// images and its own.
func (d *Daemon) runtimesFor(account string) ([]api.Runtime, error) {
	out := []api.Runtime{{Name: api.RuntimeHost, Kind: api.RuntimeKindHost}}
	if d.images == nil {
		return out, nil
	}
	imgs, err := d.images.List(account)
	if err != nil {
		return nil, err
	}
	return append(out, runtimesOf(imgs)...), nil
}

func (d *Daemon) handleRuntimes(w http.ResponseWriter, r *http.Request, c caller) error {
	rts, err := d.runtimesFor(c.acct.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.RuntimesResponse{Runtimes: rts})
}

// imageLimits are the bounds of an image add, from [containers].
func (d *Daemon) imageLimits() images.Limits {
	k := d.cfg.Containers
	return images.Limits{MaxSize: int64(k.MaxImageSize), MaxImages: k.MaxUserImages,
		MaxBytes: int64(k.MaxUserImageBytes), MinFree: int64(k.MinFreeSpace)}
}

func (d *Daemon) handleAddRuntime(w http.ResponseWriter, r *http.Request, c caller) error {
	repo, err := d.repository()
	if err != nil {
		return err
	}
	if !d.cfg.Containers.UserImages {
		return fmt.Errorf("this site does not take images from users (containers.user_images = false); ask the admin to add it: %w", api.ErrDenied)
	}
	var req api.AddRuntimeRequest
	if err := d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	img, err := repo.AddFile(r.Context(), req.Name, c.acct.Name, c.acct, req.Path, d.imageLimits())
	if err != nil {
		return err
	}
	d.log.Info().Str("runtime", img.Name).Str("digest", img.Digest).Str("account", c.acct.Name).Msg("image added")
	return writeJSON(w, http.StatusCreated, runtimeOf(img))
}

func (d *Daemon) handleDeleteRuntime(w http.ResponseWriter, r *http.Request, c caller) error {
	repo, err := d.repository()
	if err != nil {
		return err
	}
	// "name" is the caller's own image by that name if there is one,
	// else the site image, which Remove refuses with the reason.
	ref := r.PathValue("ref")
	if own := c.acct.Name + "/" + ref; !strings.Contains(ref, "/") {
		if _, err := repo.Get(own, c.acct.Name); err == nil {
			ref = own
		}
	}
	if err := repo.Remove(ref, c.acct.Name); err != nil {
		return err
	}
	d.log.Info().Str("runtime", ref).Str("account", c.acct.Name).Msg("image removed")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) handleAdminRuntimes(w http.ResponseWriter, r *http.Request) error {
	repo, err := d.repository()
	if err != nil {
		return err
	}
	imgs, err := repo.List("")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.RuntimesResponse{Runtimes: runtimesOf(imgs)})
}

func (d *Daemon) handleAdminAddRuntime(w http.ResponseWriter, r *http.Request) error {
	repo, err := d.repository()
	if err != nil {
		return err
	}
	var req api.AddRuntimeRequest
	if err := d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	// Read as root: the admin names a file of the site.
	img, err := repo.AddSiteFile(r.Context(), req.Name, req.Path, d.imageLimits())
	if err != nil {
		return err
	}
	d.log.Info().Str("runtime", img.Name).Str("digest", img.Digest).Strs("signers", img.Signers).Msg("site image added")
	return writeJSON(w, http.StatusCreated, runtimeOf(img))
}

func (d *Daemon) handleAdminDeleteRuntime(w http.ResponseWriter, r *http.Request) error {
	repo, err := d.repository()
	if err != nil {
		return err
	}
	if err := repo.Remove(r.PathValue("ref"), ""); err != nil {
		return err
	}
	d.log.Info().Str("runtime", r.PathValue("ref")).Msg("image removed by the admin")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func runtimesOf(imgs []images.Image) []api.Runtime {
	out := make([]api.Runtime, len(imgs))
	for i, img := range imgs {
		out[i] = runtimeOf(img)
	}
	return out
}

func runtimeOf(img images.Image) api.Runtime {
	return api.Runtime{
		Name: img.Name, Kind: api.RuntimeKindSIF, Owner: img.Owner, Digest: img.Digest, Size: img.Size,
		Arch: img.Arch, Signers: img.Signers, Source: img.Source, Added: img.Added,
	}
}
