#!/usr/bin/env bash
# The KPI report split by telemetry (`waybill kpi --split errors`), which reads the spans of every order
# of the window: times each binary given on the same embedded store (A/B in one run, hyperfine) and checks
# that they print the same document.
# usage: bench/split_ab.sh ORDERS BINARY... (e.g. 2000 /tmp/waybill-old .build/release/waybill)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}; shift
BINS=("$@")
OUT=$(mktemp -d /tmp/waybill-split.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
W=${BINS[-1]}
$W simulate --orders "$N" --days 5 --seed 3 --start -8d --db "$OUT/store.db" 2>&1 | tail -2
FROM=$(date -u -d "-30 days" +%Y-%m-%dT00:00:00Z); TO=$(date -u +%Y-%m-%dT00:00:00Z)
uptime
cmds=()
for b in "${BINS[@]}"; do
  cmds+=("$b kpi --from $FROM --to $TO --split errors --json --db $OUT/store.db")
  $b kpi --from "$FROM" --to "$TO" --split errors --json --db "$OUT/store.db" > "$OUT/answer-$RANDOM.json"
done
hyperfine -w 1 -r 5 "${cmds[@]}" 2>&1 | grep -E "Benchmark|Time|faster|±"
echo "== distinct answers (1 = every binary printed the same document)"
md5sum "$OUT"/answer-*.json | cut -d' ' -f1 | sort -u | wc -l
uptime
