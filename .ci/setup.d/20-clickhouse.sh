#!/usr/bin/env bash
# ClickHouse for the WaybillClickHouse tests: Debian's clickhouse-server (18.16 on bookworm).
# Only the binaries are wanted: the tests start their own servers on loopback with their own configs and
# temporary data directories. The system service is not started (and stopped if the package started it),
# because Debian's default config lets the passwordless `default` user in from every address.
set -u
. "$(dirname "$0")/lib.bash"
apt_component clickhouse-server clickhouse-server clickhouse-server "the ClickHouse tests skip" clickhouse-server
