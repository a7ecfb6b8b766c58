// Package plain is the isolation.Executor that starts process trees on the
// host file system: as the account's UID, GID and groups, in a new session,
// with a clean environment, inside a cgroup (isolation/cgroup) with the
// spec's limits. Containers are isolation/oci's job.
//
// It imports api, conf and isolation.
package plain
