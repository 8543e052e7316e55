#!/usr/bin/env bash
# Alert evaluation with 1,000,000 open orders (issue #6): one evaluation of an SLA rule (target < 50 ms)
# and of a KPI rule by warehouse (target < 20 ms), on the live path the server runs (`waybill alerts
# --timings`: open-deadline index for SLA rules, rollups for KPI rules). Reference in the same run:
# the replay path (`--at`, which reads every order's stage times instead of the open-deadline index),
# timed as a whole process with hyperfine.
# usage: bench/alerts.sh [ORDERS]   (needs hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=$PWD/.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
AT=2026-11-20T00:00:00Z
DB="$OUT/alerts-$N.db"
if [ ! -f "$DB" ]; then
  python3 bench/gen_open_orders.py "$N" 0.01 "$AT" > "$OUT/open-orders-$N.ndjson"
  wc -l "$OUT/open-orders-$N.ndjson"
  $W ingest "$OUT/open-orders-$N.ndjson" --db "$DB" 2>&1 | tail -1
fi
sqlite3 "$DB" "SELECT count(*) AS open_orders FROM orders WHERE state < 9"
uptime
echo "== live path, 21 evaluations per rule"
$W alerts --db "$DB" --config bench/alerts.yaml --at "$AT" --timings 21 --format json > "$OUT/alerts-replay.json"
uptime
echo "== live path on a minute that is not on an hour (the server's grid: the KPI window's edges come from minute rollups)"
$W alerts --db "$DB" --config bench/alerts.yaml --at 2026-11-19T23:37:00Z --timings 21 --format json > /dev/null
echo "== live path off the minute (worst case: 30 s of orders' facts at each end of the KPI window)"
$W alerts --db "$DB" --config bench/alerts.yaml --at 2026-11-19T23:37:30Z --timings 21 --format json > /dev/null
echo "== reference: the SLA rules replayed (every order's stage times read, no open-deadline index), whole process"
hyperfine -w 1 -r 3 "$W alerts --db $DB --config bench/alerts-sla.yaml --at $AT --format json" 2>&1 | grep -E "Time|Range"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); [print(a['rule'], a['state'], a['labels'], a['orders_total']) for a in d['alerts']]" "$OUT/alerts-replay.json"
