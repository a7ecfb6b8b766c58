// Package batch acquires compute nodes from a site's batch scheduler as
// pilot jobs ("blocks"): N nodes for a walltime W, each node running
// `fxd node`, which dials back to the daemon and serves tasks there.
//
// It owns the Provider interface that every scheduler plugin implements
// (batch/local, batch/slurm, batch/pbs), the optional WindowFinder
// capability of schedulers that can show their backfill holes and Finder
// of those that find jobs by name, the Scaler that keeps a pool's blocks
// (recording each before it is submitted, so that a daemon that dies
// mid-submit finds its job again by name), and the
// sizing that shapes a block to fit the largest useful hole (Shape). Each
// provider's tests run the conformance suite in batch/batchtest.
//
// It imports only api and conf (DESIGN.md); no provider imports another.
package batch
