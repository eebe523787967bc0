#!/usr/bin/env bash
# Runs the benchmarks of docs/BENCHMARKS.md: the server pinned to core 0 with
# one worker, the load tool pinned to core 1, each scenario against a fresh
# server. Prints the load tool's lines; the JSON lines are also collected in
# bench-results.jsonl. Usage: scripts/bench.sh [fanout|rooms|idle|storage|deflate|all]
# Every server gets a fresh database file (BENCH_DB) unless SWITCHBOARD_DB is
# passed; `storage` alternates runs with storage on and off (see section 4 of
# docs/BENCHMARKS.md); `deflate` alternates clients that offer permessage-deflate
# and clients that do not (section 6).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
# One descriptor per connection on each side; root may raise the hard limit.
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
SERVER=./target/release/switchboard
LOAD=./target/release/switchboard-load
OUT=bench-results.jsonl
PORT=${BENCH_PORT:-18700}
: > "$OUT"
[[ ${1:-all} == storage ]] && : > bench-storage.jsonl

BENCH_DB=${BENCH_DB:-/tmp/switchboard-bench.db}
start_server() {
  rm -f "$BENCH_DB" "$BENCH_DB-wal" "$BENCH_DB-shm"
  SWITCHBOARD_DB=$BENCH_DB SWITCHBOARD_JWT_SECRET=bench SWITCHBOARD_WORKERS=1 RUST_LOG=warn PORT=$PORT \
    SWITCHBOARD_HOST=127.0.0.1 "$@" taskset -c 0 "$SERVER" > /dev/null 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && return 0
    sleep 0.05
  done
  echo "server did not start" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }
load() {
  taskset -c 1 "$LOAD" "$@" --url "ws://127.0.0.1:$PORT/ws" --secret bench --pid "$SERVER_PID" | tee /tmp/bench-run.txt
  tail -n 1 /tmp/bench-run.txt >> "$OUT"
}

what=${1:-all}
if [[ $what == all || $what == fanout ]]; then
  for rate in ${FANOUT_RATES:-100 500 1000 1500 2000}; do
    echo "== fanout: 1 room x 1000 subscribers, $rate msgs/s (~$((rate * 1001)) deliveries/s)"
    start_server env SWITCHBOARD_OUTBOX=4096
    load fanout --subscribers 1000 --publishers 1 --rate "$rate" --duration "${DURATION:-5}"
    stop_server
  done
fi
if [[ $what == all || $what == rooms ]]; then
  echo "== rooms: 100 rooms x 20 clients, 2000 msgs/s in all"
  start_server env
  load rooms --rooms 100 --clients 2000 --rate 2000 --duration "${DURATION:-5}"
  stop_server
fi
if [[ $what == all || $what == idle ]]; then
  for n in ${IDLE_CONNS:-10000 50000}; do
    echo "== idle: $n connections"
    start_server env
    load idle --conns "$n" --hold 5 --concurrency 500 --sources 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
    stop_server
  done
fi
if [[ $what == storage ]]; then
  # Alternate off/on so both see the same share of the machine's noise.
  for round in $(seq 1 "${ROUNDS:-3}"); do
    for mode in off on; do
      db=off; [[ $mode == on ]] && db=$BENCH_DB
      rate=${STORAGE_FANOUT_RATE:-1000}
      echo "== storage $mode, round $round: fanout 1 room x 1000 subscribers, $rate msgs/s"
      start_server env SWITCHBOARD_OUTBOX=4096 SWITCHBOARD_DB=$db
      load fanout --subscribers 1000 --publishers 1 --rate "$rate" --duration "${DURATION:-5}"
      echo "{\"storage\":\"$mode\",\"round\":$round,\"scenario\":\"fanout\",\"result\":$(tail -n 1 /tmp/bench-run.txt)}" >> bench-storage.jsonl
      stop_server
      echo "== storage $mode, round $round: rooms 100 x 20 clients, 2000 msgs/s"
      start_server env SWITCHBOARD_DB=$db
      load rooms --rooms 100 --clients 2000 --rate 2000 --duration "${DURATION:-5}"
      echo "{\"storage\":\"$mode\",\"round\":$round,\"scenario\":\"rooms\",\"result\":$(tail -n 1 /tmp/bench-run.txt)}" >> bench-storage.jsonl
      stop_server
    done
  done
  python3 - <<'PY'
import json, statistics as st
rows = [json.loads(l) for l in open("bench-storage.jsonl")]
for sc in ("fanout", "rooms"):
    def col(mode, f):
        return [f(r["result"]) for r in rows if r["scenario"] == sc and r["storage"] == mode]
    for name, f in (("deliveries/s", lambda r: r["deliveries_per_s"]),
                    ("p50 ms", lambda r: r["latency_ms"]["p50"]),
                    ("p99 ms", lambda r: r["latency_ms"]["p99"]),
                    ("server CPU s", lambda r: r["server_cpu_s"]),
                    ("lost", lambda r: r["lost"])):
        off, on = col("off", f), col("on", f)
        ratios = [b / a for a, b in zip(off, on) if a]
        ratio = "n/a" if not ratios else "%.2f (%.2f-%.2f)" % (st.median(ratios), min(ratios), max(ratios))
        print(f"{sc:7} {name:13} off {off}  on {on}  on/off {ratio}")
PY
fi
if [[ $what == deflate ]]; then
  # Alternate off/on (the clients' offer; the server is the same) so both see
  # the same share of the machine's noise.
  : > bench-deflate.jsonl
  for round in $(seq 1 "${ROUNDS:-2}"); do
    for mode in off on; do
      n=${DEFLATE_IDLE_CONNS:-10000}
      echo "== deflate $mode, round $round: idle $n connections"
      start_server env
      load idle --conns "$n" --hold 5 --concurrency 500 --sources 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4 --deflate "$mode"
      echo "{\"deflate\":\"$mode\",\"round\":$round,\"scenario\":\"idle\",\"result\":$(tail -n 1 /tmp/bench-run.txt)}" >> bench-deflate.jsonl
      stop_server
      rate=${DEFLATE_FANOUT_RATE:-500}
      size=${DEFLATE_SIZE:-1000}
      echo "== deflate $mode, round $round: fanout 1 room x 1000 subscribers, $rate msgs/s, $size bytes of padding"
      start_server env SWITCHBOARD_OUTBOX=4096
      load fanout --subscribers 1000 --publishers 1 --rate "$rate" --size "$size" --duration "${DURATION:-5}" --deflate "$mode"
      echo "{\"deflate\":\"$mode\",\"round\":$round,\"scenario\":\"fanout\",\"result\":$(tail -n 1 /tmp/bench-run.txt)}" >> bench-deflate.jsonl
      stop_server
    done
  done
  python3 - <<'PY'
import json, statistics as st
rows = [json.loads(l) for l in open("bench-deflate.jsonl")]
cols = {
    "idle": (("KiB/conn", lambda r: r.get("kib_per_connection")),
             ("negotiated", lambda r: r["deflate_negotiated"]),
             ("closed", lambda r: r["closed_after_join"])),
    "fanout": (("deliveries/s", lambda r: r["deliveries_per_s"]),
               ("p99 ms", lambda r: r["latency_ms"]["p99"]),
               ("server CPU s", lambda r: r["server_cpu_s"]),
               ("lost", lambda r: r["lost"]),
               ("negotiated", lambda r: r["deflate_negotiated"])),
}
for sc, fs in cols.items():
    for name, f in fs:
        col = lambda mode: [f(r["result"]) for r in rows if r["scenario"] == sc and r["deflate"] == mode]
        off, on = col("off"), col("on")
        ratios = [b / a for a, b in zip(off, on) if a]
        ratio = "n/a" if not ratios else "%.2f (%.2f-%.2f)" % (st.median(ratios), min(ratios), max(ratios))
        print(f"{sc:7} {name:13} off {off}  on {on}  on/off {ratio}")
PY
fi
echo "results: $OUT"
