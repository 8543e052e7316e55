#!/usr/bin/env bash
# Bytes per event of two builds on the same interleaved file, in pairs (before, after, before, after...),
# with each store's dbstat breakdown, ingest events/s and trace lookup latency (GET /api/v1/traces, wrk).
#
# usage: BEFORE=path AFTER=path bench/store_bytes_ab.sh [EVENTS] [PAIRS]   (default 1000000 1)
#   CASE=time|random   the interleaved file (bench/gen_interleaved.py, seed 16; generated when missing)
#   TRACE_SECONDS=10   wrk duration per store (2 connections; 0 skips the trace figures)
#   OUT=/tmp/waybill-bytes-ab   where the files and stores go (each store is deleted after its line)
#   FILE=path          an existing interleaved NDJSON file of EVENTS lines instead
# Each line: build, events/s (wall), bytes/event (the file after a WAL checkpoint), trace p50/p99 and
# requests/s, the 1-minute load average; then the tables and indexes of at least 1 byte/event.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}; PAIRS=${2:-1}
CASE=${CASE:-time}; TS=${TRACE_SECONDS:-10}
OUT=${OUT:-/tmp/waybill-bytes-ab}
: "${BEFORE:?BEFORE=path to the first build}" "${AFTER:?AFTER=path to the second build}"
mkdir -p "$OUT"
F=${FILE:-$OUT/interleaved-$CASE-$N-s16.ndjson}
if [ ! -f "$F" ]; then
  python3 bench/gen_interleaved.py --events "$N" --seed 16 --order "$CASE" "$F.part"
  mv "$F.part" "$F"
fi
PORT=${PORT:-14377}
load() { cut -d' ' -f1 /proc/loadavg; }
run() {  # run LABEL BINARY
  local db="$OUT/$1.db"
  rm -f "$db" "$db-wal" "$db-shm"
  local s e
  s=$(date +%s.%N)
  "$2" ingest "$F" --db "$db" > "$OUT/ingest.out" 2> "$OUT/ingest.err" || { cat "$OUT/ingest.err" >&2; exit 1; }
  e=$(date +%s.%N)
  local l1; l1=$(load)
  sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  local acc; acc=$(sed -nE 's/^accepted ([0-9]+),.*/\1/p' "$OUT/ingest.out")
  local orders; orders=$(sqlite3 "$db" "SELECT count(*) FROM orders WHERE order_id LIKE 'SO-%'")
  local trace="trace skipped"
  if [ "$TS" != 0 ]; then
    "$2" serve --port "$PORT" --db "$db" 2>/dev/null &
    local pid=$!
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
    # Orders 1..orders*0.9 are stored (the file is cut at N lines, so the last orders may be partial).
    trace=$(wrk -t1 -c2 -d"${TS}s" --latency -s bench/trace_interleaved.lua "http://127.0.0.1:$PORT" -- $((orders * 9 / 10)) |
      awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /Requests\/sec/{r=$2} END{printf "trace p50 %s p99 %s, %s req/s", p50, p99, r}')
    kill "$pid"; wait "$pid" 2>/dev/null || true
  fi
  python3 -c "import sys; n,s,e,b,a=map(float,sys.argv[1:6]); print(f'{sys.argv[6]:8s} {n/(e-s):8,.0f} events/s ({e-s:5.1f} s)  {b/a:6.1f} bytes/event  {sys.argv[7]}  load {sys.argv[8]}/{sys.argv[9]}')" \
    "$N" "$s" "$e" "$(stat -c %s "$db")" "$acc" "$1" "$trace" "$l1" "$(load)"
  sqlite3 "$db" "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC" |
    python3 -c "import sys; rows=[l.strip().split('|') for l in sys.stdin]; print('         ' + ', '.join(f'{n} {int(b)/$acc:.1f}' for n,b in rows if int(b) >= $acc))"
  rm -f "$db" "$db-wal" "$db-shm"
}
echo "== $N interleaved ($CASE) lines; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); before $BEFORE, after $AFTER"
for _ in $(seq "$PAIRS"); do
  run before "$BEFORE"
  run after "$AFTER"
done
