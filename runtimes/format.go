package runtimes

import "strings"

// lastLines trims a stderr tail for an error message: at most max bytes,
// starting at a line if it can, without trailing blank space.
func lastLines(s string, max int) string {
	s = strings.TrimSpace(s)
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return "…" + strings.ToValidUTF8(s, "")
}
