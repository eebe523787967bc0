#!/usr/bin/env bash
# Section 5 of docs/BENCHMARKS.md: scale-out through Redis, all in one run.
#
# Fan-out (1 room x 1,000 subscribers + 1 publisher, RATE msgs/s for DURATION s),
# ROUNDS times, alternating the three set-ups so they share the machine's noise:
#   single  one node without Redis (the single-node baseline)
#   redis1  one node with Redis
#   redis3  three nodes with Redis, clients spread over them round-robin
# then IDLE_CONNS idle connections spread over three nodes by IDLE_PROCS load
# processes (each process is held under its own open-file limit), and for
# comparison IDLE_CONNS/3 on one node without Redis.
#
# Every hub: SWITCHBOARD_WORKERS=1, SWITCHBOARD_DB=off (no SQLite in any set-up,
# so they differ only by Redis; with Redis a room's history is its Redis
# stream), SWITCHBOARD_OUTBOX=4096, RUST_LOG=warn. Each set-up gets a fresh
# redis-server (random free port, --save '' --appendonly no) and fresh hubs.
# Hubs and redis-server are pinned to core 0, the load tool to core 1: the
# three set-ups get the same hardware, so compare costs, not scale.
#
# Redis operations per published message: INFO commandstats after the run
# (CONFIG RESETSTAT before it; read once the nodes have handled every leave)
# minus the same for a run of the same clients with no messages (--duration 0:
# connects, joins, leaves), divided by the messages sent.
# switchboard_redis_ops_total (summed over the nodes) likewise. Pub/sub
# messages per publish: the room channel's subscribers (PUBSUB NUMSUB, the
# most seen while the load runs), as Redis sends each publish once to each.
#
# Usage: scripts/bench-cluster.sh [fanout|idle|all]
#   RATE=1000 DURATION=5 ROUNDS=2 IDLE_CONNS=50000 IDLE_PROCS=3 IDLE_HOLD=30
# Output: readable lines; the JSON lines go to bench-cluster.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
ulimit -n "$(ulimit -Hn)"
SERVER=$PWD/target/release/switchboard
LOAD=$PWD/target/release/switchboard-load
RATE=${RATE:-1000}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
IDLE_CONNS=${IDLE_CONNS:-50000}
IDLE_PROCS=${IDLE_PROCS:-3}
IDLE_HOLD=${IDLE_HOLD:-30}
OUT=${OUT:-bench-cluster.jsonl}
LOGS=$(mktemp -d /tmp/bench-cluster.XXXXXX)
: > "$OUT"
echo "logs: $LOGS; commit $(git rev-parse --short HEAD); $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"

STARTED=()
cleanup() { # newest first: hubs stop before the Redis they use
  local i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    kill -TERM "${STARTED[$i]}" 2>/dev/null || true
    wait "${STARTED[$i]}" 2>/dev/null || true
  done
  STARTED=()
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_redis: sets REDIS_PORT, REDIS_PID
start_redis() {
  REDIS_PORT=$(free_port)
  taskset -c 0 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no > "$LOGS/redis-$REDIS_PORT.txt" 2>&1 &
  REDIS_PID=$!
  STARTED+=("$REDIS_PID")
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping 2> /dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  echo "redis-server did not start" >&2; exit 1
}

# start_node ID [redis]: appends to NODE_PIDS, NODE_PORTS
start_node() {
  local id=$1 port redis=() pid
  port=$(free_port)
  [[ ${2:-} == redis ]] && redis=(SWITCHBOARD_REDIS_URL=redis://127.0.0.1:$REDIS_PORT SWITCHBOARD_NODE_ID=$id)
  env SWITCHBOARD_DB=off SWITCHBOARD_JWT_SECRET=bench SWITCHBOARD_WORKERS=1 SWITCHBOARD_OUTBOX=4096 \
    RUST_LOG=warn PORT=$port SWITCHBOARD_HOST=127.0.0.1 "${redis[@]}" \
    taskset -c 0 "$SERVER" > "$LOGS/$SETUP-$id.log" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/healthz" > /dev/null; then
      NODE_PIDS+=("$pid"); NODE_PORTS+=("$port"); return 0
    fi
    sleep 0.05
  done
  echo "node $id did not start (log: $LOGS/$SETUP-$id.log)" >&2; exit 1
}

# setup NAME: starts what the set-up needs
setup() {
  SETUP=$1; NODE_PIDS=(); NODE_PORTS=(); REDIS_PID=; REDIS_PORT=
  case $SETUP in
    single|idle1) start_node a ;;
    redis1) start_redis; start_node a redis ;;
    redis3|idle3) start_redis; start_node a redis; start_node b redis; start_node c redis ;;
  esac
  URLS=$(printf 'ws://127.0.0.1:%s/ws,' "${NODE_PORTS[@]}"); URLS=${URLS%,}
}

redis_ops() { # sum of switchboard_redis_ops_total over the nodes
  local p sum=0 v
  for p in "${NODE_PORTS[@]}"; do
    v=$(curl -sf "http://127.0.0.1:$p/metrics" | awk '/^switchboard_redis_ops_total/ {print $2}')
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

redis_stats() { # one JSON object: command -> calls, since the last CONFIG RESETSTAT
  redis-cli -p "$REDIS_PORT" INFO commandstats | python3 -c '
import sys, json
out = {}
for l in sys.stdin:
    if l.startswith("cmdstat_"):
        name, rest = l.strip()[8:].split(":", 1)
        out[name] = int(dict(kv.split("=") for kv in rest.split(","))["calls"])
print(json.dumps(out))'
}

conns_on() { curl -sf "http://127.0.0.1:$1/metrics" | awk '/^switchboard_connections / {print $2}'; }

# settle: waits until the nodes hold no connection and their Redis operations
# stop changing (leaves are handled after the load tool has gone), at most 30 s
settle() {
  local last=-1 now total p
  for _ in $(seq 1 60); do
    total=0; for p in "${NODE_PORTS[@]}"; do total=$((total + $(conns_on "$p"))); done
    now=$(redis_ops)
    (( total == 0 && now == last )) && return 0
    last=$now; sleep 0.5
  done
  echo "  (not settled after 30 s: $total connections)"
}

# fanout_run ROUND DURATION: one load run; appends a JSON line to $OUT
fanout_run() {
  local round=$1 dur=$2 pids ops0 ops1 stats='{}' line lp numsub=0 n
  pids=$(IFS=,; echo "${NODE_PIDS[*]}")
  [[ -n $REDIS_PID ]] && pids+=",$REDIS_PID"
  [[ -n $REDIS_PORT ]] && redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT > /dev/null
  ops0=$(redis_ops)
  taskset -c 1 "$LOAD" fanout --subscribers 1000 --publishers 1 --rate "$RATE" --duration "$dur" \
    --url "$URLS" --secret bench --pid "$pids" > "$LOGS/load.txt" 2> "$LOGS/load.err" &
  lp=$!
  # The room channel's subscribers (nodes) while the load runs: pub/sub messages per publish.
  while kill -0 "$lp" 2> /dev/null; do
    if [[ -n $REDIS_PORT ]]; then
      n=$(redis-cli -p "$REDIS_PORT" PUBSUB NUMSUB 'sb:{r:bench-fanout}:c' | tail -n 1)
      (( n > numsub )) && numsub=$n
    fi
    sleep 0.2
  done
  wait "$lp" || true
  settle
  ops1=$(redis_ops)
  [[ -n $REDIS_PORT ]] && stats=$(redis_stats)
  grep -v '^{' "$LOGS/load.txt" | sed 's/^/  /'
  sed 's/^/  load stderr: /' "$LOGS/load.err"
  line=$(tail -n 1 "$LOGS/load.txt")
  echo "{\"setup\":\"$SETUP\",\"round\":$round,\"duration\":$dur,\"nodes\":${#NODE_PIDS[@]},\"redis\":$([[ -n $REDIS_PID ]] && echo true || echo false),\"channel_subscribers\":$numsub,\"node_ops\":$((ops1 - ops0)),\"commandstats\":$stats,\"result\":$line}" >> "$OUT"
}

what=${1:-all}
if [[ $what == all || $what == fanout ]]; then
  for round in $(seq 1 "$ROUNDS"); do
    for s in single redis1 redis3; do
      setup "$s"
      echo "== round $round, $s (${#NODE_PIDS[@]} node(s)): fanout 1 room x 1000 subscribers, $RATE msgs/s, $DURATION s"
      fanout_run "$round" "$DURATION"
      if [[ $s != single ]]; then
        echo "   (the same clients with no messages, for the Redis operations of connects and joins)"
        fanout_run "$round" 0 > /dev/null
      fi
      cleanup
    done
  done
  python3 - "$OUT" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
full = [r for r in rows if r["duration"] > 0]
base = {(r["setup"], r["round"]): r for r in rows if r["duration"] == 0}
def fig(r):
    res = r["result"]
    each = res.get("server_each") or [{"cpu_s": res["server_cpu_s"]}]
    nodes = r["nodes"]
    hub = sum(e["cpu_s"] for e in each[:nodes])
    red = sum(e["cpu_s"] for e in each[nodes:])
    m = res["received"] / 1e6
    f = {"deliveries/s": res["deliveries_per_s"], "p50 ms": res["latency_ms"]["p50"],
         "p99 ms": res["latency_ms"]["p99"], "lost": res["lost"],
         "hub CPU s": hub, "hub CPU s per M deliveries": hub / m if m else float("nan")}
    if r["redis"]:
        f["Redis CPU s"] = red
        f["Redis CPU s per M deliveries"] = red / m if m else float("nan")
        b = base.get((r["setup"], r["round"]))
        sent = res["sent"]
        if b and sent:
            cs, bcs = r["commandstats"], b["commandstats"]
            for c in ("evalsha", "publish", "xadd"):
                f[f"{c} per msg"] = (cs.get(c, 0) - bcs.get(c, 0)) / sent
            f["all Redis commands per msg"] = (sum(cs.values()) - sum(bcs.values())) / sent
            f["switchboard_redis_ops per msg"] = (r["node_ops"] - b["node_ops"]) / sent
            f["(raw, joins included) evalsha per msg"] = cs.get("evalsha", 0) / sent
        f["room channel subscribers (nodes)"] = r["channel_subscribers"]
    return f
figs = {}
for r in full:
    figs.setdefault(r["setup"], []).append(fig(r))
names = [n for n in ("single", "redis1", "redis3") if n in figs]
keys = []
for n in names:
    for f in figs[n]:
        keys += [k for k in f if k not in keys]
print("\n== fan-out, each round (single = one node without Redis)")
for k in keys:
    cells = []
    for n in names:
        vals = [f.get(k) for f in figs[n]]
        cells.append(f"{n}: " + " / ".join("-" if v is None else f"{v:,.3f}" if v < 100 else f"{v:,.0f}" for v in vals))
    print(f"{k:40} " + "   ".join(cells))
print("\n== ratios to 'single' in the same round: median (min-max)")
for k in ("deliveries/s", "p99 ms", "hub CPU s per M deliveries"):
    for n in names[1:]:
        rs = [a[k] / b[k] for a, b in zip(figs[n], figs["single"]) if b[k]]
        if rs:
            print(f"{k:30} {n}/single  {st.median(rs):.2f} ({min(rs):.2f}-{max(rs):.2f})")
PY
fi

# idle_run SETUP CONNS PROCS NET: CONNS idle connections from PROCS load processes,
# from the source addresses NET.1-4. Each phase has its own: a closed
# connection's port stays in TIME_WAIT for 60 s, and binding to an address
# whose ports are mostly taken makes the kernel search (the load tool then
# spends its time in the kernel and connects at a few hundred a second).
idle_run() {
  setup "$1"
  local conns=$2 procs=$3 net=$4 per n k total last still t0 t1 hz i p c r u
  per=$(( (conns + procs - 1) / procs ))
  echo "== idle, $SETUP: $conns connections over ${#NODE_PIDS[@]} node(s) ($procs load process(es) of $per, rooms of 100)"
  rss_of() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
  cpu_of() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
  sleep 1
  local rss0=() cpu0=() loads=() redis_mem0=0 redis_rss0=0 rcpu0=0
  for p in "${NODE_PIDS[@]}"; do rss0+=("$(rss_of "$p")"); done
  if [[ -n $REDIS_PID ]]; then
    redis_mem0=$(redis-cli -p "$REDIS_PORT" INFO memory | awk -F: '/^used_memory:/ {print $2+0}')
    redis_rss0=$(rss_of "$REDIS_PID")
  fi
  for k in $(seq 0 $((procs - 1))); do
    n=$per; (( (k + 1) * per > conns )) && n=$((conns - k * per))
    taskset -c 1 "$LOAD" idle --conns "$n" --offset $((k * per)) --hold "$IDLE_HOLD" --concurrency 300 \
      --sources "$net.1,$net.2,$net.3,$net.4" --url "$URLS" --secret bench > "$LOGS/$SETUP-$k.txt" 2> "$LOGS/$SETUP-$k.err" &
    loads+=($!); STARTED+=($!)
  done
  # Wait until every connection is open, or the count stops rising for 5 s.
  t0=$(date +%s.%N); last=-1; still=0
  while :; do
    total=0; for p in "${NODE_PORTS[@]}"; do total=$((total + $(conns_on "$p"))); done
    (( total >= conns )) && break
    if (( total == last )); then still=$((still + 1)); (( still >= 10 )) && break; else still=0; fi
    last=$total; sleep 0.5
  done
  t1=$(date +%s.%N)
  sleep 2
  echo "  $total connections open after $(python3 -c "print(round($t1 - $t0, 1))") s"
  for p in "${NODE_PIDS[@]}"; do cpu0+=("$(cpu_of "$p")"); done
  [[ -n $REDIS_PID ]] && rcpu0=$(cpu_of "$REDIS_PID")
  sleep 5
  hz=$(getconf CLK_TCK)
  for i in "${!NODE_PIDS[@]}"; do
    p=${NODE_PIDS[$i]}; c=$(conns_on "${NODE_PORTS[$i]}"); r=$(rss_of "$p"); u=$(cpu_of "$p")
    python3 -c "
c, r0, r, u0, u = $c, ${rss0[$i]}, $r, ${cpu0[$i]}, $u
print(f'  node {\"abc\"[$i]}: {c} connections, RSS {r0/1024:.1f} MiB -> {r/1024:.1f} MiB: {(r - r0) / max(c, 1):.2f} KiB per connection; CPU while idle {100 * (u - u0) / $hz / 5:.2f}% of a core; open files limit {open(\"/proc/$p/limits\").read().split(\"Max open files\")[1].split()[0]}')"
    echo "{\"setup\":\"$SETUP\",\"node\":$i,\"connections\":$c,\"rss_before_kib\":${rss0[$i]},\"rss_held_kib\":$r,\"idle_cpu_s_5s\":$(python3 -c "print(($u - ${cpu0[$i]}) / $hz)")}" >> "$OUT"
  done
  if [[ -n $REDIS_PID ]]; then
    local redis_mem
    redis_mem=$(redis-cli -p "$REDIS_PORT" INFO memory | awk -F: '/^used_memory:/ {print $2+0}')
    python3 -c "
n, m0, m, r0, r = $total, $redis_mem0, $redis_mem, $redis_rss0, $(rss_of "$REDIS_PID")
print(f'  redis-server: used_memory {m0/1048576:.1f} -> {m/1048576:.1f} MiB ({(m - m0) / 1024 / max(n, 1):.2f} KiB per connection), RSS {r0/1024:.1f} -> {r/1024:.1f} MiB; CPU while idle {100 * ($(cpu_of "$REDIS_PID") - $rcpu0) / $hz / 5:.2f}% of a core')"
  fi
  for k in "${!loads[@]}"; do
    wait "${loads[$k]}" || true
    grep -v '^{' "$LOGS/$SETUP-$k.txt" | sed "s/^/  load $k: /"
    sort "$LOGS/$SETUP-$k.err" | uniq -c | sort -rn | head -5 | sed "s/^/  load $k stderr: /"
    tail -n 1 "$LOGS/$SETUP-$k.txt" >> "$OUT"
  done
  settle
  cleanup
}

if [[ $what == all || $what == idle ]]; then
  idle_run idle3 "$IDLE_CONNS" "$IDLE_PROCS" 127.0.1
  idle_run idle1 $((IDLE_CONNS / 3)) 1 127.0.2
fi

echo "== warnings and errors in the hub logs ($LOGS)"
grep -ciE 'warn|error' "$LOGS"/*.log | grep -v ':0$' || echo "  none"
grep -hiE 'warn|error' "$LOGS"/*.log | sed -E 's/^\[?[0-9T:.Z -]+//' | sort | uniq -c | sort -rn | head -10 || true
echo "results: $OUT"
