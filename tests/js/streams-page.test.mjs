// The demo page's live replies in headless Chromium against the real server:
// a producer (a service client of the SDK, in Node) streams into #general;
// the page shows the reply growing, its Stop button reaches the producer
// (stream:cancel → stream:cancelled), and the stored text replaces the box
// with an ordinary message. Screenshot in test-output/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Server, ROOT, WAIT, next } from "./helpers.mjs";
import { launch } from "./chromium.mjs";

const OUT = path.join(ROOT, "test-output");
let server, chromium;
before(async () => {
  mkdirSync(OUT, { recursive: true });
  server = await Server.start();
  chromium = await launch();
});
after(async () => {
  await chromium?.close();
  await server?.stop();
});

test("the page shows a streamed reply grow, and Stop stops it", async () => {
  const page = await chromium.browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.goto(`${server.url}/`);
  await page.fill("#login-name", "Ann");
  await page.click("#login-guest");
  await page.locator("#rooms li.active", { hasText: "general" }).waitFor();

  const bot = server.client({ token: await server.token("bot", "Bot", { role: "service" }) });
  await bot.joinRoom("general");
  const out = bot.startStream("general", { meta: { model: "test" } });
  let cancelledBy = null;
  out.onCancel((f) => (cancelledBy = f.by.name));
  await out.started;
  const box = page.locator(`#streams .stream[data-stream="${out.stream}"]`);
  // Growing: each chunk shows up in the box.
  let sent = "";
  for (const w of ["Counting ", "your ", "words: "]) {
    await out.write(w);
    sent += w;
    await page.locator(`#streams .stream[data-stream="${out.stream}"] .stream-text`, { hasText: sent.trim() }).waitFor({ timeout: WAIT });
  }
  assert.equal(await box.locator(".stream-text").textContent(), sent);
  assert.match(await box.locator(".who").textContent(), /Bot · writing/);
  await page.screenshot({ path: path.join(OUT, "stream-growing.png") });

  // Stop: the producer hears it; the page shows it is stopping.
  const heard = next(bot, "stream:cancelled", (f) => f.stream === out.stream);
  await box.locator(".stream-stop").click();
  await heard;
  assert.match(cancelledBy, /^Ann/);
  await page.locator(`#streams .stream[data-stream="${out.stream}"] .who`, { hasText: "stopping" }).waitFor();
  // The producer stores what it has: the box goes, the message stays.
  await out.end("3.");
  await page.locator("#messages .msg", { hasText: "Counting your words: 3." }).waitFor();
  await box.waitFor({ state: "detached" });
  assert.deepEqual(problems, []);
  await bot.close();
  await page.close();
});
