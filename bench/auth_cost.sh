#!/usr/bin/env bash
# What token checking and the per-token rate limit cost HTTP ingest (issue #13): the same wrk run
# (100-event NDJSON batches, 8 connections) against a server without tokens, and against one where
# an ingest token is required and rate-limited far above the offered load, interleaved in pairs.
# Besides requests/s, each run reports the server's CPU time per request (utime+stime from /proc over
# the wrk run divided by the requests answered), which other load on the machine disturbs far less than
# throughput: the cost figure to compare.
# usage: bench/auth_cost.sh [SECONDS] [PAIRS]   (needs wrk; WAYBILL=path/to/waybill for another build)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-10}; PAIRS=${2:-3}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=${WAYBILL:-.build/release/waybill}
[ -n "${WAYBILL:-}" ] || [ -x "$W" ] || swift build -c release --product waybill
PORT=${PORT:-14480}

run() { # label, extra serve args, extra wrk args
  local db="$OUT/auth-$1.db"
  rm -f "$db"*
  local token=""
  if [ "$1" = tokens ]; then token=$("$W" tokens create --scope ingest --name bench --db "$db" 2>/dev/null | tail -1); fi
  # shellcheck disable=SC2086
  "$W" serve --port "$PORT" --db "$db" $2 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  local hdr=()
  [ -z "$token" ] || hdr=(-H "Authorization: Bearer $token")
  local c0 c1
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  wrk -t2 -c8 -d"${D}s" "${hdr[@]}" -s bench/http_ingest.lua "http://127.0.0.1:$PORT" -- "$((D * 400))" > "$OUT/wrk-auth.txt"
  sleep 1 # the writer finishes the last group commits
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local rps non2xx reqs cpu_us
  rps=$(awk '/Requests\/sec/{print $2}' "$OUT/wrk-auth.txt")
  reqs=$(awk '/requests in/{print $1}' "$OUT/wrk-auth.txt")
  non2xx=$(awk '/Non-2xx/{print $5}' "$OUT/wrk-auth.txt"); non2xx=${non2xx:-0}
  cpu_us=$(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) / reqs ))
  kill $pid; wait $pid 2>/dev/null || true
  echo "$1: $rps requests/s (x100 events), server CPU $cpu_us us/request over $reqs requests, non-2xx $non2xx"
}

for p in $(seq "$PAIRS"); do
  run open ""
  run tokens "--ingest-rate-limit 100000"
done
