#!/usr/bin/env bash
# A/B pairs of bulk ingest: for each case, runs bench/ingest.sh once per binary, in the order given,
# with the writer's phases (WAYBILL_WRITER_PROFILE=1), so two builds are compared in one session
# under the same load (give them alternating: BEFORE AFTER BEFORE AFTER). Each run prints its time,
# the 1-minute load, waybill's and sqlite3's speed and ratio, peak RSS, bytes/event and the phases.
# Copy the binaries aside first (cp .build/release/waybill /tmp/NAME/waybill-before): the shared
# build tree changes under you.
# usage: bench/ingest_ab.sh "time random" BIN1 BIN2 ...   (EVENTS=1000000; BENCH_DIR as ingest.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=$1; shift
for c in $CASES; do
  for w in "$@"; do
    echo "## $w $c $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
    WAYBILL_WRITER_PROFILE=1 WAYBILL=$w RUNS=1 CASES=$c bash bench/ingest.sh "${EVENTS:-1000000}" 2>&1 | grep -v '^=='
  done
done
