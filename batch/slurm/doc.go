// Package slurm is the batch provider for Slurm: blocks are batch jobs
// submitted with sbatch, whose script starts the node agent once on each
// node with srun; squeue reports their states and finds the daemon's
// user's jobs by name (batch.Finder), scancel ends them, and sbatch
// --test-only finds how long free nodes stay free (the backfill
// window a block can fill and so start at once).
//
// It reads only Slurm's stable, machine-readable outputs: sbatch
// --parsable, squeue and sinfo with explicit -o formats, and the start
// time sbatch --test-only reports. The tests run against a real
// single-node Slurm (scripts/start-local-slurm.sh).
//
// It imports only batch, api and conf.
package slurm
