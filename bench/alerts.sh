#!/usr/bin/env bash
# Alert evaluation with 1,000,000 open orders (issue #6): one evaluation of an SLA rule (target < 50 ms)
# and of a KPI rule by warehouse (target < 20 ms), through the live path the server runs
# (`waybill alerts --timings`), then a full replay at the same instant for comparison.
# Usage: bench/alerts.sh [ORDERS]   (needs a release build: swift build -c release)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
AT=2026-11-20T00:00:00Z
OUT=bench/out; mkdir -p $OUT
W=.build/release/waybill
DB=$OUT/alerts-$N.db
if [ ! -f "$DB" ]; then
  python3 bench/gen_open_orders.py "$N" 0.01 "$AT" > $OUT/open-orders-$N.ndjson
  wc -l $OUT/open-orders-$N.ndjson
  $W ingest $OUT/open-orders-$N.ndjson --db "$DB" 2>&1 | tail -1
fi
uptime
$W alerts --db "$DB" --config bench/alerts.yaml --at "$AT" --timings 21 --format json > $OUT/alerts-live.json
echo "replay (whole process):"
hyperfine -w 1 -r 5 "$W alerts --db $DB --config bench/alerts.yaml --at $AT --format json" 2>&1 | grep -E "Time|Range"
