#!/usr/bin/env bash
# stop-local-slurm.sh: stop the daemons scripts/start-local-slurm.sh
# started (slurmd, slurmctld, munged), by the PIDs in their pid files.
# Packages, config and state stay, so the next start is quick. Run as root.
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "stop-local-slurm: run as root" >&2; exit 1; }

# stop PIDFILE COMM: end the process the pid file names, if it is COMM.
stop() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stop-local-slurm: $2 (pid $pid) stopped" >&2
  fi
  rm -f "$1"
}
stop /run/slurm/slurmd.pid slurmd
stop /run/slurm/slurmctld.pid slurmctld
stop /run/munge/munged.pid munged
