package shim

import (
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/runtimes/wire"
)

func TestPoll(t *testing.T) {
	for _, tt := range []struct {
		name  string
		since time.Time
	}{
		{"raw", time.Now().Add(time.Hour)},
		{"ordinary syscall", time.Now().Add(-rawWait)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			fds := []unix.PollFd{{Fd: int32(r.Fd()), Events: unix.POLLIN}}
			if n, err := poll(fds, time.Millisecond, tt.since); n != 0 || err != nil {
				t.Fatalf("poll(empty pipe) = %d, %v; want 0, nil", n, err)
			}
			w.Write([]byte("x"))
			if n, err := poll(fds, -1, tt.since); n != 1 || err != nil || fds[0].Revents&unix.POLLIN == 0 {
				t.Fatalf("poll(pipe with data) = %d, %v, revents %#x; want 1, nil, POLLIN", n, err, fds[0].Revents)
			}
		})
	}
}

func TestServeInput(t *testing.T) {
	// Serve as fxd-shim runs it: frames on a pipe, read through Input.
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	in, err := Input(int(inR.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	served := make(chan error, 1)
	go func() {
		served <- Serve(in, outW)
		outW.Close()
	}()
	for _, s := range []string{"one", "two", ""} {
		if err := wire.WriteRun(inW, wire.Run{Argv: []string{"cat"}, Env: env, MaxOutput: 10}, []byte(s)); err != nil {
			t.Fatal(err)
		}
		res, got, err := wire.ReadResult(outR, 10)
		if err != nil || string(got) != s || res.ExitCode != 0 {
			t.Fatalf("ReadResult = %+v, %q, %v; want %q", res, got, err, s)
		}
	}
	inW.Close()
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil at the end of its input", err)
	}
	if _, _, err := wire.ReadResult(outR, 10); err != io.EOF {
		t.Fatalf("extra result: %v", err)
	}
}
