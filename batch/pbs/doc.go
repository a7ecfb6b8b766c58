// Package pbs is the batch provider for PBS Professional and OpenPBS:
// blocks are batch jobs submitted with qsub, their script on stdin;
// qstat -f -F json -x reports their states, qdel ends them, qstat -f -F
// json without ids finds them by name (batch.Finder), and
// pbsnodes -a -F json shows the free hosts a block could start on now,
// with pbs_rstat -f saying how long reservations leave them free.
//
// # One process per node
//
// A job script runs on the job's first host only. The script starts the
// block's command once on every host of the job with pbs_tmrsh, PBS's
// rsh work-alike, which spawns through the MoMs' task manager (TM): the
// processes are the job's, counted, signalled and killed with it, and
// pbs_tmrsh waits for its process and exits with its status, so the job
// ends when the command has ended on every host. The hosts are the
// distinct lines of $PBS_NODEFILE, which has one line per MPI rank, not
// per host. pbsdsh was the other candidate, but it spawns one task per
// line of $PBS_NODEFILE (several per host when a chunk asks for
// mpiprocs > 1) and exits 0 whatever its tasks do.
//
// # The environment
//
// TM starts tasks in the job's environment (its Variable_List), not the
// job script's: what the script exports never reaches the other hosts.
// The block's environment carries its credential, so it goes neither on
// a command line (any user of a node can read those) nor in qsub -v,
// which stores it in the job's Variable_List, which qstat -f shows every
// user when the server sets query_other_jobs (the default). It travels
// in the job script, which only the submitter and the PBS admins can
// read, and the script writes it, with the init lines and the command,
// into $HOME/.fxd/pbs/$PBS_JOBID/node.sh (mode 0600, directory 0700)
// for the hosts to source: so blocks of more than one host need a home
// directory shared by the job's hosts, as PBS sites have. Each host
// reads the whole file before it runs any of it and marks that it has;
// when all have, the file is removed, and the directory goes when the
// job ends.
//
// # Output
//
// The job's output is joined and sent to the pool's log_dir on the
// submitting host, where the server names it NAME.oNNN, or to /dev/null
// without one: PBS would otherwise copy such a file into the daemon's
// working directory for every block.
//
// # Tests
//
// PBS is tested only against recorded output of OpenPBS, not a live server:
// PBS cannot be installed where the tests run. testdata/bin holds fake
// qsub, qstat, qdel, pbsnodes, pbs_rstat and pbs_tmrsh scripts that replay
// the samples in testdata/qstat, testdata/pbsnodes and testdata/pbs_rstat,
// in the shape OpenPBS 2022 and 2023 print them (testdata/README.md says
// where each comes from). The provider's own code runs, commands and
// parsers both; only the scheduler is pretend, so what PBS does with a
// job (scheduling, pbs_tmrsh's task manager) is not tested.
//
// It imports only batch, api and conf.
package pbs
