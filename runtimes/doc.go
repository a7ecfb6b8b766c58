// Package runtimes runs tasks on warm workers. A worker is a process tree
// started through an isolation.Executor as the task's account, in its own
// cgroup with the task's limits, and kept for later tasks of the same key:
// (account, runtime, kind, limits, data set) and, for servables, the
// function's reference and version. A worker whose tasks read data
// (Job.Data) shows the cache files as hard links in a directory of its
// own, the account's and read-only, at $FXD_DATA: the directory itself on
// the host, a read-only bind at <work dir>/data in a container.
//
// A command worker runs fxd-shim (runtimes/shim), which fork/execs one task
// at a time and speaks the shim protocol of runtimes/wire on its stdin and
// stdout. A servable worker runs the function's own command, which answers
// framed requests (docs/servable.md). Pools bounds the workers of each
// account, reuses idle ones, stops those idle too long, and kills a
// worker's whole tree when a task times out, is cancelled, runs out of
// memory or leaves processes behind.
//
// Later it also owns the runtime repository (SIF images). It imports api,
// conf and isolation, never daemon.
package runtimes
