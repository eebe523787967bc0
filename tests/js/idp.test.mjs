// Tokens signed by the npm `jsonwebtoken` package the way Auth0 and Keycloak
// issue them (aud as string and array, iss, nbf, `sub: "auth0|abc"`, numeric
// sub), verified by the real server with an RS256 public key file or a JWKS
// file (RS256 and ES256 keys chosen by `kid`), over WebSocket.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import jwt from "jsonwebtoken";
import { Server, WAIT } from "./helpers.mjs";

const dir = mkdtempSync(path.join(os.tmpdir(), "switchboard-idp-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const AUDIENCE = "https://switchboard.example";
const ISSUER = "https://tenant.auth0.example/";

/** Opens /ws with `token`: `{ok: true, frames}` once `connected` and the
 * personal room's `room:joined` arrived, or `{ok: false, status, body}` for a
 * refused upgrade. */
function open(server, token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${server.addr}/ws?token=${encodeURIComponent(token)}`);
    const frames = [];
    const timer = setTimeout(() => reject(new Error("no answer")), WAIT);
    ws.on("message", (d) => {
      frames.push(JSON.parse(d));
      if (frames.length === 2) {
        clearTimeout(timer);
        ws.close();
        resolve({ ok: true, frames });
      }
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ ok: false, status: res.statusCode, body: JSON.parse(body) });
      });
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function admitted(server, token, what) {
  const r = await open(server, token);
  assert.ok(r.ok, `${what}: refused ${JSON.stringify(r.body)}`);
  const [hello, joined] = r.frames;
  assert.equal(hello.type, "connected", what);
  assert.equal(hello.guest, false, what);
  assert.equal(joined.type, "room:joined", what);
  assert.equal(joined.room, `user:${hello.user}`, what);
  return hello;
}

async function refused(server, token, why, what) {
  const r = await open(server, token);
  assert.ok(!r.ok, `${what}: admitted`);
  assert.equal(r.status, 401, what);
  assert.equal(r.body.error.code, "unauthorized", what);
  assert.match(r.body.error.message, why, what);
}

test("RS256 with a public key file: Auth0- and Keycloak-shaped tokens", async () => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = path.join(dir, "public.pem");
  writeFileSync(pem, publicKey.export({ type: "spki", format: "pem" }));
  const server = await Server.start({
    SWITCHBOARD_JWT_PUBLIC_KEY_FILE: pem,
    SWITCHBOARD_JWT_AUDIENCE: `${AUDIENCE},switchboard`,
    SWITCHBOARD_JWT_ISSUER: `${ISSUER},https://kc.example/realms/acme`,
  });
  try {
    const sign = (payload, options) =>
      jwt.sign(payload, privateKey, { algorithm: "RS256", expiresIn: "1h", ...options });

    // Auth0: aud an array (API + userinfo), sub `auth0|…`, kid, iat, nbf now.
    const auth0 = sign(
      { name: "Ann", "https://acme/roles": ["editor"], scope: "openid profile" },
      {
        subject: "auth0|abc",
        audience: [AUDIENCE, `${ISSUER}userinfo`],
        issuer: ISSUER,
        notBefore: 0,
        keyid: "k1",
      },
    );
    const a = await admitted(server, auth0, "auth0");
    assert.equal(a.user, "auth0|abc");
    assert.equal(a.name, "Ann");

    // Keycloak: aud a string (audience mapper), sub a UUID, typ/azp/realm_access.
    const kc = sign(
      { typ: "Bearer", azp: "web", realm_access: { roles: ["user"] }, preferred_username: "bo" },
      {
        subject: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        audience: "switchboard",
        issuer: "https://kc.example/realms/acme",
      },
    );
    assert.equal((await admitted(server, kc, "keycloak")).user, "f81d4fae-7dec-11d0-a765-00a0c91e6bf6");

    // A numeric sub is kept as its decimal text.
    const numeric = sign({ sub: 4711 }, { audience: AUDIENCE, issuer: ISSUER });
    assert.equal((await admitted(server, numeric, "numeric sub")).user, "4711");

    const base = { subject: "auth0|abc", audience: AUDIENCE, issuer: ISSUER };
    await refused(server, sign({}, { ...base, audience: "https://other.example" }), /aud/, "other audience");
    await refused(server, sign({}, { subject: "auth0|abc", issuer: ISSUER }), /aud/, "no audience");
    await refused(server, sign({}, { ...base, issuer: "https://evil.example/" }), /iss/, "other issuer");
    await refused(server, sign({}, { ...base, notBefore: "5m" }), /nbf/, "nbf in 5 minutes");
    await refused(server, sign({}, { ...base, subject: "guest-00" }), /guest-/, "guest sub");
    const { privateKey: other } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    await refused(
      server,
      jwt.sign({}, other, { algorithm: "RS256", expiresIn: "1h", ...base }),
      /signature/,
      "another key",
    );
  } finally {
    await server.stop();
  }
});

test("JWKS file: RS256 and ES256 keys chosen by kid; encryption keys skipped", async () => {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const enc = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwks = {
    keys: [
      { ...rsa.publicKey.export({ format: "jwk" }), kid: "rsa1", use: "sig", alg: "RS256" },
      { ...ec.publicKey.export({ format: "jwk" }), kid: "ec1", use: "sig" },
      { ...enc.publicKey.export({ format: "jwk" }), kid: "enc1", use: "enc", alg: "RSA-OAEP" },
    ],
  };
  const file = path.join(dir, "jwks.json");
  writeFileSync(file, JSON.stringify(jwks));
  const server = await Server.start({ SWITCHBOARD_JWT_JWKS_FILE: file });
  try {
    const opts = { expiresIn: "1h", subject: "auth0|abc", audience: "anything", issuer: ISSUER };
    const byRsa = jwt.sign({}, rsa.privateKey, { ...opts, algorithm: "RS256", keyid: "rsa1" });
    const byEc = jwt.sign({}, ec.privateKey, { ...opts, algorithm: "ES256", keyid: "ec1" });
    // No audience or issuer configured: any `aud` and `iss` pass.
    assert.equal((await admitted(server, byRsa, "RS256 kid rsa1")).user, "auth0|abc");
    assert.equal((await admitted(server, byEc, "ES256 kid ec1")).user, "auth0|abc");

    const sign = (key, algorithm, keyid) => jwt.sign({}, key, { ...opts, algorithm, keyid });
    await refused(server, sign(ec.privateKey, "ES256", "rsa1"), /./, "ES256 under an RSA kid");
    await refused(server, sign(rsa.privateKey, "RS256", "ec1"), /./, "RS256 under an EC kid");
    await refused(server, sign(rsa.privateKey, "RS256", "nope"), /kid/, "unknown kid");
    await refused(server, sign(enc.privateKey, "RS256", "enc1"), /kid/, "encryption key");
    await refused(server, jwt.sign({}, rsa.privateKey, { ...opts, algorithm: "RS256" }), /kid/, "no kid");
  } finally {
    await server.stop();
  }
});
