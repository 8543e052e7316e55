#!/usr/bin/env bash
# Chromium (Debian's `chromium` package) for the page tests (PageBrowserTests): each page is rendered
# headless (--dump-dom and --screenshot) against a server loaded by the simulator.
set -u
component=chromium
have_binary() { command -v chromium >/dev/null 2>&1; }
if have_binary; then
  echo "$component: already installed ($(command -v chromium))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "SKIPPED: $component: apt-get not available on this machine"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install() { timeout 600 apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1; }
ok=0
if install; then ok=1
elif timeout 300 apt-get update -qq >/dev/null 2>&1 && install; then ok=1
fi
if [ "$ok" = 1 ] && have_binary; then
  echo "$component: installed $(dpkg-query -W -f='${Version}' chromium 2>/dev/null)"
else
  echo "SKIPPED: $component: apt could not install it (registry unreachable or package missing); the page browser tests skip"
fi
exit 0
