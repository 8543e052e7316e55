#!/usr/bin/env bash
# The ClickHouse engine at scale: 1,000,000 orders (bench/gen_orders.py, 30 days, ~4.05M events) through
# `waybill ingest --store` into a two-shard ClickHouse on loopback, then through `waybill serve --store`:
#  1. trace lookups (GET /api/v1/traces/{key}, 300 sequential random orders): p50, p99;
#  2. the 30-day KPI report (GET /api/v1/kpis by warehouse, step 1d): the first request and 10 more;
#  3. where the time goes: system.query_log of both nodes during the trace lookups (statements by shape,
#     count and mean duration).
# Servers run with temporary data directories on free ports and a password user, stopped at the end.
# usage: bench/clickhouse_1m.sh [ORDERS] [WAYBILL_BINARY]   (default 1000000, .build/release/waybill)
# Set KEEP=1 to leave the cluster running (its ports and password are printed) for more queries.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
W=${2:-.build/release/waybill}
[ -x "$W" ] || { echo "build first: swift build -c release --product waybill" >&2; exit 1; }
OUT=$(mktemp -d /tmp/waybill-ch1m.XXXXXX)
CH_MAX_MEMORY=4000000000 CH_QUERY_LOG=1
. bench/clickhouse_cluster.bash
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg); ClickHouse $(q $H0 'SELECT version()'); waybill $W"
[ "${KEEP:-0}" = 1 ] && echo "cluster: http ports $H0 $H1, password $PW, dir $OUT"
STORE="clickhouse://waybill@127.0.0.1:$H0,127.0.0.1:$H1/wb?cluster=waybill"

F=$OUT/events.ndjson
python3 bench/gen_orders.py "$N" 30 "$F"
EVENTS=$(wc -l < "$F")
echo "data: $N orders, $EVENTS events (bench/gen_orders.py $N 30)"

echo "== ingest (waybill ingest --store, two shards)   load $(cut -d' ' -f1-3 /proc/loadavg)"
s=$(date +%s.%N)
$W ingest "$F" --store "$STORE" > "$OUT/ingest.out"
e=$(date +%s.%N)
echo "$(python3 -c "print(f'{$EVENTS/($e-$s):.0f}')") lines/s, $(python3 -c "print(f'{$e-$s:.0f}')") s [$(grep -m1 accepted "$OUT/ingest.out" || true)]   load $(cut -d' ' -f1-3 /proc/loadavg)"

PORT=${ports[4]}
$W serve --store "$STORE" --port "$PORT" --insecure-no-auth > "$OUT/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

echo "== 30-day KPI report (by warehouse, step 1d)   load $(cut -d' ' -f1-3 /proc/loadavg)"
K="http://127.0.0.1:$PORT/api/v1/kpis?from=2026-10-24T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&step=1d"
# The first report computes every hourly bucket from the facts of its orders (the cache is empty); it can
# take longer than the server's 60 s request limit on a loaded machine, so it runs through the CLI.
s=$(date +%s.%N)
$W kpi --store "$STORE" --from 2026-10-24 --to 2026-11-23 --by warehouse --step 1d --json > "$OUT/kpi-cli.json" || echo "CLI report failed"
e=$(date +%s.%N)
echo "first report (waybill kpi --store, empty cache): $(python3 -c "print(f'{$e-$s:.1f}')") s   load $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s -o "$OUT/kpi.json" -w "first request to the server: %{http_code} %{time_total} s\n" "$K" || true
python3 -c "import json;d=json.load(open('$OUT/kpi.json'));print('document:', str(d)[:200])" || true
for i in $(seq 10); do curl -s -o /dev/null -w "%{time_total}\n" "$K"; done | sort -n | awk '{a[NR]=$1} END {printf "next 10: min %.0f ms, median %.0f ms, max %.0f ms\n", a[1]*1000, a[int(NR/2)+1]*1000, a[NR]*1000}'

echo "== trace lookups (two passes of 300 sequential GETs of random orders)   load $(cut -d' ' -f1-3 /proc/loadavg)"
MARK=$(q $H0 "SELECT toUnixTimestamp(now())")
python3 - "$PORT" "$N" <<'EOF'
import sys, time, random, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
# Two passes of other random orders: the first fills the step comparison's cached hourly buckets.
for seed in (1, 2):
    random.seed(seed); lat = []
    for i in range(300):
        k = f"SO-{random.randrange(n):08d}"; s = time.perf_counter()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/traces/{k}").read()
        lat.append((time.perf_counter() - s) * 1000)
    lat.sort()
    print(f"pass {seed}: {len(lat)} lookups: p50 {lat[len(lat)//2]:.1f} ms, p90 {lat[int(len(lat)*0.9)]:.1f} ms, p99 {lat[int(len(lat)*0.99)]:.1f} ms, max {lat[-1]:.1f} ms", flush=True)
EOF
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 2
echo "== where the time goes: query_log of node 0 (the node Waybill sends to) during the lookups, by statement shape"
q $H0 "SYSTEM FLUSH LOGS" >/dev/null || true
q $H0 "SELECT count() AS n, round(avg(query_duration_ms), 1) AS avg_ms, max(query_duration_ms) AS max_ms, substring(replaceRegexpAll(query, '\\'[^\\']*\\'', '?'), 1, 110) AS shape
       FROM system.query_log WHERE type = 2 AND event_time >= toDateTime($MARK) AND is_initial_query = 1
       GROUP BY shape ORDER BY n * avg_ms DESC LIMIT 12 FORMAT PrettyCompactMonoBlock" || true
