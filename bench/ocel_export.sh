#!/usr/bin/env bash
# OCEL 2.0 export (`waybill export ocel`): events/s and peak RSS at two store sizes, to show throughput
# and flat memory. Stores are built by bench/gen_orders.py (accepted, allocated, 5% re-allocated,
# released, shipped; 1-3 lines an order: ~4.05 events an order) and `waybill ingest`, once, then kept.
# usage: bench/ocel_export.sh [SMALL_ORDERS] [LARGE_ORDERS] [RUNS]     (default 100000 1000000 2)
#   GZIP=1 also exports to .json.gz; DATA=interleaved uses bench/gen_interleaved.py --orders instead;
#   WAYBILL=BIN measures another binary (a copy, for before/after pairs); WAYBILL_OCEL_THREADS=1 one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-100000}; LARGE=${2:-1000000}; RUNS=${3:-2}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=${WAYBILL:-$PWD/.build/release/waybill}
[ -x "$W" ] || swift build -c release --product waybill
FROM=2026-01-01T00:00:00Z; TO=2027-01-01T00:00:00Z
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
for N in $SMALL $LARGE; do
  if [ "${DATA:-orders}" = interleaved ]; then
    F="$OUT/interleaved-orders-$N.ndjson"; DB="$OUT/ocel-interleaved-$N.db"
    [ -f "$F" ] || python3 bench/gen_interleaved.py --orders "$N" "$F"
  else
    F="$OUT/orders-$N.ndjson"; DB="$OUT/ocel-orders-$N.db"
    [ -f "$F" ] || python3 bench/gen_orders.py "$N" 30 "$F"
  fi
  [ -f "$DB" ] || { echo "== ingest $F"; $W ingest "$F" --db "$DB" >/dev/null; }
  for r in $(seq "$RUNS"); do
    for ext in json ${GZIP:+json.gz}; do
      rm -f "$OUT/ocel-$N.$ext"
      /usr/bin/time -f "%e %M" -o "$OUT/ocel.time" \
        "$W" export ocel --db "$DB" --from "$FROM" --to "$TO" --out "$OUT/ocel-$N.$ext" 2> "$OUT/ocel.summary"
      read -r wall rss < "$OUT/ocel.time"
      events=$(sed -n 's/^wrote \([0-9]*\) events.*/\1/p' "$OUT/ocel.summary")
      size=$(stat -c %s "$OUT/ocel-$N.$ext")
      awk -v n="$N" -v e="$events" -v w="$wall" -v m="$rss" -v s="$size" -v x="$ext" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
        'BEGIN { printf "%8d orders  %9d events  %-8s %7.1f s  %8.0f events/s  peak RSS %4.0f MiB  %6.0f MiB out  load %s\n", n, e, x, w, e / w, m / 1024, s / 1048576, load }'
      cat "$OUT/ocel.summary" >&2
    done
  done
done
