#!/usr/bin/env bash
# ClickHouse for the WaybillClickHouse tests: Debian's clickhouse-server (18.16 on bookworm).
# Only the binaries are wanted: the tests start their own servers on loopback with their own configs and
# temporary data directories. The system service is not started (and stopped if the package started it),
# because Debian's default config lets the passwordless `default` user in from every address.
set -u
component=clickhouse-server
have_binary() { command -v clickhouse-server >/dev/null 2>&1 || command -v clickhouse >/dev/null 2>&1; }
stop_service() {
  # policy-rc.d keeps dpkg from starting it; if something started it anyway, stop it.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop clickhouse-server >/dev/null 2>&1 || true; fi
  if command -v service >/dev/null 2>&1; then service clickhouse-server stop >/dev/null 2>&1 || true; fi
}
if have_binary; then
  echo "$component: already installed ($(command -v clickhouse-server || command -v clickhouse))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "SKIPPED: $component: apt-get not available on this machine"; exit 0
fi
# Keep dpkg from starting the service during the install (restored afterwards).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
install() { timeout 600 apt-get install -y -qq --no-install-recommends clickhouse-server >/dev/null 2>&1; }
ok=0
if install; then ok=1
elif timeout 300 apt-get update -qq >/dev/null 2>&1 && install; then ok=1
fi
[ "$made_policy" = 1 ] && rm -f "$policy"
stop_service
if [ "$ok" = 1 ] && have_binary; then
  echo "$component: installed $(dpkg-query -W -f='${Version}' clickhouse-server 2>/dev/null)"
else
  echo "SKIPPED: $component: apt could not install it (registry unreachable or package missing); the ClickHouse tests skip"
fi
exit 0
