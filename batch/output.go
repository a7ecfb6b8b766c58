package batch

import "strings"

// Clip is s for a message: at most n bytes and "…", as valid UTF-8.
// Scheduler output quoted in errors goes through it, so that a wrapper
// printing a megabyte of noise does not flood the log.
func Clip(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// FirstLine is the first line of out, clipped to 200 bytes, for messages.
func FirstLine(out []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return Clip(s, 200)
}

// LastLine is the last line of out without surrounding space: what a
// submit command prints its job id on, after any notices a site's
// wrapper prints first.
func LastLine(out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	return s
}
