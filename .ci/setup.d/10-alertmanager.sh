#!/usr/bin/env bash
# Debian's prometheus-alertmanager: the alert integration test pushes to a real Alertmanager when it is
# installed (it skips that part otherwise). The test starts its own instance; the service is not started.
set -u
. "$(dirname "$0")/lib.bash"
apt_component prometheus-alertmanager prometheus-alertmanager prometheus-alertmanager "the Alertmanager part of the alert test skips" prometheus-alertmanager
