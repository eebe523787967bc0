#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs what the tests need on a fresh machine,
# and does nothing when it is already there. Each capability adds its needs
# at the bottom with `need_apt <command> <package>` or its own install step.
set -euo pipefail

apt_updated=""

# have CMD: CMD is on PATH or in an sbin directory (mosquitto lives in
# /usr/sbin, which is not on every user's PATH; the tests look there too).
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local d
  for d in /usr/sbin /usr/local/sbin /sbin; do
    [ -x "$d/$1" ] && return 0
  done
  return 1
}

# need_apt CMD PKG...: installs the Debian packages PKG when CMD is missing.
# One line per command the tests run, even when several come from one
# package: a machine may have the package of one but not of another
# (mosquitto without mosquitto-clients). tests/it/deps.rs checks that every
# command the test sources spawn is named here.
need_apt() {
  local cmd=$1
  shift
  have "$cmd" && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/deps.sh: $cmd is missing and apt-get is not available; install: $*" >&2
    return 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$apt_updated" ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt_updated=1
  fi
  echo "scripts/deps.sh: installing $* (for $cmd)" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 \
    install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- what the tests need (add below) ---

# The JS SDK and demo page tests (tests/js): Node 20+, npm, Debian's Chromium
# (browsers cannot be downloaded by playwright here), and the pinned npm
# packages from tests/js/package-lock.json.
need_apt node nodejs
need_apt npm npm
need_apt chromium chromium
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "scripts/deps.sh: the JS tests need Node 20 or newer; found $(node --version)" >&2
  exit 1
fi
# Installed again whenever package-lock.json changed since the last install
# (a stamp copy of it is kept in node_modules), not only when missing.
if ! cmp -s tests/js/package-lock.json tests/js/node_modules/.switchboard-lock 2>/dev/null; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.switchboard-lock)
fi
# MQTT: the broker (tests/it/broker.rs, tests/js/mqtt.test.mjs) and its
# command-line clients (tests/it/mqtt.rs, tests/js/mqtt.test.mjs).
need_apt mosquitto mosquitto
need_apt mosquitto_pub mosquitto-clients
need_apt mosquitto_sub mosquitto-clients
# A test CA and certificates for the TLS broker (tests/it/broker.rs).
need_apt openssl openssl
# Line-buffered mosquitto_sub output (tests/js/mqtt.test.mjs).
need_apt stdbuf coreutils
# SIGTERM to the server (tests/it/common.rs).
need_apt kill procps
# The server under a low file descriptor limit (tests/it/limits.rs).
need_apt prlimit util-linux
# Scale-out: a Redis server the cluster tests start on free ports
# (tests/it/cluster/redis.rs) and the suite's second pass runs against
# (scripts/test.sh).
need_apt redis-server redis-server
# Waits between its start attempts (scripts/test.sh).
need_apt sleep coreutils
# Cuts the nodes' subscriptions in a test (tests/it/cluster/faults.rs).
need_apt redis-cli redis-tools
# deploy/nginx.conf in front of a hub (tests/it/nginx.rs).
need_apt nginx nginx
