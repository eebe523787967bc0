// AI response streams end to end: the example service (examples/ai-service.mjs)
// against the real server, answering a mention by streaming word statistics;
// the SDK's StreamsView sees the reply grow to exactly the stored text; a slow
// consumer (a raw WebSocket that stops reading mid-stream) still ends with
// the exact text and never slows the producer down; Stop (stream:cancel)
// stops the service, which stores what it wrote, marked as stopped.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import WebSocket from "ws";
import { Server, next, until, ROOT, WAIT } from "./helpers.mjs";
import { reply } from "../../examples/ai-service.mjs";

let server;
let service;
let serviceLog = "";
before(async () => {
  server = await Server.start();
  service = spawn(process.execPath, [path.join(ROOT, "examples/ai-service.mjs")], {
    env: { ...process.env, SWITCHBOARD_URL: server.url, AI_ROOMS: "lab", AI_CHUNK_DELAY_MS: "40" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  service.stdout.on("data", (d) => (serviceLog += d));
  await until(() => serviceLog.includes("ready in lab"), "the example service to be ready");
});
after(async () => {
  service?.kill("SIGTERM");
  await server.stop();
});

/** A raw WebSocket member that reads only when told to. */
async function rawMember(name) {
  const token = await server.token(name);
  const ws = new WebSocket(`ws://${server.addr}/ws?token=${token}`);
  const frames = [];
  ws.on("message", (d) => frames.push(JSON.parse(d.toString())));
  await new Promise((ok, fail) => ws.once("open", ok).once("error", fail));
  ws.send(JSON.stringify({ type: "room:join", room: "lab" }));
  await until(() => frames.some((f) => f.type === "room:joined"), `${name} joined`);
  return { ws, frames };
}

test("a mention is answered by a stream that grows to exactly the stored text, also for a slow consumer", async () => {
  const alice = server.client({ token: await server.token("alice", "Alice") });
  const view = alice.streams("lab");
  await alice.joinRoom("lab");
  const slow = await rawMember("slowpoke");
  const grown = [];
  view.on("data", (d) => grown.push(d.index));
  const started = next(alice, "stream:start");
  const question = "@ai the cat and the dog and the bird";
  await alice.send("lab", { text: question });
  const st = await started;
  assert.equal(st.from.user, "ai");
  assert.deepEqual(st.meta.model, "word-stats");
  // The slow consumer stops reading now: the server queues for it.
  slow.ws._socket.pause();
  const stored = await next(alice, "message:receive", (m) => m.data?.stream === st.stream, WAIT * 2);
  const expected = reply(question, "Alice").join("");
  assert.equal(stored.data.text, expected);
  assert.equal(view.get(st.stream).text, expected, "the view grew to the stored text");
  assert.deepEqual(grown, [...grown.keys()], "chunks in order, each once");
  assert.ok(grown.length >= 10, `it came chunk by chunk (${grown.length})`);
  // The producer finished while the slow one was not reading; now it reads.
  slow.ws._socket.resume();
  await until(() => slow.frames.some((f) => f.type === "message:receive" && f.data?.stream === st.stream), "the slow consumer's copy");
  let text = null;
  let nextIndex = 0;
  for (const f of slow.frames) {
    if (f.stream !== st.stream && f.data?.stream !== st.stream) continue;
    if (f.type === "stream:start") [text, nextIndex] = [f.text, f.next];
    if (f.type === "stream:data") {
      assert.equal(f.index, nextIndex++, "no chunk twice, none skipped");
      text += f.chunk;
    }
    if (f.type === "message:receive") assert.equal(f.data.text, expected);
  }
  assert.equal(text, expected);
  slow.ws.close();
  await alice.close();
});

test("Stop (stream:cancel) stops the service, which stores what it wrote, marked", async () => {
  const bob = server.client({ token: await server.token("bob", "Bob"), transports: ["sse"] });
  const view = bob.streams("lab");
  await bob.joinRoom("lab");
  const started = next(bob, "stream:start");
  const long = "@ai " + Array.from({ length: 60 }, (_, i) => `word${i % 7}`).join(" ");
  await bob.send("lab", { text: long });
  const st = await started;
  await next(bob, "stream:data", (f) => f.stream === st.stream);
  await view.cancel(st.stream);
  const stored = await next(bob, "message:receive", (m) => m.data?.stream === st.stream, WAIT * 2);
  const full = reply(long, "Bob").join("");
  assert.match(stored.data.text, / \[stopped by Bob\]$/);
  const written = stored.data.text.replace(/ \[stopped by Bob\]$/, "");
  assert.ok(full.startsWith(written) && written.length < full.length, `stopped early: ${stored.data.text}`);
  assert.equal(view.get(st.stream).cancelled, true);
  await bob.close();
});

test("a backend streams with fetch and a ReadableStream body (POST /api/streams), as CLIENT.md shows", async () => {
  const alice = await rawMember("alice-http");
  const svc = await server.token("http-bot", "HTTP Bot", { role: "service" });
  const words = ["Streamed ", "over ", "plain ", "HTTP."];
  let pull = 0;
  const body = new ReadableStream({
    async pull(ctl) {
      if (pull === words.length) return ctl.close();
      if (pull > 0) {
        // Each word is written once the member has seen the one before.
        const seen = words.slice(0, pull).join("");
        await until(
          () => alice.frames.filter((f) => f.type === "stream:data" && f.stream === "h1").map((f) => f.chunk).join("") === seen,
          `alice saw ${JSON.stringify(seen)}`,
        );
      }
      ctl.enqueue(new TextEncoder().encode(words[pull++]));
    },
  });
  const res = await fetch(`http://${server.addr}/api/streams/h1?room=lab`, {
    method: "POST",
    headers: { authorization: `Bearer ${svc}`, "content-type": "text/plain" },
    body,
    duplex: "half",
  });
  const answer = await res.json();
  assert.equal(res.status, 200, JSON.stringify(answer));
  const chunks = alice.frames.filter((f) => f.type === "stream:data" && f.stream === "h1");
  // Each word reached alice before the next was written (the body's pull
  // waits for it); the server may split a write it got in pieces, never
  // reorder or lose one.
  assert.equal(chunks.map((f) => f.chunk).join(""), words.join(""));
  assert.ok(chunks.length >= words.length, `at least one chunk per write (${chunks.length})`);
  await until(() => alice.frames.some((f) => f.type === "message:receive" && f.data.stream === "h1"), "the stored message");
  const stored = alice.frames.find((f) => f.type === "message:receive" && f.data.stream === "h1");
  assert.equal(stored.data.text, words.join(""));
  assert.equal(stored.seq, answer.seq);
  alice.ws.close();
});
