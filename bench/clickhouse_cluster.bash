# Sourced by the ClickHouse benchmarks: starts a two-shard ClickHouse (Debian's clickhouse-server) on
# free loopback ports, with temporary data directories under $OUT and a `waybill` user with a random
# password, and stops it at exit (unless KEEP=1). Before sourcing set OUT (a fresh directory); may set
# CH_MAX_MEMORY (bytes a query may use, default 2000000000), CH_QUERY_LOG=1 (keep system.query_log),
# CH_PROFILE_EXTRA (more settings of the default profile, as XML, e.g. "<max_compress_block_size>65536</max_compress_block_size>") and
# CH_HTTP_PARAMS (extra URL parameters of `q`). Sets PW, H0 and H1 (the nodes' HTTP ports), PIDS, and
# `q PORT SQL` and `settle` (waits for merges to end), and exports WAYBILL_CLICKHOUSE_PASSWORD.
CHS=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)
[ -x "$CHS" ] || { echo "clickhouse-server is not installed" >&2; exit 1; }
PW=bench-$RANDOM$RANDOM
ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
PIDS=()
cleanup() { [ "${KEEP:-0}" = 1 ] && return; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$OUT"; }
trap cleanup EXIT
log_queries=""; query_log=""
if [ "${CH_QUERY_LOG:-0}" = 1 ]; then
  log_queries="<log_queries>1</log_queries>"
  query_log="<query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>"
fi
for i in 0 1; do
  d=$OUT/node$i; mkdir -p "$d/data" "$d/tmp" "$d/logs"
  cat > "$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex><profiles><default><max_memory_usage>${CH_MAX_MEMORY:-2000000000}</max_memory_usage>$log_queries${CH_PROFILE_EXTRA:-}</default></profiles>
<users><waybill><password>$PW</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></waybill></users>
<quotas><default></default></quotas></yandex>
XML
  cat > "$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/logs/server.log</log><errorlog>$d/logs/err.log</errorlog></logger>
  <http_port>${ports[$((i*2))]}</http_port><tcp_port>${ports[$((i*2+1))]}</tcp_port><listen_host>127.0.0.1</listen_host>
  <path>$d/data/</path><tmp_path>$d/tmp/</tmp_path><users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  $query_log
  <remote_servers><waybill>
    <shard><replica><host>127.0.0.1</host><port>${ports[1]}</port><user>waybill</user><password>$PW</password></replica></shard>
    <shard><replica><host>127.0.0.1</host><port>${ports[3]}</port><user>waybill</user><password>$PW</password></replica></shard>
  </waybill></remote_servers>
</yandex>
XML
  "$CHS" --config-file="$d/config.xml" > "$d/logs/stdout" 2>&1 &
  PIDS+=($!)
done
H0=${ports[0]}; H1=${ports[2]}
q() { curl -sf "http://127.0.0.1:$1/?${CH_HTTP_PARAMS:-}output_format_json_quote_64bit_integers=0" -H "X-ClickHouse-User: waybill" -H "X-ClickHouse-Key: $PW" --data-binary "$2"; }
for _ in $(seq 100); do q $H0 "SELECT 1" >/dev/null 2>&1 && q $H1 "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
export WAYBILL_CLICKHOUSE_PASSWORD=$PW
# settle: waits (up to 30 s) until neither node runs a merge, so that the background merges of the
# previous step's parts are not charged to the next timed step (the benchmarks start every timed step,
# the references included, settled; merges a step's own inserts start are charged to it while it runs).
settle() {
  for _ in $(seq 60); do
    [ "$(( $(q $H0 'SELECT count() FROM system.merges') + $(q $H1 'SELECT count() FROM system.merges') ))" = 0 ] && break
    sleep 0.5
  done
}
