package pbs

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"fxd.dev/fxd/batch"
)

// resvSlack is how long before a reservation starts its hosts stop
// counting as free: the block is submitted a moment after Windows
// answers, and the scheduling cycle its submission starts may wait for
// one already running.
const resvSlack = 2 * time.Minute

// Windows returns the room blocks like like could have now, from the
// hosts pbsnodes -a -F json shows wholly free for like's queue (its
// options' -q, else the pool's): every vnode of the host in state "free"
// alone, running no job and no CPU assigned, and serving that queue (a
// vnode with a "queue" attribute takes jobs of that queue only).
//
// A free host may be booked by reservations (its "resv" attribute):
// pbs_rstat -f says when they start, and a host stays free until
// resvSlack before the first. One whose reservation runs, starts within
// resvSlack, or that pbs_rstat does not list is not free. The windows
// are then: all free hosts for as long as the one booked soonest stays
// free, and fewer for longer, up to the hosts no reservation bounds
// within like.Walltime (Duration 0). Nodes are at most like.Nodes.
//
// That is as far as PBS lets one see: unlike Slurm, PBS has no test
// submission that says when a job would start, and a queued job the
// scheduler has calendared onto a free host (its estimated.exec_vnode)
// may take it first; a block shaped to such a window then waits in the
// queue like any job.
func (p *Provider) Windows(ctx context.Context, like batch.Block) ([]batch.Window, error) {
	out, stderr, err := batch.RunStderr(ctx, "", "pbsnodes", "-a", "-F", "json")
	var ce *batch.CommandError
	switch {
	case errors.As(err, &ce) && strings.Contains(ce.Stderr, "Server has no node list"):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("find pbs windows: %w", err)
	case len(bytes.TrimSpace(out)) == 0 && bytes.Contains(stderr, []byte("No nodes found")):
		return nil, nil
	}
	free, err := freeHosts(out, p.queue(like))
	if err != nil {
		return nil, fmt.Errorf("find pbs windows: %w", err)
	}
	var starts map[string]time.Time
	if booked(free) {
		out, err := batch.Run(ctx, "", "pbs_rstat", "-f")
		if err != nil {
			return nil, fmt.Errorf("find pbs windows: %w", err)
		}
		if starts, err = parseRstat(out); err != nil {
			return nil, fmt.Errorf("find pbs windows: %w", err)
		}
	}
	return windows(free, starts, time.Now(), like), nil
}

// queue is the queue blocks like like go to: the last -q of their
// options, else the pool's, without its server.
func (p *Provider) queue(like batch.Block) string {
	q := p.c.Queue
	f := optionFields(like.Options)
	for i, a := range f {
		switch {
		case a == "-q" && i+1 < len(f):
			q = f[i+1]
		case strings.HasPrefix(a, "-q") && len(a) > 2:
			q = a[2:]
		}
	}
	name, _, _ := strings.Cut(q, "@")
	return name
}

// pbsnodesHost is the part of one host of pbsnodes -a -F json that
// Windows reads. pbsnodes -a shows hosts, not vnodes: a host of several
// vnodes comes as one entry, its jobs joined, its resources summed, and
// attributes on which its vnodes differ (state, resv) as "<various>".
type pbsnodesHost struct {
	State     *string `json:"state"`
	Queue     string  `json:"queue"`
	Jobs      list    `json:"jobs"`
	Resv      list    `json:"resv"`
	Available struct {
		Host string `json:"host"`
	} `json:"resources_available"`
	Assigned struct {
		NCPUs number `json:"ncpus"`
	} `json:"resources_assigned"`
}

// freeHosts reads pbsnodes -a -F json's output: the hosts a block of
// queue could have whole now, each with the reservations booked on it.
// Entries of one host (pbsnodes -av shows vnodes) count as one host,
// free when all are.
func freeHosts(out []byte, queue string) (map[string][]string, error) {
	var pn struct {
		Nodes *map[string]pbsnodesHost `json:"nodes"`
	}
	if err := decode("pbsnodes -a -F json", out, &pn); err != nil {
		return nil, err
	}
	if pn.Nodes == nil {
		return nil, fmt.Errorf("pbsnodes -a -F json printed no \"nodes\": %w", batch.ErrBadOutput)
	}
	isFree := map[string]bool{}
	resvs := map[string][]string{}
	for name, h := range *pn.Nodes {
		if h.State == nil || *h.State == "" {
			return nil, fmt.Errorf("pbsnodes -a -F json: %s has no state: %w", batch.Clip(name, 80), batch.ErrBadOutput)
		}
		host := cmp.Or(h.Available.Host, name)
		ok, seen := isFree[host]
		isFree[host] = (ok || !seen) && *h.State == "free" && len(h.Jobs) == 0 && h.Assigned.NCPUs.n == 0 &&
			(h.Queue == "" || h.Queue == queue)
		resvs[host] = append(resvs[host], h.Resv...)
	}
	free := map[string][]string{}
	for host, ok := range isFree {
		if ok {
			free[host] = resvs[host]
		}
	}
	return free, nil
}

// booked says whether a reservation books any of the free hosts.
func booked(free map[string][]string) bool {
	for _, r := range free {
		if len(r) > 0 {
			return true
		}
	}
	return false
}

// windows are the windows of the free hosts (with their reservations,
// which start at starts) at now, for blocks like like.
func windows(free map[string][]string, starts map[string]time.Time, now time.Time, like batch.Block) []batch.Window {
	var bounds []time.Duration // how long each usable host stays free; 0: past like.Walltime
	for _, resvs := range free {
		d, ok := freeFor(resvs, starts, now)
		if !ok {
			continue
		}
		if d >= like.Walltime && like.Walltime > 0 {
			d = 0
		}
		bounds = append(bounds, d)
	}
	// Longest first, 0 (unbounded) before all: the first k hosts stay
	// free for as long as the k-th.
	slices.SortFunc(bounds, func(a, b time.Duration) int {
		switch {
		case a == b:
			return 0
		case a == 0 || b != 0 && a > b:
			return -1
		}
		return 1
	})
	var ws []batch.Window
	for k, d := range bounds {
		if k+1 < len(bounds) && bounds[k+1] == d {
			continue // the window ends with the last host that stays free as long
		}
		n := k + 1
		if like.Nodes > 0 {
			n = min(n, like.Nodes)
		}
		ws = append(ws, batch.Window{Nodes: n, Duration: d})
		if n == like.Nodes {
			break // more hosts than asked about cannot make a longer window
		}
	}
	return ws
}

// freeFor is how long a host booked by resvs stays free from now, 0 when
// no reservation bounds it; ok is false when it is not free now.
func freeFor(resvs []string, starts map[string]time.Time, now time.Time) (d time.Duration, ok bool) {
	for _, r := range resvs {
		start, known := reservationStart(starts, r)
		if !known {
			return 0, false // "<various>", or it ended or began since pbsnodes looked
		}
		left := start.Sub(now) - resvSlack
		if left <= 0 {
			return 0, false
		}
		if d == 0 || left < d {
			d = left
		}
	}
	return d, true
}

// reservationStart is when reservation id starts, by its full name or its
// name before the server's (pbsnodes and pbs_rstat may name the server
// differently).
func reservationStart(starts map[string]time.Time, id string) (time.Time, bool) {
	if t, ok := starts[id]; ok {
		return t, true
	}
	name, _, _ := strings.Cut(id, ".")
	for k, t := range starts {
		if n, _, _ := strings.Cut(k, "."); n == name {
			return t, true
		}
	}
	return time.Time{}, false
}
