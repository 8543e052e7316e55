#!/usr/bin/env bash
# Simulator and allocation: `waybill simulate --orders 1000000 --out FILE` wall time, and allocation decisions/s.
# usage: bench/simulate.sh [ORDERS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
echo "== waybill simulate --orders $N --days 30 --out"
/usr/bin/time -f "wall %e s, max RSS %M KiB" $W simulate --orders "$N" --days 30 --seed 1 --out "$OUT/sim-$N.ndjson"
ls -la "$OUT/sim-$N.ndjson" | awk '{print $5 " bytes"}'
wc -l < "$OUT/sim-$N.ndjson" | awk '{print $1 " events"}'
echo "== allocation decisions, one thread"
swift run -c release allocation-benchmark 200000
