// The SDK's tool calls (static/switchboard-rpc.js) against the real server:
// call() resolves with the handler's result across transports, a throwing
// handler rejects the caller with its code, an unknown method and a
// server-side refusal reject with theirs.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { Server } from "./helpers.mjs";

let server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.stop();
});

test("a browser calls a service and the service calls the browser back", async () => {
  const bot = server.client({ token: await server.token("bot", "Bot", { role: "service" }) });
  const ann = server.client({ token: await server.token("ann"), transports: ["sse"] });
  await bot.ready();
  await ann.ready();
  const seen = [];
  bot.onCall("sum", async (params, info) => {
    seen.push([info.from.user, info.session, info.method]);
    return params.reduce((a, b) => a + b, 0);
  });
  bot.onCall("fail", () => {
    const e = new Error("no such city");
    e.code = "no_such_city";
    throw e;
  });
  assert.equal(await ann.call("bot", "sum", [1, 2, 3]), 6);
  assert.deepEqual(seen, [["ann", ann.sessionId, "sum"]]);
  await assert.rejects(ann.call("bot", "fail", {}), { code: "no_such_city", message: "no such city" });
  await assert.rejects(ann.call("bot", "nothing"), { code: "unknown_method" });
  // The service asks the browser's session; the handler's undefined is null.
  let asked = null;
  const off = ann.onCall("confirm", (q) => {
    asked = q;
  });
  assert.equal(await bot.call(ann.sessionId, "confirm", { q: "ok?" }, { timeoutMs: 5000 }), null);
  assert.deepEqual(asked, { q: "ok?" });
  off();
  await assert.rejects(bot.call(ann.sessionId, "confirm"), { code: "unknown_method" });
  // Refused by the server: a user may not call another user's session.
  const cy = server.client({ token: await server.token("cy") });
  await cy.ready();
  await assert.rejects(ann.call(cy.sessionId, "x"), { code: "forbidden" });
  await assert.rejects(ann.call("nobody-here", "x"), { code: "user_offline" });
  // A handler that never answers: the server's timeout rejects the call.
  bot.onCall("hang", () => new Promise(() => {}));
  await assert.rejects(ann.call("bot", "hang", null, { timeoutMs: 200 }), { code: "rpc_timeout" });
});
