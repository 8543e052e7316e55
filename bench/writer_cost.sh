#!/usr/bin/env bash
# The server's write path without HTTP, A/B: `waybill ingest --batch 384` with WAYBILL_INGEST_DEFERRAL=0
# writes every batch's order rows and rollups in its transaction, as `waybill serve` does with HTTP
# requests (bench/http_ingest.sh commits ~380 events), without wrk and the server's HTTP work on the
# same two cores. The builds take turns for ROUNDS rounds on a fresh store each; per build it prints
# the fastest and the median run's events/s and CPU (user + system) per event. On a VM whose host steals
# CPU, the fastest of several runs is the steadiest figure. (valgrind's callgrind would count
# instructions exactly, but 3.19 crashes on the Swift binary.)
# usage: bench/writer_cost.sh [EVENTS [ROUNDS]] label=binary ...   (default 100000 events, 5 rounds)
#   the events: lines 20,001..20,000+EVENTS of bench/gen_interleaved.py's time-sorted file (seed 16),
#   so the store starts with orders already under way; BATCH=384 sets another batch size
set -euo pipefail
cd "$(dirname "$0")/.."
N=100000; R=5
[[ "${1:-}" =~ ^[0-9]+$ ]] && { N=$1; shift; }
[[ "${1:-}" =~ ^[0-9]+$ ]] && { R=$1; shift; }
OUT=${BENCH_DIR:-/tmp/waybill-bench}
BATCH=${BATCH:-384}
mkdir -p "$OUT"
SRC="$OUT/interleaved-time-1600000-s16.ndjson"
[ -f "$SRC" ] || { python3 bench/gen_interleaved.py --events 1600000 --seed 16 "$SRC.part" && mv "$SRC.part" "$SRC"; }
F="$OUT/writer-cost-$N.ndjson"
[ -f "$F" ] || head -n $((20000 + N)) "$SRC" | tail -n "$N" > "$F"
RES="$OUT/writer-cost.txt"; : > "$RES"
for r in $(seq "$R"); do for lb in "$@"; do
  l=${lb%%=*}; b=${lb#*=}
  rm -f "$OUT/writer-cost.db"*
  /usr/bin/time -f "%e %U %S" -o "$OUT/writer-cost.time" env WAYBILL_INGEST_DEFERRAL=0 \
    "$b" ingest "$F" --db "$OUT/writer-cost.db" --batch "$BATCH" --sort off > /dev/null 2>&1
  echo "$l $(cat "$OUT/writer-cost.time")" >> "$RES"
done; done
rm -f "$OUT/writer-cost.db"*
python3 - "$RES" "$N" "$BATCH" <<'PY'
import sys, statistics, collections
runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    l, e, u, s = line.split()
    runs.setdefault(l, []).append((float(e), float(u) + float(s)))
n, batch = int(sys.argv[2]), sys.argv[3]
for l, rs in runs.items():
    walls = sorted(e for e, _ in rs); cpus = sorted(c for _, c in rs)
    print(f"{l:12s} {n / walls[0]:8,.0f} events/s fastest, {n / statistics.median(walls):8,.0f} median; "
          f"CPU {cpus[0] / n * 1e6:5.1f} us/event least, {statistics.median(cpus) / n * 1e6:5.1f} median "
          f"({len(rs)} runs of {n:,} events in batches of {batch})")
PY
