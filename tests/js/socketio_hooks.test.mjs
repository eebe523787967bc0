// The connect hook (#15) for Socket.IO: the real socket.io-client, without
// a token, is named by a real backend (a node:http server of this file on
// 127.0.0.1) that sees the Engine.IO handshake's cookies and headers and
// the CONNECT's `auth` payload; a refusal is a connect_error with the
// backend's message and code.

import { test as nodeTest, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { io } from "socket.io-client";
import { Server, next, within, WAIT, sioConnected } from "./helpers.mjs";

const test = (name, fn) => nodeTest(name, { timeout: 4 * WAIT }, fn);

/** The backend's connect hook: every body it was sent, answered by its content. */
const calls = [];
const backend = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    calls.push({ hook: req.headers["x-switchboard-hook"], body });
    const ok = body.data?.pass === "ok" || (body.data === undefined && body.cookies.sid === "good");
    const answer = ok
      ? { user: "sio-7", name: "Hooked", rooms: ["general"] }
      : { error: { code: "bad_login", message: "who are you" } };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
  });
});

let server;
before(async () => {
  await new Promise((ok) => backend.listen(0, "127.0.0.1", ok));
  server = await Server.start({
    SWITCHBOARD_PROXY_CONNECT_URL: `http://127.0.0.1:${backend.address().port}/connect`,
    SWITCHBOARD_PROXY_CONNECT_HEADERS: "X-Tenant",
  });
});
after(async () => {
  await server?.stop();
  backend.closeAllConnections();
  await new Promise((ok) => backend.close(ok));
});

const sockets = [];
function sio(options = {}) {
  const s = io(server.url, { reconnection: false, timeout: WAIT, ...options });
  sockets.push(s);
  return s;
}
after(() => sockets.forEach((s) => s.disconnect()));

const connected = sioConnected;

test("long-polling then WebSocket: cookies, a named header and the auth payload reach the hook", async () => {
  const before = calls.length;
  const s = sio({
    auth: { pass: "ok" },
    extraHeaders: { cookie: "theme=dark; sid=abc", "x-tenant": "acme" },
  });
  const hello = next(s, "connected");
  await connected(s);
  const c = await hello;
  assert.equal(c.user, "sio-7");
  assert.equal(c.name, "Hooked");
  assert.equal(c.transport, "socket.io");
  assert.equal(calls.length, before + 1, "one call for the CONNECT");
  const { hook, body } = calls.at(-1);
  assert.equal(hook, "connect");
  assert.deepEqual(body.cookies, { theme: "dark", sid: "abc" });
  assert.deepEqual(body.headers, { "x-tenant": "acme" });
  assert.deepEqual(body.data, { pass: "ok" });
  assert.equal(body.transport, "socket.io");
  assert.equal(body.client, "127.0.0.1");
  // The backend's `rooms` apply.
  const joined = await s.timeout(WAIT).emitWithAck("room:join", { room: "general" });
  assert.equal(joined.type, "room:joined");
  const refused = await s.timeout(WAIT).emitWithAck("room:join", { room: "elsewhere" });
  assert.equal(refused.code, "forbidden");
});

test("WebSocket only with a cookie and no auth payload", async () => {
  const s = sio({ transports: ["websocket"], extraHeaders: { cookie: "sid=good" } });
  const hello = next(s, "connected");
  await connected(s);
  assert.equal((await hello).user, "sio-7");
  const { body } = calls.at(-1);
  assert.equal(body.cookies.sid, "good");
  assert.equal(body.data, undefined);
  assert.equal(body.transport, "socket.io");
});

test("a refusal is a connect_error with the backend's message and code", async () => {
  for (const transports of [["polling"], ["websocket"]]) {
    const s = sio({ transports, auth: { pass: "nope" } });
    const err = await connected(s).then(
      () => assert.fail("connected although the hook refused"),
      (e) => e,
    );
    assert.equal(err.message, "who are you");
    assert.equal(err.data.code, "bad_login");
  }
});

test("a token in auth is checked as usual, without the hook", async () => {
  const before = calls.length;
  const s = sio({ auth: { token: await server.token("tess") } });
  const hello = next(s, "connected");
  await connected(s);
  assert.equal((await hello).user, "tess");
  assert.equal(calls.length, before);
});
