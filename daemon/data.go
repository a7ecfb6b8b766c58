package daemon

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/conf"
)

// openCache opens the node's data cache in <state_dir>/cache.
func openCache(cfg *conf.Config, log zerolog.Logger) (*cache.Store, error) {
	c := cfg.Cache
	return cache.Open(cache.Config{Dir: filepath.Join(cfg.Site.StateDir, "cache"), MaxBytes: int64(c.MaxSize), MinFree: int64(c.MinFreeSpace)}, log)
}

// cacheQuota is the bytes of cache entries account may read.
func (d *Daemon) cacheQuota(account string) int64 {
	return int64(d.disp.quotaFor(account).CacheBytes)
}

// dataEntry is e as its reader sees it.
func dataEntry(e cache.Entry) api.DataEntry {
	return api.DataEntry{Digest: e.Digest, Size: e.Size, Source: e.Source, Added: e.Added, LastUsed: e.LastUsed}
}

func (d *Daemon) handlePutData(w http.ResponseWriter, r *http.Request, c caller) error {
	want := r.URL.Query().Get("digest")
	if want != "" {
		if err := api.CheckDigest(want); err != nil {
			return err
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/octet-stream" {
		return fmt.Errorf("content type %q: send the file's bytes as application/octet-stream: %w", ct, api.ErrInvalid)
	}
	e, err := d.cache.Put(r.Context(), c.acct.Name, r.Body, cache.PutOptions{Want: want, Source: "upload", Size: r.ContentLength,
		MaxSize: int64(d.cfg.Cache.MaxEntrySize), Quota: d.cacheQuota(c.acct.Name)})
	if err != nil {
		return fmt.Errorf("upload data: %w", err)
	}
	d.log.Info().Str("account", c.acct.Name).Str("digest", e.Digest).Int64("size", e.Size).Msg("data uploaded")
	return writeJSON(w, http.StatusCreated, dataEntry(e))
}

func (d *Daemon) handleStageData(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.StageRequest
	if err := d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	var e cache.Entry
	var err error
	if api.IsDigest(req.Source) && len(req.Nodes) > 0 {
		e, err = d.cache.Get(req.Source, c.acct.Name) // already here: to the nodes
	} else {
		e, err = d.stager.stage(r.Context(), c.acct, d.cacheQuota(c.acct.Name), req.Source, req.Digest)
	}
	if err != nil {
		return err
	}
	out := dataEntry(e)
	if len(req.Nodes) > 0 {
		st := api.NodeStage{Digest: e.Digest, Size: e.Size, Account: c.acct.Name, CacheQuota: d.cacheQuota(c.acct.Name)}
		if out.StagedOn, err = d.nodes.stage(req.Nodes, st); err != nil {
			return err
		}
		d.log.Info().Str("account", c.acct.Name).Str("digest", e.Digest).Strs("nodes", out.StagedOn).Msg("data staged on nodes")
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (d *Daemon) handleData(w http.ResponseWriter, r *http.Request, c caller) error {
	entries, err := d.cache.List(c.acct.Name)
	if err != nil {
		return err
	}
	out := make([]api.DataEntry, len(entries))
	for i, e := range entries {
		out[i] = dataEntry(e)
	}
	return writeJSON(w, http.StatusOK, api.DataResponse{Data: out})
}

func (d *Daemon) handleDataEntry(w http.ResponseWriter, r *http.Request, c caller) error {
	e, err := d.cache.Get(r.PathValue("digest"), c.acct.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dataEntry(e))
}

func (d *Daemon) handleDataContent(w http.ResponseWriter, r *http.Request, c caller) error {
	path, release, err := d.cache.Pin(r.PathValue("digest"), c.acct.Name)
	if err != nil {
		return err
	}
	defer release()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read data %s: %w", r.PathValue("digest"), err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (d *Daemon) handleDeleteData(w http.ResponseWriter, r *http.Request, c caller) error {
	digest := r.PathValue("digest")
	if err := d.cache.Remove(digest, c.acct.Name); err != nil {
		return err
	}
	d.nodes.forget(api.NodeStage{Digest: digest, Account: c.acct.Name})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) handleAdminData(w http.ResponseWriter, r *http.Request) error {
	entries, err := d.cache.List("")
	if err != nil {
		return err
	}
	resp := api.DataUsageResponse{Entries: len(entries), Usage: []api.DataUsage{}}
	by := map[string]*api.DataUsage{}
	for _, e := range entries {
		resp.Total += e.Size
		for _, a := range e.Readers {
			u := by[a]
			if u == nil {
				u = &api.DataUsage{Account: a}
				by[a] = u
			}
			u.Entries++
			u.Bytes += e.Size
		}
	}
	for _, u := range by {
		resp.Usage = append(resp.Usage, *u)
	}
	slices.SortFunc(resp.Usage, func(a, b api.DataUsage) int { return strings.Compare(a.Account, b.Account) })
	return writeJSON(w, http.StatusOK, resp)
}
