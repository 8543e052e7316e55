#!/usr/bin/env bash
# Alert replay (`waybill alerts list --at T`): KPI rules whose look-back evaluates up to 62 windows 15 s apart.
# Times the replay of the same rules and store with each binary given (A/B in one run, hyperfine), on the
# embedded store and on a two-shard ClickHouse on loopback (bench/clickhouse_cluster.bash), and checks that
# every binary answers the same document.
# usage: bench/replay_ab.sh ORDERS BINARY... (e.g. 20000 /tmp/waybill-old .build/release/waybill)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}; shift
BINS=("$@")
OUT=$(mktemp -d /tmp/waybill-replay.XXXXXX)
W=${BINS[-1]}
AT=$(date -u -d "-1 day" +%Y-%m-%dT%H:%M:07Z)
cat > "$OUT/rules.yaml" <<'YAML'
rules:
  - name: FillRateBelow99
    kpi: fill_rate
    op: "<"
    threshold: 0.99
    window: 30d
    by: warehouse
    severity: ticket
  - name: AllocationSlow
    kpi: allocation_delay.p95_s
    op: ">"
    threshold: 1
    window: 1d
    severity: ticket
evaluation_interval: 15s
YAML
$W simulate --orders "$N" --days 25 --seed 7 --start -27d --out "$OUT/events.ndjson"
$W ingest "$OUT/events.ndjson" --db "$OUT/store.db" | tail -1
source bench/clickhouse_cluster.bash
STORE="clickhouse://waybill@127.0.0.1:$H0,127.0.0.1:$H1/replay?cluster=waybill"
$W ingest "$OUT/events.ndjson" --store "$STORE" | tail -1
uptime
for target in "--db $OUT/store.db" "--store $STORE"; do
  echo "== replay at $AT, $target"
  cmds=()
  for b in "${BINS[@]}"; do
    cmds+=("$b alerts list --json --config $OUT/rules.yaml --at $AT $target")
    $b alerts list --json --config "$OUT/rules.yaml" --at "$AT" $target > "$OUT/answer-$(basename "$b")-$RANDOM.json"
  done
  hyperfine -w 1 -r 5 "${cmds[@]}" 2>&1 | grep -E "Benchmark|Time|faster|±"
done
echo "== distinct answers (1 = every binary and engine answered the same alerts)"
for f in "$OUT"/answer-*.json; do python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d['alerts'], sort_keys=True))" "$f"; done | sort -u | wc -l
uptime
