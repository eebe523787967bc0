// Socket.IO v4 compatibility: the real socket.io-client against the release
// binary, over long-polling then WebSocket (upgrade), WebSocket only and
// long-polling only, next to clients of our own protocol in the same rooms.

import { test as nodeTest, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { Server, next, until, within, WAIT, sioConnected } from "./helpers.mjs";

/** Every test is bounded: a lost answer fails the test, never hangs the file. */
const test = (name, fn) => nodeTest(name, { timeout: 4 * WAIT }, fn);

let server;
before(async () => {
  server = await Server.start({ SWITCHBOARD_JWT_LEEWAY_MS: "0" });
});
after(async () => {
  await server?.stop();
});

// Every client this file opens, closed at the end whatever happened.
const sockets = [];
const natives = [];
function sio(options = {}) {
  const s = io(server.url, { reconnection: false, timeout: WAIT, ...options });
  sockets.push(s);
  return s;
}
after(() => {
  sockets.forEach((s) => s.disconnect());
  natives.forEach((c) => c.ws.terminate());
});

const connected = sioConnected;

/** emitWithAck, bounded. */
function ask(s, event, arg) {
  return s.timeout(WAIT).emitWithAck(event, arg);
}

/** A client of our own protocol on /ws: resolves once `connected`. */
async function native(token) {
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws?token=${token}`);
  const frames = [];
  natives.push({ ws });
  const waiters = [];
  ws.on("message", (d) => {
    const f = JSON.parse(d.toString());
    frames.push(f);
    waiters.splice(0).forEach((w) => w());
  });
  const c = {
    ws,
    frames,
    send: (f) => ws.send(JSON.stringify(f)),
    async next(type, pred = () => true) {
      const end = Date.now() + WAIT;
      for (;;) {
        const i = frames.findIndex((f) => f.type === type && pred(f));
        if (i >= 0) return frames.splice(i, 1)[0];
        if (Date.now() > end) throw new Error(`no ${type} within ${WAIT} ms`);
        await new Promise((ok) => {
          waiters.push(ok);
          setTimeout(ok, 100);
        });
      }
    },
  };
  await c.next("connected");
  return c;
}

test("long-polling then WebSocket: a token in auth, join with an ack, messages both ways with a native client", async () => {
  const s = sio({ auth: { token: await server.token("ann", "Ann") } });
  const first = s.io.engine.transport.name;
  const hello = next(s, "connected");
  await connected(s);
  assert.equal(first, "polling");
  const c = await hello;
  assert.equal(c.user, "ann");
  assert.equal(c.transport, "socket.io");
  if (s.io.engine.transport.name !== "websocket") {
    await new Promise((ok) => s.io.engine.once("upgrade", ok));
  }
  assert.equal(s.io.engine.transport.name, "websocket");

  const joined = await ask(s, "room:join", { room: "sio-both" });
  assert.equal(joined.type, "room:joined");
  assert.equal(joined.room, "sio-both");

  const bob = await native(await server.token("bob", "Bob"));
  bob.send({ type: "room:join", room: "sio-both", id: "j" });
  await bob.next("room:joined", (f) => f.room === "sio-both");
  const fromBob = next(s, "message:receive", (m) => m.room === "sio-both");
  bob.send({ type: "message:send", room: "sio-both", data: { text: "hi ann" }, id: "b1" });
  const m = await fromBob;
  assert.equal(m.from.user, "bob");
  assert.deepEqual(m.data, { text: "hi ann" });

  const ack = await ask(s, "message:send", { room: "sio-both", data: { text: "hi bob" } });
  assert.equal(ack.type, "ack");
  assert.equal(ack.seq, m.seq + 1);
  const atBob = await bob.next("message:receive", (f) => f.from.user === "ann");
  assert.deepEqual(atBob.data, { text: "hi bob" });
  assert.equal(atBob.seq, ack.seq);

  // A low-priority message (a droppable delivery class) arrives like any other.
  const low = next(s, "message:receive", (f) => f.room === "sio-both" && f.priority === "low");
  bob.send({ type: "message:send", room: "sio-both", data: { text: "fyi" }, priority: "low" });
  assert.deepEqual((await low).data, { text: "fyi" });
  bob.ws.close();
});

test("WebSocket only, as a guest: presence and member events arrive as events", async () => {
  const s = sio({ transports: ["websocket"], auth: { name: "Visitor" } });
  const hello = next(s, "connected");
  await connected(s);
  assert.equal(s.io.engine.transport.name, "websocket");
  const c = await hello;
  assert.equal(c.guest, true);
  assert.equal(c.name, "Visitor");
  const joined = await ask(s, "room:join", { room: "general" });
  assert.equal(joined.type, "room:joined");
  // A private room is refused to a guest: the error frame is the ack's answer.
  const refused = await ask(s, "room:join", { room: "staff-only" });
  assert.equal(refused.type, "error");
  assert.equal(refused.code, "forbidden");

  const dan = await native(await server.token("dan", "Dan"));
  const seen = next(s, "room:member_joined", (f) => f.room === "general" && f.user.user === "dan");
  dan.send({ type: "room:join", room: "general" });
  await seen;
  dan.ws.close();
});

test("long-polling only: acks with seq, and errors as ack answers", async () => {
  const s = sio({ transports: ["polling"], auth: { token: await server.token("pat") } });
  await connected(s);
  assert.equal(s.io.engine.transport.name, "polling");
  await ask(s, "room:join", { room: "sio-poll" });
  const seqs = [];
  for (let i = 0; i < 5; i++) {
    const a = await ask(s, "message:send", { room: "sio-poll", data: { i } });
    assert.equal(a.type, "ack");
    seqs.push(a.seq);
  }
  assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
  const bad = await ask(s, "message:send", { room: "not joined" });
  assert.equal(bad.type, "error");
  assert.equal(bad.code, "invalid_room");
  const notObject = await ask(s, "message:send", "just text");
  assert.equal(notObject.type, "error");
  assert.equal(notObject.code, "bad_request");
  const pong = await ask(s, "ping");
  assert.equal(pong.type, "pong", JSON.stringify(pong));
});

test("a refused token is a connect_error with the reason; another namespace is invalid", async () => {
  const s = sio({ auth: { token: "not-a-jwt" } });
  const err = await connected(s).then(
    () => assert.fail("connected with a bad token"),
    (e) => e,
  );
  assert.match(err.message, /invalid token/);
  assert.equal(err.data.code, "unauthorized");

  const t = await server.token("nina");
  const other = io(`${server.url}/admin`, { reconnection: false, auth: { token: t } });
  sockets.push(other);
  const e2 = await connected(other).then(
    () => assert.fail("connected to /admin"),
    (e) => e,
  );
  assert.equal(e2.message, "Invalid namespace");
});

test("binary attachments round trip; native clients see them as $binary", async () => {
  const a = sio({ transports: ["websocket"], auth: { token: await server.token("bin-a") } });
  const b = sio({ auth: { token: await server.token("bin-b") } }); // polling first
  await Promise.all([connected(a), connected(b)]);
  await ask(a, "room:join", { room: "sio-bin" });
  await ask(b, "room:join", { room: "sio-bin" });
  const n = await native(await server.token("bin-n"));
  n.send({ type: "room:join", room: "sio-bin" });
  await n.next("room:joined", (f) => f.room === "sio-bin");

  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  const atB = next(b, "message:receive", (m) => m.room === "sio-bin");
  const ack = await ask(a, "message:send", { room: "sio-bin", data: { name: "f.bin", file: bytes } });
  assert.equal(ack.type, "ack");
  const m = await atB;
  assert.equal(m.data.name, "f.bin");
  assert.ok(Buffer.isBuffer(m.data.file), "the attachment arrives as binary");
  assert.deepEqual([...m.data.file], [...bytes]);
  const atN = await n.next("message:receive", (f) => f.room === "sio-bin");
  assert.deepEqual(atN.data.file, { $binary: bytes.toString("base64") });

  // And from a native client to a Socket.IO client.
  const back = next(a, "message:receive", (f) => f.room === "sio-bin" && f.from.user === "bin-n");
  n.send({ type: "message:send", room: "sio-bin", data: { raw: { $binary: "AAEC" } } });
  const got = await back;
  assert.deepEqual([...got.data.raw], [0, 1, 2]);
  n.ws.close();
});

test("a server-side close (token expired) arrives as a server disconnect", async () => {
  const t = await server.token("short", "Short", { ttl: "2" });
  const s = sio({ transports: ["websocket"], auth: { token: t } });
  await connected(s);
  const reason = await next(s, "disconnect");
  assert.equal(reason, "io server disconnect");
});

test("the connection shows in /healthz sessions and ends with the client", async () => {
  const before = (await (await fetch(`${server.url}/healthz`)).json()).sessions;
  const s = sio({ auth: { token: await server.token("counted") } });
  await connected(s);
  await until(async () => (await (await fetch(`${server.url}/healthz`)).json()).sessions === before + 1, "the session");
  s.disconnect();
  await until(async () => (await (await fetch(`${server.url}/healthz`)).json()).sessions === before, "the session to end");
});


for (const transports of [["websocket"], ["polling"]]) {
  test(`recovery over ${transports[0]}: after a dropped link the rooms come back and what was missed arrives once, in order`, async () => {
    const rooms = ["sio-rec", "sio-rec2"];
    const s = sio({ transports, auth: { token: await server.token("rec-" + transports[0]) } });
    const got = [];
    s.on("message:receive", (m, offset) => {
      if (rooms.includes(m.room)) got.push({ room: m.room, n: m.data.n, seq: m.seq, offset });
    });
    const joins = [];
    s.on("room:joined", (f) => joins.push(f.room));
    await connected(s);
    assert.equal(s.recovered, false);
    const bob = await native(await server.token("rec-bob"));
    for (const room of rooms) {
      await ask(s, "room:join", { room });
      bob.send({ type: "room:join", room, id: `j-${room}` });
      await bob.next("room:joined", (f) => f.room === room);
    }
    const say = async (room, n) => {
      bob.send({ type: "message:send", room, data: { n }, id: `m${n}` });
      return (await bob.next("ack", (f) => f.id === `m${n}`)).seq;
    };
    const seq1 = await say("sio-rec", 1);
    await say("sio-rec2", 2);
    await until(() => got.length === 2, "messages 1 and 2");
    assert.equal(got[0].offset, `${seq1}:sio-rec`, "a room message carries its offset, the message's seq and room");

    // Drop the link (no DISCONNECT: the engine's transport closes).
    const gone = next(s, "disconnect");
    s.io.engine.close();
    assert.equal(await gone, "forced close");
    const user = "rec-" + transports[0];
    await until(async () => (await server.presenceOf(user)) === "offline", "the old session to end");
    // Missed in both rooms; the client's last offset is in the second.
    const missed = [await say("sio-rec", 3), await say("sio-rec2", 4), await say("sio-rec", 5)];

    s.connect();
    await connected(s);
    assert.equal(s.recovered, true, "socket.recovered");
    await until(() => got.length === 5, "the missed messages");
    const of = (room) => got.filter((g) => g.room === room).map((g) => g.n);
    assert.deepEqual(of("sio-rec"), [1, 3, 5]);
    assert.deepEqual(of("sio-rec2"), [2, 4]);
    assert.deepEqual(got.slice(2).map((g) => g.seq).sort(), missed.slice().sort());
    // The rooms are joined again, silently: live messages arrive, once.
    await say("sio-rec", 6);
    await say("sio-rec2", 7);
    await until(() => got.length === 7, "messages 6 and 7");
    assert.deepEqual(of("sio-rec"), [1, 3, 5, 6]);
    assert.deepEqual(of("sio-rec2"), [2, 4, 7]);
    assert.ok(!joins.slice(2).some((r) => rooms.includes(r)), `no second room:joined: ${joins}`);
    bob.ws.close();
  });
}

test("no recovery for another user's pid, nor for a client that disconnected itself", async () => {
  const s = sio({ transports: ["websocket"], auth: { token: await server.token("rec-self") } });
  await connected(s);
  const pid = s._pid;
  assert.equal(typeof pid, "string");
  s.disconnect();
  s.connect();
  await connected(s);
  assert.equal(s.recovered, false, "a DISCONNECT ends the session for good");

  const other = sio({ transports: ["websocket"], auth: { token: await server.token("rec-other") } });
  await connected(other);
  other.io.engine.close();
  await until(async () => (await server.presenceOf("rec-other")) === "offline", "the session to end");
  // Someone else presenting that pid is a new session.
  const thief = sio({ transports: ["websocket"], auth: { token: await server.token("rec-thief"), pid: other._pid } });
  await connected(thief);
  assert.notEqual(thief._pid, other._pid);
  assert.equal(thief.recovered, false);
});

/** A client of `srv` (another server than the file's), closed at the end. */
async function sioOn(srv, name, options = {}) {
  const s = io(srv.url, { reconnection: false, timeout: WAIT, auth: { token: await srv.token(name) }, ...options });
  sockets.push(s);
  await connected(s);
  return s;
}

test("heartbeat: a socket.io-client that stops answering pings is closed by the server; one that answers is not", async () => {
  // The server's deadline (ping due + 100 ms) comes well before the client's
  // own (last ping + 300 + 100 ms): the close the client sees is the server's.
  const tight = await Server.start({ SWITCHBOARD_PING_INTERVAL_MS: "300", SWITCHBOARD_PONG_TIMEOUT_MS: "100" });
  try {
    for (const transports of [["websocket"], ["polling"]]) {
      const quiet = await sioOn(tight, "quiet", { transports });
      const alive = await sioOn(tight, "alive", { transports });
      // socket.io-client answers every ping itself: silence its pongs
      // (engine.io-client 6.6: `_sendPacket("pong")`).
      const engine = quiet.io.engine;
      const send = engine._sendPacket.bind(engine);
      engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
      const reason = await next(quiet, "disconnect");
      assert.equal(reason, "transport close", transports[0]);
      // Several heartbeats later the answering client is still there.
      await new Promise((ok) => setTimeout(ok, 1000));
      assert.ok(alive.connected, `${transports[0]}: the answering client stayed connected`);
      assert.equal((await ask(alive, "ping", {})).type, "pong");
      alive.disconnect();
    }
  } finally {
    await tight.stop();
  }
});

test("maxPayload: the client is told the limit, and a message over it ends the connection", async () => {
  const small = await Server.start({ SWITCHBOARD_MAX_FRAME: "512", SWITCHBOARD_HARD_MAX_FRAME: "1024" });
  try {
    for (const transports of [["websocket"], ["polling"]]) {
      const s = await sioOn(small, "big", { transports });
      assert.equal(s.io.engine._maxPayload, 1024);
      // A message under it is served as usual.
      assert.equal((await ask(s, "ping", {})).type, "pong");
      // Over SWITCHBOARD_MAX_FRAME but under maxPayload: refused, and the
      // ack says so; the connection goes on.
      const over = await ask(s, "message:send", { room: "big", data: "z".repeat(700) });
      assert.deepEqual([over.type, over.code], ["error", "too_large"], JSON.stringify(over));
      assert.equal((await ask(s, "ping", {})).type, "pong");
      s.emit("message:send", { room: "big", data: "y".repeat(2000) });
      const reason = await next(s, "disconnect");
      // WebSocket: closed with 1009. Long-polling: the POST is refused (413)
      // and the waiting GET gets the close packet, whichever the client
      // reads first.
      if (transports[0] === "websocket") assert.equal(reason, "transport close");
      else assert.ok(["transport close", "transport error"].includes(reason), reason);
    }
  } finally {
    await small.stop();
  }
});
