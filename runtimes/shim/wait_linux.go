package shim

import (
	"errors"
	"io"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shim spends its life waiting: for the next Run frame, for the task's
// process to start, write and exit. How it waits cost more CPU than the
// rest of its work, because of the Go runtime's sysmon thread, which
// polls every 20µs after it has had something to do and backs off to
// 10ms only after ~50 idle polls, each poll a timer wake-up (dear in a
// VM). It was kept at 20µs on every task: with one P, a goroutine in a
// blocking syscall for more than a poll loses its P, and sysmon wakes a
// spinning thread to look for other work; with two, a goroutine that
// never goes through the scheduler loses its P after 10ms all the same;
// and waiting in the netpoller idles the P, so sysmon parks, and the next
// syscall wakes it to poll at 20µs again. (Measured on the bench machine:
// ~280µs of shim CPU per /bin/true task before, sysmon's thread about 40%
// of it; ~100µs with what follows.)
//
// So fxd-shim runs on one P (GOMAXPROCS=1: no other thread to wake) and
// waits in ppoll(2) called as a raw syscall, which the runtime does not
// see: to it the goroutine is running, so sysmon finds nothing to do and
// backs off. Serve yields to the scheduler once per task, so that sysmon
// sees progress and does not preempt the goroutine with a signal. A raw
// wait lasts at most rawWait from its start; after that (an idle worker,
// a long task) the shim waits in ordinary syscalls, so that sysmon can
// park and an idle worker costs no wake-ups at all. A signal (the
// runtime's preemption, SIGCHLD) ends a raw ppoll with EINTR, so the
// runtime can still stop the world.
const rawWait = 100 * time.Millisecond

// poll waits like ppoll(2) until one of fds is ready or timeout passes
// (negative: no limit), for a wait that began at since. It returns 0
// when the time is up, and EINTR when a signal came first; callers loop.
func poll(fds []unix.PollFd, timeout time.Duration, since time.Time) (int, error) {
	raw := rawWait - time.Since(since)
	if raw > 0 && (timeout < 0 || timeout > raw) {
		timeout = raw
	}
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	if raw <= 0 {
		return unix.Ppoll(fds, ts, nil)
	}
	var p unsafe.Pointer
	if len(fds) > 0 {
		p = unsafe.Pointer(&fds[0])
	}
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(p), uintptr(len(fds)), uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Input returns a reader of the daemon's pipe at fd, for Serve, that
// waits for data as described above. It makes fd blocking.
func Input(fd int) (io.Reader, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, err
	}
	return input(fd), nil
}

type input int

func (fd input) Read(p []byte) (int, error) {
	since := time.Now()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := poll(fds, -1, since)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, err
		}
		if n > 0 {
			break
		}
	}
	for {
		n, err := unix.Read(int(fd), p)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}
