// The SDK's shared state (static/switchboard-state.js) against the real
// server: set(key, fn) that re-applies fn on conflicts until every
// increment counts once, change events, delete, and a fresh snapshot after
// a network cut (what changed meanwhile is there, nothing is applied twice).

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { Server, Proxy, next, until, WAIT } from "./helpers.mjs";

let server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.stop();
});

test("set(key, fn) retries on conflict: concurrent increments from three clients all count", async () => {
  const room = "counter";
  const clients = [];
  for (const name of ["ana", "ben", "cyd"]) {
    const c = server.client({ token: await server.token(name), transports: [name === "cyd" ? "sse" : "websocket"] });
    const st = c.sharedState(room);
    await c.joinRoom(room);
    await st.ready();
    clients.push({ c, st });
  }
  let conflicts = 0;
  for (const { st } of clients) st.on("conflict", () => conflicts++);
  const PER = 8;
  await Promise.all(
    clients.map(async ({ st }) => {
      for (let i = 0; i < PER; i++) await st.set("n", (v) => (v || 0) + 1);
    }),
  );
  const total = clients.length * PER;
  for (const { st } of clients) await until(() => st.get("n") === total, `every copy shows ${total}`);
  assert.equal(clients[0].st.entry("n").version, clients[1].st.entry("n").version);
  assert.ok(conflicts > 0, "the clients did race");

  // A plain value on a stale version is refused with the current one.
  const [{ st: a }, { st: b }] = clients;
  const changed = new Promise((ok) => b.on("change", (ch) => ch.key === "topic" && !ch.deleted && ok(ch)));
  await a.set("topic", "hello");
  const ch = await changed;
  assert.equal(ch.value, "hello");
  assert.equal(ch.by.user, "ana");
  b.entries.delete("topic"); // b acts on a copy that missed it
  await assert.rejects(b.set("topic", "mine"), (e) => e.code === "version_conflict" && e.version === ch.version && e.value === "hello");
  assert.equal(b.get("topic"), "hello", "the conflict taught b the value");
  const gone = new Promise((ok) => a.on("change", (c) => c.key === "topic" && c.deleted && ok(c)));
  const d = await b.delete("topic");
  assert.ok(d.version > ch.version);
  await gone;
  assert.equal(a.get("topic"), undefined);
  for (const { c } of clients) c.close();
});

test("after a network cut the rejoin brings a fresh snapshot", async () => {
  const room = "snap";
  const proxy = await Proxy.start(server.addr);
  const a = server.client({ url: proxy.url, token: await server.token("ari"), reconnect: { base: 100, cap: 400 }, connectTimeout: 3000 });
  const b = server.client({ token: await server.token("bo") });
  const sa = a.sharedState(room);
  const sb = b.sharedState(room);
  await a.joinRoom(room);
  await b.joinRoom(room);
  await sb.set("x", 1);
  await sb.set("y", 1);
  await until(() => sa.get("y") === 1, "a sees y");
  proxy.refuse();
  await until(() => a.connectionInfo().state !== "connected", "a notices the drop");
  await sb.set("x", 2);
  await sb.delete("y");
  await sb.set("z", 3, { ttlMs: 60000 });
  const snap = next(a, "state:snapshot", (f) => f.room === room, WAIT * 2);
  proxy.restore();
  await snap;
  assert.deepEqual(sa.toObject(), { x: 2, z: 3 });
  assert.ok(sa.entry("z").expires > Date.now());
  a.close();
  b.close();
  await proxy.stop();
});
