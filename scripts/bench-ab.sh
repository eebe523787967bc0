#!/usr/bin/env bash
# A/B of two server binaries in one session, alternating, with this tree's
# load tool: idle 10,000, fan-out at 2,000 and at 100 msgs/s, ROUNDS times.
# Server pinned to core 0, load tool to core 1, as in scripts/bench.sh.
# Usage: scripts/bench-ab.sh BEFORE_BINARY AFTER_BINARY
# e.g.   git worktree add /tmp/before f4cccec && (cd /tmp/before && cargo build --release)
#        scripts/bench-ab.sh /tmp/before/target/release/switchboard target/release/switchboard
set -euo pipefail
[[ $# -eq 2 ]] || { sed -n 2,7p "$0"; exit 2; }
before=$(realpath "$1"); after=$(realpath "$2")
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin switchboard-load
ulimit -n "$(ulimit -Hn)"
LOAD=./target/release/switchboard-load
PORT=${BENCH_PORT:-18800}
DB=/tmp/switchboard-ab.db
run() { # label binary load-args...
  local label=$1 bin=$2; shift 2
  rm -f "$DB" "$DB-wal" "$DB-shm"
  SWITCHBOARD_DB=$DB SWITCHBOARD_JWT_SECRET=bench SWITCHBOARD_WORKERS=1 RUST_LOG=warn PORT=$PORT \
    SWITCHBOARD_HOST=127.0.0.1 SWITCHBOARD_OUTBOX=4096 taskset -c 0 "$bin" > /dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.05; done
  echo "== $label: $*"
  taskset -c 1 "$LOAD" "$@" --url "ws://127.0.0.1:$PORT/ws" --secret bench --pid "$pid" | grep -v '^{'
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
for round in $(seq 1 "${ROUNDS:-2}"); do
  for side in before after; do
    bin=$before; [[ $side == after ]] && bin=$after
    run "$side, round $round" "$bin" idle --conns 10000 --hold 5 --concurrency 500 \
      --sources 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
    run "$side, round $round" "$bin" fanout --subscribers 1000 --publishers 1 --rate 2000 --duration 5
    run "$side, round $round" "$bin" fanout --subscribers 1000 --publishers 1 --rate 100 --duration 5
  done
done
