// Package cgroup makes the cgroup of one process tree, on the legacy or
// hybrid v1 hierarchies or on the unified v2 one, through
// containerd/cgroups/v3: it applies memory, CPU and pids limits, starts a
// process born inside the group (so nothing forks before it is placed),
// counts out-of-memory kills, kills the whole tree and removes the group.
//
// On v2 the child is cloned straight into the group (CLONE_INTO_CGROUP).
// v1 has no such call: the starting OS thread joins the group, forks, and
// goes back to its own cgroups (the Go runtime never clones new threads
// from a locked thread, so no daemon thread is left in a tenant's group).
//
// It imports no fxd package but api.
package cgroup
