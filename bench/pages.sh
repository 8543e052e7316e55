#!/usr/bin/env bash
# Server-side render time of every page: the overview (/), /kpis (report, chart, drill-down), /alerts, /search,
# /services (24 h of spans) and /orders/{key}, with 1,000,000 orders stored (issue 14), on a release server
# started by this script, timed with curl (time_total on loopback): the first request of each (the overview's is
# the first of the process) and then REQUESTS warm ones.
# Data: the store of bench/order_pages.sh (bench/gen_orders.py 1000000 30: 4,030,000 events over the 30 days
# before 2026-11-23, spans for the last day); DB=PATH reuses one. The overview's windows end now, after the
# data, so its KPI tiles and services are cheap there; its stuck-orders panel reads the open orders of the store.
# usage: bench/pages.sh [REQUESTS]   (needs curl; DB defaults to $BENCH_DIR/pages-1000000.db)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-20}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
DB=${DB:-$OUT/pages-1000000.db}
[ -f "$DB" ] || { echo "no store at $DB: run bench/order_pages.sh first (or set DB)"; exit 1; }
W=${WAYBILL:-$PWD/.build/release/waybill}
[ -x "$W" ] || swift build -c release --product waybill
PORT=${PORT:-14541}
WAYBILL_HOOK_SECRET=bench $W serve --db "$DB" --port "$PORT" --config queries/alerts 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
B="http://127.0.0.1:$PORT"
stats() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.9)+1; if (i>NR) i=NR; printf "min %.1f ms, median %.1f ms, p90 %.1f ms, max %.1f ms (%d requests)\n", a[1]*1000, a[int(NR/2)+1]*1000, a[i]*1000, a[NR]*1000, NR}'; }
time_url() { curl -s -o /dev/null -w "%{time_total}\n" "$1"; }
echo "store: $(curl -s "$B/api/v1/kpis?from=2026-10-24T00:00:00Z&to=2026-11-23T00:00:00Z" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["total"]["orders_allocated"], "orders allocated in the 30 days")')"
run() {
  local name=$1 url=$2
  local first; first=$(time_url "$url")
  echo "== $name: first $(awk -v t="$first" 'BEGIN{printf "%.1f ms", t*1000}'), then:"
  for _ in $(seq "$R"); do time_url "$url"; done | stats
}
run "GET / (overview)" "$B/"
run "GET /api/v1/stuck" "$B/api/v1/stuck"
run "GET /kpis (30 days by warehouse, step 1d, chart)" "$B/kpis?from=2026-10-24T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&step=1d"
run "   the API document (GET /api/v1/kpis, same window)" "$B/api/v1/kpis?from=2026-10-24T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&step=1d"
run "GET /kpis (7 days, step 1h)" "$B/kpis?from=2026-11-16T00:00:00Z&to=2026-11-23T00:00:00Z&step=1h"
run "GET /kpis drill-down (1 day, allocation_delay.p90_s, one warehouse)" "$B/kpis?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&explain=allocation_delay.p90_s&group=DC-EAST"
run "   the API drill-down (same)" "$B/api/v1/kpis?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&explain=allocation_delay.p90_s&group=DC-EAST"
run "GET /alerts (live, 6 shipped rules)" "$B/alerts"
run "GET /search?state=released" "$B/search?state=released"
run "GET /services (24 h before 2026-11-23, 200,000 spans)" "$B/services?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z"
run "   the API document (GET /api/v1/services, same window)" "$B/api/v1/services?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z"
run "GET /services (7 days before 2026-11-23)" "$B/services?from=2026-11-16T00:00:00Z&to=2026-11-23T00:00:00Z"
run "GET /orders/SO-00999999 (6 spans, steps against 7 days)" "$B/orders/SO-00999999"
