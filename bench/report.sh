#!/usr/bin/env bash
# Saved-report benchmark over 1,000,000 orders of 30 days: the shipped weekly executive report
# (previous ISO week in Europe/Berlin, by warehouse, 1-day step, 6 KPIs, compared with the week before,
# two drill-downs) and the same report without drill-downs (bench/report-queries/reports/weekly-kpis.yaml).
# CLI (whole process, --db)
# The first open of a store from before the drill-down rows (schema 12) builds them from the facts (about 23 s at 1M orders).
# in each format, and GET /api/v1/reports/{name} on a warm server. Target: under 500 ms.
# usage: bench/report.sh [ORDERS] [RUNS]   (needs hyperfine, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${2:-5}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=$PWD/.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
F="$OUT/orders-$N.ndjson"
[ -f "$F" ] || python3 bench/gen_orders.py "$N" 30 "$F"     # 2026-10-24 .. 2026-11-23
DB="$OUT/report-$N.db"
if [ ! -f "$DB" ]; then
  echo "== ingest $N orders"; /usr/bin/time -f "wall %e s" $W ingest "$F" --db "$DB"
fi
AT=2026-11-18T12:00:00Z          # a Wednesday: the previous ISO week is 2026-11-09 .. 2026-11-16 (Berlin)
Q="$OUT/report-queries"
mkdir -p "$Q/reports"
cp queries/reports/weekly-executive.yaml bench/report-queries/reports/weekly-kpis.yaml "$Q/reports/"
for r in weekly-kpis weekly-executive; do
  for fmt in html json csv md; do
    echo "== waybill report $r --format $fmt (CLI, whole process, $RUNS runs)"
    hyperfine -N -w 1 -r "$RUNS" "$W report $r --queries $Q --db $DB --at $AT --format $fmt" 2>/dev/null | grep -E "Time|Range"
  done
done
PORT=${PORT:-14530}
WAYBILL_REPORT_SECRET=bench $W serve --db "$DB" --port "$PORT" --queries "$Q" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
for r in weekly-kpis weekly-executive; do
  URL="http://127.0.0.1:$PORT/api/v1/reports/$r?format=html&at=$AT"
  echo "== GET /api/v1/reports/$r?format=html (server warm), $RUNS requests"
  curl -s "$URL" >/dev/null
  for i in $(seq "$RUNS"); do curl -s -o /dev/null -w "%{time_total}\n" "$URL"; done | sort -n \
    | awk '{a[NR]=$1} END {printf "min %.1f ms, median %.1f ms, max %.1f ms\n", a[1]*1000, a[int(NR/2)+1]*1000, a[NR]*1000}'
done
# The drill-downs alone (GET /api/v1/kpis?explain=), warm: the /kpis page's (1 day, one warehouse), the week's p95
# allocation delay, 30 days of fill rate, and the /kpis page drill-down itself.
for u in "/api/v1/kpis?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&explain=allocation_delay.p90_s&group=DC-EAST" \
         "/kpis?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&explain=allocation_delay.p90_s&group=DC-EAST" \
         "/api/v1/kpis?from=2026-11-09T00:00:00Z&to=2026-11-16T00:00:00Z&explain=allocation_delay.p95_s" \
         "/api/v1/kpis?from=2026-10-24T00:00:00Z&to=2026-11-23T00:00:00Z&explain=fill_rate"; do
  echo "== GET $u (server warm), $RUNS requests"
  curl -s -o /dev/null "http://127.0.0.1:$PORT$u"
  for i in $(seq "$RUNS"); do curl -s -o /dev/null -w "%{time_total}\n" "http://127.0.0.1:$PORT$u"; done | sort -n \
    | awk '{a[NR]=$1} END {printf "min %.1f ms, median %.1f ms, max %.1f ms\n", a[1]*1000, a[int(NR/2)+1]*1000, a[NR]*1000}'
done
echo "== orders allocated in the report's week"
$W report weekly-kpis --queries "$Q" --db "$DB" --at $AT --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["window"], d["current"]["total"]["orders_allocated"])'
