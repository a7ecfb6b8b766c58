// Package shim is the logic of fxd-shim, the small static process that a
// command worker runs as the account inside its cgroup (and, later, inside
// its container). Serve reads Run frames (runtimes/wire) from the daemon,
// fork/execs each task with its input on stdin, keeps its stdout up to the
// asked limit and the tail of its stderr, and answers a Result frame. It
// runs one task at a time; timeouts and cleanup of what a task leaves
// behind are the daemon's job (it kills the worker's whole cgroup).
//
// It must stay small and free of cgo; it imports only runtimes/wire and
// golang.org/x/sys/unix.
package shim
