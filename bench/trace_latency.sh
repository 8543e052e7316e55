#!/usr/bin/env bash
# Trace lookups: GET /api/v1/traces/{key} latency with 1,000,000 events stored (the store bench/ingest.sh builds).
# usage: bench/trace_latency.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-15}; C=${2:-4}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
W=.build/release/waybill
[ -f "$OUT/waybill.db" ] || bash bench/ingest.sh 1000000
PORT=${PORT:-14319}
$W serve --port "$PORT" --db "$OUT/waybill.db" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
echo "events stored: $(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^waybill_store_events /{print $2}')"
curl -sf "http://127.0.0.1:$PORT/api/v1/traces/SO-00000042" | head -c 200; echo
wrk -t1 -c"$C" -d"${D}s" --latency -s bench/trace_latency.lua "http://127.0.0.1:$PORT" -- 125000
