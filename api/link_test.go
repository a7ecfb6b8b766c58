package api

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []*LinkFrame{
		{Hello: &NodeHello{Node: "nid001", Block: "cpu-1", CPUs: 128, Memory: 512 << 30, Slots: 128, Runtimes: []string{"host"}}},
		{Run: []NodeTask{{ID: "t1", Attempt: 1, Function: Function{FunctionSpec: FunctionSpec{Name: "f", Kind: KindCommand, Runtime: RuntimeHost, Command: []string{"cat"}}, Owner: "alice", CreatedAt: time.Unix(1, 0).UTC()},
			Account: "alice", UID: 1001, Input: []byte{0, 1, 2, 255}, Timeout: time.Minute, MaxOutput: 1 << 20}}, Cancel: []string{"t0"}},
		{Results: []NodeResult{{ID: "t1", Attempt: 1, State: StateSucceeded, Output: []byte("out"), StartedAt: time.Unix(1700000000, 0).UTC()}}, Running: []string{"t2"}},
		{Heartbeat: true},
		{Drain: true},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for i, want := range frames {
		got, err := ReadFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d = %+v, want %+v", i, got, want)
		}
	}
	if _, err := ReadFrame(r); !errors.Is(err, io.EOF) {
		t.Errorf("ReadFrame at the end = %v, want io.EOF", err)
	}
}

func TestReadFrameRefuses(t *testing.T) {
	var huge [4]byte
	binary.BigEndian.PutUint32(huge[:], MaxLinkFrame+1)
	for name, b := range map[string][]byte{
		"cut in the length": {0, 0},
		"cut in the body":   append([]byte{0, 0, 0, 10}, "{}"...),
		"too large":         huge[:],
		"not JSON":          append([]byte{0, 0, 0, 3}, "abc"...),
		"wrong types":       append([]byte{0, 0, 0, 13}, `{"run":"no"}`+" "...),
	} {
		if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(b))); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReadFrame(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzLinkFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteFrame(&buf, &LinkFrame{Run: []NodeTask{{ID: "t1", Input: []byte("x")}}, Heartbeat: true})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			var out bytes.Buffer
			if err := WriteFrame(&out, fr); err != nil {
				t.Fatalf("WriteFrame(a frame ReadFrame accepted) = %v", err)
			}
		}
	})
}
