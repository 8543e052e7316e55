#!/usr/bin/env bash
# KPI reads during HTTP ingest, A/B in one session: for each round, each build in turn serves a fresh
# store while wrk posts the interleaved 100-event bodies of bench/http_ingest.sh from 8 connections for
# SECONDS, and one client asks for the 30-day KPI report by warehouse every 0.25 s (curl, a new
# connection each). Prints events handled a second, and the reports' count, p50, p99 and max latency.
# With the server's rollup window (docs/storage.md) each report first waits for the writer to fold the
# window; WAYBILL_ROLLUP_WINDOW=0 writes rollups in every commit, as before.
# usage: bench/kpi_during_ingest.sh SECONDS ROUNDS label=binary[:ENV=VALUE] ...
#   e.g. bench/kpi_during_ingest.sh 15 2 window=.build/release/waybill percommit=.build/release/waybill:WAYBILL_ROLLUP_WINDOW=0
#   needs the bodies: run `CASES=interleaved bash bench/http_ingest.sh 1` once (same BENCH_DIR)
set -uo pipefail
cd "$(dirname "$0")/.."
D=$1; R=$2; shift 2
OUT=${BENCH_DIR:-/tmp/waybill-bench}
PORT=${PORT:-14393}
BODIES=${BODIES:-$OUT/http-bodies-1600000-s16}
N=$(ls "$BODIES" | wc -l)
Q=${Q:-"/api/v1/kpis?from=2026-10-05T00:00:00Z&to=2026-11-04T00:00:00Z&by=warehouse"}
for r in $(seq "$R"); do for lb in "$@"; do
  l=${lb%%=*}; rest=${lb#*=}; b=${rest%%:*}; env=""; [[ "$rest" == *:* ]] && env=${rest#*:}
  rm -f "$OUT/kpi-ingest.db"*
  env $env "$b" serve --port "$PORT" --db "$OUT/kpi-ingest.db" 2>/dev/null & P=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  timeout $((D + 20)) wrk -t2 -c8 -d"${D}s" -s bench/http_bodies.lua "http://127.0.0.1:$PORT" -- "$BODIES" "$N" 2 > "$OUT/wrk-kpi-ingest.txt" &
  W=$!
  sleep 1
  : > "$OUT/kpi-latency.txt"
  end=$((SECONDS + D - 2))
  while [ $SECONDS -lt $end ]; do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$PORT$Q" >> "$OUT/kpi-latency.txt"
    sleep 0.25
  done
  wait $W
  m=$(curl -s "http://127.0.0.1:$PORT/metrics")
  kill $P; wait $P 2>/dev/null
  h=$(echo "$m" | awk '/^waybill_events_(accepted|duplicate)_total[ {]/{s+=$NF} END{print s+0}')
  python3 - "$l" "$r" "$h" "$D" "$OUT/kpi-latency.txt" <<'PY'
import sys
l, r, h, d, f = sys.argv[1], sys.argv[2], int(float(sys.argv[3])), int(sys.argv[4]), sys.argv[5]
rows = [x.split() for x in open(f) if x.strip()]
ok = sorted(float(t) * 1000 for c, t in rows if c == "200")
bad = sum(1 for c, _ in rows if c != "200")
q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] if ok else float("nan")
print(f"{l} r{r}: {h / d:,.0f} events/s handled; {len(ok)} KPI reports (not 200: {bad}): p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {ok[-1] if ok else float('nan'):.1f} ms")
PY
done; done
