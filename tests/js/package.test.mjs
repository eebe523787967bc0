// The SDK as a package: packed from static/ with npm and installed into a
// fresh folder, imported by name in Node, type-checked with `tsc --strict`,
// and imported by a Chromium page on another origin from the hub's versioned
// URL (CORS). Every part talks to the real server.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { Server, ROOT, WAIT } from "./helpers.mjs";

const PKG = JSON.parse(readFileSync(path.join(ROOT, "static/package.json"), "utf8"));
const CARGO_VERSION = readFileSync(path.join(ROOT, "Cargo.toml"), "utf8").match(/^version = "([^"]+)"/m)[1];
const HERE = path.join(ROOT, "tests/js");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const run = promisify(execFile);

let server, app;
before(async () => {
  server = await Server.start();
  // npm pack honours `files`: a module left out of it fails the import below.
  app = mkdtempSync(path.join(os.tmpdir(), "switchboard-pkg-"));
  const tgz = execFileSync("npm", ["pack", "--silent", "--pack-destination", app, path.join(ROOT, "static")], {
    encoding: "utf8",
  }).trim();
  writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", `./${tgz}`], { cwd: app, stdio: "ignore" });
});
after(async () => {
  await server?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

test("the package's version is the server's, and the hub serves that version", async () => {
  assert.equal(PKG.version, CARGO_VERSION);
  const r = await fetch(`${server.url}/healthz`);
  assert.equal((await r.json()).version, PKG.version);
  const js = await fetch(`${server.url}/sdk/${PKG.version}/switchboard.js`, { headers: { Origin: "https://app.example" } });
  assert.equal(js.status, 200);
  assert.equal(js.headers.get("access-control-allow-origin"), "*");
  assert.match(js.headers.get("cache-control"), /immutable/);
  assert.match(js.headers.get("content-type"), /javascript/);
  const top = await fetch(`${server.url}/switchboard.js`, { headers: { Origin: "https://app.example" } });
  assert.equal(top.headers.get("access-control-allow-origin"), "*");
  assert.equal(top.headers.get("cache-control"), "no-cache");
  // Another version is not served (never someone else's code), and the demo
  // pages get no CORS header.
  assert.equal((await fetch(`${server.url}/sdk/0.0.0/switchboard.js`)).status, 404);
  assert.equal((await fetch(`${server.url}/sdk/${PKG.version}/index.html`)).status, 404);
  const page = await fetch(`${server.url}/index.html`, { headers: { Origin: "https://app.example" } });
  assert.equal(page.headers.get("access-control-allow-origin"), null);
});

test("Node imports the installed package by name and exchanges messages", async () => {
  const ws = path.join(HERE, "node_modules/ws/wrapper.mjs");
  const token = await server.token("pkg-node");
  writeFileSync(
    path.join(app, "main.mjs"),
    `import WebSocket from ${JSON.stringify(ws)};
     import { connect, SwitchboardError } from "switchboard-client";
     import { cpLength } from "switchboard-client/ot";
     const sb = connect({ url: ${JSON.stringify(server.url)}, token: ${JSON.stringify(token)}, WebSocket });
     const got = new Promise((ok) => sb.on("message:receive", (m) => m.room === "pkg" && ok(m.data)));
     await sb.joinRoom("pkg");
     const sent = await sb.send("pkg", { text: "from the package" });
     const data = await got;
     const refused = await sb.send("not a room!", 1).catch((e) => e instanceof SwitchboardError && e.code);
     const cp = cpLength("a\u{1F600}");
     console.log(JSON.stringify({ sent, data, refused, cp, transport: sb.connectionInfo().transport }));
     await sb.close();
     process.exit(0);`,
  );
  const { stdout } = await run("node", ["main.mjs"], { cwd: app, timeout: WAIT });
  const out = JSON.parse(stdout);
  assert.equal(out.sent.seq, 1);
  assert.deepEqual(out.data, { text: "from the package" });
  assert.equal(out.refused, "invalid_room");
  assert.equal(out.cp, 2);
  assert.equal(out.transport, "websocket");
});

test("a sample app type-checks with tsc --strict against the package's declarations", async () => {
  copyFileSync(path.join(HERE, "fixtures/app.ts"), path.join(app, "app.ts"));
  const tsc = path.join(HERE, "node_modules/typescript/bin/tsc");
  const args = ["--strict", "--noEmit", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--lib", "es2022,dom", "app.ts"];
  const ok = await run("node", [tsc, ...args], { cwd: app, timeout: 120000 }).catch((e) => e);
  assert.equal(ok.code ?? 0, 0, `tsc found errors:\n${ok.stdout}${ok.stderr}`);
  // The declarations do catch mistakes (they are not `any`): a wrong use fails.
  writeFileSync(
    path.join(app, "wrong.ts"),
    `import { connect } from "switchboard-client";
     const sb = connect({ url: "http://x" });
     sb.on("message:receive", (m) => m.seq.toUpperCase());
     sb.sendTo("bob", { a: 1 }).then((r) => r.seq);`,
  );
  const bad = await run("node", [tsc, ...args.slice(0, -1), "wrong.ts"], { cwd: app, timeout: 120000 }).catch((e) => e);
  assert.notEqual(bad.code ?? 0, 0);
  assert.match(bad.stdout, /toUpperCase/);
  assert.match(bad.stdout, /Property 'seq' does not exist on type 'DirectResult'/);
});

test("a page on another origin imports the SDK from the hub's versioned URL and chats", async () => {
  const token = await server.token("pkg-page");
  const sdk = `${server.url}/sdk/${PKG.version}/switchboard.js`;
  const html = `<!doctype html><meta charset="utf-8"><script type="module">
    import { connect } from ${JSON.stringify(sdk)};
    const sb = connect({ url: ${JSON.stringify(server.url)}, token: ${JSON.stringify(token)} });
    const got = new Promise((ok) => sb.on("message:receive", (m) => ok(m.data.text)));
    await sb.joinRoom("cross");
    await sb.send("cross", { text: "hello from elsewhere" });
    window.result = { text: await got, transport: sb.connectionInfo().transport, origin: location.origin };
  </script>`;
  const site = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise((ok) => site.listen(0, "127.0.0.1", ok));
  const profile = mkdtempSync(path.join(os.tmpdir(), "switchboard-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    // "localhost" is another origin than the hub's 127.0.0.1, whatever the ports.
    await page.goto(`http://localhost:${site.address().port}/`);
    await page.waitForFunction(() => window.result, null, { timeout: WAIT });
    const result = await page.evaluate(() => window.result);
    assert.equal(result.text, "hello from elsewhere");
    assert.equal(result.transport, "websocket");
    assert.notEqual(result.origin, server.url);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    site.close();
  }
});
