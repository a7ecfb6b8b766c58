package runtimes

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/runtimes/wire"
)

// runServable sends one task to a servable worker.
func (p *Pools) runServable(ctx context.Context, w *worker, j Job) outcome {
	mark := w.stderr.mark()
	var status byte
	var out []byte
	var size int64 // of an output over the limit
	started := time.Now()
	err, stopped := p.exchange(ctx, w, j, func() error {
		if err := send(w.stdin, func(to io.Writer) error { return wire.WriteRequest(to, j.Input) }); err != nil {
			return err
		}
		var err error
		status, out, err = wire.ReadResponse(w.stdout, j.MaxOutput)
		if se := (*wire.SizeError)(nil); errors.As(err, &se) {
			// Skip the payload so the worker stays usable.
			size = se.Size
			if _, err := io.CopyN(io.Discard, w.stdout, se.Size); err != nil {
				return err
			}
			return nil
		}
		return err
	})
	if stopped != nil {
		stopped.res.StartedAt = started
		stopped.res.Stderr = w.stderr.since(mark)
		return *stopped
	}
	o := outcome{res: Result{StartedAt: started}, keep: true}
	if err != nil {
		exited := w.died(2 * time.Second)
		w.kill()
		o.keep, o.res.State, o.res.ExitCode = false, api.StateFailed, -1
		o.unsent = errors.Is(err, errUnsent)
		o.res.Stderr = w.stderr.since(mark)
		switch {
		case oomKilled(w):
			o.res.Error = oomReason(j)
		case exited:
			o.crashed = true
			o.res.ExitCode = w.exit.Code
			o.res.Error = "servable " + strings.Replace(exitText(w.exit.Code, w.exit.Signal), "exit status", "exited with status", 1) +
				" while running the task: " + lastLines(w.stderr.since(0), 1024)
		default:
			o.res.Error = "servable broke the protocol (see docs/servable.md): " + err.Error()
		}
		return o
	}
	switch {
	case size > 0:
		o.res.State, o.res.Error = api.StateFailed, tooLarge(size, j.MaxOutput)
	case status == wire.StatusError:
		o.res.State, o.res.Error = api.StateFailed, "servable error: "+strings.ToValidUTF8(string(out), "\uFFFD")
		o.res.Stderr = w.stderr.since(mark)
	default:
		o.res.State, o.res.Output = api.StateSucceeded, out
	}
	return o
}
