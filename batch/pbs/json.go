package pbs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"fxd.dev/fxd/batch"
)

// decode reads the JSON that qstat or pbsnodes printed into v. PBS's
// JSON writer has been sloppy, so output that is not JSON is repaired
// once, for the faults PBS is known to make, and read again:
//
//   - backslashes before characters JSON does not escape: "\'" and "\,"
//     from environment values (openpbs#2049, fixed in 2020), and the
//     backslashes qstat still copies as they are ("Invalid \escape",
//     argonne-lcf/balsam#324, 2023);
//   - double quotes left unescaped inside strings, as in node comments
//     (openpbs#830);
//   - control characters left raw inside strings;
//   - bare values that are not JSON numbers: the writer prints bare what
//     strtod(3) reads whole, as "foo":005 (openpbs#1255, since mended),
//     and still "+1", ".5", "-0x1A" or "nan" from environment values and
//     resources.
//
// Anything else (not JSON, cut short, values of the wrong type) is an
// error that wraps batch.ErrBadOutput.
func decode(cmd string, out []byte, v any) error {
	err := json.Unmarshal(out, v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if err2 := json.Unmarshal(repair(out), v); err2 == nil {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("%s printed %q, not the JSON expected: %v: %w", cmd, batch.FirstLine(out), err, batch.ErrBadOutput)
	}
	return nil
}

// repair returns b with the faults decode lists mended. It only looks at
// characters, never at meaning, and leaves valid JSON as it is.
func repair(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/16)
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			i = repairString(&out, b, i+1)
		case isBareStart(c):
			i = repairBare(&out, b, i)
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.Bytes()
}

// repairString copies the string whose body starts at b[i], quotes
// included and mended, and returns the index after it.
func repairString(out *bytes.Buffer, b []byte, i int) int {
	out.WriteByte('"')
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b):
			if n := b[i+1]; bytes.IndexByte([]byte(`"\/bfnrt`), n) >= 0 || n == 'u' && isHex4(b[i+2:]) {
				out.Write(b[i : i+2])
			} else if n == '\'' || n == ',' {
				out.WriteByte(n) // PBS's own escapes: "\'" is "'"
			} else {
				out.WriteString(`\\`) // a backslash copied as it was
				i--
			}
			i++
		case c == '\\':
			out.WriteString(`\\`)
		case c == '"' && endsString(b[i+1:]):
			out.WriteByte('"')
			return i + 1
		case c == '"':
			out.WriteString(`\"`)
		case c < 0x20:
			writeControl(out, c)
		default:
			out.WriteByte(c)
		}
	}
	out.WriteByte('"') // cut short: close it, and let the reader complain
	return i
}

// endsString says whether a quote followed by rest ends a string: what
// follows it, after spaces, is what may follow a JSON value or key.
func endsString(rest []byte) bool {
	rest = bytes.TrimLeft(rest, " \t\r")
	return len(rest) == 0 || bytes.IndexByte([]byte(",:}]\n"), rest[0]) >= 0
}

// writeControl writes control character c escaped.
func writeControl(out *bytes.Buffer, c byte) {
	fmt.Fprintf(out, `\u%04x`, c)
}

// isHex4 says whether b starts with four hexadecimal digits.
func isHex4(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isBareStart says whether c starts a value outside quotes: a number or
// a literal, or a word PBS wrote bare.
func isBareStart(c byte) bool {
	return c == '-' || c == '+' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// repairBare copies the bare value at b[i], quoted unless it is a JSON
// number or literal, and returns the index after it.
func repairBare(out *bytes.Buffer, b []byte, i int) int {
	j := i
	for j < len(b) && bytes.IndexByte([]byte(",:}] \t\r\n\"{["), b[j]) < 0 {
		j++
	}
	tok := b[i:j]
	if isJSONScalar(tok) {
		out.Write(tok)
	} else {
		out.WriteString(strconv.Quote(string(tok)))
	}
	return j
}

// isJSONScalar says whether tok is a JSON number, true, false or null.
func isJSONScalar(tok []byte) bool {
	switch string(tok) {
	case "true", "false", "null":
		return true
	}
	var n json.Number
	return json.Unmarshal(tok, &n) == nil && len(tok) > 0 && tok[0] != '"'
}

// number is a JSON number or a string that holds one: PBS writes
// numeric attribute values bare, and repair may have quoted one.
type number struct {
	set bool
	n   int64
}

func (x *number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(bytes.Trim(b, `"`))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f == float64(int64(f)) {
			n, err = int64(f), nil
		}
	}
	if err != nil {
		return fmt.Errorf("%s is not a whole number", batch.Clip(string(b), 80))
	}
	x.set, x.n = true, n
	return nil
}

// list is an attribute PBS prints as a list of strings or as one string
// of comma-separated items (a vnode's jobs, resv): its items.
type list []string

func (l *list) UnmarshalJSON(b []byte) error {
	var items []string
	if err := json.Unmarshal(b, &items); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s is not a list of names", batch.Clip(string(b), 80))
		}
		items = strings.Split(s, ",")
	}
	*l = (*l)[:0]
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			*l = append(*l, it)
		}
	}
	return nil
}
