#!/usr/bin/env bash
# Client CPU A/B of the ClickHouse engine's write path: `waybill ingest --store` of the same interleaved
# file (bench/gen_interleaved.py, 20,000 orders, resends included) into fresh databases of one two-shard
# ClickHouse on loopback (bench/clickhouse_cluster.bash), the binaries alternated in each round; prints
# the client's CPU (user + system), wall time and the ClickHouse servers' CPU per ingest. CPU seconds
# compare across rounds on a VM whose host steals CPU better than rates do. Faster than
# bench/clickhouse.sh (no reference inserts, no reads). usage: bench/clickhouse_cpu_ab.sh ROUNDS BINARY...
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:?usage: bench/clickhouse_cpu_ab.sh ROUNDS BINARY...}; shift
[ $# -gt 0 ] || { echo "usage: bench/clickhouse_cpu_ab.sh ROUNDS BINARY..." >&2; exit 1; }
OUT=$(mktemp -d /tmp/waybill-ch-ab.XXXXXX)
. bench/clickhouse_cluster.bash
F=$OUT/events.ndjson
python3 bench/gen_interleaved.py --orders 20000 --days 30 "$F" >/dev/null
chcpu() { local t=0; for p in "${PIDS[@]}"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
n=0
for rep in $(seq $R); do for W in "$@"; do
  n=$((n+1)); U="clickhouse://waybill@127.0.0.1:$H0,127.0.0.1:$H1/ab$n?cluster=waybill"
  : > $OUT/e.ndjson; $W ingest $OUT/e.ndjson --store "$U" >/dev/null
  settle
  c0=$(chcpu)
  /usr/bin/time -f "%U %S %e" -o $OUT/t $W ingest "$F" --store "$U" > $OUT/o
  c1=$(chcpu)
  echo "$rep $W: $(awk '{printf "client CPU %.2f s wall %.2f s", $1+$2, $3}' $OUT/t), ClickHouse CPU $(python3 -c "print(round(($c1-$c0)/$(getconf CLK_TCK), 2))") s; $(grep -o 'accepted.*' $OUT/o)  load $(cut -d' ' -f1 /proc/loadavg)"
done; done
