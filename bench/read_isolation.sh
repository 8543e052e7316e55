#!/usr/bin/env bash
# Long reads off the request path (issue #11 part 4): while 4 clients loop on the service view of
# 500,000 spans, does /healthz stay fast and does HTTP ingest keep its throughput?
#
# For each build (WAYBILL, and BEFORE when given: e.g. the commit before the query layer), on a copy of
# the same 500,000-span store, two phases of D seconds each:
#   A: HTTP ingest (wrk, 8 connections, 100-event batches) + /healthz (wrk, 1 connection), nothing else;
#   B: the same + 4 clients each looping on GET /api/v1/services over the whole 500,000-span window.
# Prints events/s stored and /healthz p50/p99 per phase, and B/A for ingest.
# usage: bench/read_isolation.sh [SECONDS]   (needs wrk; python3 with opentelemetry-proto, or PYTHON=venv/bin/python)
#        BEFORE=/path/to/old/waybill bench/read_isolation.sh 10
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-10}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
PY=${PYTHON:-python3}
W=${WAYBILL:-.build/release/waybill}
[ -n "${WAYBILL:-}" ] || [ -x "$W" ] || swift build -c release --product waybill
mkdir -p "$OUT"
N=5000   # bodies of 100 spans: 500,000 spans from 2026-11-23T14:00:00Z over 5,000 s
[ -f "$OUT/otlp/body-$((N - 1)).pb" ] || $PY bench/gen_otlp_bodies.py "$N" "$OUT/otlp"
PORT=${PORT:-14330}
FROM=2026-11-23T13:00:00Z; TO=2026-11-23T16:00:00Z
SPANS_DB="$OUT/spans-500k.db"

start_server() { # binary db
  "$1" serve --port "$PORT" --db "$2" 2>/dev/null &
  PID=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop_server() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap 'stop_server; kill $(jobs -p) 2>/dev/null || true' EXIT

if [ ! -f "$SPANS_DB" ]; then
  rm -f "$SPANS_DB"*
  start_server "$W" "$SPANS_DB"
  for i in $(seq 0 $((N - 1))); do echo "$OUT/otlp/body-$i.pb"; done \
    | xargs -P 4 -I{} curl -sf -o /dev/null -XPOST "http://127.0.0.1:$PORT/v1/traces" -H 'Content-Type: application/x-protobuf' --data-binary @{}
  stop_server
fi

accepted() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^waybill_events_accepted_total/{print $2}'; }

phase() { # name, with-readers(0/1)
  local a0; a0=$(accepted)
  local readers=()
  if [ "$2" = 1 ]; then
    for r in 1 2 3 4; do
      ( end=$((SECONDS + D)); n=0; while [ $SECONDS -lt $end ]; do curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/v1/services?from=$FROM&to=$TO" && n=$((n + 1)); done; echo "$n" > "$OUT/reader-$r.txt" ) &
      readers+=($!)
    done
  fi
  wrk -t1 -c1 -d"${D}s" --latency "http://127.0.0.1:$PORT/healthz" > "$OUT/wrk-health.txt" &
  local hw=$!
  wrk -t2 -c8 -d"${D}s" -s bench/http_ingest.lua "http://127.0.0.1:$PORT" -- "$((D * 400))" > "$OUT/wrk-ingest-iso.txt"
  wait $hw
  [ ${#readers[@]} -eq 0 ] || wait "${readers[@]}"
  local a1; a1=$(accepted)
  local views=0
  if [ "$2" = 1 ]; then views=$(cat "$OUT"/reader-*.txt | paste -sd+ | bc); fi
  local p50 p99
  p50=$(awk '/^ +50%/{print $2}' "$OUT/wrk-health.txt"); p99=$(awk '/^ +99%/{print $2}' "$OUT/wrk-health.txt")
  local eps; eps=$(python3 -c "print(round(($a1 - $a0) / $D))")
  echo "$1: ingest $eps events/s, /healthz p50 $p50 p99 $p99, service views answered: $views" >&2
  echo "$eps"
}

run() { # label binary
  cp "$SPANS_DB" "$OUT/iso.db"; rm -f "$OUT/iso.db-wal" "$OUT/iso.db-shm"
  start_server "$2" "$OUT/iso.db"
  echo "== $1 ($2): $(curl -s "http://127.0.0.1:$PORT/api/v1/services?from=$FROM&to=$TO" | head -c 120)..." >&2
  local a b
  a=$(phase "$1 A (ingest alone)" 0)
  b=$(phase "$1 B (ingest + 4 service-view loops)" 1)
  python3 -c "print(f'$1: ingest under service-view load kept {$b / $a:.2f} of its throughput')" >&2
  stop_server
}

run after "$W"
[ -z "${BEFORE:-}" ] || run before "$BEFORE"
[ -z "${BEFORE:-}" ] || run after-again "$W"
