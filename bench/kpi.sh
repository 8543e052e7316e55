#!/usr/bin/env bash
# KPI benchmark: 1,000,000 orders over 30 days. Ingest with and without rollups (their cost), a 30-day
# report by warehouse with a 1-day step (HTTP and CLI), against DuckDB computing the same figures.
# usage: bench/kpi.sh [ORDERS]   (needs python3 with duckdb: pip install duckdb; hyperfine, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=$PWD/.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
F="$OUT/orders-$N.ndjson"
[ -f "$F" ] || python3 bench/gen_orders.py "$N" 30 "$F"
FROM=2026-10-24T00:00:00Z; TO=2026-11-23T00:00:00Z
rm -f "$OUT"/kpi-norollup.db* "$OUT"/kpi.db*
echo "== ingest without rollups"; /usr/bin/time -f "wall %e s" $W ingest "$F" --db "$OUT/kpi-norollup.db" --no-rollups
echo "== ingest with rollups";    /usr/bin/time -f "wall %e s" $W ingest "$F" --db "$OUT/kpi.db"
echo "== waybill kpi (CLI, whole process)"
hyperfine -w 2 -r 10 "$W kpi --db $OUT/kpi.db --from $FROM --to $TO --by warehouse --step 1d --format json"
PORT=${PORT:-14520}
$W serve --db "$OUT/kpi.db" --port "$PORT" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
echo "== GET /api/v1/kpis (server warm), 20 requests"
URL="http://127.0.0.1:$PORT/api/v1/kpis?from=$FROM&to=$TO&by=warehouse&step=1d"
curl -s "$URL" >/dev/null
for i in $(seq 20); do curl -s -o /dev/null -w "%{time_total}\n" "$URL"; done | sort -n | awk '{a[NR]=$1} END {printf "min %.1f ms, median %.1f ms, max %.1f ms\n", a[1]*1000, a[int(NR/2)+1]*1000, a[NR]*1000}'
echo "== reference: DuckDB over the raw events"
python3 bench/kpi_duckdb.py "$F" "$FROM" "$TO" 3
