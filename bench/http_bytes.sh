#!/usr/bin/env bash
# Bytes per event of a store filled over HTTP, A/B in one session: each build in turn serves a fresh
# store while 8 connections post the first BODIES of bench/http_ingest.sh's interleaved 100-event
# bodies (time order, as live traffic arrives), each once; then the store is checkpointed and measured.
# Prints events stored, file bytes per stored event, the posting's seconds, the unused share of the
# `event_blocks` leaf pages, the event dictionaries learned, blocks with hidden events, and the tables
# and indexes of at least 1 byte per event (`dbstat`).
# usage: bench/http_bytes.sh BODIES label=binary[:ENV=VALUE] ...
#   e.g. bench/http_bytes.sh 4000 base=/tmp/x/waybill-base head=.build/release/waybill nopack=.build/release/waybill:WAYBILL_BLOCK_PACKING=off
#   ORDER=random posts the bodies' lines shuffled (seed 16) instead: a replay of concatenated exports.
#   needs the bodies: run `CASES=interleaved bash bench/http_ingest.sh 20` once (same BENCH_DIR), python3, sqlite3
set -euo pipefail
cd "$(dirname "$0")/.."
B=$1; shift
OUT=${BENCH_DIR:-/tmp/waybill-bench}
PORT=${PORT:-14393}
BODIES=${BODIES_DIR:-$OUT/http-bodies-1600000-s16}
[ -d "$BODIES" ] || { echo "no bodies in $BODIES: run CASES=interleaved bash bench/http_ingest.sh 20 first" >&2; exit 2; }
POST=$(mktemp /tmp/waybill-post-XXXX.py)
trap 'rm -f "$POST"' EXIT
cat > "$POST" <<'EOF'
import os, random, sys, threading, http.client
d, n, port, order = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
names = sorted(os.listdir(d))[:n]
lines = [l for f in names for l in open(os.path.join(d, f), 'rb').read().splitlines() if l.strip()]
if order == 'random':
    random.Random(16).shuffle(lines)
bodies = [b'\n'.join(lines[i:i + 100]) + b'\n' for i in range(0, len(lines), 100)]
at = [0]; lock = threading.Lock(); bad = [0]
def worker():
    c = http.client.HTTPConnection('127.0.0.1', port)
    while True:
        with lock:
            if at[0] >= len(bodies): return
            b = bodies[at[0]]; at[0] += 1
        c.request('POST', '/v1/events', b, {'Content-Type': 'application/x-ndjson'})
        r = c.getresponse(); r.read()
        if r.status >= 300: bad[0] += 1
ts = [threading.Thread(target=worker) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
if bad[0]: print(f'{bad[0]} bodies not accepted', file=sys.stderr); sys.exit(1)
EOF
for lb in "$@"; do
  l=${lb%%=*}; rest=${lb#*=}; bin=${rest%%:*}; env=""; [[ "$rest" == *:* ]] && env=${rest#*:}
  db="$OUT/http-bytes.db"
  rm -f "$db"*
  env $env "$bin" serve --port "$PORT" --db "$db" 2>/dev/null & P=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  s=$(date +%s.%N)
  python3 "$POST" "$BODIES" "$B" "$PORT" "${ORDER:-time}"
  e=$(date +%s.%N)
  kill $P; wait $P 2>/dev/null || true
  sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  n=$(sqlite3 "$db" "SELECT sum(n) FROM event_blocks")
  unused=$(sqlite3 "$db" "SELECT round(100.0 * sum(unused) / sum(pgsize), 1) FROM dbstat WHERE name = 'event_blocks' AND pagetype = 'leaf'")
  extra=$(sqlite3 "$db" "SELECT (SELECT count(*) FROM event_dict), (SELECT count(*) FROM event_blocks WHERE skip IS NOT NULL)" | tr '|' ' ')
  tables=$(sqlite3 "$db" "SELECT name || ' ' || round(sum(pgsize) * 1.0 / $n, 1) FROM dbstat GROUP BY name HAVING sum(pgsize) * 1.0 / $n >= 1 ORDER BY sum(pgsize) DESC" | paste -sd, -)
  read -r ndict nhidden <<< "$extra"
  python3 -c "print(f'$l ${ORDER:-time}: $n events, {$(stat -c %s "$db") / $n:.1f} bytes/event, {$e - $s:.1f} s; event_blocks leaves $unused% unused; $ndict dictionaries, $nhidden blocks with hidden events; load $(cut -d' ' -f1 /proc/loadavg)')"
  echo "  $tables"
  rm -f "$db"*
done
