#!/usr/bin/env bash
# promtool (Debian's `prometheus` package) for the /metrics and Grafana dashboard tests (MetricsTests):
# `promtool check metrics` on a scrape, `promtool check rules` on every dashboard panel's PromQL.
# Only the binary is wanted; the Prometheus service is not started (and stopped if the package started it).
set -u
component=prometheus
have_binary() { command -v promtool >/dev/null 2>&1; }
stop_service() {
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
  if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
}
if have_binary; then
  echo "$component: already installed ($(command -v promtool))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "SKIPPED: $component: apt-get not available on this machine"; exit 0
fi
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
install() { timeout 600 apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; }
ok=0
if install; then ok=1
elif timeout 300 apt-get update -qq >/dev/null 2>&1 && install; then ok=1
fi
[ "$made_policy" = 1 ] && rm -f "$policy"
stop_service
if [ "$ok" = 1 ] && have_binary; then
  echo "$component: installed $(dpkg-query -W -f='${Version}' prometheus 2>/dev/null) (promtool)"
else
  echo "SKIPPED: $component: apt could not install it (registry unreachable or package missing); the promtool checks skip"
fi
exit 0
