package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
)

// listFlag is a flag that may be given many times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// cmdRegister registers a function, or a new version of it.
func cmdRegister(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	var spec api.FunctionSpec
	var env, share listFlag
	var memory conf.Size
	var timeout api.Duration
	fs.StringVar((*string)(&spec.Kind), "kind", string(api.KindCommand), "command (one process per task) or servable (a long-lived process)")
	fs.StringVar(&spec.Runtime, "runtime", api.RuntimeHost, "`runtime` to run in: host or a SIF image of the site (fx runtimes lists them)")
	fs.Var(&env, "env", "set an environment variable `K=V`; repeat for more")
	fs.TextVar(&memory, "memory", conf.Size(0), "memory limit per worker: a `SIZE` like 512MiB (0: your quota)")
	fs.Float64Var(&spec.Limits.CPUs, "cpus", 0, "CPUs per worker, like 1 or 0.5 (0: your quota)")
	fs.Int64Var(&spec.Limits.Pids, "pids", 0, "process limit per worker (0: your quota)")
	fs.TextVar(&timeout, "timeout", api.Duration(0), "timeout per task: a `DURATION` like 30s (0: the site default)")
	fs.Var(&share, "share", "let `account` invoke it as OWNER/NAME; repeat for more")
	fs.BoolVar(&spec.Federated, "federated", false, "offer it to the federation: peer sites list it and their users may run it as OWNER/NAME")
	fs.StringVar(&spec.Description, "description", "", "what it does, for fx functions")
	pos, tail, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError("missing the function NAME")
	}
	spec.Name, spec.Command = pos[0], append(pos[1:], tail...)
	if len(spec.Command) == 0 {
		return usageError("missing the command; give it after --, e.g. fx register %s -- /usr/bin/python3 f.py", spec.Name)
	}
	if spec.Kind != api.KindCommand && spec.Kind != api.KindServable {
		return usageError("--kind %q: want command or servable", spec.Kind)
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError("--env %q: want KEY=VALUE", kv)
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	spec.Limits.MemoryBytes, spec.Limits.Timeout, spec.SharedWith = int64(memory), timeout, share
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	f, err := cl.RegisterFunction(ctx, spec)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(c.stdout, f)
	}
	fmt.Fprintf(c.stdout, "registered %s version %d\n", f.Ref(), f.Version)
	return nil
}
