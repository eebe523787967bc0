// static/switchboard.js against the real server binary: transport fallback,
// each transport carrying the same conversation, reconnect with `since`,
// the offline queue, heartbeats and the connection grade.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import WebSocket from "ws";
import { EventSource } from "eventsource";
import { Server, Proxy, next, until, transcript, WAIT } from "./helpers.mjs";
import { backoffDelay, gradeQuality } from "../../static/switchboard.js";

let server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.stop();
});

const fast = { reconnect: { base: 100, cap: 400 }, connectTimeout: 3000 };

test("falls back websocket → sse → polling when a transport is blocked or fails", async () => {
  // A page where WebSocket is disabled: the constructor refuses.
  class NoWebSocket {
    constructor() {
      throw new Error("WebSocket is blocked here");
    }
  }
  const a = server.client({ name: "ann", WebSocket: NoWebSocket });
  await a.ready();
  assert.equal(a.connectionInfo().transport, "sse");

  // A proxy that swallows upgrades (the WebSocket hangs until the connect
  // timeout) and a stream that is refused: polling remains.
  const silent = net.createServer(() => {}); // accepts, never answers
  await new Promise((ok) => silent.listen(0, "127.0.0.1", ok));
  const tried = [];
  class HangingWebSocket extends WebSocket {
    constructor(url) {
      tried.push("websocket");
      super(url.replace(/:\/\/[^/]+/, `://127.0.0.1:${silent.address().port}`));
    }
  }
  class RefusedEventSource extends EventSource {
    constructor(url) {
      tried.push("sse");
      super(url.replace("/sse?", "/no-such-stream?"));
    }
  }
  const countingFetch = (url, init) => {
    if (String(url).includes("/poll/open")) tried.push("polling");
    return fetch(url, init);
  };
  const b = server.client({
    name: "bob",
    WebSocket: HangingWebSocket,
    EventSource: RefusedEventSource,
    fetch: countingFetch,
    connectTimeout: 2500,
  });
  await b.ready();
  assert.deepEqual(tried, ["websocket", "sse", "polling"]);
  const info = b.connectionInfo();
  assert.equal(info.transport, "polling");
  assert.equal(info.state, "connected");

  // Both still talk to each other.
  await a.joinRoom("general");
  await b.joinRoom("general");
  const got = next(a, "message:receive", (m) => m.data.text === "over polling");
  const ack = await b.send("general", { text: "over polling" });
  assert.ok(ack.seq >= 1);
  assert.equal((await got).from.name, "bob");
  a.close();
  b.close();
  silent.close();
});

test("websocket, sse and polling carry the same conversation, typing and presence", async () => {
  const room = "public-same";
  const ws = server.client({ token: await server.token("wes", "Wes"), transports: ["websocket"] });
  const sse = server.client({ token: await server.token("sia", "Sia"), transports: ["sse"] });
  const poll = server.client({ name: "Pol", transports: ["polling"] });
  const clients = [ws, sse, poll];
  const logs = clients.map((c) => transcript(c, room));
  await Promise.all(clients.map((c) => c.ready()));
  assert.deepEqual(clients.map((c) => c.connectionInfo().transport), ["websocket", "sse", "polling"]);
  for (const c of clients) await c.joinRoom(room);
  await until(() => clients.every((c) => c.members(room).length === 3), "three members everywhere");

  for (const [i, c] of clients.entries()) await c.send(room, { text: `line ${i}` });
  const want = ["line 0", "line 1", "line 2"];
  await until(() => logs.every((l) => l.length === 3), "every transcript complete");
  for (const l of logs) assert.deepEqual(l, want);

  // Typing from the SSE client reaches the polling client.
  const typing = next(poll, "typing:update", (f) => f.room === room && f.users.some((u) => u.user === "sia"));
  sse.typing(room);
  await typing;
  assert.deepEqual(poll.typingUsers(room).map((u) => u.name), ["Sia"]);

  // Presence from the polling client reaches the WebSocket client's member list.
  const guestId = poll.connectionInfo().user;
  poll.setPresence("busy", "on a call");
  await until(() => ws.members(room).find((m) => m.user === guestId)?.status === "busy", "busy on ws");
  assert.equal(ws.members(room).find((m) => m.user === guestId).activity, "on a call");

  // Errors are reported the same way: a guest may not join a private room.
  await assert.rejects(poll.joinRoom("private-room"), { code: "forbidden" });
  // A direct message over SSE reaches the WebSocket user.
  const dm = next(ws, "direct:receive");
  await sse.sendTo("wes", { text: "psst" });
  assert.equal((await dm).from.user, "sia");
  clients.forEach((c) => c.close());
});

test("send options: excludeSelf skips this connection, idempotencyKey answers a repeat with the first seq", async () => {
  const room = "public-options";
  const a = server.client({ token: await server.token("opt-a", "A"), transports: ["websocket"] });
  const b = server.client({ token: await server.token("opt-b", "B"), transports: ["polling"] });
  const [la, lb] = [transcript(a, room), transcript(b, room)];
  await Promise.all([a.ready(), b.ready()]);
  await a.joinRoom(room);
  await b.joinRoom(room);
  const quiet = await a.send(room, { text: "not to me" }, { excludeSelf: true });
  const first = await b.send(room, { text: "once" }, { idempotencyKey: "k-1" });
  const again = await b.send(room, { text: "once" }, { idempotencyKey: "k-1" });
  assert.equal(again.seq, first.seq);
  assert.equal(again.duplicate, true);
  assert.equal(first.duplicate, undefined);
  await a.send(room, { text: "last" });
  await until(() => la.length === 2 && lb.length === 3, "transcripts complete");
  assert.deepEqual(la, ["once", "last"]);
  assert.deepEqual(lb, ["not to me", "once", "last"]);
  assert.ok(quiet.seq < first.seq);
  a.close();
  b.close();
});

for (const transport of ["websocket", "sse", "polling"]) {
  test(`${transport}: after a network cut it rejoins with since and flushes the offline queue in order`, async () => {
    const room = `recover-${transport}`;
    const proxy = await Proxy.start(server.addr);
    const a = server.client({ url: proxy.url, token: await server.token("alma"), transports: [transport], ...fast });
    const b = server.client({ token: await server.token("bert"), transports: ["websocket"] });
    const seenA = transcript(a, room);
    const seenB = transcript(b, room);
    await a.joinRoom(room);
    await b.joinRoom(room);
    for (const t of ["m1", "m2", "m3"]) await b.send(room, { text: t });
    await until(() => seenA.length === 3, "a has m1..m3");

    proxy.refuse(); // the network goes away
    await until(() => a.connectionInfo().state !== "connected", "a notices the drop", WAIT);
    for (const t of ["m4", "m5", "m6"]) await b.send(room, { text: t });
    // Sent while offline: queued, flushed in order after the rejoin.
    const q1 = a.send(room, { text: "q1" });
    const q2 = a.send(room, { text: "q2" });
    assert.equal(a.connectionInfo().queued, 2);
    const rejoined = next(a, "room:joined", (f) => f.room === room, WAIT * 2);
    proxy.restore();
    const joined = await rejoined;
    const acks = await Promise.all([q1, q2]);
    assert.ok(acks[0].seq < acks[1].seq, "in order");
    const want = ["m1", "m2", "m3", "m4", "m5", "m6", "q1", "q2"];
    await until(() => seenA.length >= want.length && seenB.length >= want.length, "both transcripts");
    assert.deepEqual(seenA, want, "nothing lost, nothing twice");
    assert.deepEqual(seenB, want);
    assert.equal(joined.recovered, true, "rejoined with since");
    assert.equal(a.connectionInfo().state, "connected");
    assert.ok(a.connectionInfo().failures >= 1);
    a.close();
    b.close();
    await proxy.stop();
  });
}

test("messages older than the kept history are fetched over REST and the gap is reported", async () => {
  const s = await Server.start({ SWITCHBOARD_HISTORY_SIZE: "3" });
  try {
    const room = "small-history";
    const proxy = await Proxy.start(s.addr);
    const a = s.client({ url: proxy.url, token: await s.token("ada"), ...fast });
    const b = s.client({ token: await s.token("ben") });
    const seen = transcript(a, room);
    await a.joinRoom(room);
    await b.joinRoom(room);
    await b.send(room, { text: "n1" });
    await until(() => seen.length === 1, "n1");
    proxy.refuse();
    await until(() => a.connectionInfo().state !== "connected", "drop");
    for (let i = 2; i <= 7; i++) await b.send(room, { text: `n${i}` });
    const gap = next(a, "gap", (g) => g.room === room, WAIT * 2);
    proxy.restore();
    const g = await gap;
    assert.deepEqual([g.from, g.to], [2, 4]);
    await until(() => seen.length === 4, "the kept three");
    assert.deepEqual(seen, ["n1", "n5", "n6", "n7"]);
    // Live messages continue after the backfill, exactly once.
    await b.send(room, { text: "n8" });
    await until(() => seen.length === 5, "n8");
    assert.deepEqual(seen.slice(-1), ["n8"]);
    await proxy.stop();
  } finally {
    await s.stop();
  }
});

test("what a backend sent to the user's personal room while offline arrives once after reconnecting", async () => {
  const proxy = await Proxy.start(server.addr);
  const a = server.client({ url: proxy.url, token: await server.token("pia"), ...fast });
  const seen = transcript(a, "user:pia");
  await a.ready();
  const r = await fetch(`${server.url}/api/dev/token?sub=backend&role=service`);
  const service = (await r.json()).token;
  const publish = async (text) => {
    const res = await fetch(`${server.url}/api/publish`, {
      method: "POST",
      headers: { Authorization: `Bearer ${service}`, "Content-Type": "application/json" },
      body: JSON.stringify({ room: "user:pia", data: { text } }),
    });
    assert.equal(res.status, 200);
  };
  await publish("p1");
  await until(() => seen.length === 1, "p1 live");
  proxy.refuse();
  await until(() => a.connectionInfo().state !== "connected", "drop");
  await publish("p2");
  await publish("p3");
  proxy.restore();
  await until(() => a.connectionInfo().state === "connected", "back");
  await publish("p4");
  await until(() => seen.length >= 4, "all four");
  assert.deepEqual(seen, ["p1", "p2", "p3", "p4"]);
  a.close();
  await proxy.stop();
});

test("joinRoom with history delivers earlier messages before live ones", async () => {
  const room = "public-backlog";
  const b = server.client({ name: "writer" });
  await b.joinRoom(room);
  for (let i = 1; i <= 5; i++) await b.send(room, { text: `h${i}` });
  const a = server.client({ name: "reader" });
  const seen = transcript(a, room);
  await a.joinRoom(room, { history: 3 });
  await b.send(room, { text: "live" });
  await until(() => seen.length === 4, "history then live");
  assert.deepEqual(seen, ["h3", "h4", "h5", "live"]);
  a.close();
  b.close();
});

test("the offline queue is bounded: the overflow is refused, not dropped silently", async () => {
  const proxy = await Proxy.start(server.addr);
  proxy.refuse();
  const a = server.client({ url: proxy.url, name: "queued", queueSize: 3, ...fast });
  const errors = [];
  a.on("error", (e) => errors.push(e.code));
  const sends = [1, 2, 3].map((i) => a.send("general", { text: `q${i}` }));
  await assert.rejects(a.send("general", { text: "q4" }), { code: "queue_full" });
  await new Promise((ok) => setTimeout(ok, 50));
  assert.deepEqual(errors, [], "the rejection reports it, not also the error event");
  assert.equal(a.connectionInfo().queued, 3);
  const seen = transcript(a, "general");
  const joined = a.joinRoom("general");
  proxy.restore();
  await joined;
  await Promise.all(sends);
  await until(() => seen.length === 3, "the three queued");
  assert.deepEqual(seen, ["q1", "q2", "q3"]);
  a.close();
  await proxy.stop();
});

for (const [which, what] of [["both", "never arrived is sent again"], ["down", "arrived is not sent twice"]]) {
  test(`a message in flight when the link died: one that ${what}`, async () => {
    const room = `inflight-${which}`;
    const proxy = await Proxy.start(server.addr);
    const a = server.client({
      url: proxy.url,
      token: await server.token("ines"),
      heartbeat: { interval: 300, timeout: 600 },
      ...fast,
    });
    const b = server.client({ token: await server.token("otto") });
    const seenB = transcript(b, room);
    const seenA = transcript(a, room);
    await a.joinRoom(room);
    await b.joinRoom(room);
    proxy.freeze(which);
    const sent = a.send(room, { text: "in flight" });
    await next(a, "disconnected");
    proxy.restore();
    const { seq } = await sent;
    await a.send(room, { text: "after" });
    await until(() => seenB.length === 2 && seenA.length === 2, "both messages");
    assert.deepEqual(seenB, ["in flight", "after"]);
    assert.deepEqual(seenA, ["in flight", "after"]);
    assert.equal(seq, 1);
    a.close();
    b.close();
    await proxy.stop();
  });
}

test("a dead link is detected by the heartbeat and the grade drops", async () => {
  const proxy = await Proxy.start(server.addr);
  const a = server.client({
    url: proxy.url,
    name: "beat",
    heartbeat: { interval: 300, timeout: 600 },
    ...fast,
  });
  await a.ready();
  await until(() => a.connectionInfo().rtt !== null, "an RTT sample");
  // Graded from the RTT alone: no failure yet (load may make it slower).
  const info = a.connectionInfo();
  assert.equal(info.failures, 0, JSON.stringify(info));
  assert.equal(info.quality, gradeQuality([info.rtt], 0, true), JSON.stringify(info));
  const disconnected = next(a, "disconnected");
  proxy.freeze(); // no FIN, no data: only the heartbeat can tell
  assert.equal((await disconnected).code, 4000);
  assert.notEqual(a.connectionInfo().state, "connected");
  assert.equal(a.connectionInfo().quality, "poor");
  proxy.restore();
  await until(() => a.connectionInfo().state === "connected", "reconnected");
  const later = a.connectionInfo();
  assert.ok(later.failures >= 1, JSON.stringify(later));
  assert.equal(later.quality, gradeQuality([later.rtt ?? 0], later.failures, true));
  assert.notEqual(later.quality, "excellent", "a recent failure lowers the grade");
  a.close();
  await proxy.stop();
});

test("a bad token stops the client with unauthorized instead of retrying forever", async () => {
  const a = server.client({ token: "not-a-token", ...fast });
  await assert.rejects(a.ready(), { code: "unauthorized" });
  assert.equal(a.connectionInfo().state, "closed");
});

test("backoff grows exponentially, is capped and jittered; grades follow RTT and failures", () => {
  const cfg = { base: 100, cap: 1000, jitter: 0.5 };
  assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, cfg, () => 1)), [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual([0, 3].map((n) => backoffDelay(n, cfg, () => 0)), [50, 400]);
  assert.equal(gradeQuality([20, 40], 0, true), "excellent");
  assert.equal(gradeQuality([250], 0, true), "good");
  assert.equal(gradeQuality([20], 2, true), "fair");
  assert.equal(gradeQuality([1500], 0, true), "poor");
  assert.equal(gradeQuality([20], 0, false), "poor");
});

test("loadEarlier pages back from the oldest message the client has, on each transport", async () => {
  const room = "public-deep";
  await server.publishMany(room, 230);
  const all = Array.from({ length: 230 }, (_, i) => i + 1);
  for (const transport of ["websocket", "sse", "polling"]) {
    const c = server.client({ name: "pager", transports: [transport] });
    const live = [];
    c.on("message:receive", (m) => m.room === room && live.push(m.seq));
    await c.joinRoom(room, { history: 5 });
    await until(() => live.length === 5, "the last five messages");
    const first = c.loadEarlier(room, { limit: 40 });
    assert.equal(c.loadEarlier(room, { limit: 40 }), first, "a second call shares the page on its way");
    const seen = [...live];
    let page = await first;
    for (let i = 0; i < 50; i++) {
      assert.ok(page.messages.length <= 40, transport);
      seen.unshift(...page.messages.map((m) => m.seq));
      if (!page.more) break;
      page = await c.loadEarlier(room, { limit: 40 });
    }
    assert.deepEqual(seen, all, `${transport}: every message once, in order`);
    assert.match(page.messages[0].data.text, /^line \d+$/, "the stored frame, as sent live");
    const end = await c.loadEarlier(room);
    assert.deepEqual([end.messages, end.more], [[], false], "nothing before the first");
    const latest = await c.history(room, { limit: 3 });
    assert.deepEqual([latest.messages.map((m) => m.seq), latest.more], [[228, 229, 230], true]);
    c.close();
  }
});

test("signal: one session of a member gets it, member lists track sessions", async () => {
  const tok = (sub) => server.token(sub);
  const [ann, bob, bob2] = [
    server.client({ token: () => tok("ann-sig") }),
    server.client({ token: () => tok("bob-sig") }),
    server.client({ token: () => tok("bob-sig") }),
  ];
  await Promise.all([ann.ready(), bob.ready(), bob2.ready()]);
  await ann.joinRoom("sig");
  await bob.joinRoom("sig");
  await until(() => ann.members("sig").find((m) => m.sessions?.includes(bob.sessionId)), "bob's session listed at ann");
  const got = [];
  bob.on("signal", (f) => got.push(f));
  bob2.on("signal", (f) => got.push({ wrong: f }));
  assert.deepEqual(await ann.signal("sig", bob.sessionId, "offer", { sdp: "v=0" }), {});
  await until(() => got.length === 1, "bob got the offer");
  assert.equal(got[0].session, ann.sessionId);
  assert.deepEqual([got[0].kind, got[0].data], ["offer", { sdp: "v=0" }]);
  // bob2 is not in the room: refused, and nothing reaches it.
  const refused = await ann.signal("sig", bob2.sessionId, "ice", {}).catch((e) => e.code);
  assert.equal(refused, "forbidden");
  await bob.leaveRoom("sig");
  await until(() => !ann.members("sig").some((m) => m.sessions?.includes(bob.sessionId)), "bob's session gone at ann");
  assert.equal(got.length, 1);
  await Promise.all([ann.close(), bob.close(), bob2.close()]);
});

test("send with priority and volatile: volatile messages have no seq and do not disturb the numbering", async () => {
  const [ann, bob] = [server.client({ token: () => server.token("ann-cls") }), server.client({ token: () => server.token("bob-cls") })];
  await Promise.all([ann.ready(), bob.ready()]);
  await ann.joinRoom("cls");
  await bob.joinRoom("cls");
  const got = [];
  bob.on("message:receive", (m) => m.room === "cls" && got.push(m));
  assert.deepEqual(await ann.send("cls", { n: 1 }), { seq: 1 });
  assert.deepEqual(await ann.send("cls", { n: 2 }, { volatile: true }), {});
  assert.deepEqual(await ann.send("cls", { n: 3 }, { priority: "critical" }), { seq: 2 });
  await ann.send("cls", { n: 4 }, { priority: "low" });
  await until(() => got.length === 4, "bob got all four");
  const rows = got.map((m) => [m.data.n, m.seq ?? null, m.priority ?? null, m.volatile ?? null]);
  assert.deepEqual([...rows].sort((a, b) => a[0] - b[0]), [
    [1, 1, null, null],
    [2, null, null, true],
    [3, 2, "critical", null],
    [4, 3, "low", null],
  ]);
  // A critical message is queued ahead of what is still waiting for bob
  // (PROTOCOL.md, "Delivery classes"); the others keep their send order.
  assert.deepEqual(rows.filter((r) => r[2] !== "critical").map((r) => r[0]), [1, 2, 4]);
  await Promise.all([ann.close(), bob.close()]);
});
