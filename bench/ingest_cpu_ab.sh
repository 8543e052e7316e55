#!/usr/bin/env bash
# CPU per event of `waybill ingest --db`, per thread, for A/B pairs that stay comparable on a loaded
# machine (wall time does not; CPU time per event mostly does). Runs each binary in turn, ROUNDS times,
# under `perf record` (cpu-clock samples at 499 Hz, no call graphs) and prints per run: wall seconds,
# events/s, the 1-minute load, and CPU µs per input line of the writer thread (`waybill-writer`), of
# the reading/decoding/preparing side (the concurrency pool's threads) and of the rest (WAL sync, main).
# usage: bench/ingest_cpu_ab.sh FILE ROUNDS LABEL=BIN[:ENV=VALUE,...] ...
#   e.g. bench/ingest_cpu_ab.sh /tmp/waybill-bench/interleaved-time-1000000-s16.ndjson 2 \
#          base=/tmp/V/waybill-base after=.build/release/waybill zdef=.build/release/waybill:WAYBILL_BLOCK_DEFLATE=default
# Needs perf (linux-tools) with perf_event_paranoid <= 2. Scratch in $BENCH_DIR (default /tmp/waybill-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=$1; ROUNDS=$2; shift 2
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
LINES=$(wc -l < "$FILE")
HZ=499
printf '%-10s %5s %8s %9s %6s %13s %13s %11s\n' build round wall_s events/s load writer_us/ev decode_us/ev other_us/ev
for round in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    label=${spec%%=*}; rest=${spec#*=}
    bin=${rest%%:*}; envs=""
    [ "$rest" != "$bin" ] && envs=${rest#*:}
    db="$OUT/cpu-ab.db"; rm -f "$db"*
    load=$(cut -d' ' -f1 /proc/loadavg)
    s=$(date +%s.%N)
    env ${envs//,/ } perf record -q -F $HZ -o "$OUT/cpu-ab.perf" -- "$bin" ingest "$FILE" --db "$db" > "$OUT/cpu-ab.out" 2> "$OUT/cpu-ab.err" \
      || { cat "$OUT/cpu-ab.out" "$OUT/cpu-ab.err" >&2; exit 1; }
    e=$(date +%s.%N)
    perf report -i "$OUT/cpu-ab.perf" --sort pid,dso --stdio -F sample,pid,dso 2>/dev/null | grep -v '^#' | grep -v '^$' > "$OUT/cpu-ab.comm" || true
    python3 - "$OUT/cpu-ab.comm" "$s" "$e" "$LINES" "$label" "$round" "$load" "$HZ" <<'PY'
import sys
path, s, e, lines, label, rnd, load, hz = sys.argv[1:]
wall = float(e) - float(s); lines = int(lines); hz = float(hz)
# Threads by id: the writer is the thread that runs SQLite (its name is not always in the samples);
# the concurrency pool's threads decode and prepare; the rest are the WAL sync and the main thread.
import collections
samples = collections.Counter(); sqlite = collections.Counter(); pool = set()
for l in open(path):
    p = l.split()
    if len(p) < 3: continue
    n = int(p[0]); tid, _, comm = p[1].partition(":"); dso = p[-1]
    samples[tid] += n
    if "sqlite" in dso: sqlite[tid] += n
    if "qos" in comm: pool.add(tid)
writer = sqlite.most_common(1)[0][0] if sqlite else None
w = samples[writer] if writer else 0
d = sum(n for t, n in samples.items() if t in pool and t != writer)
o = sum(samples.values()) - w - d
us = lambda n: n / hz / lines * 1e6
print(f"{label:<10} {rnd:>5} {wall:8.2f} {lines / wall:9.0f} {load:>6} {us(w):13.2f} {us(d):13.2f} {us(o):11.2f}")
PY
  done
done
rm -f "$OUT/cpu-ab.db"* "$OUT/cpu-ab.perf"*
