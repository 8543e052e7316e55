#!/usr/bin/env bash
# Page render time with 1,000,000 orders stored (issue 14): GET /orders/{key} (the trace, its steps against
# the 7 days before each, the timeline SVG) and GET /services (the service map) on a warm server.
# Data: bench/gen_orders.py 1000000 30 (4,030,000 events: accepted, allocated, released, shipped; 5%
# re-allocated late) and bench/gen_order_spans.py (6 spans per order for the last day's orders).
# usage: bench/order_pages.sh [ORDERS] [REQUESTS]   (needs python3, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}; R=${2:-20}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=${WAYBILL:-$PWD/.build/release/waybill}
[ -x "$W" ] || swift build -c release --product waybill
F="$OUT/orders-$N.ndjson"
[ -f "$F" ] || python3 bench/gen_orders.py "$N" 30 "$F"
DB="$OUT/pages-$N.db"; SPANS="$OUT/order-spans-$N"
if [ ! -f "$DB" ]; then
  echo "== ingest $F"; /usr/bin/time -f "wall %e s, peak RSS %M KiB" $W ingest "$F" --db "$DB"
fi
[ -d "$SPANS" ] || python3 bench/gen_order_spans.py "$N" 30 1 "$SPANS"
PORT=${PORT:-14531}
$W serve --db "$DB" --port "$PORT" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
B="http://127.0.0.1:$PORT"
if [ ! -f "$SPANS/.posted" ]; then
  echo "== post spans"; for f in "$SPANS"/*.json; do curl -sf -o /dev/null -XPOST "$B/v1/traces" -H 'Content-Type: application/json' --data-binary @"$f"; done
  touch "$SPANS/.posted"
fi
stats() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.9)+1; if (i>NR) i=NR; printf "min %.1f ms, median %.1f ms, p90 %.1f ms, max %.1f ms (%d requests)\n", a[1]*1000, a[int(NR/2)+1]*1000, a[i]*1000, a[NR]*1000, NR}'; }
time_url() { curl -s -o /dev/null -w "%{time_total}\n" "$1"; }
# Orders spread over the 30 days (shipped ones, one with spans at the end, one early with little history).
KEYS=""
for i in $(seq 0 $((R - 1))); do KEYS="$KEYS SO-$(printf %08d $(( (N - 1) - i * (N / R) + (i % 7) )))"; done
echo "== GET /orders/{key}: $R orders across the window, each asked once cold then 3 times warm"
for k in $KEYS; do time_url "$B/orders/$k" >/dev/null; done
for k in $KEYS; do for _ in 1 2 3; do time_url "$B/orders/$k"; done; done | stats
echo "   the trace document of the same orders (GET /api/v1/traces/{key}, steps included)"
for k in $KEYS; do for _ in 1 2 3; do time_url "$B/api/v1/traces/$k"; done; done | stats
echo "   page size: $(curl -s "$B/orders/SO-$(printf %08d $((N - 1)))" | wc -c) bytes (an order with 6 spans)"
END=2026-11-23T00:00:00Z
for w in 1h 6h 24h; do
  q="from=$(python3 -c "import datetime as d;print((d.datetime(2026,11,23,tzinfo=d.timezone.utc)-d.timedelta(hours=int('$w'[:-1]))).strftime('%Y-%m-%dT%H:%M:%SZ'))")&to=$END"
  spans=$(curl -s "$B/api/v1/services?$q" | python3 -c "import json,sys;d=json.load(sys.stdin);print(sum(s['spans'] for s in d['services']))")
  echo "== GET /services, window $w before $END ($spans spans), first page request (after the API count) $(time_url "$B/services?$q" | awk '{printf "%.1f ms", $1*1000}'), then $R requests"
  for _ in $(seq "$R"); do time_url "$B/services?$q"; done | stats
  echo "   the API document of the same window (GET /api/v1/services)"
  for _ in $(seq "$R"); do time_url "$B/api/v1/services?$q"; done | stats
done
