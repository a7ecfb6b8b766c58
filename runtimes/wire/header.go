package wire

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The headers of shim frames are JSON, written and read on every task by
// both ends. encoding/json's reflection costs several microseconds a frame
// there, so Run and Result have their own encoders, whose output is
// byte for byte what json.Marshal writes, and their own decoders for that
// output, which hand anything else (spaces, escapes, unknown or
// differently cased keys, …) to json.Unmarshal: a header means the same
// as it would to encoding/json either way (the tests compare them).

func appendRun(b []byte, r *Run) []byte {
	b = append(b, `{"argv":`...)
	b = appendStrings(b, r.Argv)
	b = append(b, `,"env":`...)
	b = appendStrings(b, r.Env)
	if r.Dir != "" {
		b = append(b, `,"dir":`...)
		b = appendString(b, r.Dir)
	}
	b = append(b, `,"max_output":`...)
	b = strconv.AppendInt(b, r.MaxOutput, 10)
	return append(b, '}')
}

func appendResult(b []byte, r *Result) []byte {
	b = append(b, `{"exit_code":`...)
	b = strconv.AppendInt(b, int64(r.ExitCode), 10)
	if r.Signal != "" {
		b = append(b, `,"signal":`...)
		b = appendString(b, r.Signal)
	}
	if r.Stderr != "" {
		b = append(b, `,"stderr":`...)
		b = appendString(b, r.Stderr)
	}
	b = append(b, `,"output_bytes":`...)
	b = strconv.AppendInt(b, r.OutputBytes, 10)
	if r.OutputTruncated {
		b = append(b, `,"output_truncated":true`...)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if r.LeftBehind {
		b = append(b, `,"left_behind":true`...)
	}
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString quotes s as json.Marshal does: plain when it is printable
// ASCII that needs no escape, through json.Marshal otherwise.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plain reports whether json.Marshal writes c, in a string, as it is.
func plain(c byte) bool {
	return c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// decodeRun decodes a Run header.
func decodeRun(h []byte, r *Run) error {
	var fast Run
	if (&scanner{s: string(h)}).object(func(d *scanner, key string) bool {
		switch key {
		case "argv":
			fast.Argv, d.ok = d.strings()
		case "env":
			fast.Env, d.ok = d.strings()
		case "dir":
			fast.Dir, d.ok = d.str()
		case "max_output":
			fast.MaxOutput, d.ok = d.int()
		default:
			return false
		}
		return d.ok
	}) {
		*r = fast
		return nil
	}
	return json.Unmarshal(h, r)
}

// decodeResult decodes a Result header.
func decodeResult(h []byte, r *Result) error {
	var fast Result
	if (&scanner{s: string(h)}).object(func(d *scanner, key string) bool {
		switch key {
		case "exit_code":
			var n int64
			n, d.ok = d.int()
			fast.ExitCode = int(n)
			d.ok = d.ok && int64(fast.ExitCode) == n
		case "signal":
			fast.Signal, d.ok = d.str()
		case "stderr":
			fast.Stderr, d.ok = d.str()
		case "output_bytes":
			fast.OutputBytes, d.ok = d.int()
		case "output_truncated":
			fast.OutputTruncated, d.ok = d.bool()
		case "error":
			fast.Error, d.ok = d.str()
		case "left_behind":
			fast.LeftBehind, d.ok = d.bool()
		default:
			return false
		}
		return d.ok
	}) {
		*r = fast
		return nil
	}
	return json.Unmarshal(h, r)
}

// scanner reads the JSON that appendRun and appendResult write: an object
// without spaces whose values are strings without escapes, integers,
// booleans, null or arrays of strings. Its methods report false on
// anything else. Strings it returns share the memory of s.
type scanner struct {
	s  string
	i  int
	ok bool // for the callers of object
}

// object reads the whole of s as an object, calling value for each key;
// value reads the key's value and reports whether it could.
func (d *scanner) object(value func(d *scanner, key string) bool) bool {
	if !d.byte('{') {
		return false
	}
	if d.byte('}') {
		return d.i == len(d.s)
	}
	for {
		key, ok := d.str()
		if !ok || !d.byte(':') || !value(d, key) {
			return false
		}
		if d.byte('}') {
			return d.i == len(d.s)
		}
		if !d.byte(',') {
			return false
		}
	}
}

func (d *scanner) byte(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *scanner) word(w string) bool {
	if len(d.s)-d.i >= len(w) && d.s[d.i:d.i+len(w)] == w {
		d.i += len(w)
		return true
	}
	return false
}

// str reads a string that has no escapes and is valid UTF-8 (else
// encoding/json would change it).
func (d *scanner) str() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start := d.i
	for ; d.i < len(d.s); d.i++ {
		switch c := d.s[d.i]; {
		case c == '"':
			s := d.s[start:d.i]
			d.i++
			return s, utf8.ValidString(s)
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// strings reads null (a nil slice) or an array of strings.
func (d *scanner) strings() ([]string, bool) {
	if d.word("null") {
		return nil, true
	}
	if !d.byte('[') {
		return nil, false
	}
	ss := make([]string, 0, 8)
	if d.byte(']') {
		return ss, true
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		ss = append(ss, s)
		if d.byte(']') {
			return ss, true
		}
		if !d.byte(',') {
			return nil, false
		}
	}
}

// int reads an integer as JSON writes it: -?(0|[1-9][0-9]*), in range.
func (d *scanner) int() (int64, bool) {
	start := d.i
	d.byte('-')
	digits := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || (d.s[digits] == '0' && d.i > digits+1) {
		return 0, false
	}
	if d.i < len(d.s) && (d.s[d.i] == '.' || d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(d.s[start:d.i], 10, 64)
	return n, err == nil
}

func (d *scanner) bool() (bool, bool) {
	switch {
	case d.word("true"):
		return true, true
	case d.word("false"):
		return false, true
	}
	return false, false
}
