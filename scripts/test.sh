#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests, which start the real
# server on 127.0.0.1:0 and talk to it over real sockets. Installs whatever
# the tests need on a fresh machine first (scripts/deps.sh); the Rust
# toolchain must already be present.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is required (https://rustup.rs)" >&2
  exit 1
fi

source scripts/deps.sh

# One release build serves the tests and `cargo run --release` alike.
cargo test --release "$@"

# The integration suite again, every server then sharing rooms through
# Redis (docs/SCALEOUT.md: "the same suite with and without Redis"): two
# redis-servers, so every room's messages are on one of them by its name
# and everything else on the first ("Several Redis"); the cluster tests
# start their own single Redis besides. Each server uses its own key
# prefix. Tests of single-node internals say they are skipped.
start_redis() {
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local p=$((20000 + RANDOM % 30000))
    [[ " ${redis_urls[*]} " == *":$p "* ]] && continue
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
      # Listening, and it is ours (not another process on that port).
      if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && sleep 0.2 && kill -0 "$pid" 2>/dev/null; then
        redis_pids+=("$pid")
        redis_urls+=("redis://127.0.0.1:$p")
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  echo "scripts/test.sh: could not start redis-server" >&2
  exit 1
}
if [ $# -eq 0 ]; then
  redis_pids=()
  redis_urls=()
  trap 'kill "${redis_pids[@]}" 2>/dev/null || true' EXIT
  start_redis
  start_redis
  SB_TEST_REDIS_URL="$(IFS=,; echo "${redis_urls[*]}")" cargo test --release --test it
  kill "${redis_pids[@]}" 2>/dev/null || true
fi

# The JS SDK against the release binary, then the demo page in headless
# Chromium (screenshots in test-output/). One file at a time: the machine
# is small and the browser tests are the heaviest.
if [ $# -eq 0 ]; then
  node --test --test-concurrency=1 --test-timeout=300000 tests/js/
fi
