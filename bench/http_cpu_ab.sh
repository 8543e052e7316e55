#!/usr/bin/env bash
# Server CPU per event over HTTP ingest, A/B in one session: for each round, each build in turn serves a
# fresh store while wrk posts the interleaved 100-event bodies of bench/http_ingest.sh from 8
# connections for SECONDS; prints events handled a second, the server's CPU (user + system, from
# /proc/PID/stat) per event handled (accepted + duplicates), events per commit, the server's peak RSS
# (VmHWM) and the load. CPU per
# event is steadier than throughput on a loaded machine.
# usage: bench/http_cpu_ab.sh SECONDS ROUNDS label=binary[:ENV=VALUE] ...
#   e.g. bench/http_cpu_ab.sh 15 2 before=/tmp/x/waybill-before after=/tmp/x/waybill-after inline=/tmp/x/waybill-after:WAYBILL_INLINE_CHECKPOINTS=1
#   needs the bodies: run `CASES=interleaved bash bench/http_ingest.sh 1` once (same BENCH_DIR)
set -uo pipefail
cd "$(dirname "$0")/.."
D=$1; R=$2; shift 2
OUT=${BENCH_DIR:-/tmp/waybill-bench}
PORT=${PORT:-14392}
BODIES=${BODIES:-$OUT/http-bodies-1600000-s16}
N=$(ls "$BODIES" | wc -l)
T=$(getconf CLK_TCK)
for r in $(seq "$R"); do for lb in "$@"; do
  l=${lb%%=*}; rest=${lb#*=}; b=${rest%%:*}; env=""; [[ "$rest" == *:* ]] && env=${rest#*:}
  rm -f "$OUT/cpu-ab.db"*
  env $env "$b" serve --port "$PORT" --db "$OUT/cpu-ab.db" 2>/dev/null & P=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  c0=$(awk '{print $14+$15}' /proc/$P/stat)
  timeout $((D + 20)) wrk -t2 -c8 -d"${D}s" -s bench/http_bodies.lua "http://127.0.0.1:$PORT" -- "$BODIES" "$N" 2 > "$OUT/wrk-cpu-ab.txt"
  c1=$(awk '{print $14+$15}' /proc/$P/stat)
  m=$(curl -s "http://127.0.0.1:$PORT/metrics")
  hwm=$(awk '/VmHWM/{print int($2/1024)}' /proc/$P/status)
  kill $P; wait $P 2>/dev/null
  h=$(echo "$m" | awk '/^waybill_events_(accepted|duplicate)_total[ {]/{s+=$NF} END{print s+0}')
  cm=$(echo "$m" | awk '/^waybill_writer_commit_seconds_count\{signal="events"/{s+=$NF} END{print s+0}')
  python3 -c "print(f'$l r$r: {$h/$D:,.0f} events/s handled, server CPU {($c1-$c0)/$T:.1f} s = {($c1-$c0)/$T/max($h,1)*1e6:.1f} us/event, {$h/max($cm,1):.0f} events/commit, peak RSS $hwm MiB, load $(cut -d' ' -f1 /proc/loadavg)')"
done; done
rm -f "$OUT/cpu-ab.db"*
