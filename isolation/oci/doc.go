// Package oci describes tenant containers in OCI runtime-spec terms and finds
// the OCI runtime (crun or runc) that runs them.
//
// It owns the config.json of a container (newSpec: read-only image root,
// tenant UID/GIDs, no capabilities, no_new_privileges, private namespaces,
// private /tmp and work dir, site bind mounts, the shim, cgroup limits) and
// runtime discovery (FindRuntime), and the Executor, which starts, waits for
// and kills containers through the runtime, each under a monitor process
// (fxd-shim monitor, see isolation/oci/monitor) that is its first process's parent.
//
// Privilege: the runtime runs as root (as fxd does); the container process
// never does: the Executor refuses UID 0, drops every capability, and
// opens bind sources with the account's own credentials.
//
// It imports api, isolation (its parent), isolation/cgroup and
// isolation/oci/monitor.
package oci
