#!/usr/bin/env bash
# The crash test as a soak: CYCLES rounds (default 100) of 16 concurrent clients and a durable
# consumer acknowledging, each ended by SIGKILL of the server right after an acknowledgement and
# checked after a restart. Prints one line:
#
#   soak: cycles=N acked=A lost=0 duplicated=0 gaps=0
#
# and exits non-zero if anything acknowledged was lost, duplicated or left a gap.
#
#   tests/soak.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-100}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
KHABAR_CRASH_RUNS="$cycles" cargo test --locked --test it crash::acknowledged_articles_survive_sigkill \
  -- --exact --nocapture >"$log" 2>&1 || status=$?
grep '^soak:' "$log" || { echo "soak: no result; the test output follows" >&2; cat "$log" >&2; }
if [ "$status" != 0 ]; then
  grep -E 'lost|twice|panicked' "$log" | head -n 20 >&2 || true
fi
exit "$status"
