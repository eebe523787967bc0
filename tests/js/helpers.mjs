// Shared by the Node and browser tests: start the real server binary on a
// free port, mint development tokens, wait for things with a bound.

import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";
import WebSocket from "ws";
import { EventSource } from "eventsource";
import { connect } from "../../static/switchboard.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BINARY = path.join(ROOT, "target/release/switchboard");
/** How long any one expected thing may take (the machine is shared and slow). */
export const WAIT = 15000;

let nextDb = 0;

export class Server {
  /** Starts `target/release/switchboard` with PORT=0 in development mode.
   * Each server gets its own new database file (removed by `stop()`) unless
   * `env` names `SWITCHBOARD_DB`, so no run sees what an earlier one stored. */
  static async start(env = {}) {
    if (!existsSync(BINARY)) {
      throw new Error(`${BINARY} is missing: run cargo build --release (scripts/test.sh does)`);
    }
    let db = null;
    if (!("SWITCHBOARD_DB" in env)) {
      db = path.join(os.tmpdir(), `switchboard-js-${process.pid}-${nextDb++}.db`);
      removeDb(db);
      env = { ...env, SWITCHBOARD_DB: db };
    }
    const child = spawn(BINARY, [], {
      env: {
        ...process.env,
        PORT: "0",
        SWITCHBOARD_HOST: "127.0.0.1",
        SWITCHBOARD_WORKERS: "2",
        SWITCHBOARD_JWT_SECRET: "",
        RUST_LOG: "warn",
        ...env,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("server did not print its address")), 20000);
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += chunk;
        const m = out.match(/switchboard listening on http:\/\/(\S+)/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.on("exit", (code) => reject(new Error(`server exited with ${code}`)));
    });
    child.stdout.resume();
    const s = new Server();
    s.db = db;
    s.child = child;
    s.addr = addr;
    s.url = `http://${addr}`;
    return s;
  }

  /** A development token; `claims` adds query parameters of /api/dev/token
   * (`role`, `rooms`, `mqtt_sub`, `mqtt_pub`, …). */
  async token(sub, name = sub, claims = {}) {
    const q = new URLSearchParams({ sub, name, ...claims });
    const r = await fetch(`${this.url}/api/dev/token?${q}`);
    if (!r.ok) throw new Error(`dev token: HTTP ${r.status}`);
    return (await r.json()).token;
  }

  /** The status others see of `user` (GET /api/users/{user}/presence):
   * `offline` once their last session has ended. */
  async presenceOf(user) {
    this.service ||= await this.token("backend", "Backend", { role: "service" });
    const r = await fetch(`${this.url}/api/users/${encodeURIComponent(user)}/presence`, {
      headers: { Authorization: `Bearer ${this.service}` },
    });
    if (r.status !== 200) throw new Error(`presence: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()).status;
  }

  /** POST /api/notify as a service: `{notifications:[{user,id}]}`. */
  async notify(to, data) {
    this.service ||= await this.token("backend", "Backend", { role: "service" });
    const r = await fetch(`${this.url}/api/notify`, {
      method: "POST",
      headers: { Authorization: `Bearer ${this.service}`, "Content-Type": "application/json" },
      body: JSON.stringify({ to, data }),
    });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`notify: HTTP ${r.status} ${JSON.stringify(body)}`);
    return body;
  }

  /** `n` messages `{text: "<prefix> <i>"}` to `room` as a service
   * (POST /api/publish, a few at a time); resolves once all are stored. */
  async publishMany(room, n, prefix = "line") {
    this.service ||= await this.token("backend", "Backend", { role: "service" });
    const one = async (i) => {
      const r = await fetch(`${this.url}/api/publish`, {
        method: "POST",
        headers: { Authorization: `Bearer ${this.service}`, "Content-Type": "application/json" },
        body: JSON.stringify({ room, data: { text: `${prefix} ${i}` } }),
      });
      if (r.status !== 200) throw new Error(`publish: HTTP ${r.status} ${await r.text()}`);
    };
    for (let i = 0; i < n; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, n - i) }, (_, k) => one(i + k)));
    }
  }

  /** A client of the SDK under test, with Node's missing globals injected;
   * `stop()` closes it. */
  client(options) {
    const c = sdkClient({ url: this.url, ...options });
    (this.clients ||= []).push(c);
    return c;
  }

  async stop() {
    for (const c of this.clients || []) c.close();
    if (this.child.exitCode === null) {
      const gone = new Promise((ok) => this.child.once("exit", ok));
      this.child.kill("SIGTERM");
      const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    }
    if (this.db) removeDb(this.db);
  }
}

/** A client of the SDK under test that no server owns (it outlives restarts). */
export function sdkClient(options) {
  return connect({ WebSocket, EventSource, fetch: globalThis.fetch, ...options });
}

function removeDb(file) {
  for (const suffix of ["", "-wal", "-shm", "-journal", ".lock"]) rmSync(file + suffix, { force: true });
}

/** Resolves with the first `type` event for which `pred` holds. */
export function next(client, type, pred = () => true, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(type, fn);
      reject(new Error(`no ${type} within ${ms} ms`));
    }, ms);
    const fn = (f) => {
      if (!pred(f)) return;
      clearTimeout(timer);
      client.off(type, fn);
      resolve(f);
    };
    client.on(type, fn);
  });
}

/** Waits (bounded) until `cond()` is true. */
export async function until(cond, what, ms = WAIT) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((ok) => setTimeout(ok, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Collects the texts of every message the client shows, per room. */
export function transcript(client, room) {
  const texts = [];
  client.on("message:receive", (m) => {
    if (m.room === room) texts.push(m.data.text);
  });
  return texts;
}

/** A TCP proxy in front of the server, to cut, refuse or freeze the network
 * between a client and the real server. */
export class Proxy {
  static async start(target) {
    const net = await import("node:net");
    const p = new Proxy();
    p.mode = "pass";
    p.pairs = new Set();
    p.requests = [];
    p.blockUpgrades = false;
    const [host, port] = [target.split(":")[0], Number(target.split(":")[1])];
    p.server = net.createServer((down) => {
      if (p.mode === "refuse") return down.destroy();
      const up = net.connect(port, host);
      const pair = { up, down };
      p.pairs.add(pair);
      const drop = () => {
        up.destroy();
        down.destroy();
        p.pairs.delete(pair);
      };
      up.on("error", drop).on("close", drop);
      down.on("error", drop).on("close", drop);
      if (p.mode === "pass") up.pipe(down);
      else up.resume(); // half open: what the server says is swallowed
      // The first bytes are the request line: kept in `requests`, and a
      // WebSocket upgrade is cut while `blockUpgrades` is set.
      down.once("data", (chunk) => {
        const line = chunk.toString("latin1").split("\r\n")[0];
        p.requests.push(line);
        if (p.blockUpgrades && /^GET \/ws[ ?]/.test(line)) return drop();
        up.write(chunk);
        down.pipe(up);
      });
    });
    await new Promise((ok) => p.server.listen(0, "127.0.0.1", ok));
    p.url = `http://127.0.0.1:${p.server.address().port}`;
    return p;
  }

  /** Drops every open connection, as a network failure would. */
  cut() {
    for (const { up, down } of this.pairs) {
      up.destroy();
      down.destroy();
    }
    this.pairs.clear();
  }

  /** New connections are refused until `restore()`. */
  refuse() {
    this.mode = "refuse";
    this.cut();
  }

  /** Open connections stop carrying data (a dead link with no FIN), both
   * ways or only `"down"` (server → client: what the client sends still
   * arrives). New connections are refused. */
  freeze(which = "both") {
    this.mode = "refuse";
    for (const { up, down } of this.pairs) {
      if (which === "both") down.unpipe(up);
      up.unpipe(down);
    }
  }

  /** Server → client stops, on open connections and on new ones, while
   * client → server still arrives: what the client sends reaches the server,
   * and no answer comes back (a lost ack). `cut()` then `restore()` to heal. */
  halfOpen() {
    this.mode = "half";
    for (const { up } of this.pairs) {
      up.unpipe();
      up.resume();
    }
  }

  restore() {
    this.mode = "pass";
  }

  async stop() {
    this.cut();
    await new Promise((ok) => this.server.close(ok));
  }
}

/** `p`, or a rejection if it does not settle within `ms`. */
export function within(p, what, ms = WAIT) {
  let timer;
  const late = new Promise((_, no) => {
    timer = setTimeout(() => no(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Resolves once the socket.io-client socket `s` is connected to its
 * namespace, also if it already is (a WebSocket-only client can be connected
 * before an `await` in the test returns); rejects with its `connect_error`. */
export function sioConnected(s) {
  if (s.connected) return Promise.resolve();
  return within(
    new Promise((resolve, reject) => {
      s.once("connect", resolve);
      s.once("connect_error", reject);
    }),
    "connect",
  );
}
