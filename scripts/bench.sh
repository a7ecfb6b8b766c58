#!/usr/bin/env bash
# Measure a live fxd with `fx bench`: starts bin/fxd on a unix socket and on
# HTTPS on loopback, state in a temp dir; creates a throwaway local user, registers a
# Python echo servable and a /bin/true command as that user, runs the load
# shapes of the README's performance section, then stops fxd and removes the
# user. Run as root after `make build`; ROUNDS=N repeats each shape;
# SHAPES=echo,https,stream,true,sif,data,federation,node runs only the
# shapes named (default: all); data times staging a 1 GiB file from a site path against
# cp (+ fsync) of it, and compares warm servable tasks that read a cache
# entry with the same tasks reading none; federation compares the echo
# servable run directly with the same tasks through a second daemon on
# this host (site "front", its own state and socket) that forwards them
# over a mutual TLS peer link (it restarts fxd with a [federation]
# section); node compares no-op tasks on the daemon's own node with the same
# tasks through a node agent (fxd node on this host, linked over HTTPS,
# with daemon_node_tasks off), so it runs last and restarts fxd;
# sif compares a static servable and /bin/true on the host and in a busybox
# SIF image (crun or runc, whichever fxd finds), and measures cold starts;
# CPU=1 runs the true shape without the exec baseline but prints, per round,
# the CPU time per task of fxd, of the shims, of the tasks' processes (the
# shims' reaped children) and of the rest of the machine, and its idle time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SHAPES=${SHAPES:-echo,https,stream,true,sif,data,federation,node}
want() { [[ ",$SHAPES," == *",$1,"* ]]; }
bin=$PWD/bin
[ "$(id -u)" = 0 ] || { echo "bench: run as root (it starts fxd and creates a user)" >&2; exit 1; }
[ -x "$bin/fxd" ] && [ -x "$bin/fx" ] || { echo "bench: run make build first" >&2; exit 1; }

state=$(mktemp -d /tmp/fxd-bench.XXXXXX)
chmod 755 "$state"
user=fxb$$
cold=fxc$$ # a second user, for the cold starts: its own worker quota
fxd_pid= agent_pid= front_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$front_pid" ] && kill -TERM "$front_pid" 2>/dev/null && wait "$front_pid" 2>/dev/null || true
  [ -n "$fxd_pid" ] && kill -TERM "$fxd_pid" 2>/dev/null && wait "$fxd_pid" 2>/dev/null || true
  userdel -r "$user" 2>/dev/null || true
  userdel -r "$cold" 2>/dev/null || true
  rmdir /sys/fs/cgroup/*/"fxd-bench-$$"* /sys/fs/cgroup/"fxd-bench-$$"* 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT
useradd --create-home --home-dir "$state/home" --shell /bin/sh "$user"
useradd --create-home --home-dir "$state/cold" --shell /bin/sh "$cold"

# A site with the unix socket and HTTPS on loopback (a throwaway CA).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$state/ca.key" -out "$state/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$state/server.key" -out "$state/server.csr" 2>/dev/null
openssl x509 -req -in "$state/server.csr" -CA "$state/ca.pem" -CAkey "$state/ca.key" -days 1 \
  -extfile <(echo "subjectAltName=IP:127.0.0.1") -out "$state/server.pem" 2>/dev/null
chmod 644 "$state/ca.pem"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$state/fxd.toml" <<EOF
[site]
state_dir = "$state/fxd"
[endpoint]
socket = "$state/fxd/fxd.sock"
listen = "127.0.0.1:$port"
tls_cert = "$state/server.pem"
tls_key = "$state/server.key"
[workers]
cgroup_parent = "fxd-bench-$$"
# The cold-start user may keep 64 workers, so that none is stopped to make
# room during its 20 runs; every other shape runs with the default quota.
[tenants.account.$cold]
max_workers = 64
[cache]
paths = ["$state/datasets"]
[log]
level = "warn"
[[auth.map]]
regex = '^uid:([0-9]+)$'
account = "\$1"
[[auth.map]]
match = "bench@local"
account = "$user"
EOF
"$bin/fxd" config check "$state/fxd.toml" >/dev/null
token=$("$bin/fxd" token issue --config "$state/fxd.toml" --identity bench@local)
serve() {
  rm -f "$state/fxd/fxd.sock"
  "$bin/fxd" serve --config "$state/fxd.toml" 2>>"$state/fxd.log" &
  fxd_pid=$!
  for _ in $(seq 100); do [ -S "$state/fxd/fxd.sock" ] && break; sleep 0.1; done
  [ -S "$state/fxd/fxd.sock" ] || { cat "$state/fxd.log" >&2; exit 1; }
}
serve

as_user() { runuser -u "$user" -- env HOME="$state/home" FX_ENDPOINT="unix://$state/fxd/fxd.sock" "$@"; }
as_cold() { runuser -u "$cold" -- env HOME="$state/cold" FX_ENDPOINT="unix://$state/fxd/fxd.sock" "$@"; }
# The servable is the Python example of docs/servable.md, as users copy it.
sed -n '/^```python$/,/^```$/{/^```python$/d;/^```$/q;p}' docs/servable.md >"$state/home/echo.py"
as_user "$bin/fx" register echo --kind servable -- /usr/bin/python3 "$state/home/echo.py" >/dev/null
as_user "$bin/fx" register true -- /bin/true >/dev/null

shape() {
  echo "== fx bench $*"
  for _ in $(seq "$ROUNDS"); do as_user "$bin/fx" bench "$@" </dev/null | tail -n +2; done
}
if want echo; then shape echo --mode run -c 1 -n 5000 --input x; fi
if want https; then
  echo "== over HTTPS (token, keep-alive): fx bench echo --mode run -c 1 -n 5000 --input x"
  for _ in $(seq "$ROUNDS"); do as_user env FX_ENDPOINT="https://127.0.0.1:$port" FX_CA="$state/ca.pem" FX_TOKEN="$token" "$bin/fx" bench echo --mode run -c 1 -n 5000 --input x </dev/null | tail -n +2; done
fi
if want stream; then shape echo --mode submit -c 4 -b 1000 -n 200000; fi
# cpu prints CPU clock ticks: fxd's own, the shims' own, the shims' reaped
# children's (utime+stime, /proc/PID/stat), the machine's busy and idle.
cpu() {
  local f s=0 c=0 p
  f=$(awk '{print $14+$15}' /proc/"$fxd_pid"/stat)
  for p in $(pgrep -P "$fxd_pid" -x fxd-shim); do
    read -r a b <<<"$(awk '{print $14+$15, $16+$17}' /proc/"$p"/stat 2>/dev/null || echo 0 0)"
    s=$((s + a)) c=$((c + b))
  done
  echo "$f $s $c $(awk '/^cpu / {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat)"
}
if want true; then
  if [ -n "${CPU:-}" ]; then
    n=3000 hz=$(getconf CLK_TCK)
    echo "== fx bench true --mode submit -c 2 -b 100 -n $n, with the CPU time per task"
    as_user "$bin/fx" bench true --mode submit -c 2 -b 100 -n 200 </dev/null >/dev/null # warm the workers
    for _ in $(seq "$ROUNDS"); do
      read -r f0 s0 c0 b0 i0 <<<"$(cpu)"
      as_user "$bin/fx" bench true --mode submit -c 2 -b 100 -n "$n" </dev/null | tail -n +2 | grep -E 'tasks/s'
      read -r f1 s1 c1 b1 i1 <<<"$(cpu)"
      awk -v f=$((f1 - f0)) -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v b=$((b1 - b0)) -v i=$((i1 - i0)) -v n="$n" -v hz="$hz" \
        'BEGIN { u = 1e6 / hz / n; printf "cpu per task:      fxd %.0f µs  shims %.0f µs  tasks %.0f µs  rest of the machine %.0f µs  idle %.0f µs\n", f * u, s * u, c * u, (b - f - s - c) * u, i * u }'
    done
  else
    shape true --mode submit -c 2 -b 100 -n 3000 --exec-baseline
  fi
fi
if want sif; then
  # The same static servable (internal/testenv/upper) on the host and in a
  # busybox image, so that only the runtime differs.
  CGO_ENABLED=0 go build -o "$state/home/upper" ./internal/testenv/upper
  chown "$user" "$state/home/upper"
  go run ./internal/testenv/mksif "$state/busybox.sif" /usr/bin/upper="$state/home/upper"
  "$bin/fxd" runtime add busybox "$state/busybox.sif" --config "$state/fxd.toml"
  as_user "$bin/fx" register upper-host --kind servable -- "$state/home/upper" >/dev/null
  as_user "$bin/fx" register upper-sif --kind servable --runtime busybox -- /usr/bin/upper >/dev/null
  as_user "$bin/fx" register true-sif --runtime busybox -- /bin/true >/dev/null
  echo "== warm servable round trip, host vs SIF, interleaved: fx bench upper-{host,sif} --mode run -c 1 -n 5000 --input x"
  for _ in $(seq "$ROUNDS"); do
    for f in upper-host upper-sif; do
      printf '%-10s ' "$f"; as_user "$bin/fx" bench "$f" --mode run -c 1 -n 5000 --input x </dev/null | grep -E 'p50'
    done
  done
  echo "== warm /bin/true command tasks, host vs SIF, interleaved: fx bench {true,true-sif} --mode submit -c 2 -b 100 -n 3000"
  for _ in $(seq "$ROUNDS"); do
    for f in true true-sif; do
      printf '%-10s ' "$f"; as_user "$bin/fx" bench "$f" --mode submit -c 2 -b 100 -n 3000 </dev/null | grep -E 'tasks/s'
    done
  done
  echo "== cold start of a SIF command task (a new worker each: limits differ), 20 runs"
  for i in $(seq 20); do
    as_cold "$bin/fx" register "cold-$i" --runtime busybox --pids $((1000 + i)) -- /bin/true >/dev/null
    as_cold "$bin/fx" run "cold-$i" --json </dev/null
  done | python3 -c '
import json, sys, statistics
from datetime import datetime
def t(s): return datetime.fromisoformat(s.replace("Z", "+00:00"))
dec, buf, tasks = json.JSONDecoder(), sys.stdin.read(), []
i = 0
while i < len(buf):
    if buf[i].isspace(): i += 1; continue
    obj, i = dec.raw_decode(buf, i); tasks.append(obj)
total = sorted((t(x["finished_at"]) - t(x["received_at"])).total_seconds() * 1e3 for x in tasks)
cold = sum(1 for x in tasks if x.get("cold"))
start = sorted((t(x["started_at"]) - t(x["dispatched_at"])).total_seconds() * 1e3 for x in tasks if x.get("dispatched_at"))
print("tasks %d, cold %d; received to finished: p50 %.1f ms, min %.1f, max %.1f" % (len(tasks), cold, statistics.median(total), total[0], total[-1]))
if start: print("start phase (worker start): p50 %.1f ms, min %.1f, max %.1f" % (statistics.median(start), start[0], start[-1]))
'
fi
if want data; then
  ds=$state/datasets
  mkdir -p "$ds" && chmod 755 "$ds"
  head -c 1073741824 /dev/urandom >"$ds/big.bin"
  chown "$user" "$ds/big.bin"
  echo "== stage a 1 GiB file from a site path (read as the user, hashed, written, fsynced) vs cp + fsync of it, 3 rounds"
  digest=
  for _ in 1 2 3; do
    [ -n "$digest" ] && as_user "$bin/fx" data rm "$digest"
    touch "$ds/big.bin" # a new version of the file: staged again, not granted from the last stage
    t0=$(date +%s.%N)
    digest=$(as_user "$bin/fx" data stage "$ds/big.bin" 2>/dev/null)
    t1=$(date +%s.%N)
    cp "$ds/big.bin" "$state/copy.bin" && sync "$state/copy.bin"
    t2=$(date +%s.%N)
    rm -f "$state/copy.bin"
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "fx data stage %.2f s (%.0f MiB/s)   cp + sync %.2f s (%.0f MiB/s)\n", b - a, 1024 / (b - a), c - b, 1024 / (c - b) }'
  done
  as_user "$bin/fx" data rm "$digest"
  echo "== warm servable tasks reading a cache entry vs none, interleaved: fx bench echo --mode submit -c 4 -b 1000 -n 50000 [--data in=REF]"
  printf 'calibration\n' >"$state/home/small.txt"
  small=$(as_user "$bin/fx" data put "$state/home/small.txt" 2>/dev/null)
  for _ in $(seq "$ROUNDS"); do
    printf '%-10s ' none; as_user "$bin/fx" bench echo --mode submit -c 4 -b 1000 -n 50000 </dev/null | grep -E 'tasks/s:'
    printf '%-10s ' data; as_user "$bin/fx" bench echo --mode submit -c 4 -b 1000 -n 50000 --data "in=$small" </dev/null | grep -E 'tasks/s:'
  done
fi
if want federation; then
  # Site "fxd" (this daemon) takes tasks from site "front", which maps the
  # same local users by UID and forwards to fxd; fxd maps "$user@front" to
  # $user. Certificates from fxd federation init/sign.
  pki=$state/pki
  "$bin/fxd" federation init --site fxd --dir "$pki/fxd" --host 127.0.0.1 --ca >/dev/null
  "$bin/fxd" federation init --site front --dir "$pki/front" --host 127.0.0.1 >/dev/null
  "$bin/fxd" federation sign --ca-cert "$pki/fxd/federation-ca.pem" --ca-key "$pki/fxd/federation-ca.key" "$pki/front/front.csr" >"$pki/front/front.pem"
  peer_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  front_peer_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >>"$state/fxd.toml" <<EOF
[[auth.map]]
match = "$user@front"
account = "$user"
[federation]
listen = "127.0.0.1:$peer_port"
cert = "$pki/fxd/fxd.pem"
key = "$pki/fxd/fxd.key"
ca = "$pki/fxd/federation-ca.pem"
[[federation.peer]]
name = "front"
EOF
  kill -TERM "$fxd_pid"; wait "$fxd_pid" || true; fxd_pid=
  serve
  mkdir -p "$state/front" && chmod 711 "$state/front"
  cat >"$state/front.toml" <<EOF
[site]
name = "front"
state_dir = "$state/front"
[endpoint]
socket = "$state/front/fxd.sock"
[workers]
cgroup_parent = "fxd-bench-$$-front"
[log]
level = "warn"
[[auth.map]]
regex = '^uid:([0-9]+)$'
account = "\$1"
[federation]
listen = "127.0.0.1:$front_peer_port"
cert = "$pki/front/front.pem"
key = "$pki/front/front.key"
ca = "$pki/fxd/federation-ca.pem"
[[federation.peer]]
name = "fxd"
url = "https://127.0.0.1:$peer_port"
EOF
  "$bin/fxd" serve --config "$state/front.toml" 2>>"$state/front.log" &
  front_pid=$!
  for _ in $(seq 100); do [ -S "$state/front/fxd.sock" ] && break; sleep 0.1; done
  [ -S "$state/front/fxd.sock" ] || { cat "$state/front.log" >&2; exit 1; }
  as_front() { as_user env FX_ENDPOINT="unix://$state/front/fxd.sock" "$@"; }
  as_front "$bin/fx" bench echo --site fxd --mode run -c 1 -n 200 --input x </dev/null >/dev/null # warm the link
  echo "== sync runs, direct vs forwarded from site front, interleaved: fx bench echo --mode run -c 1 -n 2000 --input x [--site fxd]"
  for _ in $(seq "$ROUNDS"); do
    printf '%-10s ' direct; as_user "$bin/fx" bench echo --mode run -c 1 -n 2000 --input x </dev/null | grep -E 'p50'
    printf '%-10s ' forwarded; as_front "$bin/fx" bench echo --site fxd --mode run -c 1 -n 2000 --input x </dev/null | grep -E 'p50'
  done
  echo "== batches, direct vs forwarded, interleaved: fx bench echo --mode submit -c 4 -b 1000 -n 50000 [--site fxd]"
  for _ in $(seq "$ROUNDS"); do
    printf '%-10s ' direct; as_user "$bin/fx" bench echo --mode submit -c 4 -b 1000 -n 50000 </dev/null | grep -E 'tasks/s:'
    printf '%-10s ' forwarded; as_front "$bin/fx" bench echo --site fxd --mode submit -c 4 -b 1000 -n 50000 </dev/null | grep -E 'tasks/s:'
  done
  kill -TERM "$front_pid"; wait "$front_pid" || true; front_pid=
  rmdir /sys/fs/cgroup/*/"fxd-bench-$$-front" /sys/fs/cgroup/"fxd-bench-$$-front" 2>/dev/null || true
fi
if want node; then
  nodeshapes() {
    for _ in $(seq "$ROUNDS"); do
      printf '%-22s ' "true -c2 -b100 -n3000"; as_user "$bin/fx" bench true --mode submit -c 2 -b 100 -n 3000 </dev/null | grep -E 'tasks/s'
      printf '%-22s ' "echo -c4 -b1000 -n50000"; as_user "$bin/fx" bench echo --mode submit -c 4 -b 1000 -n 50000 </dev/null | grep -E 'tasks/s'
    done
  }
  echo "== no-op tasks on the daemon's own node"
  nodeshapes
  # The same tasks through a node agent: daemon_node_tasks off, one agent
  # on this host with the default slots (its CPUs), linked over HTTPS.
  kill -TERM "$fxd_pid"; wait "$fxd_pid" || true; fxd_pid=
  printf '[batch]\ndaemon_node_tasks = false\n' >>"$state/fxd.toml"
  serve
  cred=$("$bin/fxd" nodes credential bench --ttl 1h --config "$state/fxd.toml" 2>/dev/null)
  FXD_NODE_TOKEN=$cred "$bin/fxd" node --config "$state/fxd.toml" --daemon "https://127.0.0.1:$port" --ca "$state/ca.pem" \
    --name bench-n1 --block bench 2>"$state/agent.log" &
  agent_pid=$!
  for _ in $(seq 100); do "$bin/fxd" nodes --config "$state/fxd.toml" 2>/dev/null | grep -q bench-n1 && break; sleep 0.1; done
  "$bin/fxd" nodes --config "$state/fxd.toml" | grep -q bench-n1 || { cat "$state/agent.log" >&2; exit 1; }
  echo "== the same through a node agent on this host ($(nproc) slots)"
  nodeshapes
fi
echo "== fxd metrics after the runs"
curl -s --unix-socket "$state/fxd/fxd.sock" http://fxd/metrics | grep -E "^fxd_(cold_starts_total|workers|tasks_finished_total|store_commits_total)" || true
