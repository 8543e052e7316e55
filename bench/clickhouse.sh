#!/usr/bin/env bash
# The ClickHouse engine against a two-shard ClickHouse on loopback (clickhouse-server, Debian's 18.16):
#  1. ingest through Waybill (`waybill ingest --store`) against ClickHouse's own JSONEachRow HTTP insert
#     of the same rows into the same tables, in inserts of 5,000 rows (Waybill's `ingest --store` calls
#     are 25,000 events by default since session 9), two ways: (A) the `events` rows alone, through the
#     Distributed table; (C) every row Waybill's ingest left in every table (orders, links, rollup keys
#     and marks too), each shard's rows straight into its node's local tables, both nodes at once;
#  2. trace lookups through `waybill serve --store` (GET /api/v1/traces/{key}): p50, p99;
#  3. a 30-day KPI report (GET /api/v1/kpis by warehouse, step 1d): median of 10;
#  4. bytes on disk per event (system.parts, both shards) against the SQLite store of the same file.
# Each ingest line also gives the CPU seconds it cost: the client's (user + system) and the ClickHouse
# servers' (from /proc), which compare across runs better than rates on a VM whose host steals CPU.
# Every timed insert starts once neither node is merging (`settle`, since session 24: before, the
# merges of the previous step's parts ran into the next step's time and CPU).
# The servers run with temporary data directories on free ports and a password user; both are stopped
# at the end. usage: bench/clickhouse.sh [ORDERS] [BINARY...] (default 20000 and .build/release/waybill;
# needs python3, curl, a release build). With several binaries, each ingest pair runs ClickHouse's insert
# and then every binary in turn (A/B on a shared machine); sections 2-4 use the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
shift || true
BINS=("$@"); [ ${#BINS[@]} -gt 0 ] || BINS=(.build/release/waybill)
for W in "${BINS[@]}"; do [ -x "$W" ] || { echo "build first: swift build -c release --product waybill" >&2; exit 1; }; done
OUT=$(mktemp -d /tmp/waybill-ch-bench.XXXXXX)
CH_HTTP_PARAMS="insert_distributed_sync=1&"
. bench/clickhouse_cluster.bash
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg); ClickHouse $(q $H0 'SELECT version()')"
url() { echo "clickhouse://waybill@127.0.0.1:$H0,127.0.0.1:$H1/$1?cluster=waybill"; }

F=$OUT/events.ndjson
python3 bench/gen_interleaved.py --orders "$N" --days 30 "$F" >/dev/null
EVENTS=$(wc -l < "$F")
echo "data: $N orders, $EVENTS lines (bench/gen_interleaved.py, arrival order, resends included)"

# The rows Waybill writes into `events`, as JSONEachRow, in files of 5000.
python3 - "$F" "$OUT/rows" <<'EOF'
import json, sys, os
from datetime import datetime, timezone
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
seen = set(); buf = []; n = 0
def flush():
    global buf, n
    if buf:
        open(f"{out}/{n:06d}.json", "w").write("".join(buf)); n += 1; buf = []
for line in open(src):
    e = json.loads(line)
    k = (e["source"], e["id"])
    if k in seen: continue
    seen.add(k)
    t = datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
    us = int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1_000_000)
    tp = e.get("traceparent", "")
    buf.append(json.dumps({"time": us, "subject": e.get("subject", ""), "source": e["source"], "id": e["id"], "type": e["type"],
                           "trace_id": tp[3:35] if len(tp) >= 35 else "", "raw": line.rstrip("\n")}) + "\n")
    if len(buf) >= 5000: flush()
flush()
EOF

# CPU seconds the ClickHouse servers have used so far (user + system, both nodes): on a VM whose host
# steals CPU, wall-clock rates move between identical runs, CPU per run much less.
chcpu() { local t=0; for p in "${PIDS[@]}"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
tick=$(getconf CLK_TCK)
# all_tables SRC DST: dumps every non-empty *_local table of database SRC per node (JSONEachRow files of
# 5,000 rows), creates DST with Waybill's tables, inserts each node's files into its own local tables
# (both nodes in parallel), and prints the rate in input lines/s against Waybill's last ingest ($wb).
all_tables() {
  local src=$1 dst=$2 d=$OUT/all_$2 rows=0
  mkdir -p "$d"
  for h in $H0 $H1; do
    mkdir -p "$d/$h"
    for tb in $(q $h "SELECT name FROM system.tables WHERE database = '$src' AND name LIKE '%_local' ORDER BY name"); do
      q $h "SELECT * FROM $src.$tb FORMAT JSONEachRow" | split -l 5000 -d -a 6 - "$d/$h/$tb."
    done
  done
  rows=$(cat "$d"/*/* 2>/dev/null | wc -l)
  : > "$OUT/empty.ndjson"
  $W ingest "$OUT/empty.ndjson" --store "$(url $dst)" >/dev/null
  settle
  local c0 s e c1
  c0=$(chcpu); s=$(date +%s.%N)
  local jobs=()
  for h in $H0 $H1; do
    ( for f in "$d/$h"/*; do
        [ -e "$f" ] || continue
        tb=$(basename "$f"); tb=${tb%.*}
        curl -sf "http://127.0.0.1:$h/?query=INSERT%20INTO%20$dst.$tb%20FORMAT%20JSONEachRow" \
          -H "X-ClickHouse-User: waybill" -H "X-ClickHouse-Key: $PW" --data-binary @"$f" >/dev/null
      done ) &
    jobs+=($!)
  done
  wait "${jobs[@]}"  # not a bare `wait`: the ClickHouse servers are this shell's children too
  e=$(date +%s.%N); c1=$(chcpu)
  local per=$(for h in $H0 $H1; do ls "$d/$h"; done | sed 's/\.[0-9]*$//' | sort | uniq -c | awk '{printf "%s%s %s files", (NR>1?", ":""), $2, $1}')
  echo "pair $pair: ClickHouse JSONEachRow of all $rows rows Waybill stored ($per): $(python3 -c "print(f'{$EVENTS/($e-$s):.0f}')") input lines/s, $(python3 -c "print(f'{$e-$s:.2f}')") s (ClickHouse CPU $(python3 -c "print(f'{($c1-$c0)/$tick:.2f}')") s); Waybill's last ingest: $(python3 -c "print(f'{100*$wb*($e-$s)/$EVENTS:.1f}')")% of it   load $(cut -d' ' -f1-3 /proc/loadavg)"
  rm -rf "$d"
}
echo "== 1. ingest (A/B pairs, fresh databases each time)"
for pair in 1 2; do
  # A: ClickHouse's own insert of the distinct rows, into the tables Waybill created.
  : > "$OUT/empty.ndjson"
  $W ingest "$OUT/empty.ndjson" --store "$(url raw$pair)" >/dev/null
  settle
  c0=$(chcpu); s=$(date +%s.%N)
  for f in "$OUT"/rows/*.json; do
    curl -sf "http://127.0.0.1:$H0/?insert_distributed_sync=1&query=INSERT%20INTO%20raw$pair.events%20FORMAT%20JSONEachRow" \
      -H "X-ClickHouse-User: waybill" -H "X-ClickHouse-Key: $PW" --data-binary @"$f" >/dev/null
  done
  e=$(date +%s.%N); c1=$(chcpu)
  raw=$(python3 -c "print(f'{$EVENTS/($e-$s):.0f}')")
  rawcpu=$(python3 -c "print(f'{($c1-$c0)/$tick:.2f}')")
  # B: Waybill, the same file (each binary into a database of its own).
  for b in "${!BINS[@]}"; do
    W=${BINS[$b]}; db=wb$pair; [ "$b" -gt 0 ] && db=wb${pair}_$b
    settle
    c0=$(chcpu); s=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$OUT/ingest.time" $W ingest "$F" --store "$(url $db)" > "$OUT/ingest.out"
    e=$(date +%s.%N); c1=$(chcpu)
    wb=$(python3 -c "print(f'{$EVENTS/($e-$s):.0f}')")
    cpu=$(python3 -c "u,s=open('$OUT/ingest.time').read().split()[-2:]; print(f'client {float(u)+float(s):.2f} s, ClickHouse {($c1-$c0)/$tick:.2f} s')")
    echo "pair $pair: ClickHouse JSONEachRow $raw lines/s (ClickHouse CPU $rawcpu s); Waybill ($W) $wb lines/s ($(python3 -c "print(f'{100*$wb/$raw:.1f}')")%, CPU: $cpu) [$(grep -m1 accepted "$OUT/ingest.out" || true)]   load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  # C: ClickHouse's own insert of every row Waybill's ingest left in every table (read back from the
  # last binary's database before any OPTIMIZE, so rows a merge already replaced are not counted), each
  # shard's rows into its node's local table, the two nodes at once, in JSONEachRow inserts of 5,000
  # rows: the whole of what Waybill stores, as ClickHouse alone would insert it.
  all_tables "$db" "allrows$pair"
done
W=${BINS[-1]}; last=$(( ${#BINS[@]} - 1 ))
DB1=wb1; [ "$last" -gt 0 ] && DB1=wb1_$last

echo "== 2. trace lookups (waybill serve --store, sequential GETs of random orders)"
PORT=${ports[4]}
$W serve --store "$(url $DB1)" --port "$PORT" --insecure-no-auth > "$OUT/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$PORT" "$N" <<'EOF'
import sys, time, random, urllib.request, json
port, n = sys.argv[1], int(sys.argv[2])
page = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/traces?limit=10000"))
keys = [o["correlation_id"] for o in page["orders"]]
random.seed(1); lat = []
for i in range(300):
    k = random.choice(keys); s = time.perf_counter()
    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/traces/{k}").read()
    lat.append((time.perf_counter() - s) * 1000)
lat.sort()
print(f"{len(lat)} lookups over {len(keys)} orders: p50 {lat[len(lat)//2]:.1f} ms, p99 {lat[int(len(lat)*0.99)]:.1f} ms, max {lat[-1]:.1f} ms")
EOF

echo "== 3. 30-day KPI report (GET /api/v1/kpis by warehouse, step 1d), 10 requests"
TO=$(python3 -c "import json;print(max(json.loads(l)['time'] for l in open('$F'))[:10])")
FROM=$(python3 -c "import datetime;print((datetime.date.fromisoformat('$TO')-datetime.timedelta(days=30)).isoformat())")
K="http://127.0.0.1:$PORT/api/v1/kpis?from=${FROM}T00:00:00Z&to=${TO}T00:00:00Z&by=warehouse&step=1d"
curl -sf "$K" >/dev/null
for i in $(seq 10); do curl -s -o /dev/null -w "%{time_total}\n" "$K"; done | sort -n | awk '{a[NR]=$1} END {printf "min %.0f ms, median %.0f ms, max %.0f ms\n", a[1]*1000, a[int(NR/2)+1]*1000, a[NR]*1000}'

echo "== 4. bytes on disk per stored event"
q $H0 "OPTIMIZE TABLE $DB1.events_local FINAL" >/dev/null || true; q $H1 "OPTIMIZE TABLE $DB1.events_local FINAL" >/dev/null || true
stored=$(q $H0 "SELECT count() FROM (SELECT source, id FROM $DB1.events GROUP BY source, id)")
chb=0
for h in $H0 $H1; do chb=$((chb + $(q $h "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '$DB1' AND active"))); done
evb=0
for h in $H0 $H1; do evb=$((evb + $(q $h "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '$DB1' AND table = 'events_local' AND active"))); done
$W ingest "$F" --db "$OUT/sqlite.db" >/dev/null
sq=$(( $(stat -c %s "$OUT/sqlite.db") + $(stat -c %s "$OUT/sqlite.db-wal" 2>/dev/null || echo 0) ))
python3 -c "print(f'ClickHouse: {$chb/$stored:.0f} B/event all tables ({$evb/$stored:.0f} B/event in events), SQLite: {$sq/$stored:.0f} B/event ({$stored} events)')"
