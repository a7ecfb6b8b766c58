package batch

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"fxd.dev/fxd/api"
)

var (
	blockNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// CheckName says what is wrong with name as a block's name, if anything:
// before a provider puts it in a job, or looks jobs up by it (Finder).
func CheckName(name string) error {
	if !blockNameRE.MatchString(name) {
		return fmt.Errorf("block name %q: %w: use 1 to 64 letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit", name, api.ErrInvalid)
	}
	return nil
}

// Check says what is wrong with b, if anything, before a provider turns
// it into a job.
func (b Block) Check() error {
	if err := CheckName(b.Name); err != nil {
		return err
	}
	switch {
	case b.Nodes < 1:
		return fmt.Errorf("block %s: %w: %d nodes; ask for 1 or more", b.Name, api.ErrInvalid, b.Nodes)
	case b.Walltime < time.Minute:
		return fmt.Errorf("block %s: %w: walltime %v; ask for a minute or more", b.Name, api.ErrInvalid, b.Walltime)
	case len(b.Command) == 0 || b.Command[0] == "":
		return fmt.Errorf("block %s: %w: no command for its nodes", b.Name, api.ErrInvalid)
	}
	for k, v := range b.Env {
		if !envNameRE.MatchString(k) {
			return fmt.Errorf("block %s: %w: environment name %q; use letters, digits and \"_\"", b.Name, api.ErrInvalid, k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("block %s: %w: environment %s holds a NUL, which no process environment can carry", b.Name, api.ErrInvalid, k)
		}
	}
	for _, s := range slices.Concat(b.Init, b.Options, b.Command) {
		if strings.ContainsRune(s, 0) {
			return fmt.Errorf("block %s: %w: a NUL in its init lines, options or command", b.Name, api.ErrInvalid)
		}
	}
	for _, line := range b.Init {
		if strings.Contains(line, "\n") {
			return fmt.Errorf("block %s: %w: init line %q holds a newline; give one line per entry", b.Name, api.ErrInvalid, line)
		}
	}
	return nil
}

// Minutes is b's walltime in whole minutes, rounded up: the unit of every
// scheduler's time limit.
func (b Block) Minutes() int64 {
	return int64((b.Walltime + time.Minute - 1) / time.Minute)
}

// Quote returns s as one POSIX shell word.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteArgv returns argv as shell words.
func QuoteArgv(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = Quote(a)
	}
	return strings.Join(words, " ")
}

// Body is the part of a job script that every provider shares, after its
// directives: b.Env exported (sorted by name), then b.Init, one line each.
// The provider appends the line that starts b.Command on every node.
func (b Block) Body() string {
	var sb strings.Builder
	names := make([]string, 0, len(b.Env))
	for k := range b.Env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(&sb, "export %s=%s\n", k, Quote(b.Env[k]))
	}
	for _, line := range b.Init {
		sb.WriteString(line + "\n")
	}
	return sb.String()
}
