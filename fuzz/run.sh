#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) with cargo fuzz on the nightly toolchain,
# after writing the seed corpus from tests/fixtures. Crashes are kept in fuzz/artifacts/<target>/;
# the script fails if any target found one.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz from crates.io if it is missing. Without a nightly toolchain it says so and
# exits 0 unless KHABAR_REQUIRE_FUZZ=1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request ingest_input stored log_segment)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED (no nightly toolchain: rustup toolchain install nightly)" >&2
  [ "${KHABAR_REQUIRE_FUZZ:-0}" = 1 ] && exit 1
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi

# The corpus grows as the fuzzers find new paths; the seeds are written fresh each time (with the
# project's own toolchain and target directory, which the tests have built already).
cargo run --quiet --locked --features fuzzing --example fuzz_seeds -- tests/fixtures fuzz/corpus

status=0
for target in "${targets[@]}"; do
  max_len=65536
  echo "fuzz: $target for ${seconds}s" >&2
  if ! cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len="$max_len" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 15; then
    echo "fuzz: $target FAILED; see fuzz/artifacts/$target/" >&2
    status=1
  fi
done
exit "$status"
