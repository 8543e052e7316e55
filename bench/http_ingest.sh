#!/usr/bin/env bash
# HTTP ingest: 100-event NDJSON batches from 8 concurrent connections (wrk), against `waybill serve`.
# Reports events/s (requests/s x 100 when every response is 200) and the server's peak RSS.
# usage: bench/http_ingest.sh [SECONDS]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-20}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
PORT=${PORT:-14318}
rm -f "$OUT/http.db"*
$W serve --port "$PORT" --db "$OUT/http.db" 2>"$OUT/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
peak=0
( while kill -0 $PID 2>/dev/null; do r=$(awk '/VmRSS/{print $2}' /proc/$PID/status 2>/dev/null || echo 0); echo "$r"; sleep 0.5; done ) > "$OUT/rss.txt" &
SAMPLER=$!
# Enough distinct bodies per wrk thread for the run at up to ~800 requests/s.
BODIES=$(( D * 400 ))
wrk -t2 -c8 -d"${D}s" --latency -s bench/http_ingest.lua "http://127.0.0.1:$PORT" -- "$BODIES" | tee "$OUT/wrk-ingest.txt"
kill $SAMPLER 2>/dev/null || true
rps=$(awk '/Requests\/sec/{print $2}' "$OUT/wrk-ingest.txt")
non2xx=$(awk '/Non-2xx/{print $5}' "$OUT/wrk-ingest.txt"); non2xx=${non2xx:-0}
stored=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^waybill_events_accepted_total/{print $2}')
peak=$(sort -n "$OUT/rss.txt" | tail -1)
echo "requests/s: $rps  non-2xx: $non2xx  events stored: $stored in ${D}s"
python3 -c "print(f'events/s (stored / duration): {int($stored)/$D:.0f}   peak server RSS: {int($peak)/1024:.0f} MiB')"
