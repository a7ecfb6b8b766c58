package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"fxd.dev/fxd/api"
)

// inputFlags are the flags of run and submit that make the task spec:
// its input, its data and the site it runs at.
type inputFlags struct {
	file, json string
	data       dataFlag
	site       string
}

func (in *inputFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&in.file, "input", "", "read raw input from `FILE` (- for stdin); the function reads it on stdin")
	fs.StringVar(&in.json, "json-input", "", "send this `JSON` value as the input")
	fs.Var(&in.data, "data", "`NAME=REF`: show cache entry REF (a digest from fx data, or a path or URL to stage) to the task as $FXD_DATA/NAME; repeatable")
	fs.StringVar(&in.site, "site", "", "run at federated peer site `NAME`, or any to let the site pick one that offers the function (name it OWNER/NAME)")
}

// dataFlag collects --data NAME=REF flags.
type dataFlag []api.DataRef

func (d *dataFlag) String() string { return fmt.Sprint(*d) }

func (d *dataFlag) Set(v string) error {
	name, ref, ok := strings.Cut(v, "=")
	if !ok || name == "" || ref == "" {
		return fmt.Errorf("%q: want NAME=REF, like frames.h5=sha256:… (a digest fx data put printed) or frames.h5=/data/run1/frames.h5", v)
	}
	*d = append(*d, api.DataRef{Ref: ref, Path: name})
	return nil
}

// spec returns the task spec for function name with the input set: JSON in
// Input, raw bytes in InputBase64. raw reports whether the input is raw.
func (in *inputFlags) spec(c *cli, name string, timeout api.Duration) (spec api.TaskSpec, raw bool, err error) {
	spec = api.TaskSpec{Function: name, Timeout: timeout, Data: in.data, Site: in.site}
	switch {
	case in.file != "" && in.json != "":
		return spec, false, usageError("give --input or --json-input, not both")
	case in.json != "":
		if !json.Valid([]byte(in.json)) {
			return spec, false, usageError("--json-input %q: not valid JSON; quote strings, e.g. '{\"a\":1}' or '\"text\"'", in.json)
		}
		spec.Input = json.RawMessage(in.json)
		return spec, false, nil
	case in.file == "-":
		b, err := io.ReadAll(c.stdin)
		if err != nil {
			return spec, true, usageError("read input from stdin: %v", err)
		}
		spec.InputBase64 = b
		return spec, true, nil
	case in.file != "":
		b, err := os.ReadFile(in.file)
		if err != nil {
			return spec, true, usageError("read input: %v", err)
		}
		spec.InputBase64 = b
		return spec, true, nil
	}
	return spec, true, nil
}

// finish prints a task's output (raw, or the Task JSON with --json) and
// returns the error that sets the exit code: 1 if it did not succeed, 4 if
// it has not ended yet. Unless it succeeded, the sites it involves go to
// stderr (taskPlaces), and on failure its stderr tail. An
// output kept in the data cache (too large for the task's record) is
// fetched from cl.
func (c *cli) finish(ctx context.Context, g *globals, cl *api.Client, t api.Task) error {
	switch {
	case g.json:
		if err := printJSON(c.stdout, t); err != nil {
			return err
		}
	case t.OutputRef != "":
		body, err := cl.DataContent(ctx, t.OutputRef)
		if err != nil {
			return fmt.Errorf("fetch the output of task %s (%s, kept in the data cache): %w", t.ID, t.OutputRef, err)
		}
		defer body.Close()
		if _, err := io.Copy(c.stdout, body); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	default:
		if _, err := c.stdout.Write(t.Output); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if t.State == api.StateSucceeded {
		return nil
	}
	if !g.json { // where it runs or ran, to look further
		for _, p := range taskPlaces(t) {
			fmt.Fprintln(c.stderr, p)
		}
	}
	if !t.State.Final() {
		return &exitError{code: exitPending, err: fmt.Errorf("task %s is %s; wait for it with fx result --wait 5m %s", t.ID, t.State, t.ID)}
	}
	if t.Stderr != "" && !g.json {
		fmt.Fprintf(c.stderr, "--- stderr of task %s (last bytes) ---\n%s", t.ID, t.Stderr)
		if t.Stderr[len(t.Stderr)-1] != '\n' {
			fmt.Fprintln(c.stderr)
		}
	}
	return &exitError{code: exitTask, err: taskError(t)}
}

// taskError says why a final task did not succeed.
func taskError(t api.Task) error {
	msg := fmt.Sprintf("task %s %s", t.ID, t.State)
	if t.State == api.StateFailed {
		msg += fmt.Sprintf(" (exit code %d)", t.ExitCode)
	}
	if t.Error != "" {
		msg += ": " + t.Error
	}
	return fmt.Errorf("%s", msg)
}
