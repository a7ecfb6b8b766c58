package conf

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid is the kind of every config problem: errors returned by Parse,
// Load (for the content of the file) and Validate satisfy
// errors.Is(err, ErrInvalid). conf imports no fxd package, so the daemon maps
// this kind to api.ErrInvalid where it needs to.
var ErrInvalid = errors.New("invalid config")

// Problem is one mistake in a config: where it is and how to fix it.
type Problem struct {
	File string // file name as given to Load or Parse; "" for a config built in code
	Line int    // 1-based line; 0 when unknown
	Key  string // dotted key, e.g. "endpoint.tls_cert" or "auth.map[1].regex" (0-based index)
	Msg  string // what is wrong and how to fix it
}

// Error returns "FILE:LINE: KEY: MSG", leaving out the parts that are unknown.
func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line " + strconv.Itoa(p.Line) + ": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Unwrap returns ErrInvalid, the kind of every problem.
func (p *Problem) Unwrap() error { return ErrInvalid }

// problems collects the problems of one config; placed fills in the file
// and lines.
type problems struct {
	src  *source
	list []*Problem
}

func (ps *problems) add(key, format string, args ...any) {
	ps.list = append(ps.list, &Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// err returns the problems, in file order, joined; nil if there are none.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	if ps.src != nil {
		for _, p := range ps.list {
			p.File = ps.src.file
			if p.Line == 0 {
				p.Line = ps.src.line(p.Key)
			}
		}
	}
	slices.SortStableFunc(ps.list, func(a, b *Problem) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(ps.list))
	for i, p := range ps.list {
		errs[i] = p
	}
	return errors.Join(errs...)
}
