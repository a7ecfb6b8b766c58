// Package daemon is the facility endpoint of one node: the versioned HTTP
// API over HTTPS and a unix socket (docs/api.md), authentication (bearer
// tokens, TLS client certificates, SO_PEERCRED) and the [[auth.map]] rules
// that turn identities into local accounts, the per-tenant queues and
// quotas that dispatch tasks to the warm pools of package runtimes, the
// Prometheus metrics, and the systemd integration (notify, watchdog,
// socket activation, drain on SIGTERM, reload on SIGHUP).
//
// It owns the lifecycle of every task from acceptance to its final,
// durable state in daemon/store, including recovery after a crash:
// execution is at least once.
//
// It may import every fxd package except those under cmd.
package daemon
