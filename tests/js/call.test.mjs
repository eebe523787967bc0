// A video call in the demo page between two headless Chromium pages, with
// Chromium's fake camera and microphone: real WebRTC, signalled through the
// hub's `signal` frames. Ann calls Bob; Bob accepts; each page's remote
// <video> must play what the other sends. Screenshots go to test-output/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Server, ROOT } from "./helpers.mjs";
import { launch } from "./chromium.mjs";

const OUT = path.join(ROOT, "test-output");

let server, chromium, browser;
before(async () => {
  mkdirSync(OUT, { recursive: true });
  server = await Server.start();
  chromium = await launch([
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    // Both pages are on this machine: let ICE use the loopback interface.
    "--allow-loopback-in-peer-connection",
  ]);
  browser = chromium.browser;
});
after(async () => {
  await chromium?.close();
  await server?.stop();
});

async function guestPage(name) {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  page.problems = problems;
  await page.goto(`${server.url}/`);
  await page.fill("#login-name", name);
  await page.click("#login-guest");
  await page.locator("#rooms li.active", { hasText: "general" }).waitFor();
  return page;
}

/** Waits until `page`'s remote video plays: frames decoded, time moving. */
async function playing(page) {
  await page.waitForFunction(() => {
    const v = document.getElementById("call-remote");
    return v.readyState >= 2 && v.videoWidth > 0;
  });
  const t0 = await page.evaluate(() => document.getElementById("call-remote").currentTime);
  await page.waitForFunction((t) => document.getElementById("call-remote").currentTime > t + 0.2, t0);
  return page.evaluate(() => {
    const v = document.getElementById("call-remote");
    return { readyState: v.readyState, width: v.videoWidth, height: v.videoHeight, time: v.currentTime };
  });
}

test("two members of a room call each other and both see the other's video", async () => {
  const ann = await guestPage("Ann call");
  const bob = await guestPage("Bob call");
  const bobInAnn = ann.locator("#members li", { hasText: "Bob call" });
  await bobInAnn.locator("button.call").click();
  await bob.locator("#call-panel[data-state=ringing]", { hasText: "Ann call is calling" }).waitFor();
  await bob.click("#call-accept");
  await ann.locator("#call-panel[data-state=connected]").waitFor();
  await bob.locator("#call-panel[data-state=connected]").waitFor();

  const atBob = await playing(bob);
  const atAnn = await playing(ann);
  assert.ok(atBob.readyState >= 2 && atBob.width > 0, JSON.stringify(atBob));
  assert.ok(atAnn.readyState >= 2 && atAnn.width > 0, JSON.stringify(atAnn));
  await bob.screenshot({ path: path.join(OUT, "call-bob.png") });

  // Ann hangs up: Bob's call ends too (a `bye` through the hub).
  await ann.click("#call-hangup");
  await ann.locator("#call-panel[data-state=idle]").waitFor({ state: "attached" });
  await bob.locator("#call-panel[data-state=idle]").waitFor({ state: "attached" });
  assert.equal(await bob.locator("#call-panel").isHidden(), true);
  assert.deepEqual([...ann.problems, ...bob.problems], []);
  await ann.close();
  await bob.close();
});
