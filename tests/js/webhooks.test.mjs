// Webhooks (#15 part 2) against a real receiver: a small node:http server
// on 127.0.0.1 that checks every batch's X-Switchboard-Signature with
// Node's own HMAC (node:crypto, not the server's ring), answers 200 or 500
// as told, and can go down and come back on the same port.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHmac } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { rmSync } from "node:fs";
import WebSocket from "ws";
import { Server, until } from "./helpers.mjs";

const SECRET = "webhook-test-secret";

class Receiver {
  static async start() {
    const r = new Receiver();
    r.status = 200;
    r.posts = []; // every POST: {status answered, events, signed}
    await r.up(0);
    return r;
  }
  up(port = this.port) {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        const want = "sha256=" + createHmac("sha256", SECRET).update(raw).digest("hex");
        const signed = req.headers["x-switchboard-signature"] === want;
        const events = JSON.parse(raw.toString("utf8")).events;
        this.posts.push({ status: this.status, events, signed, type: req.headers["content-type"] });
        res.writeHead(this.status).end();
      });
    });
    return new Promise((ok) =>
      this.server.listen(port, "127.0.0.1", () => {
        this.port = this.server.address().port;
        this.url = `http://127.0.0.1:${this.port}/hooks`;
        ok();
      }),
    );
  }
  /** Stops listening and drops every open connection: POSTs now fail. */
  down() {
    return new Promise((ok) => {
      this.server.close(ok);
      this.server.closeAllConnections();
    });
  }
  /** Events of the POSTs answered 2xx, each id once (the receiver's dedupe). */
  delivered() {
    const seen = new Map();
    for (const p of this.posts) if (p.status < 300) for (const e of p.events) seen.set(e.id, e);
    return [...seen.values()];
  }
  attempted() {
    return this.posts.flatMap((p) => p.events);
  }
}

function hooked(receiver, extra = {}) {
  return {
    SWITCHBOARD_WEBHOOK_URL: receiver.url,
    SWITCHBOARD_WEBHOOK_SECRET: SECRET,
    SWITCHBOARD_WEBHOOK_LINGER_MS: "20",
    SWITCHBOARD_WEBHOOK_RETRY_MIN_MS: "50",
    SWITCHBOARD_WEBHOOK_RETRY_MAX_MS: "200",
    ...extra,
  };
}

/** A raw WebSocket client: send frames, wait for a frame type. */
async function connect(server, sub) {
  const token = await server.token(sub);
  const ws = new WebSocket(`ws://${server.addr}/ws?token=${encodeURIComponent(token)}`);
  const frames = [];
  ws.on("message", (d) => frames.push(JSON.parse(d)));
  await new Promise((ok, fail) => {
    ws.once("open", ok);
    ws.once("error", fail);
  });
  const c = {
    ws,
    send: (f) => ws.send(JSON.stringify(f)),
    async wait(type, pred = () => true) {
      await until(() => frames.some((f) => f.type === type && pred(f)), `${sub}: ${type}`);
      return frames.find((f) => f.type === type && pred(f));
    },
    async join(room) {
      c.send({ type: "room:join", room, id: `j-${room}` });
      return c.wait("room:joined", (f) => f.room === room);
    },
    close(code = 1000, reason) {
      const closed = new Promise((ok) => ws.once("close", ok));
      ws.close(code, reason);
      return closed;
    },
  };
  await c.wait("connected");
  return c;
}

async function metric(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.split(" ")[0] === name);
  assert.ok(line, `metric ${name} missing`);
  return Number(line.split(" ").pop());
}

test("signed batches tell rooms, members, presence, messages and closes", async () => {
  const receiver = await Receiver.start();
  const server = await Server.start(hooked(receiver, { SWITCHBOARD_WEBHOOK_ROOMS: "hooked-*" }));
  try {
    const alice = await connect(server, "alice");
    await alice.join("hooked-1");
    await alice.join("quiet");
    const bob = await connect(server, "bob");
    await bob.join("hooked-1");
    alice.send({ type: "message:send", room: "hooked-1", data: { text: "hi" }, id: "m1" });
    const ack = await alice.wait("ack", (f) => f.id === "m1");
    alice.send({ type: "message:send", room: "quiet", data: { text: "not sent" }, id: "m2" });
    await alice.wait("ack", (f) => f.id === "m2");
    bob.send({ type: "presence:update", status: "busy", activity: "meeting" });
    await alice.wait("presence:update", (f) => f.user === "bob" && f.status === "busy");
    bob.send({ type: "room:leave", room: "hooked-1", id: "l" });
    await bob.wait("room:left");
    await alice.close();
    await bob.close(4001, "tab closed");
    await until(
      () => receiver.delivered().filter((e) => e.type === "session.closed").length === 2,
      "both session.closed",
    );
    assert.ok(receiver.posts.length > 0);
    for (const p of receiver.posts) {
      assert.ok(p.signed, "every batch carries a valid signature");
      assert.equal(p.type, "application/json");
    }
    const events = receiver.delivered();
    assert.equal(new Set(events.map((e) => e.id)).size, receiver.attempted().length, "unique ids");
    for (const e of events) {
      assert.match(e.id, /^evt_[0-9a-f]{24}$/);
      assert.ok(Number.isInteger(e.ts) && e.ts > 1.6e12, JSON.stringify(e));
    }
    const room = events.filter((e) => e.room === "hooked-1").map((e) => [e.type, e.user ?? null]);
    assert.deepEqual(room, [
      ["room.occupied", null],
      ["member.joined", "alice"],
      ["member.joined", "bob"],
      ["message.published", "alice"],
      ["member.left", "bob"],
      ["member.left", "alice"],
      ["room.vacated", null],
    ]);
    const msg = events.find((e) => e.type === "message.published");
    assert.deepEqual(msg.data, { text: "hi" });
    assert.equal(msg.seq, ack.seq);
    assert.equal(msg.name, "alice");
    assert.equal(events.find((e) => e.type === "member.joined").name, "alice");
    // Messages only from rooms matching SWITCHBOARD_WEBHOOK_ROOMS; no personal rooms.
    assert.ok(!events.some((e) => e.type === "message.published" && e.room !== "hooked-1"));
    assert.ok(events.some((e) => e.type === "room.occupied" && e.room === "quiet"));
    assert.ok(!events.some((e) => (e.room || "").startsWith("user:")));
    const presence = events.filter((e) => e.type === "presence.changed" && e.user === "bob");
    assert.deepEqual(
      presence.map((e) => [e.status, e.activity ?? null]),
      [["online", null], ["busy", "meeting"], ["offline", null]],
    );
    const closed = events.filter((e) => e.type === "session.closed");
    // The client's own close code and reason.
    assert.deepEqual(closed.map((e) => [e.user, e.code, e.reason, e.transport]).sort(), [
      ["alice", 1000, "", "websocket"],
      ["bob", 4001, "tab closed", "websocket"],
    ]);
    assert.ok(closed.every((e) => typeof e.session === "string" && e.session.length > 0));
    // The hub counts a batch once it has read the 2xx (just after we answered).
    await until(
      async () => (await metric(server, "switchboard_webhook_delivered_total")) === events.length,
      "delivered_total",
    );
    assert.equal(await metric(server, "switchboard_webhook_queued"), 0);
    assert.equal(await metric(server, "switchboard_webhook_failures_total"), 0);
  } finally {
    await server.stop();
    await receiver.down();
  }
});

test("retried while the receiver answers 500 and while it is down, across a kill -9 of the hub", async () => {
  const receiver = await Receiver.start();
  receiver.status = 500;
  const db = path.join(os.tmpdir(), `switchboard-js-webhooks-${process.pid}.db`);
  after(() => {
    for (const s of ["", "-wal", "-shm", ".lock"]) rmSync(db + s, { force: true });
  });
  const env = hooked(receiver, { SWITCHBOARD_DB: db });
  let server = await Server.start(env);
  try {
    const alice = await connect(server, "alice");
    await alice.join("r1");
    // The oldest events are sent again and again while the answer is 500
    // (a batch grows by what was stored meanwhile, up to BATCH).
    const idsOf = (p) => p.events.map((e) => e.id);
    await until(
      () => receiver.posts.length >= 3 && receiver.attempted().some((e) => e.type === "member.joined"),
      "three attempts, the join's events among them",
    );
    for (const [i, p] of receiver.posts.entries()) {
      assert.ok(p.signed);
      if (i > 0) {
        const before = idsOf(receiver.posts[i - 1]);
        assert.deepEqual(idsOf(p).slice(0, before.length), before, "the same events again, first");
      }
    }
    const first = new Set(receiver.attempted().map((e) => e.id));
    assert.ok(first.size >= 3, "online, occupied, joined");
    assert.ok((await metric(server, "switchboard_webhook_failures_total")) >= 3);

    // Receiver down (connections refused); more events; all stored.
    await receiver.down();
    await alice.join("r2");
    await until(
      async () => (await metric(server, "switchboard_webhook_queued")) >= first.size + 2,
      "r2's events queued",
    );
    const queued = await metric(server, "switchboard_webhook_queued");

    // kill -9 and start again on the same database, receiver still down.
    server.child.kill("SIGKILL");
    await new Promise((ok) => server.child.once("exit", ok));
    server = await Server.start(env);
    assert.equal(await metric(server, "switchboard_webhook_queued"), queued, "nothing lost in the kill");
    await new Promise((ok) => setTimeout(ok, 300)); // a few refused attempts

    receiver.status = 200;
    await receiver.up();
    await until(() => receiver.delivered().length >= queued, "the backlog delivered");
    const delivered = receiver.delivered();
    const ids = new Set(delivered.map((e) => e.id));
    for (const id of first) assert.ok(ids.has(id), `${id} delivered`);
    const r2 = delivered.filter((e) => e.room === "r2").map((e) => e.type);
    assert.deepEqual(r2, ["room.occupied", "member.joined"]);
    assert.ok(receiver.posts.every((p) => p.signed));
    await until(
      async () => (await metric(server, "switchboard_webhook_queued")) === 0,
      "queue empty",
    );
  } finally {
    await server.stop();
    await receiver.down();
  }
});

test("the queue is bounded: the oldest events are dropped and counted", async () => {
  const receiver = await Receiver.start();
  await receiver.down();
  const server = await Server.start(hooked(receiver, { SWITCHBOARD_WEBHOOK_QUEUE: "3" }));
  try {
    const alice = await connect(server, "alice");
    await alice.join("a");
    await alice.join("b");
    await alice.join("c");
    // online, then occupied + joined for each of a, b, c: 7 events, 3 kept.
    await until(
      async () => (await metric(server, "switchboard_webhook_dropped_total")) === 4,
      "4 dropped",
    );
    assert.equal(await metric(server, "switchboard_webhook_queued"), 3);
    assert.equal(await metric(server, "switchboard_webhook_emitted_total"), 7);
    await receiver.up();
    await until(() => receiver.delivered().length === 3, "3 delivered");
    const got = receiver.delivered().map((e) => [e.type, e.room]);
    assert.deepEqual(got, [
      ["member.joined", "b"],
      ["room.occupied", "c"],
      ["member.joined", "c"],
    ]);
  } finally {
    await server.stop();
    await receiver.down();
  }
});
