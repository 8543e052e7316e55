# Shared by the .ci/setup.d scripts (sourced; not a step: .ci/run runs only *.sh).
#
# apt_component NAME BINARY SERVICE WHAT_SKIPS PACKAGE...
#   Installs PACKAGE... from Debian unless BINARY is already on the PATH. Only the binaries are wanted:
#   when SERVICE is not empty, dpkg is kept from starting it (policy-rc.d) and it is stopped if something
#   started it anyway (tests start their own servers on loopback with their own configs). Prints what it
#   did, or "SKIPPED: NAME: ..." naming WHAT_SKIPS when apt cannot install it. Always returns 0.
apt_component() {
  local name=$1 binary=$2 service=$3 skips=$4
  shift 4
  if command -v "$binary" >/dev/null 2>&1; then
    echo "$name: already installed ($(command -v "$binary"))"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "SKIPPED: $name: apt-get not available on this machine; $skips"
    return 0
  fi
  local policy=/usr/sbin/policy-rc.d made_policy=0 ok=0
  if [ -n "$service" ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then ok=1
  elif timeout 300 apt-get update -qq >/dev/null 2>&1 && timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then ok=1
  fi
  [ "$made_policy" = 1 ] && rm -f "$policy"
  if [ -n "$service" ]; then
    if command -v systemctl >/dev/null 2>&1; then systemctl stop "$service" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then service "$service" stop >/dev/null 2>&1 || true; fi
  fi
  if [ "$ok" = 1 ] && command -v "$binary" >/dev/null 2>&1; then
    echo "$name: installed $(dpkg-query -W -f='${Version}' "$1" 2>/dev/null)"
  else
    echo "SKIPPED: $name: apt could not install it (registry unreachable or package missing); $skips"
  fi
  return 0
}
