package conf

import (
	"reflect"
	"strings"
)

// suggest returns "; did you mean X?" for an unknown key name in the table
// parent whose known keys are siblings, or "". It prefers a sibling with a
// close spelling, then a key of the same or a close name elsewhere in the
// config (a key put in the wrong section).
func suggest(parent, name string, siblings []string) string {
	limit := min(1+len(name)/4, 3)
	best, bestD := "", limit+1
	for _, s := range siblings {
		if d := distance(name, s); d < bestD {
			best, bestD = joinKey(parent, []string{s}), d
		}
	}
	if best == "" {
		for _, k := range knownKeys() {
			leaf := k[strings.LastIndexAny(k, ".]")+1:]
			if d := distance(name, leaf); d < bestD {
				best, bestD = k, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return "; did you mean " + best + "?"
}

// knownKeys lists every key of Config in order; map entries are written
// NAME and array entries [N], e.g. "tenants.account.NAME.cpus".
func knownKeys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		if reflect.PointerTo(t).Implements(textUnmarshaler) {
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			for _, name := range tagNames(t) {
				k := joinKey(prefix, []string{name})
				keys = append(keys, k)
				walk(t.Field(fieldIndex(t, name)).Type, k)
			}
		case reflect.Map:
			walk(t.Elem(), prefix+".NAME")
		case reflect.Slice:
			walk(t.Elem(), prefix+"[N]")
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// distance is the optimal string alignment distance of a and b: the edits
// (insert, delete, replace, swap two neighbours) that turn a into b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return len(ra) + len(rb) // long names are never typos of config keys
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
