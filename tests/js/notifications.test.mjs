// The notifications API of static/switchboard.js against the real server:
// POST /api/notify reaches the user's sessions as notification:new with the
// unread count; pages, mark-read, and the count after a reconnect.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, Proxy, next, until, within } from "./helpers.mjs";

let server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.stop();
});

const fast = { reconnect: { base: 100, cap: 400 }, connectTimeout: 3000 };

for (const transport of ["websocket", "sse", "polling"]) {
  test(`${transport}: notify → notification:new and the count; pages; markRead`, async () => {
    const user = `nora-${transport}`;
    const a = server.client({ token: await server.token(user, "Nora"), transports: [transport] });
    const counts = [];
    a.on("unread", ({ unread }) => counts.push(unread));
    await within(a.ready(), "connected");
    assert.equal(a.unreadCount, 0);

    // One notification: the frame, then the count.
    const arrived = next(a, "notification:new");
    const sent = await server.notify([user, "someone-else"], { title: "Build passed", n: 1 });
    const mine = sent.notifications.find((n) => n.user === user);
    const { notification: n1 } = await arrived;
    assert.equal(n1.id, mine.id);
    assert.deepEqual(n1.data, { title: "Build passed", n: 1 });
    assert.equal(n1.read, false);
    assert.equal(n1.from.user, "backend");
    await until(() => a.unreadCount === 1, "unread 1");

    await server.notify(user, { title: "Deploy started", n: 2 });
    await server.notify(user, { title: "Deploy done", n: 3 });
    await until(() => a.unreadCount === 3, "unread 3");
    assert.deepEqual(counts, [1, 2, 3]);

    // Pages, newest first.
    const p1 = await a.notifications({ limit: 2 });
    assert.deepEqual(p1.notifications.map((n) => n.data.n), [3, 2]);
    assert.equal(p1.more, true);
    assert.equal(p1.unread, 3);
    const p2 = await a.notifications({ before: p1.notifications[1].id, limit: 2 });
    assert.deepEqual(p2.notifications.map((n) => n.data.n), [1]);
    assert.equal(p2.more, false);

    // Mark one read: the count follows, `unread` pages leave it out.
    const two = p1.notifications[1];
    assert.deepEqual(await a.markRead([two.id]), {});
    await until(() => a.unreadCount === 2, "unread 2");
    const unread = await a.notifications({ unread: true });
    assert.deepEqual(unread.notifications.map((n) => n.data.n), [3, 1]);

    // Everything read.
    await a.markRead({ all: true });
    await until(() => a.unreadCount === 0, "unread 0");
    const all = await a.notifications();
    assert.deepEqual(all.notifications.map((n) => [n.data.n, n.read]), [[3, true], [2, true], [1, true]]);
    assert.deepEqual(counts, [1, 2, 3, 2, 0]);
    await assert.rejects(a.markRead([]), { code: "bad_request" });
    a.close();
  });
}

test("every session of the user follows the count; a reconnect corrects a stale one", async () => {
  const user = "otto-n";
  const proxy = await Proxy.start(server.addr);
  const token = await server.token(user, "Otto");
  const desk = server.client({ token, ...fast });
  const phone = server.client({ url: proxy.url, token, ...fast });
  await within(Promise.all([desk.ready(), phone.ready()]), "both connected");
  await server.notify(user, { title: "one" });
  await server.notify(user, { title: "two" });
  await until(() => desk.unreadCount === 2 && phone.unreadCount === 2, "both at 2");

  // The phone is away while everything is read on the desk: nobody tells
  // the phone's new session (a count of zero is not sent), so it asks.
  proxy.refuse();
  await until(() => phone.connectionInfo().state !== "connected", "phone offline");
  await desk.markRead({ all: true });
  await until(() => desk.unreadCount === 0, "desk at 0");
  assert.equal(phone.unreadCount, 2, "the phone cannot know yet");
  proxy.restore();
  await until(() => phone.connectionInfo().state === "connected", "phone back");
  await until(() => phone.unreadCount === 0, "phone at 0 after the reconnect");

  // Away again while a new one comes: the new session is told the count.
  proxy.refuse();
  await until(() => phone.connectionInfo().state !== "connected", "phone offline again");
  await server.notify(user, { title: "three" });
  await until(() => desk.unreadCount === 1, "desk at 1");
  proxy.restore();
  await until(() => phone.unreadCount === 1, "phone at 1 after the reconnect");
  const page = await phone.notifications({ limit: 1 });
  assert.equal(page.notifications[0].data.title, "three");
  desk.close();
  phone.close();
  await proxy.stop();
});

test("a guest has no notifications", async () => {
  const g = server.client({ name: "guest" });
  await within(g.ready(), "connected");
  assert.equal(g.unreadCount, 0);
  const page = await g.notifications();
  assert.deepEqual(page.notifications, []);
  g.close();
});
