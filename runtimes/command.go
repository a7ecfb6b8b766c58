package runtimes

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/runtimes/wire"
)

// runCommand runs a command task on a shim worker.
func (p *Pools) runCommand(ctx context.Context, w *worker, j Job) outcome {
	run := wire.Run{Argv: expand(j.Function.Command, j), Env: taskEnv(w, j), Dir: w.dir, MaxOutput: j.MaxOutput}
	var res wire.Result
	var out []byte
	started := time.Now()
	err, stopped := p.exchange(ctx, w, j, func() error {
		if err := send(w.stdin, func(to io.Writer) error { return wire.WriteRun(to, run, j.Input) }); err != nil {
			return err
		}
		var err error
		res, out, err = wire.ReadResult(w.stdout, j.MaxOutput)
		return err
	})
	if stopped != nil {
		stopped.res.StartedAt = started
		return *stopped
	}
	o := outcome{res: Result{StartedAt: started, ExitCode: res.ExitCode, Stderr: res.Stderr}, keep: true}
	if err != nil {
		// The shim died or broke the protocol: the worker is lost.
		exited := w.died(2 * time.Second)
		w.kill()
		o.keep, o.res.State, o.res.ExitCode = false, api.StateFailed, -1
		o.unsent = errors.Is(err, errUnsent)
		switch {
		case oomKilled(w):
			o.res.Error = oomReason(j)
		case exited:
			o.res.Error = "the worker's shim ended (" + exitText(w.exit.Code, w.exit.Signal) + ") while running the task: " + lastLines(w.stderr.since(0), 1024)
		default:
			o.res.Error = "the worker's shim broke the protocol: " + err.Error()
		}
		p.log.Warn().Err(err).Str("worker", w.id).Str("task", j.TaskID).Msg("command worker lost")
		return o
	}
	switch {
	case oomKilled(w): // even if the task survived it: a process of its was killed
		o.res.State, o.res.Error = api.StateFailed, oomReason(j)
	case res.Error != "":
		o.res.State, o.res.Error = api.StateFailed, "start the command: "+res.Error
	case res.ExitCode != 0 || res.Signal != "":
		o.res.State, o.res.Error = api.StateFailed, exitText(res.ExitCode, res.Signal)
	case res.OutputTruncated || res.OutputBytes > j.MaxOutput:
		o.res.State, o.res.Error = api.StateFailed, tooLarge(res.OutputBytes, j.MaxOutput)
	default:
		o.res.State, o.res.Output = api.StateSucceeded, out
	}
	// Processes the task left running (the shim, their subreaper, saw
	// them) must not survive it: discarding the worker kills its cgroup.
	if res.LeftBehind {
		p.log.Debug().Str("worker", w.id).Str("task", j.TaskID).Msg("task left processes behind; discarding its worker")
		o.keep = false
	}
	return o
}

// expand fills the argv template of a command function. An argv without
// placeholders, the common case, is returned as it is.
func expand(argv []string, j Job) []string {
	if !slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, "{") }) {
		return argv
	}
	r := strings.NewReplacer("{task_id}", j.TaskID, "{attempt}", strconv.Itoa(j.Attempt))
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = r.Replace(a)
	}
	return out
}

// taskEnv is the environment of one command task.
func taskEnv(w *worker, j Job) []string {
	return functionEnv(w.env, j.Function.Env, w.fxdEnv(
		"FXD_FUNCTION="+j.Function.Ref(),
		"FXD_TASK_ID="+j.TaskID,
		"FXD_ATTEMPT="+strconv.Itoa(j.Attempt),
	)...)
}
