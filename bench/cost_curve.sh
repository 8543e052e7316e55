#!/usr/bin/env bash
# How ingest cost grows: EVENTS interleaved events (bench/gen_interleaved.py, time-sorted, seed 16) into
# one store, in three `waybill ingest` runs that end at the MARKS. Per million events: events/s (from
# `--progress-every`). At each mark: the store's file bytes per stored event (after a WAL checkpoint),
# trace lookup latency over HTTP (`GET /api/v1/traces/SO-…` of random stored orders, wrk, 1 connection,
# p50/p99) and the 30-day KPI report by warehouse with a 1-day step (HTTP, warm, median of 10).
# Writes $OUT/curve.csv, $OUT/marks.csv and $OUT/curve.svg (bench/cost_curve_svg.py).
#
# usage: bench/cost_curve.sh [EVENTS]   (default 30000000; needs python3, sqlite3, wrk, curl, /usr/bin/time;
#        about 25 GB of disk for 30M: the NDJSON segments are deleted once ingested)
#   MARKS="1000000 10000000 30000000"   where to stop and measure
#   PROGRESS=N                           a rate every N events (default 1000000)
#   WAYBILL=path                         another build (default .build/release/waybill, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30000000}
MARKS=${MARKS:-1000000 10000000 30000000}
OUT=${BENCH_DIR:-/tmp/waybill-bench}/cost-curve
W=${WAYBILL:-$PWD/.build/release/waybill}
[ -n "${WAYBILL:-}" ] || [ -x "$W" ] || swift build -c release --product waybill
mkdir -p "$OUT"
DB="$OUT/store.db"
rm -f "$DB" "$DB"-* "$OUT"/part-*.ndjson
echo "== $N events; marks $MARKS; waybill $W; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"

# The stream, cut at the marks (each part is the lines between two marks).
python3 bench/gen_interleaved.py --events "$N" --seed 16 - 2>"$OUT/gen.err" | python3 -c '
import sys
marks = [int(m) for m in sys.argv[2:]]
out, k, n = open(f"{sys.argv[1]}/part-0.ndjson", "wb"), 0, 0
for line in sys.stdin.buffer:
    if n == marks[k]:
        out.close(); k += 1
        out = open(f"{sys.argv[1]}/part-{k}.ndjson", "wb")
    out.write(line); n += 1
out.close()
' "$OUT" $MARKS
cat "$OUT/gen.err" >&2

echo "events,seconds,events_per_s,load_sampled" > "$OUT/curve.csv"
# The machine's load every 5 s (epoch seconds, 1-minute load), so each million's rate is read with the
# load it ran at: on a shared machine the rate follows other work more than the store's size.
( while :; do echo "$(date +%s.%N) $(cut -d' ' -f1 /proc/loadavg)"; sleep 5; done ) > "$OUT/load.log" &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT
echo "events,stored,bytes,bytes_per_event,ingest_rss_mib,trace_p50_ms,trace_p99_ms,trace_rps,kpi_median_ms,load" > "$OUT/marks.csv"
cat > "$OUT/trace.lua" <<'LUA'
local orders = 1000
function init(args) orders = tonumber(args[1]) or orders; math.randomseed(os.time()) end
function request() return wrk.format("GET", string.format("/api/v1/traces/SO-%08d", math.random(1, orders))) end
LUA
done_before=0; t_before=0; k=0
for m in $MARKS; do
  part="$OUT/part-$k.ndjson"
  start=$(date +%s.%N)
  /usr/bin/time -f %M -o "$OUT/rss" "$W" ingest "$part" --db "$DB" --progress-every "${PROGRESS:-1000000}" > "$OUT/ingest-$k.out" 2> "$OUT/ingest-$k.err" || true
  end=$(date +%s.%N)
  grep '^accepted' "$OUT/ingest-$k.out" || { cat "$OUT/ingest-$k.err" >&2; exit 1; }
  # Per million: events so far (all parts) and the rate of that million.
  # The load of each million: the highest 1-minute load sampled while that million was ingested.
  awk -v base="$done_before" -v t0="$t_before" -v start="$start" '
    FNR == NR { ts[++n] = $1; ld[n] = $2; next }
    /^progress/ { hi = -1; last = ld[1]
                  for (i = 1; i <= n; i++) {
                    if (ts[i] <= start + $4) last = ld[i]
                    if (ts[i] >= start + prev && ts[i] <= start + $4 + 5 && ld[i] > hi) hi = ld[i]
                  }
                  if (hi < 0) hi = last  # a million faster than the 5 s sampling: the latest sample before its end
                  printf "%d,%.2f,%.0f,%.2f\n", base + $2, t0 + $4, $6, hi; prev = $4 }' "$OUT/load.log" "$OUT/ingest-$k.err" >> "$OUT/curve.csv"
  t_before=$(python3 -c "print($t_before + $end - $start)")
  done_before=$m
  rm -f "$part"
  sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE)" > /dev/null
  bytes=$(stat -c %s "$DB")
  stored=$(sqlite3 "$DB" "SELECT coalesce(sum(n), 0) FROM event_blocks" 2>/dev/null || sqlite3 "$DB" "SELECT count(*) FROM events")
  orders=$(sqlite3 "$DB" "SELECT max(order_id) FROM orders WHERE order_id LIKE 'SO-%'" | sed 's/SO-0*//')
  PORT=${PORT:-14611}
  "$W" serve --db "$DB" --port "$PORT" 2>/dev/null &
  PID=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  wrk -t1 -c1 -d10s --latency -s "$OUT/trace.lua" "http://127.0.0.1:$PORT" -- "$orders" > "$OUT/wrk-$k.txt"
  p50=$(awk '$1=="50%" {print $2}' "$OUT/wrk-$k.txt"); p99=$(awk '$1=="99%" {print $2}' "$OUT/wrk-$k.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$k.txt")
  URL="http://127.0.0.1:$PORT/api/v1/kpis?from=2026-10-05T00:00:00Z&to=2026-11-04T00:00:00Z&by=warehouse&step=1d"
  curl -sf "$URL" > "$OUT/kpi-$k.json"
  kpi=$(for i in $(seq 10); do curl -s -o /dev/null -w "%{time_total}\n" "$URL"; done | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int(NR/2)+1]*1000}')
  kill $PID; wait $PID 2>/dev/null || true
  ms() { python3 -c "import sys; v=sys.argv[1]; print(float(v[:-2]) if v.endswith('ms') else float(v[:-2])/1000 if v.endswith('us') else float(v[:-1])*1000)" "$1"; }
  echo "$m,$stored,$bytes,$((bytes / stored)),$(( $(tail -1 "$OUT/rss") / 1024 )),$(ms "$p50"),$(ms "$p99"),$rps,$kpi,$(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/marks.csv"
  echo "mark $m: $(tail -1 "$OUT/marks.csv")"
  k=$((k + 1))
done
cat "$OUT/curve.csv"
cat "$OUT/marks.csv"
python3 bench/cost_curve_svg.py "$OUT/curve.csv" "$OUT/marks.csv" "$OUT/curve.svg"
echo "plot: $OUT/curve.svg"
