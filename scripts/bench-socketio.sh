#!/usr/bin/env bash
# The Socket.IO fan-out benchmark of docs/BENCHMARKS.md (section "Socket.IO"):
# one publisher, SUBS subscribers in one room, the same load three ways in
# each round, each against a fresh server pinned to core 0 (load tool on
# core 1):
#   native   switchboard-load on Switchboard's /ws (our protocol)
#   sio      switchboard-load as Socket.IO clients on Switchboard's /socket.io/
#   node     switchboard-load as Socket.IO clients on the Node socket.io 4.8
#            server of bench/socketio-node (installed under target/ by npm)
# Usage: scripts/bench-socketio.sh [ROUNDS]   (default 3)
# Env: SIO_RATE (msgs/s offered, default 1000), SIO_SUBS (1000), SIO_DURATION (3 s).
# The load tool does not answer Engine.IO pings, so both servers ping every
# 120 s here (runs are shorter). Node cannot keep up with this load: its run
# lasts until its backlog is delivered, so deliveries/s is its throughput.
# Prints each run's line and, at the end, the ratios per round and their median.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
RATE=${SIO_RATE:-1000}
SUBS=${SIO_SUBS:-1000}
DURATION=${SIO_DURATION:-3}
PORT=${BENCH_PORT:-18750}
OUT=bench-socketio.jsonl
cargo build --release --quiet --bin switchboard --bin switchboard-load
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
NODE_DIR=target/socketio-node
mkdir -p "$NODE_DIR"
cp bench/socketio-node/package.json bench/socketio-node/package-lock.json bench/socketio-node/server.js "$NODE_DIR/"
[[ -d $NODE_DIR/node_modules/socket.io ]] || (cd "$NODE_DIR" && npm ci --silent --no-audit --no-fund)
: > "$OUT"

start() { # kind
  if [[ $1 == node ]]; then
    PING_INTERVAL_MS=120000 PORT=$PORT taskset -c 0 node "$NODE_DIR/server.js" > /dev/null 2>&1 &
  else
    rm -f /tmp/switchboard-bench-sio.db*
    SWITCHBOARD_DB=/tmp/switchboard-bench-sio.db SWITCHBOARD_JWT_SECRET=bench SWITCHBOARD_WORKERS=1 \
      SWITCHBOARD_OUTBOX=4096 SWITCHBOARD_PING_INTERVAL_MS=120000 RUST_LOG=warn PORT=$PORT SWITCHBOARD_HOST=127.0.0.1 \
      taskset -c 0 ./target/release/switchboard > /dev/null 2>&1 &
  fi
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/socket.io/?EIO=4&transport=polling" && return 0
    sleep 0.05
  done
  echo "server did not start" >&2; exit 1
}

for round in $(seq 1 "$ROUNDS"); do
  for kind in native sio node; do
    start "$kind"
    path=/socket.io/; [[ $kind == native ]] && path=/ws
    echo "== round $round: $kind"
    taskset -c 1 ./target/release/switchboard-load fanout --url "ws://127.0.0.1:$PORT$path" \
      --secret bench --pid "$SERVER_PID" --subscribers "$SUBS" --publishers 1 \
      --rate "$RATE" --duration "$DURATION" | tee /tmp/bench-sio-run.txt
    tail -n 1 /tmp/bench-sio-run.txt | python3 -c "import json,sys; d=json.load(sys.stdin); d['kind']='$kind'; d['round']=$round; print(json.dumps(d))" >> "$OUT"
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["round"], {})[r["kind"]] = r
print("round  native/s   sio/s      node/s    sio:native  sio:node  lost(n/s/node)")
a, b = [], []
for k in sorted(by):
    d = by[k]
    n, s, o = (d[x]["deliveries_per_s"] for x in ("native", "sio", "node"))
    a.append(s / n); b.append(s / o)
    print(f"{k:5}  {n:9.0f}  {s:9.0f}  {o:9.0f}  {s/n:10.2f}  {s/o:8.1f}  "
          f"{d['native']['lost']}/{d['sio']['lost']}/{d['node']['lost']}")
print(f"median sio:native {statistics.median(a):.2f}, sio:node {statistics.median(b):.1f}")
PY
