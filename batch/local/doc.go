// Package local is the batch provider without a scheduler: a block's
// "nodes" are child processes of the daemon on its own machine, each
// running the block's command (the node agent) with its own node name.
// It serves single machines, and tests that need several nodes without a
// cluster. Walltime is enforced, cancel ends the processes' whole groups,
// and the processes die with the daemon.
//
// It imports only batch, api and conf.
package local
