#!/usr/bin/env bash
# Where ClickHouse's time goes during `waybill ingest --store`: a two-shard cluster
# (bench/clickhouse_cluster.bash, with system.query_log), one ingest of bench/gen_interleaved.py's
# ORDERS orders over 30 days, then per node the statements Waybill issued, numbers masked, by total
# duration: count, milliseconds, most memory, rows read, rows written.
# usage: bench/clickhouse_statements.sh [ORDERS] [BINARY]   (default 20000, .build/release/waybill)
#   CH_PROFILE_EXTRA='<setting>value</setting>' tries a server setting (see clickhouse_cluster.bash)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
W=${2:-.build/release/waybill}
[ -x "$W" ] || { echo "build first: swift build -c release --product waybill" >&2; exit 1; }
OUT=$(mktemp -d /tmp/waybill-ch-statements.XXXXXX)
CH_QUERY_LOG=1
. bench/clickhouse_cluster.bash
F=$OUT/events.ndjson
python3 bench/gen_interleaved.py --orders "$N" --days 30 "$F" >/dev/null 2>&1
"$W" ingest "$F" --store "clickhouse://waybill@127.0.0.1:$H0,127.0.0.1:$H1/wb?cluster=waybill" 2>&1 | tail -1
for h in $H0 $H1; do q $h "SYSTEM FLUSH LOGS" >/dev/null || true; done
for h in $H0 $H1; do
  echo "== node on port $h: statement, count, ms, max memory, rows read, rows written"
  # 18.16's query_log `type` is a number here (2: QueryFinish).
  q $h "SELECT substring(replaceRegexpAll(query, '[0-9]+', 'N'), 1, 100) AS k, count(), sum(query_duration_ms) AS ms,
        max(memory_usage), sum(read_rows), sum(written_rows) FROM system.query_log WHERE type = 2 AND query NOT LIKE '%query_log%'
        GROUP BY k ORDER BY ms DESC LIMIT 12 FORMAT TSV"
done
