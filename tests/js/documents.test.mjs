// openDocument() of static/switchboard.js against the real server: two
// editors typing at once converge on every transport; edits made while one
// of them is cut off arrive after the reconnect exactly once (also when the
// server got an op but its ack was lost); cursors; refusals.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, Proxy, next, until, within, WAIT } from "./helpers.mjs";
import { TextOperation } from "../../static/ot.js";

let server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.stop();
});

const TRANSPORTS = ["websocket", "sse", "polling"];
const fast = { reconnect: { base: 100, cap: 400 }, connectTimeout: 3000 };
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** A seeded generator of integers in [0, n). */
function rng(seed) {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

// Every edit inserts or deletes one whole token like "[a7]", at a token
// boundary. OT keeps concurrent inserts whole, so the final text must be
// exactly the tokens inserted and not deleted, each once, in some order.
// The ops are exact (apply): edit(newText) would diff "[a7][b0]" → "[b0]"
// into deleting "a7][", the same text locally but not a whole token for
// the concurrent edits of others (the text is ASCII: UTF-16 = code points).

function insertToken(h, token, r) {
  const t = h.text;
  const cuts = [0];
  for (let i = 0; i < t.length; i++) if (t[i] === "]") cuts.push(i + 1);
  const at = cuts[r(cuts.length)];
  h.apply(new TextOperation().retain(at).insert(token).retain(t.length - at));
  assert.ok(h.text.includes(token));
}

function deleteToken(h, r, deleted) {
  const t = h.text;
  const tokens = tokensOf(t);
  if (!tokens.length) return;
  const i = r(tokens.length);
  const at = tokens.slice(0, i).join("").length;
  deleted.add(tokens[i]);
  const len = tokens[i].length;
  h.apply(new TextOperation().retain(at).delete(len).retain(t.length - at - len));
}

function tokensOf(text) {
  const tokens = text.match(/\[[^\][]*\]/g) || [];
  assert.equal(tokens.join(""), text, "the text is whole tokens only");
  return tokens;
}

function assertTokens(text, want) {
  assert.deepEqual([...tokensOf(text)].sort(), [...want].sort());
}

/** Both handles acknowledged everything and are at the same revision. */
async function converged(handles, what) {
  await until(
    () => handles.every((h) => h.state === "synchronized") && new Set(handles.map((h) => h.rev)).size === 1,
    what,
    WAIT * 2,
  );
  for (const h of handles) assert.equal(h.text, handles[0].text);
}

/** The document as a newcomer gets it. */
async function snapshotOf(doc, transport) {
  const c = server.client({ token: await server.token("reader"), transports: [transport] });
  const h = c.openDocument(doc);
  await within(h.ready(), "the newcomer's snapshot");
  const text = h.text;
  c.close();
  return text;
}

for (const transport of TRANSPORTS) {
  test(`${transport}: two editors typing at once converge; cursors are shared`, async () => {
    const doc = `notes-converge-${transport}`;
    const a = server.client({ token: await server.token("ann", "Ann"), transports: [transport] });
    const b = server.client({ token: await server.token("bo", "Bo"), transports: [transport] });
    // Opened before the clients are even connected: opened once they are.
    const ha = a.openDocument(doc);
    const hb = b.openDocument(doc);
    assert.equal(ha.state, "opening");
    assert.throws(() => ha.edit("too early"), /not open yet/);
    assert.throws(() => a.openDocument(doc), { code: "already_open" });
    const errors = [];
    for (const h of [ha, hb]) h.on("error", (e) => errors.push(e));
    await within(Promise.all([ha.ready(), hb.ready()]), "both documents open");
    assert.equal(a.connectionInfo().transport, transport);
    assert.equal(ha.text, "");

    const inserted = new Set();
    const deleted = new Set();
    const r = rng(transport.length * 7919);
    await Promise.all(
      [[ha, "a"], [hb, "b"]].map(async ([h, who]) => {
        for (let n = 0; n < 30; n++) {
          await sleep(r(20));
          if (n % 7 === 6) deleteToken(h, r, deleted);
          else {
            const token = `[${who}${n}]`;
            inserted.add(token);
            insertToken(h, token, r);
          }
        }
      }),
    );
    await converged([ha, hb], "both editors at the same revision");
    const want = [...inserted].filter((t) => !deleted.has(t));
    assert.ok(want.length >= 40, `${want.length} tokens left`);
    assertTokens(ha.text, want);
    // Edits made while an op waits for its ack are composed into one: fewer revisions than edits.
    assert.ok(ha.rev >= 4, `only ${ha.rev} ops were committed`);
    assert.equal(await snapshotOf(doc, transport), ha.text, "what the server stored");
    assert.deepEqual(errors, []);

    // Ann's selection reaches Bo, in code points of his text; it goes when she closes.
    const seen = next(hb, "cursor", (c) => c.user === "ann" && c.head === 4);
    ha.cursor(0, 4);
    const c = await seen;
    assert.deepEqual([c.name, c.anchor, c.head], ["Ann", 0, 4]);
    assert.deepEqual(hb.cursors().map((x) => x.user), ["ann"]);
    const gone = next(hb, "cursor", (x) => x.user === "ann" && x.anchor === null);
    ha.close();
    await gone;
    assert.deepEqual(hb.cursors(), []);
    assert.equal(ha.state, "closed");
    a.close();
    b.close();
  });

  for (const how of ["refused", "ack-lost"]) {
    const what =
      how === "refused"
        ? "edits made while cut off are delivered after the reconnect exactly once"
        : "an op the server got but whose ack was lost is not applied twice";
    test(`${transport}: ${what}`, async () => {
      const doc = `notes-${how}-${transport}`;
      const proxy = await Proxy.start(server.addr);
      const a = server.client({ url: proxy.url, token: await server.token("cut", "Cut"), transports: [transport], ...fast });
      const b = server.client({ token: await server.token("stay", "Stay"), transports: [transport] });
      const ha = a.openDocument(doc);
      const hb = b.openDocument(doc);
      const errors = [];
      for (const h of [ha, hb]) h.on("error", (e) => errors.push(e));
      await within(Promise.all([ha.ready(), hb.ready()]), "both documents open");
      const r = rng(how.length * 31 + transport.length);
      const want = [];
      const type = (h, token) => {
        want.push(token);
        insertToken(h, token, r);
      };
      for (let i = 0; i < 3; i++) {
        type(ha, `[a${i}]`);
        type(hb, `[b${i}]`);
        await sleep(5);
      }
      await converged([ha, hb], "the first edits");

      if (how === "ack-lost") {
        // The server hears Cut, Cut hears nothing: the op is committed, its ack lost.
        proxy.halfOpen();
        type(ha, "[lost-ack]");
        await until(() => hb.text.includes("[lost-ack]"), "the op reached the server");
        assert.equal(ha.state, "awaitingConfirm");
      }
      proxy.refuse();
      await until(() => a.connectionInfo().state !== "connected", "Cut notices the drop");
      // Offline: the first waits as the pending op, the rest in the buffer.
      for (let i = 0; i < 5; i++) type(ha, `[x${i}]`);
      assert.equal(ha.state, "awaitingWithBuffer");
      for (let i = 0; i < 3; i++) type(hb, `[y${i}]`);
      await until(() => hb.state === "synchronized", "Stay's edits committed");
      assert.ok(!hb.text.includes("[x0]"), "nothing of the offline edits arrived yet");

      const back = next(a, "state", (s) => s.state === "connected", WAIT * 2);
      proxy.restore();
      await back;
      await converged([ha, hb], "both editors after the reconnect");
      assertTokens(ha.text, want);
      assertTokens(hb.text, want);
      assert.equal(await snapshotOf(doc, transport), ha.text);
      assert.deepEqual(errors, []);
      a.close();
      b.close();
      await proxy.stop();
    });
  }
}

test("a document the user may not open: ready() rejects and the handle is closed", async () => {
  const guest = server.client({ name: "visitor" });
  const h = guest.openDocument("private-plans");
  await assert.rejects(within(h.ready(), "the refusal"), { code: "forbidden" });
  assert.equal(h.state, "closed");
  // Closed for good: the name can be opened again (a public one works).
  const ok = guest.openDocument("public-notes");
  await within(ok.ready(), "the public document");
  assert.equal(ok.edit("hi").toJSON()[0], "hi");
  await until(() => ok.state === "synchronized", "the guest's edit acknowledged");
  assert.equal(ok.rev, 1);
  guest.close();
  assert.equal(ok.state, "closed");
});
