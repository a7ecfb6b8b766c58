package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
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

func printTasks(c *cli, ts []api.Task, now time.Time) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFUNCTION\tSTATE\tEXIT\tATTEMPTS\tCOLD\tQUEUED\tRAN")
	for _, t := range ts {
		queue, run := taskDurations(t, now)
		exit, cold := "-", "-"
		if t.State.Final() && t.State != api.StateCancelled {
			exit = strconv.Itoa(t.ExitCode)
		}
		if t.Cold {
			cold = "cold"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Function, t.State, exit, t.Attempts, cold, fmtDur(queue), fmtDur(run))
	}
	return tw.Flush()
}

// taskDurations returns how long a task waited before it started and how
// long it ran, counting to now for one not yet over.
func taskDurations(t api.Task, now time.Time) (queue, run time.Duration) {
	end := func(ts ...time.Time) time.Time {
		for _, x := range ts {
			if !x.IsZero() {
				return x
			}
		}
		return now
	}
	if !t.ReceivedAt.IsZero() {
		queue = end(t.StartedAt, t.FinishedAt).Sub(t.ReceivedAt)
	}
	if !t.StartedAt.IsZero() {
		run = end(t.FinishedAt).Sub(t.StartedAt)
	}
	return max(queue, 0), max(run, 0)
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
