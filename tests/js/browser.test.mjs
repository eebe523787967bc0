// The demo page in headless Chromium (Debian's, driven by playwright-core),
// against the real server: two people chat, see each other typing and their
// presence, on each transport; errors are shown. Screenshots go to
// test-output/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Server, ROOT, WAIT } from "./helpers.mjs";
import { launch } from "./chromium.mjs";

const OUT = path.join(ROOT, "test-output");
const NO_WEBSOCKET = "Object.defineProperty(window, 'WebSocket', { value: undefined });";
const NO_EVENTSOURCE = "Object.defineProperty(window, 'EventSource', { value: undefined });";

let server, chromium, browser;
before(async () => {
  mkdirSync(OUT, { recursive: true });
  server = await Server.start();
  chromium = await launch();
  browser = chromium.browser;
});
after(async () => {
  await chromium?.close();
  await server?.stop();
});

/** A page of the demo, signed in as a guest named `name`. */
async function guestPage(name, initScripts = [], url = server.url) {
  const page = await browser.newPage();
  for (const s of initScripts) await page.addInitScript(s);
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  page.problems = problems;
  await page.goto(`${url}/`);
  await page.fill("#login-name", name);
  await page.click("#login-guest");
  await page.locator("#rooms li.active", { hasText: "general" }).waitFor();
  return page;
}

async function transportOf(page) {
  await page.locator("#conn[data-state=connected]").waitFor();
  return (await page.textContent("#conn-transport")).trim();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`) });
}

/** Sends `text` from `from` and waits until `to` shows it, with its sender and time. */
async function say(from, to, text, sender) {
  await from.fill("#text", text);
  await from.press("#text", "Enter");
  const msg = to.locator("#messages .msg", { hasText: text });
  await msg.waitFor();
  assert.equal((await msg.locator(".from").textContent()).trim(), sender);
  assert.match(await msg.locator("time").textContent(), /\d{1,2}:\d{2}/);
}

/** Two people in #general: messages both ways, typing, presence. */
async function conversation(label, initScripts, expectTransport) {
  const ann = await guestPage(`Ann ${label}`, initScripts);
  const bob = await guestPage(`Bob ${label}`, initScripts);
  assert.equal(await transportOf(ann), expectTransport);
  assert.equal(await transportOf(bob), expectTransport);

  await bob.locator("#members li", { hasText: `Ann ${label}` }).waitFor();
  await ann.locator("#members li", { hasText: `Bob ${label}` }).waitFor();

  // Typing shows on the other page, and clears when the message is sent.
  await ann.fill("#text", "hel");
  await ann.type("#text", "l");
  await bob.locator("#typing", { hasText: `Ann ${label} is typing…` }).waitFor();
  await say(ann, bob, `hello from Ann over ${label}`, `Ann ${label}`);
  await bob.locator("#typing:empty").waitFor();
  await say(bob, ann, `hi Ann, Bob here (${label})`, `Bob ${label}`);

  // Presence: Bob goes busy; Ann's member list shows it.
  await bob.selectOption("#presence", "busy");
  await ann.locator(`#members li[data-status=busy]`, { hasText: `Bob ${label}` }).waitFor();
  await bob.selectOption("#presence", "away");
  await ann.locator(`#members li[data-status=away]`, { hasText: `Bob ${label}` }).waitFor();

  // Each page shows each message once, in the same order.
  const texts = (p) => p.locator("#messages .msg .text").allTextContents();
  const mine = (t) => t.filter((x) => x.includes(label));
  assert.deepEqual(mine(await texts(ann)), mine(await texts(bob)));
  assert.equal(mine(await texts(ann)).length, 2);

  await shot(ann, `chat-${label}-ann`);
  await shot(bob, `chat-${label}-bob`);
  assert.deepEqual([...ann.problems, ...bob.problems], []);
  await ann.close();
  await bob.close();
}

test("two pages chat in one room over WebSocket: messages, typing, presence", async () => {
  await conversation("websocket", [], "WebSocket");
});

test("with WebSocket disabled in the page the demo works over SSE", async () => {
  await conversation("sse", [NO_WEBSOCKET], "SSE");
});

test("with WebSocket and EventSource disabled the demo works over long-polling", async () => {
  await conversation("polling", [NO_WEBSOCKET, NO_EVENTSOURCE], "Long-polling");
});

test("signing in with a minted development token", async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  await page.fill("#login-name", "Carol");
  await page.click("#dev-token");
  await page.waitForFunction(() => document.querySelector("#token").value.startsWith("ey"));
  await page.click("#token-connect");
  await page.locator("#rooms li.active", { hasText: "general" }).waitFor();
  assert.equal((await page.textContent("#me")).trim(), "Carol");
  assert.equal(await page.getAttribute("#me", "title"), "carol");

  // What reaches Carol herself: a direct message, and a backend's broadcast.
  const dan = server.client({ token: await server.token("dan", "Dan") });
  await dan.sendTo("carol", { text: "psst, Carol" });
  await page.locator(".toast", { hasText: "Dan → you: psst, Carol" }).waitFor();
  const r = await fetch(`${server.url}/api/dev/token?sub=backend&role=service`);
  const { token } = await r.json();
  const sent = await fetch(`${server.url}/api/broadcast`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ data: { text: "maintenance at noon" } }),
  });
  assert.equal(sent.status, 200);
  await page.locator(".toast", { hasText: "Broadcast from backend: maintenance at noon" }).waitFor();
  dan.close();
  await shot(page, "token-sign-in");
  await page.close();
});

test("errors are shown clearly: forbidden, rate limited, disconnected and retrying", async () => {
  const s = await Server.start({ SWITCHBOARD_GUEST_BURST: "3", SWITCHBOARD_GUEST_RATE: "1" });
  const port = s.addr.split(":")[1];
  let restarted;
  try {
    const page = await guestPage("Dee", [], s.url);
    // A guest may not join a private room.
    await page.fill("#room-input", "secret-plans");
    await page.press("#room-input", "Enter");
    await page.locator(".toast.error", { hasText: "Not allowed" }).waitFor();
    assert.equal(await page.locator("#rooms li", { hasText: "secret-plans" }).count(), 0);

    // Past the guest burst: "slow down", and the text stays in the box.
    for (let i = 1; i <= 4; i++) {
      await page.fill("#text", `burst ${i}`);
      await page.press("#text", "Enter");
      if (i < 4) await page.locator("#messages .msg", { hasText: `burst ${i}` }).waitFor();
    }
    await page.locator(".toast.error", { hasText: "Slow down" }).waitFor();
    assert.equal(await page.inputValue("#text"), "burst 4");
    await shot(page, "error-rate-limited");

    // The server goes away: the page says so and retries; it comes back.
    await s.stop();
    await page.locator("#banner.show", { hasText: "Connection lost" }).waitFor();
    await page.locator("#conn-state", { hasText: /retrying|reconnecting/ }).waitFor();
    await shot(page, "error-disconnected");
    restarted = await Server.start({ PORT: port });
    await page.locator("#conn[data-state=connected]").waitFor({ timeout: WAIT * 2 });
    assert.equal(await page.locator("#banner.show").count(), 0);
    assert.deepEqual(page.problems, []);
    await page.close();
  } finally {
    await s.stop();
    await restarted?.stop();
  }
});

test("a page on another origin falls back to SSE and polling across origins", async () => {
  // http://localhost:PORT and http://127.0.0.1:PORT are different origins.
  const port = server.addr.split(":")[1];
  const page = await browser.newPage();
  await page.addInitScript(NO_WEBSOCKET);
  await page.goto(`http://localhost:${port}/`);
  const hub = `http://127.0.0.1:${port}`;
  for (const transports of [["websocket", "sse"], ["polling"]]) {
    const result = await page.evaluate(
      async ({ hub, transports, wait }) => {
        const { connect } = await import("/switchboard.js");
        const sb = connect({ url: hub, name: "far away", transports });
        const late = new Promise((_, no) => setTimeout(() => no(new Error(`not connected: ${JSON.stringify(sb.connectionInfo())}`)), wait));
        await Promise.race([sb.ready(), late]);
        await sb.joinRoom("public-cors");
        const ack = await sb.send("public-cors", { text: "across origins" });
        const info = sb.connectionInfo();
        sb.close();
        return { transport: info.transport, seq: ack.seq, origin: location.origin };
      },
      { hub, transports, wait: WAIT },
    );
    assert.equal(result.origin, `http://localhost:${port}`);
    assert.equal(result.transport, transports.at(-1));
    assert.ok(result.seq >= 1);
  }
  await page.close();
});

test("rooms: join from the list, unread counts, leave", async () => {
  const ann = await guestPage("Ann rooms");
  const bob = await guestPage("Bob rooms");
  // Ann joins #random with its suggestion button, Bob by typing its name.
  await ann.click("#suggest button:has-text('random')");
  await ann.locator("#rooms li.active", { hasText: "random" }).waitFor();
  await bob.fill("#room-input", "random");
  await bob.press("#room-input", "Enter");
  await bob.locator("#rooms li.active", { hasText: "random" }).waitFor();
  await ann.locator("#members li", { hasText: "Bob rooms" }).waitFor();

  // Bob writes in #general while Ann looks at #random: an unread badge.
  await bob.click("#rooms li[data-room=general]");
  await bob.fill("#text", "are you in general?");
  await bob.press("#text", "Enter");
  await ann.locator("#rooms li[data-room=general] .unread", { hasText: "1" }).waitFor();
  await shot(ann, "rooms-unread");
  await ann.click("#rooms li[data-room=general]");
  await ann.locator("#messages .msg", { hasText: "are you in general?" }).waitFor();
  assert.equal(await ann.textContent("#rooms li[data-room=general] .unread"), "");

  // Ann leaves #random: Bob sees her go.
  await ann.click("#rooms li[data-room=random]");
  await ann.click("#leave");
  await ann.locator("#rooms li[data-room=random]").waitFor({ state: "detached" });
  await bob.click("#rooms li[data-room=random]");
  await bob.locator("#messages .sys", { hasText: "Ann rooms left" }).waitFor();
  assert.equal(await bob.locator("#members li", { hasText: "Ann rooms" }).count(), 0);
  assert.deepEqual([...ann.problems, ...bob.problems], []);
  await ann.close();
  await bob.close();
});

/** A page of the demo signed in with a development token for `sub`. */
async function tokenPage(sub, name) {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  page.problems = problems;
  await page.goto(`${server.url}/`);
  await page.fill("#token", await server.token(sub, name));
  await page.click("#token-connect");
  await page.locator("#rooms li.active", { hasText: "general" }).waitFor();
  return page;
}

/** Opens the current room's notes and waits until they are editable. */
async function openNotes(page) {
  await page.click("#doc-toggle");
  await page.locator("#doc-text:not([readonly])").waitFor();
}

/** Types `text` at the end of the textarea (where the caret is put first). */
async function typeAt(page, where, text) {
  await page.focus("#doc-text");
  await page.evaluate((where) => {
    const ta = document.querySelector("#doc-text");
    const at = where === "start" ? 0 : ta.value.length;
    ta.setSelectionRange(at, at);
  }, where);
  await page.keyboard.type(text, { delay: 15 });
}

test("two pages edit the room's notes at once and converge; each sees the other editing", async () => {
  const ann = await guestPage("Ann notes");
  const bob = await guestPage("Bob notes");
  await ann.click("#suggest button:has-text('lobby')");
  await ann.locator("#rooms li.active", { hasText: "lobby" }).waitFor();
  await bob.click("#suggest button:has-text('lobby')");
  await bob.locator("#rooms li.active", { hasText: "lobby" }).waitFor();
  await openNotes(ann);
  await openNotes(bob);
  assert.equal(await ann.getAttribute("#doc-text", "data-doc"), "lobby");
  assert.equal(await ann.inputValue("#doc-text"), "");

  // Both type at the same time, Ann at the start, Bob at the end.
  await ann.focus("#doc-text");
  await ann.keyboard.type("Agenda:\n", { delay: 10 });
  await bob.waitForFunction(() => document.querySelector("#doc-text").value === "Agenda:\n");
  await Promise.all([typeAt(ann, "start", "ANN-FIRST "), typeAt(bob, "end", "- bob's point\n")]);
  const want = "ANN-FIRST Agenda:\n- bob's point\n";
  await ann.waitForFunction((w) => document.querySelector("#doc-text").value === w, want);
  await bob.waitForFunction((w) => document.querySelector("#doc-text").value === w, want);

  // Bob's caret stayed where he typed although Ann's text came before it.
  const caret = await bob.evaluate(() => document.querySelector("#doc-text").selectionStart);
  assert.equal(caret, want.length);
  // Each sees the other in the editor list, with a caret position.
  await ann.locator("#doc-editors .editor", { hasText: "Bob notes" }).waitFor();
  await bob.locator("#doc-editors .editor", { hasText: "Ann notes" }).waitFor();
  await ann.locator("#doc-status", { hasText: "saved" }).waitFor();
  await bob.locator("#doc-status", { hasText: "saved" }).waitFor();

  // What the server stored is the same text.
  const reader = server.client({ name: "reader" });
  const h = reader.openDocument("lobby");
  await h.ready();
  assert.equal(h.text, want);
  reader.close();

  await shot(ann, "notes-ann");
  await shot(bob, "notes-bob");
  // Ann closes her notes: Bob no longer sees her editing.
  await ann.click("#doc-toggle");
  await bob.locator("#doc-editors .editor", { hasText: "Ann notes" }).waitFor({ state: "detached" });
  assert.deepEqual([...ann.problems, ...bob.problems], []);
  await ann.close();
  await bob.close();
});

test("the bell shows the unread count after /api/notify, lists it, and clears on mark-read", async () => {
  const page = await tokenPage("erin", "Erin");
  await page.locator("#bell").waitFor();
  assert.equal(await page.textContent("#bell-count"), "");

  await server.notify("erin", { title: "Build passed" });
  await server.notify("erin", { title: "Invoice ready" });
  await page.locator("#bell-count", { hasText: "2" }).waitFor();
  await page.locator(".toast", { hasText: "Notification: Invoice ready" }).waitFor();

  await page.click("#bell");
  const items = page.locator("#notif-list li");
  await items.nth(1).waitFor();
  assert.deepEqual(await page.locator("#notif-list li .title").allTextContents(), ["Invoice ready", "Build passed"]);
  assert.equal(await page.locator("#notif-list li.unread").count(), 2);
  await shot(page, "bell-open");

  // One read by clicking it, then the rest with "Mark all read".
  await page.click("#notif-list li:has-text('Build passed')");
  await page.locator("#bell-count", { hasText: /^1$/ }).waitFor();
  assert.equal(await page.locator("#notif-list li.unread").count(), 1);
  await page.click("#notif-all");
  await page.locator("#bell-count:empty").waitFor({ state: "attached" });
  assert.equal(await page.locator("#notif-list li.unread").count(), 0);
  // Stored: a fresh page of the same user shows none unread.
  const again = await tokenPage("erin", "Erin");
  await again.locator("#bell").waitFor();
  assert.equal(await again.textContent("#bell-count"), "");
  await shot(page, "bell-read");
  assert.deepEqual([...page.problems, ...again.problems], []);
  await page.close();
  await again.close();
});

test("the demo loads earlier messages when scrolled to the top, and keeps its place", async () => {
  const room = "public-scroll";
  await server.publishMany(room, 180, "old line");
  const page = await guestPage("Scroller");
  await page.fill("#room-input", room);
  await page.press("#room-input", "Enter");
  await page.locator("#rooms li.active", { hasText: room }).waitFor();
  const shown = () => page.$$eval("#messages .msg", (els) => els.map((e) => Number(e.dataset.seq)));
  const count = (n) => page.waitForFunction((n) => document.querySelectorAll("#messages .msg").length >= n, n);
  await count(50); // the join's history: the last 50
  assert.deepEqual(await shown(), Array.from({ length: 50 }, (_, i) => 131 + i));

  // To the top: the page before 131 comes in above, and 131 stays where it was.
  const before = await page.$eval("#messages", (box) => {
    box.scrollTop = 0;
    return box.querySelector('.msg[data-seq="131"]').getBoundingClientRect().top;
  });
  await count(100);
  const after = await page.$eval("#messages", (box) => ({
    top: box.querySelector('.msg[data-seq="131"]').getBoundingClientRect().top,
    scrollTop: box.scrollTop,
  }));
  assert.ok(Math.abs(after.top - before) <= 2, `message 131 moved from ${before} to ${after.top}`);
  assert.ok(after.scrollTop > 0, "the view did not jump to the new top");
  await shot(page, "scrollback-kept-place");

  // Up to the beginning: every message once, in order, then the start line.
  for (let i = 0; i < 10 && !(await page.locator("#messages .start").count()); i++) {
    await page.$eval("#messages", (box) => (box.scrollTop = 0));
    await page.waitForTimeout(200);
  }
  await page.locator("#messages .start", { hasText: `beginning of #${room}` }).waitFor();
  assert.deepEqual(await shown(), Array.from({ length: 180 }, (_, i) => i + 1));
  await page.$eval("#messages", (box) => (box.scrollTop = 0));
  await shot(page, "scrollback-beginning");
  assert.deepEqual(page.problems, []);
  await page.close();
});

/** A counter from the server's /metrics. */
async function counter(name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

test("Chromium negotiates permessage-deflate and exchanges compressed messages", async () => {
  const before = {
    conns: await counter("switchboard_ws_deflate_connections_total"),
    inflated: await counter("switchboard_ws_inflated_total"),
    deflated: await counter("switchboard_ws_deflated_total"),
  };
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  const text = "compress me, ".repeat(300);
  const result = await page.evaluate(
    async ({ wsUrl, text, wait }) => {
      const open = (name) =>
        new Promise((ok, no) => {
          const ws = new WebSocket(`${wsUrl}/ws?name=${name}`);
          ws.frames = [];
          ws.onmessage = (e) => ws.frames.push(JSON.parse(e.data));
          ws.onopen = () => ok(ws);
          ws.onerror = () => no(new Error(`${name} failed`));
        });
      const until = (ws, pred) =>
        new Promise((ok, no) => {
          const t0 = Date.now();
          const look = () => {
            const f = ws.frames.find(pred);
            if (f) return ok(f);
            if (Date.now() - t0 > wait) return no(new Error(JSON.stringify(ws.frames)));
            setTimeout(look, 20);
          };
          look();
        });
      const [a, b] = [await open("Zip"), await open("Zap")];
      for (const ws of [a, b]) {
        ws.send(JSON.stringify({ type: "room:join", room: "public-zip" }));
        await until(ws, (f) => f.type === "room:joined" && f.room === "public-zip");
      }
      a.send(JSON.stringify({ type: "message:send", room: "public-zip", id: "z1", data: { text } }));
      const got = await until(b, (f) => f.type === "message:receive" && f.room === "public-zip");
      const ack = await until(a, (f) => f.type === "ack" && f.id === "z1");
      a.close();
      b.close();
      return { extensions: [a.extensions, b.extensions], text: got.data.text, seq: ack.seq };
    },
    { wsUrl: server.url.replace(/^http/, "ws"), text, wait: WAIT },
  );
  const answer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
  assert.deepEqual(result.extensions, [answer, answer]);
  assert.equal(result.text, text);
  assert.ok(result.seq >= 1);
  // Both pages negotiated it; the server inflated what Chromium sent and
  // compressed the long message to both pages (to the sender too).
  assert.ok((await counter("switchboard_ws_deflate_connections_total")) >= before.conns + 2);
  assert.ok((await counter("switchboard_ws_inflated_total")) >= before.inflated + 3);
  assert.ok((await counter("switchboard_ws_deflated_total")) >= before.deflated + 2);
  await page.close();
});

test("two pages share the room's topic: edits reach both, a concurrent edit is a visible conflict, +1 clicks all count", async () => {
  const ann = await guestPage("Ann topic");
  const bob = await guestPage("Bob topic");
  for (const p of [ann, bob]) {
    await p.click("#suggest button:has-text('random')");
    await p.locator("#rooms li.active", { hasText: "random" }).waitFor();
    await p.locator("#topic-bar:not([hidden])").waitFor();
  }
  // Ann sets the topic; Bob sees it with its version and author.
  await ann.click("#topic-edit");
  await ann.fill("#topic-input", "Release on Friday");
  await ann.click("#topic-save");
  await bob.locator("#topic-text", { hasText: "Release on Friday" }).waitFor();
  assert.match(await bob.textContent("#topic-meta"), /v\d+ · set by Ann topic/);

  // Both start editing from the same version; Bob saves first.
  await ann.click("#topic-edit");
  await bob.click("#topic-edit");
  await bob.fill("#topic-input", "Release on Monday");
  await bob.click("#topic-save");
  await ann.locator("#topic-text", { hasText: "Release on Monday" }).waitFor();
  await ann.fill("#topic-input", "Release on Thursday");
  await ann.click("#topic-save");
  const conflict = ann.locator("#topic-conflict:not([hidden])");
  await conflict.waitFor();
  assert.match(await conflict.textContent(), /Bob topic changed the topic to “Release on Monday”/);
  assert.equal(await ann.inputValue("#topic-input"), "Release on Thursday", "her text is kept");
  await shot(ann, "topic-conflict");
  // Saving again overwrites, knowingly.
  await ann.click("#topic-save");
  await bob.locator("#topic-text", { hasText: "Release on Thursday" }).waitFor();
  await ann.locator("#topic-conflict").waitFor({ state: "hidden" });

  // Concurrent +1 clicks on a shared counter all count (set with a function).
  await Promise.all([ann.click("#likes"), bob.click("#likes"), ann.click("#likes"), bob.click("#likes")]);
  for (const p of [ann, bob]) await p.locator("#likes-count", { hasText: /^4$/ }).waitFor();
  await shot(bob, "topic-bob");
  assert.deepEqual([...ann.problems, ...bob.problems], []);
  await ann.close();
  await bob.close();
});
