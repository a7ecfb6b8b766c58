package daemon

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"fxd.dev/fxd/api"
)

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	accountName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?$`)
)

// checkFunction validates a spec and fills its defaults.
func checkFunction(s *api.FunctionSpec) error {
	if err := api.CheckName("function name", s.Name); err != nil {
		return err
	}
	if s.Runtime == "" {
		s.Runtime = api.RuntimeHost
	}
	if s.Kind == "" {
		s.Kind = api.KindCommand
	}
	if s.Kind != api.KindCommand && s.Kind != api.KindServable {
		return fmt.Errorf("kind %q: want %q or %q: %w", s.Kind, api.KindCommand, api.KindServable, api.ErrInvalid)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return fmt.Errorf("function %q: command is empty; give the program and its arguments: %w", s.Name, api.ErrInvalid)
	}
	for k, v := range s.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("env %q: not a valid variable name: %w", k, api.ErrInvalid)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("env %q: the value contains a NUL byte, which no process environment can hold; remove it: %w", k, api.ErrInvalid)
		}
	}
	l := s.Limits
	if l.MemoryBytes < 0 || l.CPUs < 0 || l.Pids < 0 {
		return fmt.Errorf("limits must not be negative: %w", api.ErrInvalid)
	}
	if l.MemoryBytes > 0 && l.MemoryBytes < 4<<20 {
		return fmt.Errorf("limits.memory_bytes %d: at least 4 MiB is needed to start a process: %w", l.MemoryBytes, api.ErrInvalid)
	}
	for _, a := range s.SharedWith {
		if !accountName.MatchString(a) {
			return fmt.Errorf("shared_with %q: not an account name: %w", a, api.ErrInvalid)
		}
	}
	return nil
}

func (d *Daemon) registerFunction(ctx context.Context, c caller, s api.FunctionSpec) (api.Function, error) {
	if err := checkFunction(&s); err != nil {
		return api.Function{}, err
	}
	if err := d.checkRuntime(s.Runtime, c.acct.Name); err != nil {
		return api.Function{}, err
	}
	if max := d.cfg.Limits.MaxTimeout.D(); s.Limits.Timeout.D() > max {
		return api.Function{}, fmt.Errorf("limits.timeout %s exceeds the site's limits.max_timeout (%s): %w", s.Limits.Timeout.D(), max, api.ErrInvalid)
	}
	f, err := d.store.PutFunction(ctx, api.Function{FunctionSpec: s, Owner: c.acct.Name})
	if err != nil {
		return api.Function{}, fmt.Errorf("store function %s: %w", s.Name, err)
	}
	d.log.Info().Str("function", f.Ref()).Int("version", f.Version).Str("account", c.acct.Name).Msg("function registered")
	return f, nil
}

// checkRuntime refuses a runtime that account cannot use: neither host
// nor an image it sees in the repository.
func (d *Daemon) checkRuntime(runtime, account string) error {
	if runtime == api.RuntimeHost {
		return nil
	}
	if d.images == nil {
		return fmt.Errorf("runtime %q: this site runs no containers (no OCI runtime installed, or containers.runtime = \"none\"); use runtime %q: %w", runtime, api.RuntimeHost, api.ErrInvalid)
	}
	if _, err := d.images.Get(runtime, account); err != nil {
		if errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("runtime %q: no such image for you on this site; `fx runtimes` lists those you may use: %w", runtime, api.ErrInvalid)
		}
		return fmt.Errorf("runtime %q: %w", runtime, err)
	}
	return nil
}

func (d *Daemon) listFunctions(c caller) ([]api.Function, error) {
	own, err := d.store.ListFunctions(c.acct.Name)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	shared, err := d.store.SharedWith(c.acct.Name)
	if err != nil {
		return nil, fmt.Errorf("list shared functions: %w", err)
	}
	return append(own, shared...), nil
}

func (d *Daemon) deleteFunction(ctx context.Context, c caller, name string) error {
	if err := d.store.DeleteFunction(ctx, c.acct.Name, name); err != nil {
		return fmt.Errorf("function %q: %w", name, err)
	}
	return nil
}
