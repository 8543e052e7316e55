#!/usr/bin/env bash
# Trace lookups through `waybill serve --store` of several builds against one loaded ClickHouse cluster,
# interleaved (A B A B ...), so that a shared machine's load falls on every build alike. Load the cluster
# first with `KEEP=1 bash bench/clickhouse_1m.sh` (it prints the HTTP ports and the password).
# Each server gets a warm-up pass of 300 random orders, then a measured pass of 300 other ones, then the
# 30-day KPI report of bench/clickhouse_1m.sh (by warehouse, step 1d): a first request and 10 more.
# usage: bench/clickhouse_trace_ab.sh H0 H1 PASSWORD ORDERS ROUNDS BINARY...
set -euo pipefail
H0=$1; H1=$2; export WAYBILL_CLICKHOUSE_PASSWORD=$3; N=$4; ROUNDS=$5; shift 5
STORE="clickhouse://waybill@127.0.0.1:$H0,127.0.0.1:$H1/wb?cluster=waybill"
for round in $(seq "$ROUNDS"); do
  for W in "$@"; do
    PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    "$W" serve --store "$STORE" --port "$PORT" --insecure-no-auth > /tmp/waybill-trace-ab-serve.log 2>&1 &
    PID=$!
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
    python3 - "$PORT" "$N" "$W" "$round" <<'PY'
import sys, time, random, urllib.request, os
port, n, w, rnd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
for seed in (10 + int(rnd), 20 + int(rnd)):
    random.seed(seed); lat = []
    for i in range(300):
        k = f"SO-{random.randrange(n):08d}"; s = time.perf_counter()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/traces/{k}").read()
        lat.append((time.perf_counter() - s) * 1000)
    lat.sort()
load = open("/proc/loadavg").read().split()[:3]
print(f"round {rnd} {os.path.basename(w)}: traces p50 {lat[150]:.1f} ms, p90 {lat[270]:.1f} ms, p99 {lat[297]:.1f} ms, max {lat[-1]:.1f} ms (measured pass, after a warm-up pass)  load {' '.join(load)}", flush=True)
k = f"http://127.0.0.1:{port}/api/v1/kpis?from=2026-10-24T00:00:00Z&to=2026-11-23T00:00:00Z&by=warehouse&step=1d"
s = time.perf_counter(); urllib.request.urlopen(k, timeout=600).read(); first = (time.perf_counter() - s) * 1000
kl = []
for i in range(10):
    s = time.perf_counter(); urllib.request.urlopen(k, timeout=600).read(); kl.append((time.perf_counter() - s) * 1000)
kl.sort()
print(f"round {rnd} {os.path.basename(w)}: 30-day KPI report first {first:.0f} ms, then median {kl[5]:.0f} ms (min {kl[0]:.0f}, max {kl[-1]:.0f})  load {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
PY
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done
