#!/usr/bin/env bash
# HTTP ingest: 100-event NDJSON batches from 8 concurrent connections (wrk, 2 threads), against
# `waybill serve` with a fresh store, in two passes of SECONDS each (one output line each):
#   interleaved  bodies cut from bench/gen_interleaved.py's time-sorted file (all orders' events
#                merged by arrival, stragglers, ~5% resends, clock offsets, late links), sent in
#                file order: the default data
#   contiguous   bench/http_ingest.lua's synthetic bodies: 12-13 orders a body, each order's events
#                together, no resends (the old case)
# Reports events stored a second (the server's waybill_events_accepted_total over the pass; resends
# count as duplicates, not stored), events handled a second (accepted + duplicates), requests/s,
# non-2xx answers, latency p50/p99, the server's peak RSS (VmRSS sampled every 0.5 s), the writer's commits a
# second with the events handled per commit, and the load.
# usage: bench/http_ingest.sh [SECONDS]   (default 20; needs wrk: apt-get install wrk, python3)
#   WAYBILL=path   another build (default .build/release/waybill, built if missing)
#   CASES="interleaved contiguous"   which passes, in this order
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-20}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
CASES=${CASES:-interleaved contiguous}
SEED=${SEED:-16}
mkdir -p "$OUT"
W=${WAYBILL:-.build/release/waybill}
[ -n "${WAYBILL:-}" ] || [ -x "$W" ] || swift build -c release --product waybill
PORT=${PORT:-14318}
# Enough distinct events for the run at up to ~800 requests/s: 80,000 events a second.
EV=$(( D * 80000 ))
BODIES=$(( EV / 100 ))
DIR="$OUT/http-bodies-$EV-s$SEED"
if [[ " $CASES " == *" interleaved "* ]] && [ ! -f "$DIR/body-$(printf %06d $((BODIES - 1))).ndjson" ]; then
  f="$OUT/interleaved-time-$EV-s$SEED.ndjson"
  [ -f "$f" ] || { python3 bench/gen_interleaved.py --events "$EV" --seed "$SEED" "$f.part" && mv "$f.part" "$f"; }
  rm -rf "$DIR"; mkdir -p "$DIR"
  split -l 100 -d -a 6 --additional-suffix=.ndjson "$f" "$DIR/body-"
fi
PID=
SAMPLER=
cleanup() { [ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true; [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT
for c in $CASES; do
  rm -f "$OUT/http.db"*
  "$W" serve --port "$PORT" --db "$OUT/http.db" 2>"$OUT/serve.log" &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  ( while kill -0 "$PID" 2>/dev/null; do awk '/VmRSS/{print $2}' "/proc/$PID/status" 2>/dev/null || true; sleep 0.5; done ) > "$OUT/rss.txt" &
  SAMPLER=$!
  case $c in
    interleaved) wrk -t2 -c8 -d"${D}s" --latency -s bench/http_bodies.lua "http://127.0.0.1:$PORT" -- "$DIR" "$BODIES" 2 > "$OUT/wrk-ingest-$c.txt" ;;
    contiguous) wrk -t2 -c8 -d"${D}s" --latency -s bench/http_ingest.lua "http://127.0.0.1:$PORT" -- $(( D * 400 )) > "$OUT/wrk-ingest-$c.txt" ;;
    *) echo "unknown case $c (interleaved, contiguous)" >&2; exit 2 ;;
  esac
  load=$(cut -d' ' -f1 /proc/loadavg)
  metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")
  kill "$SAMPLER" 2>/dev/null || true; SAMPLER=
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  acc=$(echo "$metrics" | awk '/^waybill_events_accepted_total[ {]/{s+=$NF} END{print s+0}')
  dup=$(echo "$metrics" | awk '/^waybill_events_duplicate_total[ {]/{s+=$NF} END{print s+0}')
  rej=$(echo "$metrics" | awk '/^waybill_events_rejected_total[ {]/{s+=$NF} END{print s+0}')
  commits=$(echo "$metrics" | awk '/^waybill_writer_commit_seconds_count\{signal="events"/{s+=$NF} END{print s+0}')
  rps=$(awk '/Requests\/sec/{print $2}' "$OUT/wrk-ingest-$c.txt")
  non2xx=$(awk '/Non-2xx/{print $5}' "$OUT/wrk-ingest-$c.txt"); non2xx=${non2xx:-0}
  p50=$(awk '$1=="50%"{print $2}' "$OUT/wrk-ingest-$c.txt"); p99=$(awk '$1=="99%"{print $2}' "$OUT/wrk-ingest-$c.txt")
  peak=$(sort -n "$OUT/rss.txt" | tail -1)
  python3 -c "
acc, dup, rej, d = float('$acc'), float('$dup'), float('$rej'), $D
name = {'interleaved': 'interleaved, time-sorted', 'contiguous': 'contiguous (http_ingest.lua)'}['$c']
print(f'{name:29s} {acc / d:7,.0f} events/s stored ({acc + dup:,.0f} handled = {(acc + dup) / d:,.0f}/s, {rej:.0f} rejected)  '
      f'{float(\"$rps\"):.0f} requests/s, non-2xx $non2xx, p50 $p50 p99 $p99  peak server RSS {int(\"${peak:-0}\") / 1024:.0f} MiB  '
      f'{$commits / d:.0f} commits/s ({(acc + dup) / max($commits, 1):.0f} events each)  load $load')"
done
