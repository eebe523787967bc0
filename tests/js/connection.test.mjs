// How the SDK keeps its connection, against the real server: back to
// WebSocket after a fallback (nothing lost or doubled), token refresh on the
// open connection, credentials out of URLs, a bad token reported at once;
// and what its calls resolve with: a promise for every action, each error
// reported once, direct messages delivered or stored.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import path from "node:path";
import { rmSync } from "node:fs";
import { Server, Proxy, next, until, sdkClient, WAIT } from "./helpers.mjs";

const fast = { reconnect: { base: 50, cap: 300 }, connectTimeout: 3000 };

let server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server?.stop();
});

async function sessions(s) {
  return (await (await fetch(`${s.url}/healthz`)).json()).sessions;
}

test("after a restart that made it fall back to polling, the client moves back to WebSocket: no message lost or doubled", async () => {
  const db = path.join(os.tmpdir(), `switchboard-js-probe-${process.pid}.db`);
  // One secret for both runs, so that the token outlives the restart.
  const env = { SWITCHBOARD_DB: db, SWITCHBOARD_JWT_SECRET: "probe-test-secret-0123456789abcdef", SWITCHBOARD_DEV: "true" };
  const first = await Server.start(env);
  const port = first.addr.split(":")[1];
  const proxy = await Proxy.start(first.addr);
  let second;
  try {
    const token = await first.token("mover");
    const c = sdkClient({
      url: proxy.url,
      token: () => token,
      transports: ["websocket", "polling"],
      probe: { base: 200, cap: 800 },
      ...fast,
    });
    const seqs = [];
    const texts = [];
    c.on("message:receive", (m) => {
      if (m.room !== "moves") return;
      seqs.push(m.seq);
      texts.push(m.data.text);
    });
    await c.joinRoom("moves");
    assert.equal(c.connectionInfo().transport, "websocket");
    await first.publishMany("moves", 5, "before");
    await until(() => seqs.length === 5, "the first messages");

    // The hub restarts; WebSocket upgrades fail meanwhile (as through a
    // proxy that lost them), so the client falls back to polling.
    proxy.blockUpgrades = true;
    await first.stop();
    second = await Server.start({ ...env, PORT: port });
    await until(() => c.connectionInfo().transport === "polling" && c.connectionInfo().state === "connected", "the fallback to polling");
    await second.publishMany("moves", 5, "polling");
    for (let i = 0; i < 3; i++) await c.send("moves", { text: `mine ${i}` });
    await until(() => seqs.length === 13, "the messages over polling");

    // WebSocket works again: the background probe moves the client back,
    // while messages keep coming.
    proxy.blockUpgrades = false;
    const publishing = second.publishMany("moves", 10, "during");
    await until(() => c.connectionInfo().transport === "websocket" && c.connectionInfo().state === "connected", "the move back to WebSocket");
    await publishing;
    await c.send("moves", { text: "after" });
    await until(() => seqs.length === 24, "every message");
    await new Promise((ok) => setTimeout(ok, 300)); // a doubled one would show by now

    assert.deepEqual(seqs, Array.from({ length: 24 }, (_, i) => i + 1), "each seq once, in order");
    assert.equal(new Set(texts).size, 24);
    assert.equal(texts.filter((t) => t.startsWith("during")).length, 10);
    // The abandoned polling session was closed, not left to expire.
    await until(async () => (await sessions(second)) === 1, "the polling session closed");
    c.close();
  } finally {
    await proxy.stop();
    await second?.stop();
    if (first.child.exitCode === null) await first.stop();
    for (const suffix of ["", "-wal", "-shm", "-journal", ".lock"]) rmSync(db + suffix, { force: true });
  }
});

test("a token function refreshes the token on the open connection before it expires: no close across several expiries", async () => {
  const s = await Server.start({ SWITCHBOARD_JWT_LEEWAY_MS: "0" });
  try {
    // Without a refresh, a 2 s token ends the session (1008).
    const fixed = s.client({ token: await s.token("fixed", "Fixed", { ttl: "2" }), transports: ["websocket"] });
    await fixed.ready();
    const closed = await next(fixed, "disconnected", () => true, WAIT);
    assert.equal(closed.code, 1008);

    let calls = 0;
    const c = s.client({
      transports: ["websocket"],
      token: async () => {
        calls++;
        return s.token("fresh", "Fresh", { ttl: "2" });
      },
    });
    const drops = [];
    c.on("disconnected", (d) => drops.push(d));
    const { session } = await c.ready();
    await c.joinRoom("refresh");
    await new Promise((ok) => setTimeout(ok, 7000)); // three expiries
    assert.deepEqual(drops, []);
    assert.equal(c.connectionInfo().session, session);
    assert.ok(calls >= 4, `the token function was asked ${calls} times`);
    assert.equal((await c.send("refresh", { text: "still here" })).seq, 1);
  } finally {
    await s.stop();
  }
});

test("tokens stay out of URLs: WebSocket sends an auth frame, polling a header", async () => {
  const proxy = await Proxy.start(server.addr);
  try {
    const token = await server.token("quiet");
    for (const transport of ["websocket", "polling"]) {
      const c = server.client({ url: proxy.url, token, transports: [transport] });
      const hello = await c.ready();
      assert.equal(hello.user, "quiet");
      assert.equal(hello.transport, transport);
      await c.joinRoom("quiet");
      await c.send("quiet", { text: transport });
      c.close();
    }
    assert.ok(proxy.requests.some((l) => l.startsWith("GET /ws ")));
    assert.ok(proxy.requests.some((l) => l.startsWith("POST /poll/open")));
    assert.deepEqual(proxy.requests.filter((l) => l.includes("token=") || l.includes(token)), []);
  } finally {
    await proxy.stop();
  }
});

test("a bad token over WebSocket only rejects ready() at once, with one error", async () => {
  const c = server.client({ token: "not-a-token", transports: ["websocket"], reconnect: { base: 5000, cap: 5000 } });
  const errors = [];
  c.on("error", (e) => errors.push(e.code));
  const started = Date.now();
  await assert.rejects(c.ready(), { code: "unauthorized" });
  assert.ok(Date.now() - started < 5000, "before any retry");
  assert.equal(c.connectionInfo().state, "closed");
  assert.deepEqual(errors, ["unauthorized"]);

  // With a token function the client keeps trying (it may get a good one),
  // but ready() still says so at once.
  const f = server.client({ token: () => "still-not-a-token", transports: ["websocket"], reconnect: { base: 5000, cap: 5000 } });
  await assert.rejects(f.ready(), { code: "unauthorized" });
  assert.equal(f.connectionInfo().state, "reconnecting");
  f.close();
});

test("every action returns a promise, and each error is reported once", async () => {
  const c = server.client({ token: await server.token("acts"), ...fast });
  const errors = [];
  c.on("error", (e) => errors.push(e.code));
  await c.joinRoom("acts");
  await c.typing("acts");
  await c.typing("acts", false);
  await c.setPresence("busy", "testing");
  const left = next(c, "room:left");
  assert.deepEqual(await c.leaveRoom("acts"), { room: "acts" });
  await left;
  assert.deepEqual(await c.leaveRoom("never-joined"), { room: "never-joined" });
  assert.deepEqual(c.members("acts"), []);

  // Refused calls: the promise says so, not also the error event.
  await assert.rejects(c.send("acts", { text: "gone" }), { code: "not_member" });
  await assert.rejects(c.joinRoom("bad room!"), { code: "invalid_room" });
  await assert.rejects(c.mqttUnsubscribe("never/subscribed"), (e) => typeof e.code === "string");
  assert.deepEqual(errors, []);

  // A refusal nobody waits for is the error event, once.
  c.send("acts", { text: "unobserved" });
  await until(() => errors.length === 1, "the error event");
  await new Promise((ok) => setTimeout(ok, 200));
  assert.deepEqual(errors, ["not_member"]);
});

test("sendTo says whether the direct message was delivered or stored for later", async () => {
  const alice = server.client({ token: await server.token("dm-alice"), ...fast });
  const bob = server.client({ token: await server.token("dm-bob"), ...fast });
  await Promise.all([alice.ready(), bob.ready()]);
  const got = next(bob, "direct:receive");
  assert.deepEqual(await alice.sendTo("dm-bob", { text: "now" }), { delivered: true, offline: false });
  assert.deepEqual((await got).data, { text: "now" });
  assert.deepEqual(await alice.sendTo("dm-carol", { text: "later" }), { delivered: false, offline: true });
});
