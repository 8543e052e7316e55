#!/usr/bin/env bash
# OTLP/HTTP protobuf ingest: 100-span bodies from 8 connections (wrk), and bytes per span on disk.
# The two wrk threads split the bodies (even/odd), so no span is sent twice within a pass.
# usage: bench/otlp_ingest.sh [SECONDS]   (needs wrk, python3 with opentelemetry-proto)
# WAYBILL=path/to/waybill runs another build (e.g. the previous commit's, for before/after runs).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-10}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
N=${BODIES:-12000}
W=${WAYBILL:-.build/release/waybill}
[ -n "${WAYBILL:-}" ] || [ -x "$W" ] || swift build -c release --product waybill
[ -f "$OUT/otlp/body-$((N - 1)).pb" ] || python3 bench/gen_otlp_bodies.py "$N" "$OUT/otlp"
PORT=${PORT:-14321}
rm -f "$OUT/otlp.db"*
$W serve --port "$PORT" --db "$OUT/otlp.db" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# The server's CPU time (user + system) over the run: per span, it depends far less than
# throughput on what else the machine is doing.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
c0=$(cpu_ticks)
wrk -t1 -c8 -d"${D}s" -s bench/otlp_ingest.lua "http://127.0.0.1:$PORT" -- "$OUT/otlp" "$N" | tee "$OUT/wrk-otlp.txt"
c1=$(cpu_ticks)
kill $PID; wait $PID 2>/dev/null || true
# Schema 6 keeps spans in blocks (n spans a row); schema 5 had one row a span.
spans=$(sqlite3 "$OUT/otlp.db" "SELECT coalesce(sum(n), 0) FROM span_blocks" 2>/dev/null || sqlite3 "$OUT/otlp.db" "SELECT count(*) FROM spans")
bytes=$(stat -c %s "$OUT/otlp.db")
cpu=$(python3 -c "print(($c1 - $c0) / $(getconf CLK_TCK))")
python3 -c "print(f'spans stored: {$spans} in ${D}s = {$spans/$D:.0f} spans/s; database {$bytes} bytes = {$bytes/max($spans,1):.0f} bytes/span; server CPU {$cpu:.1f} s = {$cpu/max($spans,1)*1e6:.1f} us/span')"
# Where the bytes are: each table and index (SQLite's dbstat).
sqlite3 "$OUT/otlp.db" "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC" | \
  python3 -c "import sys; [print(f'  {n:24s} {int(b):>12d} bytes = {int(b)/max($spans,1):6.1f} bytes/span') for n, b in (l.strip().split('|') for l in sys.stdin)]"
