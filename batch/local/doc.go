// Package local is the batch provider without a scheduler: a block's
// "nodes" are child processes of the daemon on its own machine, each
// running the block's command (the node agent) with its own node name.
// It serves single machines, and tests that need several nodes without a
// cluster. Walltime is enforced, and cancel ends the processes' whole
// groups.
//
// The processes die with the daemon, even one killed with SIGKILL: each
// node is a shell that stays the parent of the block's command and gets
// SIGHUP when the daemon dies (Pdeathsig, armed on a thread of the
// provider's own that lives as long as it does), and then ends its whole
// process group, SIGTERM and SIGKILL after a grace, as cancel does. A
// restarted daemon could neither see nor stop them: its provider reports
// the earlier daemon's jobs gone, so the pool records them ended and
// submits new blocks for the demand.
//
// It imports only batch, api and conf.
package local
