package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"fxd.dev/fxd/api"
)

// cmdStatus prints a table of tasks. With --wait it waits for them to end
// and its exit code says how they ended.
func cmdStatus(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	wait := fs.Duration("wait", 0, "wait up to this long for all tasks to end, like 30s; then exit 1 if one did not succeed, 4 if one is still going")
	ids, err := parseN(fs, args, 1, -1, "one or more task IDs")
	if err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	ts, err := cl.Tasks(ctx, api.TasksRequest{IDs: ids, Wait: api.Duration(*wait)})
	if err != nil {
		return err
	}
	if g.json {
		err = printJSON(c.stdout, api.TasksResponse{Tasks: ts})
	} else {
		err = printTasks(c, ts, time.Now())
	}
	if err != nil || *wait == 0 {
		return err
	}
	return waitOutcome(ts)
}

// waitOutcome is the exit of a wait: 1 if a task ended without success,
// else 4 if one has not ended.
func waitOutcome(ts []api.Task) error {
	pending := 0
	for _, t := range ts {
		if t.State.Final() && t.State != api.StateSucceeded {
			return &exitError{code: exitTask}
		}
		if !t.State.Final() {
			pending++
		}
	}
	if pending > 0 {
		return &exitError{code: exitPending, err: fmt.Errorf("%d of %d tasks still going after --wait", pending, len(ts))}
	}
	return nil
}

// printTasks prints one row per task; QUEUE, START and RUN are its phases
// (see phaseCells). Under the row of a task that involves a peer site go
// lines that name it (see taskPlaces).
func printTasks(c *cli, ts []api.Task, now time.Time) error {
	var tb table
	tb.row("ID\tFUNCTION\tSTATE\tEXIT\tATTEMPTS\tQUEUE\tSTART\tRUN")
	for _, t := range ts {
		exit := "-"
		if t.State.Final() && t.State != api.StateCancelled {
			exit = strconv.Itoa(t.ExitCode)
		}
		queue, start, run := phaseCells(t, now)
		tb.row(fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s", t.ID, t.Function, t.State, exit, t.Attempts, queue, start, run),
			taskPlaces(t)...)
	}
	return tb.write(c.stdout)
}

// taskPlaces describes, for people, the sites a task involves besides
// this one: "site: NAME (remote id RID)" for a task forwarded to a peer
// site, "from: SITE/ID" for one a peer forwarded here. A forwarded task
// has no remote id until the peer accepts it.
func taskPlaces(t api.Task) []string {
	var out []string
	switch {
	case t.Site != "" && t.RemoteID != "":
		out = append(out, fmt.Sprintf("site: %s (remote id %s)", t.Site, t.RemoteID))
	case t.Site != "":
		out = append(out, "site: "+t.Site)
	}
	if t.Origin != "" {
		out = append(out, "from: "+t.Origin)
	}
	return out
}

// phaseCells returns the QUEUE, START and RUN cells of a task: its
// api.Task.Timings in human units, "-" where one is not known. Once the
// task has ended, START says whether its worker was started for it,
// "48ms (cold)", or was a warm one, "20µs (warm)". A task not yet over
// counts its current phase to now: a queued one its QUEUE, a running one
// its RUN. While the daemon does not know when a running task began on its
// worker (it learns it at the end), RUN is an upper bound, the time since
// dispatch: "≤3s".
func phaseCells(t api.Task, now time.Time) (queue, start, run string) {
	q, s, r := t.Timings()
	queue, start, run = phaseCell(q), phaseCell(s), phaseCell(r)
	switch {
	case t.State.Final():
		if !q.Known && !s.Known && !r.Known {
			break // it never left the queue
		}
		if t.Cold {
			start += " (cold)"
		} else {
			start += " (warm)"
		}
	case t.State == api.StateQueued || t.State == api.StateReceived:
		// A task queued again after a restart may still carry the
		// times of its earlier attempt.
		queue, start, run = phaseCell(api.PhaseBetween(t.ReceivedAt, now)), "-", "-"
	default:
		if ran := api.PhaseBetween(t.StartedAt, now); ran.Known {
			run = phaseCell(ran)
		} else if upper := api.PhaseBetween(t.DispatchedAt, now); upper.Known {
			run = "≤" + phaseCell(upper)
		}
	}
	return queue, start, run
}

// phaseCell formats a phase: "-" when it is not known, "0s" when it took
// no time.
func phaseCell(p api.Phase) string {
	switch {
	case !p.Known:
		return "-"
	case p.D <= 0:
		return "0s"
	}
	return fmtDur(p.D)
}

// fmtDur prints a duration with about three significant digits; 0 is "-".
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
