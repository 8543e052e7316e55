#!/usr/bin/env bash
# Before/after pairs of two builds, interleaved in one session (issue #11: no regression beyond noise):
# bulk ingest of 1,000,000 events, trace lookups (GET /api/v1/traces/{key}, wrk), the 30-day KPI report
# (CLI process and warm HTTP), and OTLP/HTTP protobuf ingest.
# usage: bench/compare_builds.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]   (needs wrk, hyperfine, sqlite3, curl;
#        OTLP bodies need python3 with opentelemetry-proto, or PYTHON=path/to/venv/python)
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=$1; AFTER=$2; ROUNDS=${3:-2}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
N=1000000
[ -f "$OUT/events-$N.ndjson" ] || python3 bench/gen_events.py "$N" "$OUT/events-$N.ndjson" "$OUT/events-$N.csv"
[ -f "$OUT/otlp/body-11999.pb" ] || ${PYTHON:-python3} bench/gen_otlp_bodies.py 12000 "$OUT/otlp"
PORT=${PORT:-14340}
FROM=2026-11-01T00:00:00Z; TO=2026-12-01T00:00:00Z
RESULTS="$OUT/compare.txt"; : > "$RESULTS"

one() { # label binary
  local label=$1 B=$2 db="$OUT/cmp-$1.db"
  rm -f "$db"*
  local s e; s=$(date +%s.%N); "$B" ingest "$OUT/events-$N.ndjson" --db "$db" >/dev/null; e=$(date +%s.%N)
  local ingest; ingest=$(python3 -c "print(round($N/($e-$s)))")
  local kpi_cli; kpi_cli=$(hyperfine -N -w 1 -r 10 --export-json "$OUT/hf.json" "$B kpi --db $db --from $FROM --to $TO --by warehouse --step 1d --format json" >/dev/null \
    && python3 -c "import json; r=json.load(open('$OUT/hf.json'))['results'][0]; print(f\"{r['median']*1000:.1f}\")")
  "$B" serve --port "$PORT" --db "$db" 2>/dev/null & local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  local url="http://127.0.0.1:$PORT/api/v1/kpis?from=$FROM&to=$TO&by=warehouse&step=1d"
  curl -s -o /dev/null "$url"
  local kpi_http; kpi_http=$(for i in $(seq 20); do curl -s -o /dev/null -w "%{time_total}\n" "$url"; done | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int(NR/2)+1]*1000}')
  wrk -t1 -c4 -d10s --latency -s bench/trace_latency.lua "http://127.0.0.1:$PORT" -- 125000 > "$OUT/wrk-trace-cmp.txt"
  local p50 p99 rps
  p50=$(awk '/^ +50%/{print $2}' "$OUT/wrk-trace-cmp.txt"); p99=$(awk '/^ +99%/{print $2}' "$OUT/wrk-trace-cmp.txt"); rps=$(awk '/Requests\/sec/{print $2}' "$OUT/wrk-trace-cmp.txt")
  kill $pid; wait $pid 2>/dev/null || true
  local otlp; otlp=$(WAYBILL="$B" PORT=$((PORT + 1)) BODIES=12000 bash bench/otlp_ingest.sh 10 2>/dev/null | awk '/spans\/s/{for(i=1;i<=NF;i++) if ($i ~ /spans\/s/) print $(i-1)}' | head -1)
  echo "$label: ingest $ingest events/s | trace p50 $p50 p99 $p99 ($rps req/s) | KPI 30d CLI ${kpi_cli} ms, HTTP ${kpi_http} ms | OTLP ${otlp:-?} spans/s" | tee -a "$RESULTS"
}

for r in $(seq "$ROUNDS"); do
  one "after-$r" "$AFTER"
  one "before-$r" "$BEFORE"
done
echo "== reference: sqlite3 shell .import of the same rows (once)"
rm -f "$OUT/ref.db"
s=$(date +%s.%N); sqlite3 "$OUT/ref.db" "PRAGMA journal_mode=WAL;" "PRAGMA synchronous=FULL;" "CREATE TABLE events(source TEXT, id TEXT, type TEXT, time TEXT, subject TEXT, raw TEXT);" \
  "CREATE UNIQUE INDEX events_key ON events(source, id);" "CREATE INDEX events_subject ON events(subject, time);" ".import --csv $OUT/events-$N.csv events" >/dev/null; e=$(date +%s.%N)
python3 -c "print(f'sqlite3: {$N/($e-$s):.0f} rows/s')" | tee -a "$RESULTS"
