// Tokens checked against a JSON Web Key Set fetched from
// SWITCHBOARD_JWT_JWKS_URL (a small node:http server here), signed by the
// npm `jsonwebtoken` package: a key only in the URL's set is accepted, a key
// rotated in is picked up on its unknown `kid`, and a URL down at start
// means tokens are refused (not the start) until the set is fetched.

import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { generateKeyPairSync } from "node:crypto";
import WebSocket from "ws";
import jwt from "jsonwebtoken";
import { Server, until, WAIT } from "./helpers.mjs";

function keyPair(kid) {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    jwk: { ...publicKey.export({ format: "jwk" }), kid, use: "sig", alg: "RS256" },
    sign: (sub) => jwt.sign({}, privateKey, { algorithm: "RS256", keyid: kid, expiresIn: "1h", subject: sub }),
  };
}

/** Serves `this.keys` as a JWKS; counts the fetches. */
class KeySet {
  static async start(keys, port = 0) {
    const s = new KeySet();
    s.keys = keys;
    s.fetches = 0;
    s.server = http.createServer((req, res) => {
      s.fetches++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: s.keys.map((k) => k.jwk) }));
    });
    await new Promise((ok) => s.server.listen(port, "127.0.0.1", ok));
    s.port = s.server.address().port;
    s.url = `http://127.0.0.1:${s.port}/.well-known/jwks.json`;
    return s;
  }
  stop() {
    return new Promise((ok) => {
      this.server.close(ok);
      this.server.closeAllConnections();
    });
  }
}

/** `{ok, user}` once connected, or `{ok: false, status, message}`. */
function open(server, token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${server.addr}/ws?token=${encodeURIComponent(token)}`);
    const timer = setTimeout(() => reject(new Error("no answer")), WAIT);
    ws.once("message", (d) => {
      clearTimeout(timer);
      ws.close();
      resolve({ ok: true, user: JSON.parse(d).user });
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ ok: false, status: res.statusCode, message: JSON.parse(body).error.message });
      });
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

test("a key only in the URL's set is accepted; a rotated key is fetched on its unknown kid", async () => {
  const k1 = keyPair("k1");
  const k2 = keyPair("k2");
  const set = await KeySet.start([k1]);
  const server = await Server.start({
    SWITCHBOARD_JWT_JWKS_URL: set.url,
    SWITCHBOARD_JWT_JWKS_COOLDOWN_MS: "200",
  });
  try {
    let r;
    await until(async () => (r = await open(server, k1.sign("auth0|k1"))).ok, "k1 accepted");
    assert.equal(r.user, "auth0|k1");
    // Not in the set: refused, and the set is fetched again (rate-limited).
    r = await open(server, k2.sign("carol"));
    assert.equal(r.ok, false);
    assert.equal(r.status, 401);
    assert.match(r.message, /kid/);

    // The provider rotates: k2 in, k1 out. No periodic refresh comes
    // (10 minutes); the unknown kid brings the new set.
    set.keys = [k2];
    const before = set.fetches;
    await until(async () => (r = await open(server, k2.sign("carol"))).ok, "k2 accepted after rotation");
    assert.equal(r.user, "carol");
    assert.ok(set.fetches > before, "fetched again");
    r = await open(server, k1.sign("auth0|k1"));
    assert.equal(r.ok, false, "k1 left the set");
    assert.match(r.message, /kid/);

    // Many unknown kids do not make a fetch each (cooldown 200 ms).
    const k3 = keyPair("k3");
    const n = set.fetches;
    for (let i = 0; i < 10; i++) assert.equal((await open(server, k3.sign("x"))).ok, false);
    assert.ok(set.fetches - n <= 3, `${set.fetches - n} fetches for 10 unknown-kid tokens`);
  } finally {
    await server.stop();
    await set.stop();
  }
});

test("URL down at start: the hub starts, refuses tokens until the set is fetched", async () => {
  const k1 = keyPair("k1");
  // A port that answers nothing: taken, then freed.
  const probe = await KeySet.start([]);
  const port = probe.port;
  await probe.stop();
  const server = await Server.start({
    SWITCHBOARD_JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks`,
  });
  let set;
  try {
    const r = await open(server, k1.sign("dave"));
    assert.equal(r.ok, false);
    assert.equal(r.status, 401);
    assert.match(r.message, /not been fetched/);
    const health = await (await fetch(`${server.url}/healthz`)).json();
    assert.equal(health.status, "ok");
    // The provider comes up: the hub's retries (1 s, doubling) fetch it.
    set = await KeySet.start([k1], port);
    let got;
    await until(async () => (got = await open(server, k1.sign("dave"))).ok, "accepted once fetched", 20000);
    assert.equal(got.user, "dave");
  } finally {
    await server.stop();
    if (set) await set.stop();
  }
});
