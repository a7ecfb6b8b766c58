package slurm

import (
	"fmt"
	"strconv"
	"strings"

	"fxd.dev/fxd/batch"
)

// maxHosts bounds what one hostlist may expand to: more than any cluster,
// less than garbage could ask for.
const maxHosts = 1 << 17

// expandHostlist expands a Slurm hostlist ("nid[0001-0003,0007],login1",
// "n[1-2]-ib") into host names, keeping the ranges' zero padding.
func expandHostlist(s string) ([]string, error) {
	var hosts []string
	for len(s) > 0 {
		item, rest, err := nextItem(s)
		if err != nil {
			return nil, err
		}
		s = rest
		if hosts, err = expandItem(item, hosts); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}

// nextItem splits the first host expression off s, at a comma outside
// brackets.
func nextItem(s string) (item, rest string, err error) {
	depth := 0
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				return s[:i], s[i+1:], nil
			}
		}
		if depth < 0 || depth > 1 {
			return "", "", badHostlist(s)
		}
	}
	if depth != 0 {
		return "", "", badHostlist(s)
	}
	return s, "", nil
}

// expandItem appends the hosts of one expression ("nid[01-03]-ib") to
// hosts.
func expandItem(item string, hosts []string) ([]string, error) {
	open := strings.IndexByte(item, '[')
	if open < 0 {
		if item == "" {
			return nil, badHostlist(item)
		}
		return append(hosts, item), nil
	}
	end := strings.IndexByte(item, ']')
	if end < open {
		return nil, badHostlist(item)
	}
	prefix, ranges, suffix := item[:open], item[open+1:end], item[end+1:]
	if strings.ContainsAny(suffix, "[]") {
		return nil, badHostlist(item) // one bracket per name is what Slurm prints for node lists
	}
	for _, r := range strings.Split(ranges, ",") {
		lo, hi, ok := strings.Cut(r, "-")
		if !ok {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b, err2 := strconv.ParseUint(hi, 10, 32)
		if err1 != nil || err2 != nil || b < a || len(hosts)+int(b-a) >= maxHosts {
			return nil, badHostlist(item)
		}
		for n := a; n <= b; n++ {
			hosts = append(hosts, fmt.Sprintf("%s%0*d%s", prefix, len(lo), n, suffix))
		}
	}
	return hosts, nil
}

func badHostlist(s string) error {
	return fmt.Errorf("node list %q is not a Slurm hostlist: %w", batch.Clip(s, 120), batch.ErrBadOutput)
}
