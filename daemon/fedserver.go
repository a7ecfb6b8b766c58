package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/daemon/store"
)

// maxPeerOutputs bounds the output bytes of one answer to a peer's query;
// the rest come in the next (More).
const maxPeerOutputs = 16 << 20

// peerUser is what a peer may give as the account of a forwarded task's
// caller: a POSIX-ish account name, never with '@'.
var peerUser = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// routes are the peer endpoint's: only peers reach them, over mutual TLS.
func (f *fed) routes() http.Handler {
	mux := http.NewServeMux()
	p := "/" + api.Version + api.PeerPath
	mux.HandleFunc("POST "+p+"/tasks", f.peer(api.AllowRun, f.handleForward))
	mux.HandleFunc("POST "+p+"/run", f.peer(api.AllowRun, f.handlePeerRun))
	mux.HandleFunc("POST "+p+"/tasks/query", f.peer(api.AllowRun, f.handlePeerQuery))
	mux.HandleFunc("POST "+p+"/tasks/cancel", f.peer(api.AllowRun, f.handlePeerCancel))
	mux.HandleFunc("GET "+p+"/tasks/{id}/output", f.peer(api.AllowRun, f.handlePeerOutput))
	mux.HandleFunc("GET "+p+"/offers", f.peer(api.AllowDiscover, f.handleOffers))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.d.writeError(w, r, fmt.Errorf("no route %s %s on the peer endpoint: %w", r.Method, r.URL.Path, api.ErrNotFound))
	})
	return mux
}

// peer runs h for the peer site whose certificate the handshake verified,
// if the trust in force now still admits it and lets it do what.
func (f *fed) peer(what string, h func(http.ResponseWriter, *http.Request, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		site, err := f.peerAllowed(r, what)
		if err == nil {
			err = h(w, r, site)
		}
		if err != nil {
			f.d.writeError(w, r, err)
		}
	}
}

func (f *fed) peerAllowed(r *http.Request, what string) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", fmt.Errorf("the peer endpoint takes peers with a certificate only: %w", api.ErrUnauthenticated)
	}
	trust := f.trust.Load()
	site, err := trust.Check(r.TLS.PeerCertificates, time.Now())
	if err != nil {
		return "", err
	}
	if !trust.Allowed(site, what) {
		return "", fmt.Errorf("site %s may not %s here (federation.peer allow); ask this site's admin: %w", site, what, api.ErrDenied)
	}
	return site, nil
}

// handleForward takes a batch of tasks a peer forwards: each runs as the
// account this site's [[auth.map]] gives "user@site", once however often
// the batch comes.
func (f *fed) handleForward(w http.ResponseWriter, r *http.Request, site string) error {
	var req api.ForwardRequest
	if err := f.d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if max := f.d.cfg.Limits.MaxBatch; len(req.Tasks) > max {
		return fmt.Errorf("%d tasks in one forward exceed limits.max_batch (%d) of site %s; send smaller batches: %w", len(req.Tasks), max, f.d.cfg.Site.Name, api.ErrTooLarge)
	}
	mu, _ := f.peerMu.LoadOrStore(site, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	results, err := f.takeForwarded(r.Context(), site, req.Tasks)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ForwardResponse{Results: results})
}

// takeForwarded stores and queues the tasks site forwards and answers each.
func (f *fed) takeForwarded(ctx context.Context, site string, tasks []api.ForwardedTask) ([]api.ForwardResult, error) {
	d := f.d
	results := make([]api.ForwardResult, len(tasks))
	var jobs []*job
	var recs []store.Record
	var at []int // index in tasks of each job
	admitted := map[string]int{}
	now := time.Now()
	for i, ft := range tasks {
		id, err := f.acceptForward(site, ft)
		if err == nil {
			var existing api.Task
			if existing, err = d.store.GetTask(id); err == nil {
				if existing.Origin != site+"/"+ft.ID {
					err = fmt.Errorf("task %s: ID clash with another task; send it again under a new ID: %w", ft.ID, api.ErrConflict)
				} else {
					results[i].ID = id // sent before
					continue
				}
			} else if errors.Is(err, api.ErrNotFound) {
				err = nil
			}
		}
		var j *job
		if err == nil {
			j, err = f.forwardedJob(ctx, site, ft, id, now, admitted)
		}
		if err != nil {
			_, code := api.StatusOf(err)
			results[i].Error = &api.ErrorDetail{Code: code, Message: err.Error()}
			continue
		}
		jobs, at = append(jobs, j), append(at, i)
		recs = append(recs, store.Record{Task: j.task, Identity: ft.User + "@" + site, Input: ft.Spec.InputBytes()})
	}
	// Stored and queued whatever becomes of the request: tasks stored but
	// not queued would be found "sent before" when the peer sends them
	// again, and never run.
	existed, err := d.store.CreateTasksOnce(context.WithoutCancel(ctx), recs)
	if err != nil {
		return nil, fmt.Errorf("store forwarded tasks: %w", err)
	}
	var fresh []*job
	for k, j := range jobs {
		results[at[k]].ID = j.task.ID
		if !existed[k] {
			fresh = append(fresh, j)
		}
	}
	d.disp.enqueue(fresh...)
	if len(fresh) > 0 {
		f.log.Info().Str("peer", site).Int("tasks", len(fresh)).Msg("took forwarded tasks")
	}
	return results, nil
}

// handlePeerRun runs one forwarded task on the synchronous path, as a
// synchronous run here: stored once it ends, answered with its end.
func (f *fed) handlePeerRun(w http.ResponseWriter, r *http.Request, site string) error {
	var ft api.ForwardedTask
	if err := f.d.decodeJSON(w, r, &ft); err != nil {
		return err
	}
	id, err := f.acceptForward(site, ft)
	if err != nil {
		return err
	}
	j, err := f.forwardedJob(r.Context(), site, ft, id, time.Now(), map[string]int{})
	if err != nil {
		return err
	}
	t := f.d.runJob(r.Context(), j, ft.Spec.InputBytes())
	if t.State == api.StateCancelled && f.d.draining.Load() && r.Context().Err() != nil {
		// Stopped by this site's shutdown, not by the caller.
		return fmt.Errorf("site %s shut down while the task ran; run it again: %w", f.d.cfg.Site.Name, api.ErrUnavailable)
	}
	return writeJSON(w, http.StatusOK, t)
}

// acceptForward checks what the peer says of one task and returns its ID
// here.
func (f *fed) acceptForward(site string, ft api.ForwardedTask) (string, error) {
	switch {
	case ft.ID == "" || len(ft.ID) > 128 || strings.ContainsFunc(ft.ID, func(r rune) bool { return r <= ' ' || r == '/' || r > '~' }):
		return "", fmt.Errorf("forwarded task ID %.40q: want 1 to 128 printable characters without '/': %w", ft.ID, api.ErrInvalid)
	case !peerUser.MatchString(ft.User):
		return "", fmt.Errorf("task %s: user %.40q is not an account name: %w", ft.ID, ft.User, api.ErrInvalid)
	case ft.Spec.Site != "" && ft.Spec.Site != f.d.cfg.Site.Name:
		return "", fmt.Errorf("task %s names site %q: a forwarded task runs at the site it was forwarded to (no second hop): %w", ft.ID, ft.Spec.Site, api.ErrInvalid)
	case ft.ReceivedAt.IsZero():
		return "", fmt.Errorf("task %s: received_at missing: %w", ft.ID, api.ErrInvalid)
	}
	return forwardedID(site, ft.ID, ft.ReceivedAt), nil
}

// forwardedJob maps the forwarded task's caller to its account here and
// makes its job, as a submit here would.
func (f *fed) forwardedJob(ctx context.Context, site string, ft api.ForwardedTask, id string, now time.Time, admitted map[string]int) (*job, error) {
	d := f.d
	identity := ft.User + "@" + site
	acct, err := d.mapper().account(identity)
	if err != nil {
		return nil, err
	}
	if err := d.disp.admit(acct.Name, admitted[acct.Name]+1); err != nil {
		return nil, err
	}
	spec := ft.Spec
	spec.Site = ""
	j, err := d.newJob(ctx, caller{identity: identity, acct: acct, peer: site}, spec, now)
	if err != nil {
		return nil, err
	}
	admitted[acct.Name]++
	j.task.ID, j.task.Origin = id, site+"/"+ft.ID
	return j, nil
}

// peerTask returns the task site forwarded whose ID here is id; others'
// tasks are not found. inMemory is its job while it is active.
func (f *fed) peerTask(site, id string) (api.Task, *job, error) {
	t, j, ok := f.d.disp.lookup(id)
	if !ok {
		var err error
		if t, err = f.d.store.GetTask(id); err != nil {
			return api.Task{}, nil, err
		}
	}
	if !strings.HasPrefix(t.Origin, site+"/") {
		return api.Task{}, nil, fmt.Errorf("task %s: %w", id, api.ErrNotFound)
	}
	// A final state is shown once stored: until then the task may still
	// run again here after a crash.
	if j != nil && t.State.Final() {
		select {
		case <-j.done:
		default:
			t.State = api.StateRunning
		}
	}
	return t, j, nil
}

// handlePeerQuery answers the forwarded tasks whose state differs from
// what the peer knows, waiting for one to differ.
func (f *fed) handlePeerQuery(w http.ResponseWriter, r *http.Request, site string) error {
	var q api.PeerQuery
	if err := f.d.decodeJSON(w, r, &q); err != nil {
		return err
	}
	if max := f.d.cfg.Limits.MaxBatch; len(q.Tasks) > max {
		return fmt.Errorf("%d tasks in one query exceed limits.max_batch (%d): %w", len(q.Tasks), max, api.ErrTooLarge)
	}
	wait := min(q.Wait.D(), f.cfg.PollWait.D(), f.d.cfg.Limits.MaxWait.D())
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		changed := f.d.disp.watch()
		resp, err := f.changes(site, q.Tasks)
		if err != nil {
			return err
		}
		if len(resp.Tasks) > 0 || wait <= 0 {
			return writeJSON(w, http.StatusOK, resp)
		}
		select {
		case <-changed:
		case <-timer.C:
			wait = 0
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// changes lists the tasks whose state is not the known one, final ones
// with their outputs up to maxPeerOutputs in all.
func (f *fed) changes(site string, known []api.KnownState) (api.PeerQueryResponse, error) {
	var resp api.PeerQueryResponse
	budget := maxPeerOutputs
	for _, k := range known {
		t, _, err := f.peerTask(site, k.ID)
		if errors.Is(err, api.ErrNotFound) {
			t = api.Task{ID: k.ID, State: api.StateFailed, FinishedAt: time.Now(),
				Error: fmt.Sprintf("site %s has no task %s: never received, or expired after its limits.result_retention", f.d.cfg.Site.Name, k.ID)}
		} else if err != nil {
			return api.PeerQueryResponse{}, err
		}
		if t.State == k.State {
			continue
		}
		if t.State.Final() {
			if len(t.Output) > budget && len(resp.Tasks) > 0 {
				resp.More = true
				continue
			}
			budget -= len(t.Output)
		}
		resp.Tasks = append(resp.Tasks, t)
	}
	return resp, nil
}

// handlePeerCancel cancels forwarded tasks; their states come back in
// queries.
func (f *fed) handlePeerCancel(w http.ResponseWriter, r *http.Request, site string) error {
	var req api.PeerCancelRequest
	if err := f.d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	for _, id := range req.IDs {
		if _, j, err := f.peerTask(site, id); err == nil && j != nil {
			f.d.disp.cancel(id)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handlePeerOutput streams the output of a forwarded task kept in the
// data cache (too large for its record).
func (f *fed) handlePeerOutput(w http.ResponseWriter, r *http.Request, site string) error {
	t, _, err := f.peerTask(site, r.PathValue("id"))
	if err != nil {
		return err
	}
	acct, err := f.d.mapper().accountByName(t.Owner)
	if err != nil {
		return err
	}
	return f.d.handleOutput(w, r, caller{acct: acct, peer: site})
}

// handleOffers tells the peer what this site offers.
func (f *fed) handleOffers(w http.ResponseWriter, r *http.Request, site string) error {
	o, err := f.d.offers()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, o)
}

// offers is what this site offers its peers: its federated functions, its
// site images by digest, its load, and the digests of the cached data
// staged from URLs (uploads and site files stay private).
func (d *Daemon) offers() (api.Offers, error) {
	o := api.Offers{Site: d.cfg.Site.Name, Version: d.version, Functions: []api.OfferedFunction{}, Runtimes: []string{}, Data: []string{}}
	fns, err := d.store.Federated()
	if err != nil {
		return api.Offers{}, err
	}
	for _, fn := range fns {
		o.Functions = append(o.Functions, api.OfferedFunction{Ref: fn.Ref(), Runtime: fn.Runtime, Kind: fn.Kind, Description: fn.Description})
	}
	if d.images != nil {
		imgs, err := d.images.List("")
		if err != nil {
			return api.Offers{}, err
		}
		for _, img := range imgs {
			if img.Owner == "" {
				o.Runtimes = append(o.Runtimes, img.Digest)
			}
		}
	}
	if o.Data, err = d.cache.Fetched(); err != nil {
		return api.Offers{}, err
	}
	o.Capacity = d.capacity()
	return o, nil
}
