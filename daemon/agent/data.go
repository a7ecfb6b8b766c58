package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/runtimes"
)

// data makes sure this node's cache holds the entries t reads, fetching
// those it lacks from the daemon, lets t's account read them (the daemon
// checked it may), and pins them for the run; release unpins them.
func (a *agent) data(ctx context.Context, t api.NodeTask) (files []runtimes.DataFile, release func(), err error) {
	var pins []func()
	release = func() {
		for _, p := range pins {
			p()
		}
	}
	for _, d := range t.Data {
		if err := a.entry(ctx, d, t.Account, t.CacheQuota); err != nil {
			release()
			return nil, nil, err
		}
		path, unpin, err := a.c.Cache.Pin(d.Digest, t.Account)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("data %s: %w", d.Name, err)
		}
		pins = append(pins, unpin)
		files = append(files, runtimes.DataFile{Source: path, Name: d.Name})
	}
	return files, release, nil
}

// entry makes d readable by account in the node's cache, within quota
// bytes of entries account reads there (0: no bound). Tasks that need
// the same entry at once share one fetch, which goes on when one of them
// is cancelled.
func (a *agent) entry(ctx context.Context, d api.NodeData, account string, quota int64) error {
	opts := cache.PutOptions{Want: d.Digest, Source: a.c.Daemon, Size: d.Size, MaxSize: a.c.MaxEntry, Quota: quota}
	if _, err := a.c.Cache.Get(d.Digest, account); err == nil {
		return nil
	}
	if _, err := a.c.Cache.Grant(d.Digest, account, opts); err == nil {
		return nil
	}
	ch := a.fetches.DoChan("data "+d.Digest, func() (any, error) {
		if _, err := a.c.Cache.Get(d.Digest, ""); err == nil {
			return nil, nil // a fetch that ended just before brought it
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		return nil, a.fetchData(fctx, d, account, opts)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return r.Err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := a.c.Cache.Grant(d.Digest, account, opts) // when another account's fetch brought it
	return err
}

// fetchData receives d from the daemon into the node's cache, for
// account; the cache checks that its bytes hash to its digest.
func (a *agent) fetchData(ctx context.Context, d api.NodeData, account string, opts cache.PutOptions) error {
	start := time.Now()
	body, err := a.download(ctx, api.NodeDataPath, d.Digest)
	if err != nil {
		return fmt.Errorf("fetch data %s: %w", d.Digest, err)
	}
	defer body.Close()
	if _, err := a.c.Cache.Put(ctx, account, body, opts); err != nil {
		return fmt.Errorf("fetch data %s: %w", d.Digest, err)
	}
	a.log.Info().Str("digest", d.Digest).Int64("size", d.Size).Dur("dur", time.Since(start)).Msg("data fetched from the daemon")
	return nil
}

// prestage fetches st into the node's cache for its account, in the
// background, ahead of the tasks that will read it.
func (a *agent) prestage(ctx context.Context, st api.NodeStage) {
	if a.c.Cache == nil {
		return
	}
	a.background(ctx, func(ctx context.Context) {
		d := api.NodeData{Digest: st.Digest, Size: st.Size}
		if err := a.entry(ctx, d, st.Account, st.CacheQuota); err != nil {
			a.log.Warn().Err(err).Str("digest", st.Digest).Msg("stage data the daemon asked for")
			return
		}
		a.log.Info().Str("digest", st.Digest).Str("account", st.Account).Msg("data staged ahead of its tasks")
	})
}

// background runs f on its own goroutine with a context that outlives
// the link ctx came with, not the agent: stopTasks cancels it and waits.
func (a *agent) background(ctx context.Context, f func(ctx context.Context)) {
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.mu.Lock()
	a.inBackground[&cancel] = struct{}{}
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			cancel()
			a.mu.Lock()
			delete(a.inBackground, &cancel)
			a.mu.Unlock()
		}()
		f(bctx)
	}()
}

// forget drops st.Account's access to st's entry in the node's cache, as
// the daemon's was (fx data rm): its bytes go when no account reads them.
func (a *agent) forget(st api.NodeStage) {
	if a.c.Cache == nil {
		return
	}
	if err := a.c.Cache.Remove(st.Digest, st.Account); err != nil && !errors.Is(err, api.ErrNotFound) {
		a.log.Warn().Err(err).Str("digest", st.Digest).Msg("forget data the daemon no longer keeps for an account")
	}
}

// held returns the digests the node's cache holds when they changed
// since the daemon last heard them, else nil.
func (a *agent) held() *[]string {
	list := a.cached()
	key := strings.Join(list, ",")
	a.mu.Lock()
	defer a.mu.Unlock()
	if key == a.heldSent {
		return nil
	}
	a.heldSent = key
	return &list
}

// cached lists the digests of the entries the node's cache holds, for
// its hello: tasks that read them come here.
func (a *agent) cached() []string {
	if a.c.Cache == nil {
		return nil
	}
	entries, err := a.c.Cache.List("")
	if err != nil {
		a.log.Warn().Err(err).Msg("list the node's cache for the daemon")
		return nil
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Digest
	}
	return out
}

// upload sends st's entry back to the daemon, whose cache no longer
// holds it, if st.Account reads it in this node's cache; in the
// background. One it cannot send is reported (Unsent), so that the
// daemon stops waiting for it.
func (a *agent) upload(ctx context.Context, st api.NodeStage) {
	if a.c.Cache == nil {
		return
	}
	a.background(ctx, func(ctx context.Context) {
		if err := a.send(ctx, st); err != nil {
			a.log.Warn().Err(err).Str("digest", st.Digest).Msg("send data back to the daemon")
			a.mu.Lock()
			a.unsent = append(a.unsent, st)
			a.mu.Unlock()
			a.signal()
			return
		}
		a.log.Info().Str("digest", st.Digest).Str("account", st.Account).Msg("data sent back to the daemon")
	})
}

// send PUTs st's entry, pinned while it goes, to the daemon.
func (a *agent) send(ctx context.Context, st api.NodeStage) error {
	path, unpin, err := a.c.Cache.Pin(st.Digest, st.Account) // only what the account reads here
	if err != nil {
		return err
	}
	defer unpin()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	u := strings.TrimSuffix(a.c.Daemon, "/") + api.NodeDataPath + st.Digest + "?account=" + url.QueryEscape(st.Account)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, f)
	if err != nil {
		return err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Authorization", "Bearer "+a.c.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("%s answered %s: %s", a.c.Daemon, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
