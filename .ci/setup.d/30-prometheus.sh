#!/usr/bin/env bash
# promtool (Debian's `prometheus` package) for the /metrics and Grafana dashboard tests (MetricsTests):
# `promtool check metrics` on a scrape, `promtool check rules` on every dashboard panel's PromQL.
# Only the binary is wanted; the Prometheus service is not started (and stopped if the package started it).
set -u
. "$(dirname "$0")/lib.bash"
apt_component prometheus promtool prometheus "the promtool checks skip" prometheus
