#!/usr/bin/env bash
# Chromium (Debian's `chromium` package) for the page tests (PageBrowserTests): each page is rendered
# headless (--dump-dom and --screenshot) against a server loaded by the simulator.
set -u
. "$(dirname "$0")/lib.bash"
apt_component chromium chromium "" "the page browser tests skip" chromium fonts-dejavu-core
