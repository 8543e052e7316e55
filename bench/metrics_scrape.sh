#!/usr/bin/env bash
# GET /metrics with 1,000,000 orders stored (issue 14: a scrape under 50 ms). Release build.
# The store holds bench/gen_orders.py's orders with every time shifted so that the data ends at the
# current hour: the 1h and 1d business windows then hold orders (as on a live server) instead of
# being empty. Prints: the first (cold) scrape, then 100 scrapes 100 ms apart, idle and while a
# client posts a small batch every 100 ms (every commit makes the cached figures stale), and the
# cost of one read of the store's figures (waybill_metrics_figures_read_seconds).
# usage: bench/metrics_scrape.sh [ORDERS]    (needs curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
BASE=${BENCH_DIR:-/tmp/waybill-bench}
OUT=$BASE/metrics
mkdir -p "$OUT"
W=$PWD/.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
SRC=$BASE/orders-$N.ndjson
[ -f "$SRC" ] || python3 bench/gen_orders.py "$N" 30 "$SRC"
HOUR=$(date -u +%Y-%m-%dT%H)
F=$OUT/orders-$N-$HOUR.ndjson
DB=$OUT/metrics-$N-$HOUR.db
if [ ! -f "$DB" ]; then
  [ -f "$F" ] || python3 - "$SRC" "$F" <<'PY'
import re, sys
from datetime import datetime, timezone, timedelta
src, dst = sys.argv[1], sys.argv[2]
end = datetime(2026, 11, 23, tzinfo=timezone.utc)        # gen_orders.py: orders accepted until then
now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
shift = now - end
pat = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z"')
def sub(m):
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc) + shift
    return '"' + t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z" + '"'
with open(src) as i, open(dst, "w", buffering=1 << 22) as o:
    for line in i: o.write(pat.sub(sub, line))
PY
  echo "== ingest $N orders ($(wc -l < "$F") events)"
  /usr/bin/time -f "wall %e s" $W ingest "$F" --db "$DB"
fi
PORT=${PORT:-14620}
$W serve --db "$DB" --port "$PORT" 2>"$OUT/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/metrics"
stats() { sort -n | awk '{a[NR]=$1} END {printf "n %d: min %.1f ms, median %.1f ms, p90 %.1f ms, max %.1f ms\n", NR, a[1]*1000, a[int(NR/2)+1]*1000, a[(int(NR*0.9) > 0 ? int(NR*0.9) : 1)]*1000, a[NR]*1000}'; }
echo "== first scrape (cold: reads the store's figures before answering)"
curl -s -o /dev/null -w "%{time_total}\n" "$URL" | stats
curl -s "$URL" | grep -E '^waybill_(store_orders|metrics_figures_read_seconds|orders_allocated\{warehouse="DC-EAST",window="1d"\}) '
echo "== 100 scrapes, 100 ms apart, idle"
for i in $(seq 100); do curl -s -o /dev/null -w "%{time_total}\n" "$URL"; sleep 0.1; done | stats
echo "== 100 scrapes, 100 ms apart, while a client posts 20 events every 100 ms"
( i=0; while true; do i=$((i+1)); python3 - "$i" "$$" <<'PY' | curl -s -o /dev/null -H 'Content-Type: application/x-ndjson' --data-binary @- "http://127.0.0.1:$PORT/v1/events"; sleep 0.1; done ) &
import sys, json, datetime
i, run = int(sys.argv[1]), sys.argv[2]; now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
for k in range(20):
    print(json.dumps({"specversion": "1.0", "id": f"bench-{run}-{i}-{k}", "source": "bench", "type": "order.accepted", "time": now,
                      "subject": f"BENCH-{run}-{i}-{k}", "data": {"channel": "web", "lines": [{"line": 1, "sku": "A", "qty": 1}]}}))
PY
POSTER=$!
trap 'kill $POSTER 2>/dev/null || true; kill $PID 2>/dev/null || true' EXIT
sleep 1
for i in $(seq 100); do curl -s -o /dev/null -w "%{time_total}\n" "$URL"; sleep 0.1; done | stats
kill $POSTER 2>/dev/null || true
curl -s "$URL" | grep -E '^waybill_(metrics_figures_read_seconds|metrics_figures_age_seconds|events_accepted_total\{source="bench"\}) '
