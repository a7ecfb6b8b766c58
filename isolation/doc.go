// Package isolation starts process trees as unprivileged accounts inside
// resource limits: UID, GIDs and supplementary groups, a clean environment,
// and a cgroup (v1 or v2, through containerd/cgroups/v3) that bounds memory,
// CPU and pids and lets the whole tree be killed at once.
//
// The Executor interface is implemented by isolation/plain (a process on the
// host) and, later, isolation/oci (a container run by crun or runc).
// Implementations run as root and never start anything as root.
//
// It imports only api and conf.
package isolation
