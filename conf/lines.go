package conf

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// source remembers where a config was read from: the file name and the
// line of each key, so problems found after decoding can name their line.
type source struct {
	file  string
	path  string         // absolute, when Load read the file
	lines map[string]int // "endpoint.listen", "auth.map[1].regex", "tenants.account.alice" → 1-based line
}

// line returns the line of key, or of the nearest enclosing key or table
// the file mentions, or 0.
func (s *source) line(key string) int {
	for key != "" {
		if n, ok := s.lines[key]; ok {
			return n
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// keyLines finds the line of every key and table header in a TOML text.
// It is not a full TOML parser: it runs on text the toml package already
// accepted and only tracks tables, keys, strings and brackets well enough to
// place keys; keys inside inline tables and arrays are placed at the line of
// the key that holds them. Array tables are numbered from 0 in the order
// they appear: the second [[auth.map]] is "auth.map[1]".
func keyLines(text string) map[string]int {
	lines := map[string]int{}
	counts := map[string]int{}
	set := func(key string, n int) {
		if _, ok := lines[key]; !ok {
			lines[key] = n
		}
	}
	var (
		table string
		st    valueState
	)
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		if st.open() {
			st.scan(line)
			continue
		}
		s := strings.TrimSpace(line)
		switch {
		case s == "" || s[0] == '#':
		case strings.HasPrefix(s, "[["):
			parts, _ := parseKey(s[2:])
			path := joinKey("", parts)
			setPrefixes(set, "", parts, n)
			table = path + "[" + strconv.Itoa(counts[path]) + "]"
			counts[path]++
			set(table, n)
		case s[0] == '[':
			parts, _ := parseKey(s[1:])
			setPrefixes(set, "", parts, n)
			table = joinKey("", parts)
		default:
			parts, rest := parseKey(s)
			if len(parts) == 0 || !strings.HasPrefix(rest, "=") {
				continue
			}
			setPrefixes(set, table, parts, n)
			st.scan(rest[1:])
		}
	}
	return lines
}

// setPrefixes places base.a, base.a.b, … base.a.b.c at line n.
func setPrefixes(set func(string, int), base string, parts []string, n int) {
	for i := range parts {
		set(joinKey(base, parts[:i+1]), n)
	}
}

// joinKey appends TOML key parts to a dotted key, quoting them as the toml
// package does.
func joinKey(base string, parts []string) string {
	if len(parts) == 0 {
		return base
	}
	k := toml.Key(parts).String()
	if base == "" {
		return k
	}
	return base + "." + k
}

// parseKey reads a dotted key (bare and quoted parts) from the start of s and
// returns its parts and the rest of s after the key and any spaces.
func parseKey(s string) (parts []string, rest string) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return parts, s
		}
		var part string
		switch s[0] {
		case '"':
			end := closingQuote(s, '"')
			if end < 0 {
				return parts, ""
			}
			part = s[1:end]
			if u, err := strconv.Unquote(s[:end+1]); err == nil {
				part = u
			}
			s = s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return parts, ""
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool {
				return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
			})
			if end < 0 {
				end = len(s)
			}
			if end == 0 {
				return parts, s
			}
			part, s = s[:end], s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s
		}
		s = s[1:]
	}
}

// closingQuote returns the index of the quote that closes the basic string
// starting at s[0], skipping escapes, or -1.
func closingQuote(s string, q byte) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case q:
			return i
		}
	}
	return -1
}

// valueState follows a value that may span lines: open brackets and braces,
// and an unclosed multi-line string.
type valueState struct {
	depth int    // open [ and {
	ml    string // `"""` or `'''` while inside a multi-line string
}

func (st *valueState) open() bool { return st.depth > 0 || st.ml != "" }

// scan advances the state over one line (or the rest of one).
func (st *valueState) scan(s string) {
	for i := 0; i < len(s); i++ {
		if st.ml != "" {
			if st.ml == `"""` && s[i] == '\\' {
				i++
				continue
			}
			if strings.HasPrefix(s[i:], st.ml) {
				i += len(st.ml) - 1
				st.ml = ""
			}
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '[', '{':
			st.depth++
		case ']', '}':
			if st.depth > 0 {
				st.depth--
			}
		case '"', '\'':
			if strings.HasPrefix(s[i:], strings.Repeat(string(c), 3)) {
				st.ml = strings.Repeat(string(c), 3)
				i += 2
				continue
			}
			if c == '"' {
				end := closingQuote(s[i:], '"')
				if end < 0 {
					return
				}
				i += end
				continue
			}
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return
			}
			i += end + 1
		}
	}
}
