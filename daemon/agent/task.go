package agent

import (
	"context"
	"fmt"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/runtimes"
)

// start runs t on a worker of this node, unless it runs already (sent
// again after a link was dialled again), and queues its result.
func (a *agent) start(ctx context.Context, t api.NodeTask) {
	a.mu.Lock()
	if _, ok := a.running[t.ID]; ok {
		a.mu.Unlock()
		return
	}
	// The task outlives the link it came on: only the agent's end stops it.
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.running[t.ID] = cancel
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer cancel()
		res := a.run(tctx, t)
		a.mu.Lock()
		delete(a.running, t.ID)
		a.results = append(a.results, res)
		a.mu.Unlock()
		a.signal()
	}()
}

// run runs t and says how it ended.
func (a *agent) run(ctx context.Context, t api.NodeTask) api.NodeResult {
	acct, err := a.c.Lookup(t.Account)
	if err == nil && acct.UID != t.UID {
		err = fmt.Errorf("account %q is uid %d on node %s but uid %d at the daemon; the site's nodes must share its accounts (LDAP, SSSD)", t.Account, acct.UID, a.c.Hello.Node, t.UID)
	}
	digest := ""
	if err == nil && t.Image != nil {
		err, digest = a.image(ctx, t.Image), t.Image.Digest
	}
	var files []runtimes.DataFile
	if err == nil && len(t.Data) > 0 {
		var release func()
		files, release, err = a.data(ctx, t)
		if err == nil {
			defer release()
		}
	}
	if err != nil {
		state := api.StateFailed
		if ctx.Err() != nil {
			state = api.StateCancelled
		}
		return api.NodeResult{ID: t.ID, Attempt: t.Attempt, State: state, ExitCode: -1, Error: "on node " + a.c.Hello.Node + ": " + err.Error(),
			Unstarted: ctx.Err() == nil}
	}
	r := a.c.Pools.Run(ctx, runtimes.Job{TaskID: t.ID, Attempt: t.Attempt, Function: t.Function, Image: digest, Account: acct,
		Data: files, Limits: t.Limits, Input: t.Input, Timeout: t.Timeout, MaxOutput: t.MaxOutput}, a.c.Hello.Slots)
	return api.NodeResult{ID: t.ID, Attempt: t.Attempt, State: r.State, ExitCode: r.ExitCode, Output: r.Output, Stderr: r.Stderr,
		Error: r.Error, Cold: r.Cold, Worker: r.Worker, StartedAt: r.StartedAt}
}
