#!/usr/bin/env bash
# Runs the shared benchmark workload (W1 durable ingest, W2 feeds) against khabar (on its embedded
# store, and W1b, W1c and W2 on PostgreSQL: one local server, synchronous_commit = on; W1b also with
# --stories off, to show what story linking costs) and, in the
# same run, against NATS JetStream (file storage) and Redis Streams (AOF), plus the ceilings: the disk's
# fsync rate, khabar's store without gRPC (the log and its sled index), raw sled inserts with the
# flush policy of khabar's first storage design, and a no-op tonic RPC with the same payload.
# Prints a table of medians (min-max) over the repetitions, then one line per target. A
# repetition that fails is tried once more and reported.
#
#   bench/run.sh [--quick] [--reps N] [--seed PATH] [--out FILE] [--rows FILE] [--systems LIST]
#                [--workloads LIST]
#   bench/run.sh --pool FILE [--pool FILE ...] [--out FILE]
#
# --quick uses N = 2,000 articles instead of 20,000. --systems runs only the listed systems
# (comma-separated: khabar, khabar-nostories, khabar-traced, khabar-postgres, redis-always,
# redis-everysec, jetstream) and no ceilings. khabar-nostories is khabar with --stories off and
# khabar-traced khabar exporting traces (--otlp-endpoint) to a collector that drops them, both on
# W1b only: what story linking and traces cost. Needs nats-server, redis-server and postgresql
# (Debian packages of those names; installed when missing and running as root). Every server
# listens on 127.0.0.1 only, is started and stopped by its PID, and every load run is bounded by
# --max-seconds. --workloads runs only the listed W1 loads (comma-separated: W1a, W1b, W1c; W2
# follows W1c), for example `--systems khabar,khabar-nostories --workloads W1b --reps 15` for
# many paired repetitions of what story linking costs. --out writes the report to FILE too;
# --rows writes every repetition's measurement to FILE (JSON lines), so that runs can be pooled:
# --pool, given once per such file, runs nothing and reports on the repetitions of those runs
# together (a stories pair stays within its run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
articles=20000
tail_articles=2000
reps=3
seed="$root/tests/fixtures/seed-article-ar.txt"
out=""
rows_out=""
systems="khabar khabar-nostories khabar-traced khabar-postgres redis-always redis-everysec jetstream"
only_systems=0
workloads="W1a W1b W1c"
pool=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) articles=2000; shift ;;
    --reps) reps="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --rows) rows_out="$2"; shift 2 ;;
    --systems) systems="${2//,/ }"; only_systems=1; shift 2 ;;
    --workloads) workloads="${2//,/ }"; shift 2 ;;
    --pool) pool+=("$2"); shift 2 ;;
    *) echo "usage: $0 [--quick] [--reps N] [--seed PATH] [--out FILE] [--rows FILE] [--systems LIST] [--workloads LIST] | --pool FILE [--pool FILE ...] [--out FILE]" >&2; exit 2 ;;
  esac
done
[ -f "$seed" ] || { echo "seed article not found: $seed" >&2; exit 2; }
if [ ${#pool[@]} -gt 0 ]; then
  command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  results="$work/results.jsonl"
  retries="$work/retries.txt"
  : >"$retries"
  # Each run's repetitions are numbered apart from the others', so that pairs stay within a run.
  python3 - "${pool[@]}" >"$results" <<'PY'
import json, sys
for index, path in enumerate(sys.argv[1:]):
    for line in open(path):
        row = json.loads(line)
        row["rep"] = index * 1_000_000 + row.get("rep", 0)
        print(json.dumps(row))
PY
  read -r articles reps < <(python3 -c '
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(max((r["articles"] for r in rows if "articles" in r), default=0), len({r["rep"] for r in rows}))' "$results")
else
pg_bin=""
find_postgres() { for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && pg_bin="$dir"; done; [ -n "$pg_bin" ]; }
if ! command -v nats-server >/dev/null || ! command -v redis-server >/dev/null || ! find_postgres; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing the peers from Debian: nats-server redis-server postgresql" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server redis-server postgresql >/dev/null
    find_postgres
  else
    echo "nats-server, redis-server and postgresql are needed: apt-get install nats-server redis-server postgresql" >&2
    exit 2
  fi
fi
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

cd "$root"
cargo build --release --locked --quiet --bin khabar --example bench
khabar="$root/target/release/khabar"
bench="$root/target/release/examples/bench"

work=$(mktemp -d)
chmod 755 "$work"
server_pid=""
sink_pid=""
# PostgreSQL runs as the postgres user when this runs as root (it refuses to run as root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_running=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  if [ -n "$pg_running" ]; then as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until $log shows "listening addr=..."; sets server_addr.
wait_for_listen_line() {
  local log="$1"
  server_addr=""
  for _ in $(seq 1 200); do
    server_addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$server_addr" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

# One PostgreSQL server for the whole run (each khabar-postgres start gets a fresh database),
# with its defaults: fsync on, synchronous_commit = on.
pg_port=""
databases=0
start_postgres() {
  mkdir -p "$work/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
  pg_port=$(free_port)
  as_pg "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$work/pg/initdb.log" 2>&1
  as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$work/pg -c synchronous_commit=on" start >/dev/null
  pg_running=1
}

# Starts a system on a fresh data directory; sets server_pid and server (the address to load).
start() {
  local system="$1" data="$work/data" log="$work/server.log" port
  rm -rf "$data"
  mkdir -p "$data"
  # Emptied here, not by the server's redirection (which runs in the background child): the
  # previous server's "listening" line must not be read as this one's.
  : >"$log"
  case "$system" in
    khabar)
      "$khabar" serve --listen 127.0.0.1:0 --data-dir "$data" --log info 2>"$log" &
      server_pid=$!
      wait_for_listen_line "$log"
      server="http://$server_addr" ;;
    khabar-nostories)
      "$khabar" serve --listen 127.0.0.1:0 --data-dir "$data" --log info --stories off 2>"$log" &
      server_pid=$!
      wait_for_listen_line "$log"
      server="http://$server_addr" ;;
    khabar-traced)
      "$bench" --max-seconds 900 otlp-sink --listen 127.0.0.1:0 2>"$work/sink.log" >/dev/null &
      sink_pid=$!
      local sink_addr=""
      for _ in $(seq 1 200); do
        sink_addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$work/sink.log" | head -n 1)
        [ -n "$sink_addr" ] && break
        sleep 0.05
      done
      [ -n "$sink_addr" ] || { echo "the OTLP sink did not start" >&2; cat "$work/sink.log" >&2; exit 1; }
      "$khabar" serve --listen 127.0.0.1:0 --data-dir "$data" --log info \
        --otlp-endpoint "http://$sink_addr" 2>"$log" &
      server_pid=$!
      wait_for_listen_line "$log"
      server="http://$server_addr" ;;
    khabar-postgres)
      databases=$((databases + 1))
      psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE bench_$databases" >/dev/null
      "$khabar" serve --listen 127.0.0.1:0 --data-dir "$data" --log info \
        --database-url "postgres://postgres@127.0.0.1:$pg_port/bench_$databases" 2>"$log" &
      server_pid=$!
      wait_for_listen_line "$log"
      server="http://$server_addr" ;;
    redis-always|redis-everysec)
      port=$(free_port)
      redis-server --bind 127.0.0.1 --port "$port" --dir "$data" --appendonly yes \
        --appendfsync "${system#redis-}" --save "" --daemonize no >"$log" 2>&1 &
      server_pid=$!
      server="127.0.0.1:$port" ;;
    jetstream)
      port=$(free_port)
      nats-server -a 127.0.0.1 -p "$port" -js -sd "$data" >"$log" 2>&1 &
      server_pid=$!
      server="127.0.0.1:$port" ;;
    noop)
      "$bench" --max-seconds 600 noop-server --listen 127.0.0.1:0 2>"$log" >/dev/null &
      server_pid=$!
      wait_for_listen_line "$log"
      server="http://$server_addr" ;;
  esac
}

# Stops the running system; sets rss to its peak RSS in MiB. (Runs in this shell, not a
# subshell: only the parent can wait for its child.)
stop() {
  local hwm_kb
  [ -n "$server_pid" ] || { rss=0; return 0; }
  hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
  rss=$((hwm_kb / 1024))
  if [ -n "$sink_pid" ]; then
    # After the server, which exports its last spans on the way out.
    kill -TERM "$sink_pid"
    wait "$sink_pid" || true
    sink_pid=""
  fi
}

target_of() {
  case "$1" in
    khabar|khabar-traced|khabar-nostories|khabar-postgres|noop) echo khabar ;;
    redis-*) echo redis ;;
    jetstream) echo nats ;;
  esac
}

load() { # system, then the bench subcommand and its flags
  local system="$1"
  shift
  "$bench" --server "$server" --target "$(target_of "$system")" --max-seconds 300 "$@"
}

results="$work/results.jsonl"
record() { # system row rss json (the repetition is $rep)
  python3 -c 'import json,sys; r=json.loads(sys.argv[4]); r.update(system=sys.argv[1], row=sys.argv[2], rss_mib=int(sys.argv[3]), rep=int(sys.argv[5])); print(json.dumps(r))' \
    "$1" "$2" "$3" "$4" "${rep:-0}" >>"$results"
}

# One configuration: a fresh server, its W1 load and, after W1c, the W2 loads on the store W1c
# filled; records the rows. Fails (without recording) if any load fails.
measure() { # system name mode in_flight
  local system="$1" name="$2" mode="$3" in_flight="$4" result w2a w2a1 w2b
  start "$system"
  if ! result=$(load "$system" ingest --mode "$mode" --in-flight "$in_flight" --articles "$articles" --seed "$seed"); then
    stop; return 1
  fi
  if [ "$name" != W1c ] || [ "$system" = redis-everysec ]; then
    stop
    record "$system" "$name $mode/$in_flight" "$rss" "$result"
    return 0
  fi
  if ! w2a=$(load "$system" catchup --consumers 4 --events "$articles") ||
     ! w2a1=$(load "$system" catchup --consumers 1 --events "$articles") ||
     ! w2b=$(load "$system" tail --subscribers 4 --rate 500 --articles "$tail_articles" --seed "$seed"); then
    stop; return 1
  fi
  stop
  record "$system" "$name $mode/$in_flight" "$rss" "$result"
  record "$system" "W2a catch-up x4" "$rss" "$w2a"
  record "$system" "W2a catch-up x1" "$rss" "$w2a1"
  record "$system" "W2b tail x4 @500/s" "$rss" "$w2b"
}

# A repetition that fails (a peer dropping a connection, say) is tried once more and reported,
# rather than ending the whole run.
measure_or_retry() { # system name mode in_flight
  if ! measure "$@"; then
    echo "repetition $rep of $1 $2 $3/$4 failed; trying it once more" >&2
    if measure "$@"; then
      echo "retried: repetition $rep of $1 $2 $3/$4 (failed once, then passed)" >>"$retries"
    else
      echo "failed: repetition $rep of $1 $2 $3/$4 (failed twice; left out)" >>"$retries"
    fi
  fi
}

# With both khabar and khabar-nostories in the run, each W1b load with --stories off runs right
# before or after the same load with stories on, so that the pair sees the same machine; the
# report then gives the median of the pairs' ratios and how far that median can be trusted.
paired_stories=0
case " $systems " in *" khabar "*) case " $systems " in *" khabar-nostories "*) paired_stories=1 ;; esac ;; esac

retries="$work/retries.txt"
: >"$retries"
echo "benchmark: $articles articles, $reps repetitions, $(nproc) cores" >&2
case " $systems " in *" khabar-postgres "*) start_postgres ;; esac
for rep in $(seq 1 "$reps"); do
  for system in $systems; do
    [ "$system" = khabar-nostories ] && [ "$paired_stories" = 1 ] && continue
    configs="W1a:unary:1 W1b:unary:32 W1b:stream:32 W1c:stream:100"
    # What story linking costs: the same W1b loads with --stories off.
    [ "$system" = khabar-nostories ] && configs="W1b:unary:32 W1b:stream:32"
    [ "$system" = jetstream ] && configs="W1a:stream:1 W1b:stream:32 W1c:stream:100"
    [ "$system" = khabar-postgres ] && configs="W1b:unary:32 W1b:stream:32 W1c:stream:100"
    [ "$system" = khabar-traced ] && configs="W1b:unary:32 W1b:stream:32"
    for config in $configs; do
      IFS=: read -r name mode in_flight <<<"$config"
      case " $workloads " in *" $name "*) ;; *) continue ;; esac
      if [ "$system" = khabar ] && [ "$paired_stories" = 1 ] && [ "$name" = W1b ]; then
        # Every other repetition runs the pair the other way round, so that whatever the first
        # load of a pair leaves behind (dirty pages, the deleted data directory) falls on both.
        if [ $((rep % 2)) = 0 ]; then
          measure_or_retry khabar-nostories "$name" "$mode" "$in_flight"
          measure_or_retry khabar "$name" "$mode" "$in_flight"
        else
          measure_or_retry khabar "$name" "$mode" "$in_flight"
          measure_or_retry khabar-nostories "$name" "$mode" "$in_flight"
        fi
      else
        measure_or_retry "$system" "$name" "$mode" "$in_flight"
      fi
    done
  done

  if [ "$only_systems" = 1 ]; then
    echo "repetition $rep done" >&2
    continue
  fi
  # Ceilings.
  mkdir -p "$work/disk"
  record ceiling "fsync" 0 "$("$bench" fsync --dir "$work/disk" --seconds 2)"
  for in_flight in 1 32 100; do
    rm -rf "$work/sled" "$work/store"
    record ceiling "sled inserts/$in_flight" 0 \
      "$("$bench" sled --dir "$work/sled" --articles "$articles" --in-flight "$in_flight" --seed "$seed")"
    record ceiling "store/$in_flight" 0 \
      "$("$bench" --max-seconds 300 store --dir "$work/store" --articles "$articles" --in-flight "$in_flight" --seed "$seed")"
  done
  rm -rf "$work/sled" "$work/store"
  for config in unary:1 unary:32 stream:32 stream:100; do
    IFS=: read -r mode in_flight <<<"$config"
    start noop
    if result=$(load noop ingest --mode "$mode" --in-flight "$in_flight" --articles "$articles" --seed "$seed"); then
      stop
      record ceiling "no-op tonic $mode/$in_flight" "$rss" "$result"
    else
      stop
      echo "failed: repetition $rep of the no-op tonic ceiling $mode/$in_flight (left out)" >>"$retries"
    fi
  done
  echo "repetition $rep done" >&2
done
fi

report=$(python3 - "$results" "$articles" "$reps" "$retries" <<'PY'
import json, random, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
n = int(sys.argv[2])
durability = {
    "khabar": "fsync before ack (group commit)",
    "khabar-traced": "as khabar, exporting a span per call and per write over OTLP",
    "khabar-nostories": "fsync before ack (group commit); --stories off",
    "khabar-postgres": "PostgreSQL COMMIT before ack, synchronous_commit=on (one local server)",
    "redis-always": "fsync before ack (appendfsync always)",
    "redis-everysec": "fsync every second (appendfsync everysec)",
    "jetstream": "page cache; fsync every 2 min (NATS 2.9.10 default)",
}

def median(system, row, key):
    values = [r[key] for r in rows if r["system"] == system and r["row"] == row and key in r]
    return statistics.median(values) if values else None

def spread(system, row, key, fmt="{:.0f}"):
    values = [r[key] for r in rows if r["system"] == system and r["row"] == row and key in r]
    if not values:
        return "-"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"

def rss(system, row):
    values = [r["rss_mib"] for r in rows if r["system"] == system and r["row"] == row]
    return str(max(values)) if values else "-"

def metric(row):
    if row.startswith(("W1", "sled", "store", "no-op")):
        return "articles_per_sec"
    if row.startswith("W2a"):
        return "events_per_sec_total"
    return None

print(f"N = {n} articles; median (min-max) of {sys.argv[3]} repetitions")
print()
print("| workload | system | durability | throughput | p50 / p99 / max ms | khabar / this | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- |")
workload_rows = list(dict.fromkeys(r["row"] for r in rows if r["system"] != "ceiling"))
workload_rows.sort(key=lambda w: (w[:3], w))
for row in workload_rows:
    for system in ["khabar", "khabar-nostories", "khabar-traced", "khabar-postgres", "redis-always", "redis-everysec", "jetstream"]:
        key = metric(row)
        if not any(r["system"] == system and r["row"] == row for r in rows):
            continue
        if key:
            unit = " articles/s" if key == "articles_per_sec" else " events/s"
            throughput = spread(system, row, key) + unit
        else:
            throughput = spread(system, row, "rate_achieved") + " published/s"
        latency = " / ".join(spread(system, row, k, "{:.2f}") for k in ("p50_ms", "p99_ms", "max_ms")) \
            if median(system, row, "p50_ms") is not None else ""
        ratio = ""
        if system != "khabar":
            if key and median("khabar", row, key):
                ratio = f"{median('khabar', row, key) / median(system, row, key):.2f}"
            elif not key and median("khabar", row, "p99_ms") is not None:
                ratio = f"p99 {median('khabar', row, 'p99_ms') / median(system, row, 'p99_ms'):.2f}"
        print(f"| {row} | {system} | {durability[system]} | {throughput} | {latency} | {ratio} | {rss(system, row)} |")

print()
print("Ceilings:")
print()
print("| ceiling | throughput | p50 / p99 ms | khabar / this |")
print("| --- | --- | --- | --- |")
khabar_at = {"1": median("khabar", "W1a unary/1", "articles_per_sec"),
             "32": max(filter(None, [median("khabar", "W1b unary/32", "articles_per_sec"),
                                     median("khabar", "W1b stream/32", "articles_per_sec")]), default=None),
             "100": median("khabar", "W1c stream/100", "articles_per_sec")}
for row in dict.fromkeys(r["row"] for r in rows if r["system"] == "ceiling"):
    if row == "fsync":
        print(f"| fsync (4 KiB write + fdatasync) | {spread('ceiling', row, 'syncs_per_sec')} syncs/s | | |")
        continue
    in_flight = row.rsplit("/", 1)[1]
    latency = " / ".join(spread("ceiling", row, k, "{:.2f}") for k in ("p50_ms", "p99_ms")) \
        if median("ceiling", row, "p50_ms") is not None else ""
    ceiling = median("ceiling", row, "articles_per_sec")
    ratio = f"{khabar_at[in_flight] / ceiling:.2f}" if khabar_at.get(in_flight) else ""
    print(f"| {row} | {spread('ceiling', row, 'articles_per_sec')} articles/s | {latency} | {ratio} |")

print()
def best(system, row_names, key):
    return max(filter(None, [median(system, r, key) for r in row_names]), default=None)

def ratio_line(name, peer, khabar_rows, peer_rows, key="articles_per_sec", note=""):
    k, p = best("khabar", khabar_rows, key), best(peer, peer_rows, key)
    if not k or not p:
        print(f"target {name}: khabar/{peer} = n/a (missing rows)")
        return
    print(f"target {name}: khabar/{peer} = {k / p:.2f} (khabar {k:.0f}/s, {peer} {p:.0f}/s{note})")

w1b = ["W1b unary/32", "W1b stream/32"]
ratio_line("W1a", "redis-always", ["W1a unary/1"], ["W1a unary/1"])
ratio_line("W1b", "redis-always", w1b, w1b)
ratio_line("W1b", "jetstream", w1b, w1b, note="; JetStream acknowledges from the page cache")
ratio_line("W1c", "redis-always", ["W1c stream/100"], ["W1c stream/100"])
ratio_line("W1c", "jetstream", ["W1c stream/100"], ["W1c stream/100"], note="; JetStream acknowledges from the page cache")
k = median("khabar", "W2a catch-up x4", "events_per_sec_total") or 0
peers = {p: median(p, "W2a catch-up x4", "events_per_sec_total") or 0 for p in ["jetstream", "redis-always"]}
best_peer = max(peers.values())
if k and best_peer:
    print(f"target W2a: khabar/best-peer = {k / best_peer:.2f} (khabar {k:.0f}/s, jetstream {peers['jetstream']:.0f}/s, redis {peers['redis-always']:.0f}/s)")
else:
    print("target W2a: khabar/best-peer = n/a (missing rows)")
for row, key in [("W1b unary/32", "articles_per_sec"), ("W1b stream/32", "articles_per_sec"),
                 ("W1c stream/100", "articles_per_sec"), ("W2a catch-up x4", "events_per_sec_total")]:
    pg, embedded = median("khabar-postgres", row, key), median("khabar", row, key)
    if pg and embedded:
        print(f"postgres {row}: {pg:.0f}/s ({pg / embedded:.2f}x the embedded store's {embedded:.0f}/s)")
    else:
        print(f"postgres {row}: n/a (missing rows)")
for row in ["W1b unary/32", "W1b stream/32"]:
    traced, plain = median("khabar-traced", row, "articles_per_sec"), median("khabar", row, "articles_per_sec")
    if traced and plain:
        print(f"traces {row}: {traced:.0f}/s with --otlp-endpoint ({traced / plain:.2f}x khabar without it, {plain:.0f}/s)")
p99 = median("khabar", "W2b tail x4 @500/s", "p99_ms")
print(f"target W2b-p99-ms: {p99:.2f}" if p99 is not None else "target W2b-p99-ms: n/a")
for row in ["W1b unary/32", "W1b stream/32"]:
    on, off = median("khabar", row, "articles_per_sec"), median("khabar-nostories", row, "articles_per_sec")
    if on and off:
        # The ratio of each repetition's pair (run one right after the other), when paired.
        rate = lambda system: {r["rep"]: r["articles_per_sec"] for r in rows if r["system"] == system and r["row"] == row}
        on_by_rep, off_by_rep = rate("khabar"), rate("khabar-nostories")
        pairs = sorted(on_by_rep[k] / off_by_rep[k] for k in on_by_rep.keys() & off_by_rep.keys())
        paired = f"; pairs {statistics.median(pairs):.2f}x ({pairs[0]:.2f}-{pairs[-1]:.2f})" if pairs else ""
        if len(pairs) >= 10:
            # A bootstrap of the pairs: the range holding 95% of the medians of resamples.
            rng = random.Random(0)
            medians = sorted(statistics.median(rng.choices(pairs, k=len(pairs))) for _ in range(2000))
            paired += f", median's 95% interval {medians[49]:.2f}-{medians[1949]:.2f}"
        print(f"stories {row}: on {on:.0f}/s, off {off:.0f}/s = {on / off:.2f}x{paired} (target >= 0.9x)")
    else:
        print(f"stories {row}: n/a (missing rows)")
rss_values = [r["rss_mib"] for r in rows if r["system"] == "khabar"]
print(f"target rss-mib: {max(rss_values) if rss_values else 'n/a'}")
retried = [line.strip() for line in open(sys.argv[4]) if line.strip()]
for line in retried:
    print(line)
PY
)
echo "$report"
if [ -n "$out" ]; then echo "$report" >"$out"; fi
if [ -n "$rows_out" ]; then cp "$results" "$rows_out"; fi
