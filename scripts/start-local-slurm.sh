#!/usr/bin/env bash
# start-local-slurm.sh: install (if needed) and start a single-node Slurm
# (Debian 12: Slurm 22.05) on this machine, for fxd's batch/slurm tests:
# munged, slurmctld and slurmd, one partition (default "debug") holding
# this node, the backfill scheduler. It needs no init system: the daemons
# are started directly, with pid files in /run. Idempotent; run as root.
# Stop it with scripts/stop-local-slurm.sh.
#
#   SLURM_PARTITION=debug   the partition's name
#   SLURM_WAIT=60           seconds to wait for the node to be idle
set -euo pipefail

partition=${SLURM_PARTITION:-debug}
wait_s=${SLURM_WAIT:-60}
conf=/etc/slurm/slurm.conf
logs=/var/log/slurm
node=$(hostname -s)
mark="# written by fxd scripts/start-local-slurm.sh"

say() { printf 'start-local-slurm: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

# alive PIDFILE COMM: the pid file names a live process called COMM.
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# 1. Packages. Their maintainer scripts would start the services through an
# init system that may not be there: policy-rc.d says no, we start them.
need=()
for p in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  apt-cache show slurmctld >/dev/null 2>&1 || apt-get update -qq
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy
    chmod 0755 $policy
    own_policy=1
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/fxd-slurm-apt.log 2>&1 || rc=$?
  [ $own_policy = 1 ] && rm -f $policy
  [ $rc = 0 ] || { tail -20 /tmp/fxd-slurm-apt.log >&2; die "apt-get install failed (log: /tmp/fxd-slurm-apt.log)"; }
fi

# 2. munge: a key, and the daemon.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  say "making the munge key"
  mungekey --create --keyfile=/etc/munge/munge.key --force 2>/dev/null ||
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! alive /run/munge/munged.pid munged; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n </dev/null | unmunge >/dev/null || die "munge does not work: see /var/log/munge/munged.log"

# 3. slurm.conf, for this node's hardware as slurmd sees it.
install -d -m 0755 /etc/slurm /var/spool/slurmd
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld $logs /run/slurm
if ! grep -qF "$mark" $conf 2>/dev/null || ! grep -q "^NodeName=$node " $conf || ! grep -q "^PartitionName=$partition " $conf; then
  hw=$(slurmd -C | head -1)
  field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs) sockets=$(field SocketsPerBoard) cores=$(field CoresPerSocket) threads=$(field ThreadsPerCore)
  mem=$(($(field RealMemory) * 95 / 100)) # headroom: a node short of its RealMemory is drained
  [ -f $conf ] && ! grep -qF "$mark" $conf && cp -a $conf "$conf.bak.$(date +%s)"
  say "writing $conf (node $node: $cpus CPUs, $mem MB)"
  cat >$conf <<EOF
$mark
ClusterName=fxdtest
SlurmctldHost=$node(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
# No cgroup delegation from an init system is needed with these two.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=2
Waittime=0
MessageTimeout=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  rm -f /etc/slurm/cgroup.conf
  for d in slurmd slurmctld; do # running with the old config: restart
    if alive /run/slurm/$d.pid $d; then
      kill "$(cat /run/slurm/$d.pid)"
      for _ in $(seq 50); do alive /run/slurm/$d.pid $d || break; sleep 0.1; done
    fi
  done
fi

# 4. The daemons.
if ! alive /run/slurm/slurmctld.pid slurmctld; then
  say "starting slurmctld"
  /usr/sbin/slurmctld
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
scontrol ping | grep -q 'is UP' || { tail -20 $logs/slurmctld.log >&2; die "slurmctld does not answer (log: $logs/slurmctld.log)"; }
if ! alive /run/slurm/slurmd.pid slurmd; then
  say "starting slurmd"
  /usr/sbin/slurmd
fi

# 5. Wait for the node to take jobs.
deadline=$(($(date +%s) + wait_s))
while :; do
  state=$(sinfo -h -n "$node" -o '%T' 2>/dev/null | head -1 || true)
  case $state in
  idle | mixed | allocated) break ;;
  down* | drain* | fail*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge $deadline ]; then
    tail -20 $logs/slurmd.log >&2 || true
    die "node $node is not idle after ${wait_s}s (state: ${state:-none}; log: $logs/slurmd.log)"
  fi
  sleep 0.5
done
say "up: $(sinfo -V), partition $partition, node $node $state"
