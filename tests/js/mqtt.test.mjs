// MQTT through static/switchboard.js: a real mosquitto (started here on a
// free port, as tests/it/broker.rs does), the hub bridged to it, and the
// broker's own command-line clients on the other side. An SDK publish
// reaches mosquitto_sub; a mosquitto_pub reaches the SDK; on every transport.
// mosquitto is installed by scripts/deps.sh: without it these tests fail.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Server, next, until, within, WAIT } from "./helpers.mjs";

function which(name, dirs) {
  for (const d of dirs) if (existsSync(path.join(d, name))) return path.join(d, name);
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`]).toString().trim() || null;
  } catch {
    return null;
  }
}

const SBIN = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"];
const MOSQUITTO = which("mosquitto", SBIN);
const MOSQUITTO_SUB = which("mosquitto_sub", SBIN);
const MOSQUITTO_PUB = which("mosquitto_pub", SBIN);
const STDBUF = which("stdbuf", SBIN);

async function freePort() {
  const s = net.createServer();
  await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

async function listening(port) {
  await until(
    () =>
      new Promise((ok) => {
        const c = net.connect(port, "127.0.0.1", () => {
          c.destroy();
          ok(true);
        });
        c.on("error", () => ok(false));
      }),
    `mosquitto on ${port}`,
  );
}

let broker, brokerPort, dir, server;
before(async () => {
  assert.ok(
    MOSQUITTO && MOSQUITTO_SUB && MOSQUITTO_PUB && STDBUF,
    "mosquitto, mosquitto_sub, mosquitto_pub (source scripts/deps.sh) and stdbuf (coreutils) are needed",
  );
  dir = mkdtempSync(path.join(os.tmpdir(), "switchboard-js-mqtt-"));
  brokerPort = await freePort();
  const conf = path.join(dir, "mosquitto.conf");
  writeFileSync(conf, `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  broker = spawn(MOSQUITTO, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  broker.stderr.on("data", (d) => (log += d));
  broker.on("exit", (code) => code && console.error(`mosquitto exited with ${code}: ${log}`));
  await listening(brokerPort);
  server = await Server.start({
    SWITCHBOARD_MQTT_URL: `mqtt://127.0.0.1:${brokerPort}`,
    SWITCHBOARD_MQTT_RECONNECT_MIN_MS: "100",
    SWITCHBOARD_MQTT_RECONNECT_MAX_MS: "400",
  });
  await until(async () => {
    const h = await (await fetch(`${server.url}/healthz`)).json();
    return h.mqtt?.connected === true;
  }, "the bridge connected to mosquitto");
});
after(async () => {
  await server?.stop();
  if (broker && broker.exitCode === null) {
    const gone = new Promise((ok) => broker.once("exit", ok));
    broker.kill("SIGTERM");
    await gone;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** mosquitto_sub for `filter`, resolved once the broker acknowledged the
 * subscription; `.message` resolves with the first `[topic, payload]`.
 * It exits after one message, or after 60 s (-W) if a test failed. */
async function mqttSub(filter) {
  // Line-buffered: into a pipe, its stdout would only come at its exit.
  const args = ["-oL", MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", String(brokerPort), "-t", filter, "-C", "1", "-W", "60", "-d", "-F", "MSG %t %p"];
  const child = spawn(STDBUF, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const subscribed = new Promise((ok, no) => {
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("SUBACK")) ok();
    });
    child.on("exit", (code) => no(new Error(`mosquitto_sub exited with ${code}: ${out}`)));
  });
  const message = new Promise((ok, no) => {
    child.on("exit", () => {
      const line = out.split("\n").find((l) => l.startsWith("MSG "));
      if (!line) return no(new Error(`mosquitto_sub got no message: ${out}`));
      const rest = line.slice(4);
      const at = rest.indexOf(" ");
      ok([rest.slice(0, at), rest.slice(at + 1)]);
    });
  });
  message.catch(() => {});
  await within(subscribed, `mosquitto_sub ${filter} subscribed`);
  child.message = within(message, `a message on ${filter}`);
  return child;
}

function mqttPub(topic, payload) {
  execFileSync(MOSQUITTO_PUB, ["-h", "127.0.0.1", "-p", String(brokerPort), "-t", topic, "-m", payload, "-q", "1"], {
    timeout: WAIT,
  });
}

for (const transport of ["websocket", "sse", "polling"]) {
  test(`${transport}: an SDK publish reaches mosquitto_sub; mosquitto_pub reaches the SDK`, async () => {
    const base = `sdk/${transport}`;
    const token = await server.token(`maker-${transport}`, "Maker", { mqtt_sub: `${base}/#`, mqtt_pub: `${base}/#` });
    const c = server.client({ token, transports: [transport] });
    await within(c.ready(), "connected");
    assert.equal(c.connectionInfo().transport, transport);

    // SDK → broker: JSON and text payloads, QoS 1 (acked after the PUBACK).
    const sub = await mqttSub(`${base}/out/#`);
    assert.deepEqual(await c.mqttPublish(`${base}/out/lamp`, { on: true, level: 3 }, { qos: 1 }), {});
    const [topic, payload] = await sub.message;
    assert.equal(topic, `${base}/out/lamp`);
    assert.deepEqual(JSON.parse(payload), { on: true, level: 3 });
    const sub2 = await mqttSub(`${base}/out/text`);
    await c.mqttPublish(`${base}/out/text`, "plain words", { qos: 0 });
    assert.deepEqual(await sub2.message, [`${base}/out/text`, "plain words"]);

    // Broker → SDK, through a wildcard subscription.
    const s = await within(c.mqttSubscribe(`${base}/in/+`), "mqtt:subscribed");
    assert.deepEqual([s.filter, s.active], [`${base}/in/+`, true]);
    const json = next(c, "mqtt:message", (m) => m.topic === `${base}/in/kitchen`);
    mqttPub(`${base}/in/kitchen`, '{"t":21.5}');
    const m = await json;
    assert.deepEqual(m.payload, { t: 21.5 });
    assert.equal(m.qos, 1);
    const text = next(c, "mqtt:message", (x) => x.topic === `${base}/in/hall`);
    mqttPub(`${base}/in/hall`, "warm");
    assert.equal((await text).payload, "warm");

    // Outside the token's claims: refused, and not subscribed.
    await assert.rejects(c.mqttSubscribe("elsewhere/#"), { code: "forbidden" });
    await assert.rejects(c.mqttPublish("elsewhere/x", 1), { code: "forbidden" });
    c.close();
  });
}
