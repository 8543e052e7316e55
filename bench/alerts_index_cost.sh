#!/usr/bin/env bash
# What the open-deadline indexes of SLA rules (`orders_open_<stage>`, created when rules load) cost
# bulk ingest: the alerts benchmark's 5.6M events ingested into a store that has the indexes of
# bench/alerts.yaml from the start, and into one that has none, interleaved.
# usage: bench/alerts_index_cost.sh [PAIRS]   (run bench/alerts.sh first: it writes the events file)
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-1}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
W=$PWD/.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
F="$OUT/open-orders-1000000.ndjson"
[ -f "$F" ] || { echo "no $F: run bench/alerts.sh first"; exit 1; }
DB="$OUT/index-cost.db"
uptime
for _ in $(seq "$PAIRS"); do
  for mode in with without; do
    rm -f "$DB" "$DB"-*
    head -1 "$F" | $W ingest - --db "$DB" > /dev/null
    if [ "$mode" = with ]; then $W alerts --db "$DB" --config bench/alerts.yaml --timings 1 --format json > /dev/null 2>&1; fi
    echo -n "$mode open-deadline indexes ($(sqlite3 "$DB" "SELECT count(*) FROM sqlite_master WHERE name LIKE 'orders_open_%'")): "
    $W ingest "$F" --db "$DB" | tail -1
  done
done
uptime
rm -f "$DB" "$DB"-*
