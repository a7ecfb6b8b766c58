package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"fxd.dev/fxd/api"
)

func TestShimRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		run   Run
		input []byte
		res   Result
		out   []byte
	}{
		{"empty", Run{Argv: []string{"/bin/true"}}, nil, Result{}, nil},
		{"data", Run{Argv: []string{"cat"}, Env: []string{"A=b"}, Dir: "/tmp", MaxOutput: 10}, []byte("hello"),
			Result{ExitCode: 3, Stderr: "oops", OutputBytes: 12, OutputTruncated: true}, []byte("0123456789")},
		{"signal", Run{Argv: []string{"x"}}, []byte{0, 1, 2}, Result{ExitCode: -1, Signal: "killed", Error: "e"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteRun(&buf, tt.run, tt.input); err != nil {
				t.Fatal(err)
			}
			if err := WriteResult(&buf, tt.res, tt.out); err != nil {
				t.Fatal(err)
			}
			run, in, err := ReadRun(&buf, 100)
			if err != nil || !reflect.DeepEqual(run, tt.run) || !bytes.Equal(in, tt.input) {
				t.Fatalf("ReadRun = %+v, %q, %v; want %+v, %q", run, in, err, tt.run, tt.input)
			}
			res, out, err := ReadResult(&buf, 100)
			if err != nil || !reflect.DeepEqual(res, tt.res) || !bytes.Equal(out, tt.out) {
				t.Fatalf("ReadResult = %+v, %q, %v; want %+v, %q", res, out, err, tt.res, tt.out)
			}
			if _, _, err := ReadRun(&buf, 100); err != io.EOF {
				t.Fatalf("ReadRun at end = %v, want io.EOF", err)
			}
		})
	}
}

func shimFrame(typ byte, hlen, plen uint32, rest string) []byte {
	b := []byte{typ, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], hlen)
	binary.BigEndian.PutUint32(b[5:], plen)
	return append(b, rest...)
}

func TestShimBadFrames(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		kind error
	}{
		{"wrong type", shimFrame(TypeResult, 2, 0, "{}"), api.ErrInvalid},
		{"huge header", shimFrame(TypeRun, MaxHeader+1, 0, ""), api.ErrTooLarge},
		{"huge payload", shimFrame(TypeRun, 2, 101, "{}"), api.ErrTooLarge},
		{"max payload claimed", shimFrame(TypeRun, 2, 1<<32-1, "{}"), api.ErrTooLarge},
		{"bad json", shimFrame(TypeRun, 2, 0, "[}"), api.ErrInvalid},
		{"short prefix", []byte{TypeRun, 0, 0}, io.ErrUnexpectedEOF},
		{"short header", shimFrame(TypeRun, 10, 0, "{}"), io.ErrUnexpectedEOF},
		{"short payload", shimFrame(TypeRun, 2, 10, "{}abc"), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadRun(bytes.NewReader(tt.in), 100)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("ReadRun(%q) = %v, want %v", tt.in, err, tt.kind)
			}
		})
	}
}

func TestServableRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, in := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), 1000)} {
		buf.Reset()
		if err := WriteRequest(&buf, in); err != nil {
			t.Fatal(err)
		}
		typ, got, err := ReadRequest(&buf, 2000)
		if err != nil || typ != RequestTask || !bytes.Equal(got, in) {
			t.Fatalf("ReadRequest = %d, %d bytes, %v; want 1, %d bytes", typ, len(got), err, len(in))
		}
		for _, st := range []byte{StatusOK, StatusError} {
			if err := WriteResponse(&buf, st, in); err != nil {
				t.Fatal(err)
			}
			s, got, err := ReadResponse(&buf, 2000)
			if err != nil || s != st || !bytes.Equal(got, in) {
				t.Fatalf("ReadResponse = %d, %d bytes, %v; want %d, %d bytes", s, len(got), err, st, len(in))
			}
		}
	}
}

func TestServableBad(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		kind error
	}{
		{"bad status", []byte{7, 0, 0, 0, 0}, api.ErrInvalid},
		{"too large", []byte{0, 0, 0, 1, 0}, api.ErrTooLarge},
		{"short head", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"short body", []byte{0, 0, 0, 0, 5, 'a'}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadResponse(bytes.NewReader(tt.in), 100)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("ReadResponse(%v) = %v, want %v", tt.in, err, tt.kind)
			}
		})
	}
	// A too-large response leaves the stream at its payload, so it can be skipped.
	var buf bytes.Buffer
	WriteResponse(&buf, StatusOK, make([]byte, 300))
	WriteResponse(&buf, StatusOK, []byte("next"))
	_, _, err := ReadResponse(&buf, 100)
	var se *SizeError
	if !errors.As(err, &se) || se.Size != 300 {
		t.Fatalf("ReadResponse = %v, want a SizeError of 300", err)
	}
	io.CopyN(io.Discard, &buf, se.Size)
	if _, p, err := ReadResponse(&buf, 100); err != nil || string(p) != "next" {
		t.Fatalf("ReadResponse after skip = %q, %v", p, err)
	}
	if _, _, err := ReadRequest(bytes.NewReader([]byte{2, 0, 0, 0, 0}), 10); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("ReadRequest(type 2) = %v, want invalid", err)
	}
}
