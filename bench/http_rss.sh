#!/usr/bin/env bash
# Server memory as the store grows under HTTP ingest: `waybill serve` on a fresh store takes the
# interleaved 100-event bodies of bench/http_ingest.sh from 8 connections (wrk, bench/http_passes.lua:
# each pass over the 1.6M-event bodies stores new events, ids and subjects prefixed per pass) until
# EVENTS are stored. Prints, at each million stored, the events/s of that million, the server's RSS and
# its peak so far (VmRSS, VmHWM), the store's size on disk and the load.
# usage: bench/http_rss.sh [EVENTS]   (default 10000000; needs wrk and the bodies: run
#   `CASES=interleaved bash bench/http_ingest.sh 20` once)   WAYBILL=path  another build
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
W=${WAYBILL:-.build/release/waybill}
PORT=${PORT:-14319}
BODIES=${BODIES:-$OUT/http-bodies-1600000-s16}
COUNT=$(ls "$BODIES" | wc -l)
DB=${DB:-$OUT/http-rss.db}
rm -f "$DB"*
"$W" serve --port "$PORT" --db "$DB" 2>"$OUT/serve-rss.log" &
PID=$!
WRK=
cleanup() { [ -z "$WRK" ] || kill "$WRK" 2>/dev/null || true; kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# Long enough for N at 5,000 events/s; stopped once N are stored.
wrk -t2 -c8 -d$(( N / 5000 + 60 ))s -s bench/http_passes.lua "http://127.0.0.1:$PORT" -- "$BODIES" "$COUNT" 2 > "$OUT/wrk-rss.txt" &
WRK=$!
stored() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^waybill_events_accepted_total[ {]/{s+=$NF} END{print s+0}'; }
next=1000000; t0=$(date +%s.%N); tp=$t0; sp=0
echo "million  events/s  RSS MiB  peak MiB  store MiB (db+wal)  load"
while kill -0 "$WRK" 2>/dev/null; do
  sleep 2
  s=$(stored)
  if [ "$s" -ge "$next" ]; then
    t=$(date +%s.%N)
    rss=$(awk '/VmRSS/{print int($2/1024)}' /proc/$PID/status); hwm=$(awk '/VmHWM/{print int($2/1024)}' /proc/$PID/status)
    size=$(du -cm "$DB" "$DB-wal" 2>/dev/null | tail -1 | cut -f1)
    python3 -c "print(f'{$next // 1000000:7d}  {($s - $sp) / ($t - $tp):8,.0f}  {$rss:7d}  {$hwm:8d}  {$size:18d}  $(cut -d' ' -f1 /proc/loadavg)')"
    tp=$t; sp=$s; next=$(( next + 1000000 ))
    [ "$s" -lt "$N" ] || break
  fi
done
python3 -c "print(f'stored $(stored) events in {$(date +%s.%N) - $t0:.0f} s')"
