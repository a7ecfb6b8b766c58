// Package shim is the logic of fxd-shim, the small static process that a
// command worker runs as the account inside its cgroup (and, later, inside
// its container). Serve reads Run frames (runtimes/wire) from the daemon,
// fork/execs each task with its input on stdin, keeps its stdout up to the
// asked limit and the tail of its stderr, and answers a Result frame. It
// runs one task at a time; timeouts and cleanup of what a task leaves
// behind are the daemon's job (it kills the worker's whole cgroup).
//
// Serve is the only way in: it makes its process a child subreaper, so
// that every process a task starts stays the shim's descendant. The shim
// can then tell that a task left processes behind (Result.LeftBehind, on
// which the daemon discards the worker), and when it left none, that none
// holds the task's pipes. The tests run Serve too, in the test binary, so
// they take the path a worker takes.
//
// A task costs the shim little more than the fork/exec itself: no
// os/exec and no goroutine per pipe, but one goroutine polling the task's
// pipes and its pidfd (task_linux.go); the pipes of a task that left
// nothing behind serve the next one; and the shim waits so as to keep the
// Go runtime's sysmon quiet (wait_linux.go).
//
// Init is fxd-shim's other mode: PID 1 of a servable's container, which
// runs the servable as its child, reaps orphans and passes signals on.
//
// It must stay small and free of cgo; it imports only runtimes/wire and
// golang.org/x/sys/unix.
package shim
