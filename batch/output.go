package batch

import (
	"cmp"
	"strings"
)

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

// CompareJobIDs orders job ids by the number they start with, oldest
// first, then as strings: "999.pbs01" before "1000.pbs01", which string
// order reverses. Schedulers number their jobs in the order they took
// them, so a Finder sorted so returns the first-submitted job first.
func CompareJobIDs(a, b JobID) int {
	x, y := leadingNumber(string(a)), leadingNumber(string(b))
	if c := cmp.Compare(len(x), len(y)); c != 0 {
		return c
	}
	if c := strings.Compare(x, y); c != 0 {
		return c
	}
	return strings.Compare(string(a), string(b))
}

// leadingNumber is the decimal number s starts with, without leading
// zeros: of any length, as ids come.
func leadingNumber(s string) string {
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(s)
	}
	return strings.TrimLeft(s[:end], "0")
}
