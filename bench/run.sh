#!/usr/bin/env bash
# Runs the benchmark workload (bench/WORKLOAD.md of the shared folder: W1 durable ingest, W2 feeds)
# against khabar, REPS times, and prints a table of medians with min-max.
#
#   bench/run.sh [--quick] [--reps N] [--seed PATH]
#
# --quick uses N = 2,000 articles instead of 20,000. Servers listen on loopback only, are started
# and stopped by PID, and every load run is bounded by --max-seconds.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
articles=20000
tail_articles=2000
reps=3
seed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) articles=2000; shift ;;
    --reps) reps="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "usage: $0 [--quick] [--reps N] [--seed PATH]" >&2; exit 2 ;;
  esac
done
if [ -z "$seed" ]; then
  seed="$root/tests/fixtures/seed-article-ar.txt"
fi
[ -f "$seed" ] || { echo "seed article not found: $seed" >&2; exit 2; }

cd "$root"
cargo build --release --locked --quiet --bin khabar --example bench
khabar="$root/target/release/khabar"
bench="$root/target/release/examples/bench"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Starts khabar on a fresh data directory; sets server_pid and server_url.
start_server() {
  local data="$work/data-$1" log="$work/server-$1.log"
  rm -rf "$data"
  "$khabar" serve --listen 127.0.0.1:0 --data-dir "$data" --log info 2>"$log" &
  server_pid=$!
  local addr=""
  for _ in $(seq 1 200); do
    addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "khabar did not start; see $log" >&2; cat "$log" >&2; exit 1; }
  server_url="http://$addr"
}

# Stops the server; sets rss to its peak RSS in MiB. (Not in a subshell: only this shell can
# wait for its child.)
stop_server() {
  local hwm_kb
  hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
  kill -TERM "$server_pid"
  wait "$server_pid" || { echo "khabar exited with an error" >&2; exit 1; }
  server_pid=""
  rss=$((hwm_kb / 1024))
}

results="$work/results.jsonl"
record() { # config rss_mib json
  python3 -c 'import json,sys; r=json.loads(sys.argv[3]); r["config"]=sys.argv[1]; r["rss_mib"]=int(sys.argv[2]); print(json.dumps(r))' "$1" "$2" "$3" >>"$results"
}

run_bench() { "$bench" --server "$server_url" --max-seconds 300 "$@"; }

echo "khabar benchmark: $articles articles, $reps repetitions, $(nproc) cores" >&2
for rep in $(seq 1 "$reps"); do
  for config in "W1a unary 1" "W1b unary 32" "W1b stream 32" "W1c stream 100"; do
    read -r name mode in_flight <<<"$config"
    label="$name $mode/$in_flight"
    start_server "$rep-$name-$mode"
    out=$(run_bench ingest --mode "$mode" --in-flight "$in_flight" --articles "$articles" --seed "$seed")
    if [ "$name" != "W1c" ]; then
      stop_server
      record "$label" "$rss" "$out"
      continue
    fi
    # W2 runs on the store W1c just filled.
    w2a=$(run_bench catchup --consumers 4 --events "$articles")
    w2a1=$(run_bench catchup --consumers 1 --events "$articles")
    w2b=$(run_bench tail --subscribers 4 --rate 500 --articles "$tail_articles" --seed "$seed")
    stop_server
    record "$label" "$rss" "$out"
    record "W2a catch-up x4" "$rss" "$w2a"
    record "W2a catch-up x1" "$rss" "$w2a1"
    record "W2b tail x4 @500/s" "$rss" "$w2b"
  done
  echo "repetition $rep done" >&2
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
configs = list(dict.fromkeys(r["config"] for r in rows))
def cell(values, fmt="{:.0f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"
print("| workload | throughput, median (min-max) | MB/s | latency p50 / p99 / max ms | peak RSS MiB |")
print("| --- | --- | --- | --- | --- |")
for c in configs:
    rs = [r for r in rows if r["config"] == c]
    rss = max(r["rss_mib"] for r in rs)
    if rs[0]["workload"] == "ingest":
        thr = cell([r["articles_per_sec"] for r in rs]) + " articles/s"
        mb = cell([r["mb_per_sec"] for r in rs], "{:.1f}")
    elif rs[0]["workload"] == "catchup":
        thr = cell([r["events_per_sec_total"] for r in rs]) + " events/s total"
        mb = ""
    else:
        thr = cell([r["rate_achieved"] for r in rs]) + " articles/s published"
        mb = ""
    lat = ""
    if "p50_ms" in rs[0]:
        lat = " / ".join(cell([r[k] for r in rs], "{:.2f}") for k in ("p50_ms", "p99_ms", "max_ms"))
    print(f"| {c} | {thr} | {mb} | {lat} | {rss} |")
PY
