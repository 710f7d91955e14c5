#!/usr/bin/env bash
# Failover test: a PostgreSQL cluster made highly available by Patroni (3 etcd members, 3
# PostgreSQL servers, synchronous_mode_strict) on 127.0.0.1, two khabar servers on it under
# ingest load, and a SIGKILL of the primary node (its Patroni and every PostgreSQL process).
# Then every acknowledged article and event must be in the database, cursors without a gap, and
# a feed must deliver every event in order; the load generator (examples/failover) prints
#
#   failover: acknowledged=N found=N lost=0 pause=S ...
#
# where pause is the longest time without an acknowledgement after the kill.
#
#   tests/failover.sh [--seconds 45] [--kill-after 12] [--debug] [--keep]
#
# --debug uses debug builds (quicker to build; the pause is Patroni's either way).
#
# Needs Debian's patroni, etcd-server and postgresql (installed when missing and running as
# root). Runs as root: PostgreSQL runs as the postgres user. Everything listens on 127.0.0.1
# only, and every process it starts is stopped by its PID when it ends.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=45
kill_after=12
keep=""
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --kill-after) kill_after="$2"; shift 2 ;;
    --debug) profile=debug; shift ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--seconds N] [--kill-after N] [--debug] [--keep]" >&2; exit 2 ;;
  esac
done

pg_bin=""
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && pg_bin="$dir"; done
if [ -z "$pg_bin" ] || ! command -v patroni >/dev/null || ! command -v etcd >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "needs patroni, etcd-server and postgresql (apt-get install)" >&2; exit 2; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patroni etcd-server postgresql >/dev/null
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && pg_bin="$dir"; done
fi
[ "$(id -u)" = 0 ] || { echo "run as root (PostgreSQL and Patroni run as the postgres user)" >&2; exit 2; }

cd "$root"
# KHABAR_BIN and KHABAR_FAILOVER_CHECK name binaries built already (tests/it/failover.rs, which
# runs inside cargo test, passes them).
if [ -n "${KHABAR_BIN:-}" ] && [ -n "${KHABAR_FAILOVER_CHECK:-}" ]; then
  khabar="$KHABAR_BIN"
  check="$KHABAR_FAILOVER_CHECK"
else
  if [ "$profile" = release ]; then
    cargo build --release --locked --quiet --bin khabar --example failover
  else
    cargo build --locked --quiet --bin khabar --example failover
  fi
  khabar="$root/target/$profile/khabar"
  check="$root/target/$profile/examples/failover"
fi

work=$(mktemp -d -t khabar-failover.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # PostgreSQL servers Patroni started (their postmaster PIDs are in the data directories).
  local pidfile
  for pidfile in "$work"/pg*/data/postmaster.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(head -n 1 "$pidfile")
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -n "$keep" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# A terminated run still stops what it started.
trap 'exit 143' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# etcd: three members.
etcd_client=() etcd_peer=()
for i in 0 1 2; do etcd_client[$i]=$(free_port); etcd_peer[$i]=$(free_port); done
cluster="e0=http://127.0.0.1:${etcd_peer[0]},e1=http://127.0.0.1:${etcd_peer[1]},e2=http://127.0.0.1:${etcd_peer[2]}"
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$work/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${etcd_client[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${etcd_client[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${etcd_peer[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${etcd_peer[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    --initial-cluster-token khabar-failover >"$work/etcd$i.log" 2>&1 &
  pids+=($!)
done
etcd_hosts="127.0.0.1:${etcd_client[0]},127.0.0.1:${etcd_client[1]},127.0.0.1:${etcd_client[2]}"

# Patroni: three PostgreSQL servers, synchronous replication that never falls back to
# asynchronous (synchronous_mode_strict).
pg_port=() rest_port=() patroni_pid=()
for i in 0 1 2; do pg_port[$i]=$(free_port); rest_port[$i]=$(free_port); done
for i in 0 1 2; do
  mkdir -p "$work/pg$i"
  chown postgres: "$work/pg$i"
  cat >"$work/pg$i/patroni.yml" <<EOF
scope: khabar-failover
name: pg$i
restapi:
  listen: 127.0.0.1:${rest_port[$i]}
  connect_address: 127.0.0.1:${rest_port[$i]}
etcd3:
  hosts: $etcd_hosts
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      parameters:
        synchronous_commit: "on"
        max_connections: 200
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${pg_port[$i]}
  connect_address: 127.0.0.1:${pg_port[$i]}
  data_dir: $work/pg$i/data
  bin_dir: $pg_bin
  pgpass: $work/pg$i/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: $work/pg$i
EOF
  chown postgres: "$work/pg$i/patroni.yml"
  runuser -u postgres -- patroni "$work/pg$i/patroni.yml" >"$work/pg$i/patroni.log" 2>&1 &
  runner=$!
  pids+=("$runner")
  # Patroni itself is runuser's child.
  patroni_pid[$i]=""
  for _ in $(seq 1 50); do
    patroni_pid[$i]=$(ps -o pid= --ppid "$runner" | tr -d ' ' | head -n 1 || true)
    [ -n "${patroni_pid[$i]}" ] && break
    sleep 0.1
  done
  [ -n "${patroni_pid[$i]}" ] || { echo "Patroni pg$i did not start" >&2; exit 1; }
  pids+=("${patroni_pid[$i]}")
  # The first one bootstraps the cluster; the others then clone it.
  [ "$i" = 0 ] && sleep 3
done

# Waits until one server leads and two stream from it, one of them synchronously.
cluster_state() {
  python3 - "${rest_port[@]}" <<'PY'
import json, sys, urllib.request
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2) as r:
            members = json.load(r)["members"]
    except Exception:
        continue
    roles = sorted(m["role"] for m in members if m.get("state") in ("running", "streaming"))
    print(" ".join(roles))
    break
PY
}
echo "waiting for the cluster (leader, sync_standby, replica)..."
for _ in $(seq 1 300); do
  state=$(cluster_state)
  [ "$state" = "leader replica sync_standby" ] && break
  sleep 1
done
[ "$state" = "leader replica sync_standby" ] || {
  echo "the cluster did not form: ${state:-no answer}" >&2
  tail -n 20 "$work"/pg*/patroni.log >&2
  exit 1
}
echo "cluster: $state"

leader=""
for i in 0 1 2; do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:${rest_port[$i]}/primary', timeout=2)" 2>/dev/null; then
    leader=$i
  fi
done
[ -n "$leader" ] || { echo "no primary answers" >&2; exit 1; }
hosts="127.0.0.1:${pg_port[0]},127.0.0.1:${pg_port[1]},127.0.0.1:${pg_port[2]}"
psql "postgres://postgres:postgres@127.0.0.1:${pg_port[$leader]}/postgres" -qc "CREATE DATABASE khabar"
url="postgres://postgres:postgres@$hosts/khabar?target_session_attrs=read-write&connect_timeout=2"

# Two khabar servers.
servers=()
for i in 0 1; do
  port=$(free_port)
  "$khabar" serve --listen "127.0.0.1:$port" --database-url "$url" --data-dir "$work/khabar$i" \
    >"$work/khabar$i.log" 2>&1 &
  pids+=($!)
  servers+=("http://127.0.0.1:$port")
  for _ in $(seq 1 100); do grep -q "listening" "$work/khabar$i.log" && break; sleep 0.1; done
  grep -q "listening" "$work/khabar$i.log" || { cat "$work/khabar$i.log" >&2; exit 1; }
done

# The primary node dies: its Patroni and every process of its PostgreSQL, at once.
postmaster=$(head -n 1 "$work/pg$leader/data/postmaster.pid")
kill_command="kill -9 ${patroni_pid[$leader]} $postmaster \$(ps -o pid= --ppid $postmaster)"
echo "primary: pg$leader (Patroni ${patroni_pid[$leader]}, postmaster $postmaster); servers: ${servers[*]}"
set +e
"$check" --servers "$(IFS=,; echo "${servers[*]}")" --database-url "$url" \
  --seconds "$seconds" --kill-after "$kill_after" --kill-command "$kill_command" \
  --seed "$root/tests/fixtures/seed-article.ingest.json"
status=$?
set -e
echo "after the failover: $(cluster_state)"
exit $status
