// Package agent is the node agent (`fxd node`): it runs on a compute node
// of a block, or on any host a site adds by hand, links to the daemon over
// TLS with the credential the daemon minted for its block, and runs the
// tasks the daemon sends on warm workers of its own, with the same
// isolation as on the daemon's node (the task's account, cgroups,
// containers).
//
// The link is one long HTTP request (api.LinkPath): frames both ways,
// batched, heartbeated. A lost link is dialled again with backoff; tasks
// keep running meanwhile and their results are sent when it is back. An
// agent whose credential the daemon no longer takes (its block is over)
// stops.
package agent
