package agent

import (
	"context"
	"errors"
	"fmt"
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
	// The stage outlives the link it came on, not the agent: stopTasks
	// cancels it (the fetch itself ends on its own, unwaited).
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.mu.Lock()
	a.prestages[&cancel] = struct{}{}
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			cancel()
			a.mu.Lock()
			delete(a.prestages, &cancel)
			a.mu.Unlock()
		}()
		d := api.NodeData{Digest: st.Digest, Size: st.Size}
		if err := a.entry(pctx, d, st.Account, st.CacheQuota); err != nil {
			a.log.Warn().Err(err).Str("digest", st.Digest).Msg("stage data the daemon asked for")
			return
		}
		a.log.Info().Str("digest", st.Digest).Str("account", st.Account).Msg("data staged ahead of its tasks")
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
