#!/usr/bin/env node
// An example AI service for Switchboard: it joins rooms as a `service`,
// and answers every message that mentions it (`@ai`) by streaming a reply
// into the room chunk by chunk (docs/PROTOCOL.md, "AI response streams").
// No model is involved: the reply is computed honestly from the message,
// as word statistics. A member's Stop (`stream:cancel`) stops it; what was
// written so far is stored, marked as stopped.
//
//   node examples/ai-service.mjs                 # dev server on :8080, room general
//   SWITCHBOARD_URL=http://127.0.0.1:9000 AI_ROOMS=general,help node examples/ai-service.mjs
//
// Settings (environment): SWITCHBOARD_URL (default http://127.0.0.1:8080);
// SWITCHBOARD_TOKEN, a service token (default: one from /api/dev/token, dev
// mode only); AI_ROOMS (default general); AI_NAME (default ai: answers
// `@ai`); AI_CHUNK_DELAY_MS (default 80): the pause between chunks.
// It uses WebSocket when it can (the runtime's, or the `ws` package),
// else long-polling, which needs only fetch.

import { connect } from "../static/switchboard.js";

const BASE = (process.env.SWITCHBOARD_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const NAME = process.env.AI_NAME || "ai";
const ROOMS = (process.env.AI_ROOMS || "general").split(",").map((r) => r.trim()).filter(Boolean);
const DELAY = Number(process.env.AI_CHUNK_DELAY_MS ?? 80);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The reply to `text`, as chunks: word statistics of the message. */
export function reply(text, asker) {
  const words = (text.toLowerCase().match(/[\p{L}\p{N}']+/gu) || []).filter((w) => w !== NAME);
  if (!words.length) return [`${asker}, `, "there ", "are ", "no ", "words ", "to ", "count ", "in ", "that."];
  const counts = new Map();
  for (const w of words) counts.set(w, (counts.get(w) || 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 3);
  const longest = words.reduce((a, b) => (b.length > a.length ? b : a));
  const mean = words.reduce((n, w) => n + w.length, 0) / words.length;
  const sentences = [
    `${asker}, your message has ${words.length} word${words.length === 1 ? "" : "s"}`,
    ` (${counts.size} different).`,
    ` The most frequent: ${top.map(([w, n]) => `"${w}" ×${n}`).join(", ")}.`,
    ` The longest word is "${longest}" (${[...longest].length} letters);`,
    ` words average ${mean.toFixed(1)} letters.`,
  ];
  // Chunks of a word or so, as a model's tokens would come.
  return sentences.flatMap((s) => s.match(/\s*\S+/g) || []);
}

async function transportOptions() {
  if (globalThis.WebSocket) return { WebSocket: globalThis.WebSocket };
  try {
    const { default: WebSocket } = await import("ws");
    return { WebSocket };
  } catch {
    return { transports: ["polling"] };
  }
}

async function token() {
  if (process.env.SWITCHBOARD_TOKEN) return process.env.SWITCHBOARD_TOKEN;
  const q = new URLSearchParams({ sub: NAME, name: "AI (word stats)", role: "service" });
  const r = await fetch(`${BASE}/api/dev/token?${q}`);
  if (!r.ok) throw new Error(`no SWITCHBOARD_TOKEN and /api/dev/token answered ${r.status}`);
  return (await r.json()).token;
}

/** Streams the reply to message `m`; stops early on a member's cancel. */
async function answer(sb, m) {
  const chunks = reply(m.data.text, m.from.name);
  const out = sb.startStream(m.room, { meta: { model: "word-stats", reply_to: m.seq } });
  let stopped = null;
  out.onCancel((f) => (stopped = f.by?.name || "someone"));
  try {
    await out.started;
    for (const c of chunks) {
      if (stopped) break;
      await out.write(c);
      if (DELAY > 0) await sleep(DELAY);
    }
    const { seq } = await out.end(stopped ? ` [stopped by ${stopped}]` : undefined);
    log(`answered ${m.room}#${m.seq} with #${seq}${stopped ? " (stopped)" : ""}`);
  } catch (e) {
    log(`stream ${out.stream} failed: ${e.code || e.message}`);
  }
}

function log(s) {
  console.log(`ai-service: ${s}`);
}

async function main() {
  const sb = connect({ url: BASE, token: await token(), fetch: globalThis.fetch, ...(await transportOptions()) });
  const me = new RegExp(`(^|\\W)@${NAME}\\b`, "i");
  // A reconnect replays what was missed (answered then); never twice.
  const answered = new Set();
  sb.on("message:receive", (m) => {
    const text = m.data && typeof m.data === "object" ? m.data.text : null;
    if (typeof text !== "string" || m.data.stream || m.from.user === NAME || !me.test(text)) return;
    const key = `${m.room}#${m.seq}`;
    if (answered.has(key)) return;
    answered.add(key);
    answer(sb, m);
  });
  for (const room of ROOMS) await sb.joinRoom(room);
  log(`ready in ${ROOMS.join(", ")} (mention @${NAME})`);
  const stop = async () => {
    await sb.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error("ai-service:", e);
    process.exit(1);
  });
}
