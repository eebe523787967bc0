#!/usr/bin/env bash
# Runs the public protocol test suites (socketio/engine.io-protocol and
# socketio/socket.io-protocol) against our conformance server
# (src/bin/socketio-conformance). A manual check, not in CI: it clones the
# suites from GitHub unless given checkouts. Usage:
#   scripts/socketio-conformance.sh            # clones the pinned commits
#   SUITES=/path/to/dir scripts/socketio-conformance.sh
# where dir holds engine.io-protocol/ and socket.io-protocol/ checkouts.
# Exits non-zero unless every test of both suites passes.
#
# The suites' waitFor() adds a one-shot listener after each `await`: with
# Node's `ws`, two messages read in one TCP read are emitted in the same tick
# and the second is lost. Our server batches writes (the Node reference
# server, run the same way, then fails 3-4 tests at random too), so the suites
# run here with their own node-imports.js replaced by ours (written below at
# run time), whose WebSocket dispatches each incoming message, and the close
# after them, in its own macrotask. The suites' files are not changed
# otherwise, except for their server URL (hard-coded to localhost:3000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/target/conformance
ENGINE_IO_COMMIT=f21de7b00ed09b3bbad2807db718ea5d6bc36aba
SOCKET_IO_COMMIT=4f633dd6a4445492d57af3b27ddd2d336014f1f1
mkdir -p "$WORK"

if [[ -z ${SUITES:-} ]]; then
  SUITES=$WORK/suites
  for pair in "engine.io-protocol $ENGINE_IO_COMMIT" "socket.io-protocol $SOCKET_IO_COMMIT"; do
    set -- $pair
    if [[ ! -d $SUITES/$1 ]]; then
      git clone -q "https://github.com/socketio/$1" "$SUITES/$1"
    fi
    git -C "$SUITES/$1" -c advice.detachedHead=false checkout -q "$2"
  done
fi

cargo build --release --quiet --bin socketio-conformance
PORT=${CONFORMANCE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
PORT=$PORT ./target/release/socketio-conformance > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q listening "$WORK/server.log" && break
  sleep 0.05
done
grep -q listening "$WORK/server.log" || { cat "$WORK/server.log" >&2; exit 1; }

status=0
for suite in engine.io-protocol socket.io-protocol; do
  dir=$WORK/run/$suite
  mkdir -p "$dir"
  src=$SUITES/$suite/test-suite
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  sed "s#http://localhost:3000#http://127.0.0.1:$PORT#" "$src/test-suite.js" > "$dir/test-suite.js"
  cat > "$dir/node-imports.js" <<'JS'
// Written by scripts/socketio-conformance.sh in place of the suite's own.
import fetch from "node-fetch";
import { WebSocket as WsWebSocket } from "ws";
import chai from "chai";
import chaiString from "chai-string";

chai.use(chaiString);

// One macrotask per incoming message (and for the close after them), in
// order: the test's continuation then runs, and adds its next one-shot
// listener, before the next message is dispatched.
class PacedWebSocket extends WsWebSocket {
  #queue = [];

  emit(event, ...args) {
    if (event !== "message" && event !== "close") {
      return super.emit(event, ...args);
    }
    this.#queue.push([event, args]);
    if (this.#queue.length === 1) {
      setImmediate(() => this.#drain());
    }
    return true;
  }

  #drain() {
    const [event, args] = this.#queue[0];
    super.emit(event, ...args);
    this.#queue.shift();
    if (this.#queue.length > 0) {
      setImmediate(() => this.#drain());
    }
  }
}

globalThis.fetch = fetch;
globalThis.WebSocket = PacedWebSocket;
globalThis.chai = chai;
JS
  if [[ ! -d $dir/node_modules ]] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.copy"; then
    (cd "$dir" && npm ci --silent --no-audit --no-fund && cp package-lock.json node_modules/.package-lock.json.copy)
  fi
  echo "== $suite (server on 127.0.0.1:$PORT)"
  (cd "$dir" && ./node_modules/.bin/mocha --reporter spec test-suite.js) | tee "$WORK/$suite.txt" || status=1
done
echo "== summary"
for suite in engine.io-protocol socket.io-protocol; do
  printf '%s: %s\n' "$suite" "$(grep -Eo '[0-9]+ (passing|failing|pending)' "$WORK/$suite.txt" | paste -sd, -)"
done
exit $status
