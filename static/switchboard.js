// Switchboard client SDK: an ES module with no dependencies and no build step.
//
//   import { connect } from "/switchboard.js";
//   const sb = connect({ name: "alice" });
//   sb.on("message:receive", (m) => console.log(m.from.name, m.data));
//   await sb.joinRoom("general");
//   await sb.send("general", { text: "hello" });
//
// docs/CLIENT.md describes the whole API; docs/PROTOCOL.md the frames.

import { DocumentHandle } from "./switchboard-docs.js";
import { StateHandle } from "./switchboard-state.js";
import { StreamsView, StreamProducer } from "./switchboard-streams.js";
import { ConnectionMethods, RESENDABLE, SwitchboardError } from "./switchboard-connection.js";
import { RpcMethods } from "./switchboard-rpc.js";
import { EventMethods } from "./switchboard-events.js";

export { SERVER_FRAME_TYPES } from "./switchboard-transports.js";
export { DocumentHandle } from "./switchboard-docs.js";
export { StateHandle } from "./switchboard-state.js";
export { StreamsView, StreamProducer, streamId } from "./switchboard-streams.js";
export { SwitchboardError, backoffDelay } from "./switchboard-connection.js";

const DEFAULTS = {
  transports: ["websocket", "sse", "polling"],
  connectTimeout: 8000,
  reconnect: { base: 500, cap: 15000, attempts: Infinity, jitter: 0.5 },
  // On a fallback transport: how often to try the preferred one again.
  probe: { base: 2000, cap: 60000, jitter: 0.5 },
  heartbeat: { interval: 15000, timeout: 10000 },
  ackTimeout: 30000,
  queueSize: 100,
  resyncTimeout: 10000,
  rttSamples: 5,
};

/** Grades a connection from its recent round trips and failures. */
export function gradeQuality(rtts, failures, connected) {
  if (!connected) return "poor";
  const rtt = rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0;
  if (rtt <= 100 && failures === 0) return "excellent";
  if (rtt <= 300 && failures <= 1) return "good";
  if (rtt <= 1000 && failures <= 3) return "fair";
  return "poor";
}

/** Opens a client and starts connecting; see docs/CLIENT.md. */
export function connect(options = {}) {
  return new Client(options);
}

const FAILURE_WINDOW_MS = 60000;

/** A promise that knows whether anyone used it: `await` (which calls `then`
 * on a subclass), `then`, `catch` and `finally` all set `observed`. What
 * they return are plain promises. */
class Observed extends Promise {
  static get [Symbol.species]() {
    return Promise;
  }

  then(onResolved, onRejected) {
    this.observed = true;
    return super.then(onResolved, onRejected);
  }
}

export class Client {
  constructor(options = {}) {
    const g = globalThis;
    this.opts = {
      ...DEFAULTS,
      ...options,
      reconnect: { ...DEFAULTS.reconnect, ...options.reconnect },
      heartbeat: { ...DEFAULTS.heartbeat, ...options.heartbeat },
      probe: options.probe === false ? false : { ...DEFAULTS.probe, ...options.probe },
    };
    this.deps = {
      WebSocket: options.WebSocket || g.WebSocket,
      EventSource: options.EventSource || g.EventSource,
      fetch: options.fetch || (g.fetch && g.fetch.bind(g)),
    };
    this.base = (options.url || (g.location && g.location.origin) || "").replace(/\/$/, "");
    this.handlers = new Map();
    this.rooms = new Map(); // name → room state
    this.outbox = []; // sends in submission order, until acked or refused
    this.byId = new Map(); // frame id → outbox entry or join request
    this.mqttFilters = new Set();
    this.docs = new Map(); // document name → DocumentHandle
    this.states = new Map(); // room → StateHandle
    this.unread = 0; // the user's unread notifications
    this.presence = null;
    this.typingState = new Map();
    this.prefix = Math.random().toString(36).slice(2, 8);
    this.n = 0;
    this.session = null; // the `connected` frame of the current session
    this.transport = null;
    this.lastGood = null;
    this.state = "idle";
    this.synced = false;
    this.attempt = 0;
    this.probeAttempt = 0;
    this.rtts = [];
    this.failures = [];
    this.retryAt = null;
    this.stopped = false;
    this.readyWaiters = [];
    this.start();
  }

  // ---- events -------------------------------------------------------------

  /** Calls `fn(frame)` for every server frame of `type` (`"*"`: all frames),
   * and for the client's own events: `state`, `members`, `gap`. */
  on(type, fn) {
    EventMethods.on.call(this, type, fn);
    if (this.transport && this.transport.listen) this.transport.listen(type);
    return this;
  }

  emit(type, payload) {
    this.dispatch("", type, payload);
    if (payload?.type) this.dispatch("", "*", payload);
  }

  // ---- API ----------------------------------------------------------------

  /** Resolves on the first connection; rejects if the client gives up. */
  ready() {
    if (this.synced) return Promise.resolve(this.session);
    if (this.state === "closed") return Promise.reject(new SwitchboardError("closed", "client is closed"));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Joins `room` (now, or once connected) and keeps it joined across
   * reconnects. `history: n` also delivers up to n earlier messages. */
  joinRoom(room, { history = 0 } = {}) {
    let rs = this.rooms.get(room);
    if (!rs) this.rooms.set(room, (rs = this.roomState(room)));
    rs.wanted = true;
    rs.history = history;
    const p = this.reportUnobserved(new Observed((resolve, reject) => rs.waiters.push({ resolve, reject })));
    if (this.session) this.sendJoin(rs);
    return p;
  }

  /** Leaves `room` (and stops rejoining it). Resolves `{room}` once the
   * server confirmed (at once when not connected: it is not rejoined). */
  leaveRoom(room) {
    const rs = this.rooms.get(room);
    if (!rs) return Promise.resolve({ room });
    this.rooms.delete(room);
    for (const w of rs.waiters) w.reject(new SwitchboardError("not_member", `left ${room}`));
    if (!this.session) return Promise.resolve({ room });
    return this.request({ type: "room:leave", room }, { now: true });
  }

  /** Publishes `data` to `room`. Resolves `{seq}` (`{seq, duplicate: true}`
   * when `idempotencyKey` was already accepted) once the room accepted it
   * (even across a reconnect); rejects with a SwitchboardError.
   * `excludeSelf`: this connection does not receive its own message. */
  send(room, data, { excludeSelf, idempotencyKey, priority, volatile } = {}) {
    const frame = { type: "message:send", room, data };
    if (excludeSelf) frame.exclude_self = true;
    if (idempotencyKey != null) frame.idempotency_key = idempotencyKey;
    if (priority != null) frame.priority = priority;
    if (volatile) frame.volatile = true;
    return this.request(frame);
  }

  /** A direct message to every session of `user`. Resolves
   * `{delivered: true, offline: false}` when it went to their open sessions,
   * `{delivered: false, offline: true}` when it was stored for their next
   * connection. */
  sendTo(user, data) {
    return this.request({ type: "direct:send", to: user, data });
  }

  /** WebRTC signaling: sends `{kind, data}` to the one session `to` (an id
   * from `members(room)[i].sessions`) that shares `room` with this one.
   * `kind` is "offer", "answer", "ice" or "bye". Resolves `{}` once it was
   * handed to that session; rejects `forbidden` / `not_found` when it is
   * not in the room or gone. Received signals are `signal` events. */
  signal(room, to, kind, data = null) {
    return this.request({ type: "signal", to, room, kind, data });
  }

  /** This connection's session id (what others `signal`), once connected. */
  get sessionId() {
    return this.session?.session ?? null;
  }

  /** Says whether the user is typing in `room`. `typing(room)` refreshes;
   * it stops by itself 4 s after the last call, or with `typing(room, false)`.
   * The server does not answer typing: resolves at once. */
  typing(room, active = true) {
    const t = this.typingState.get(room) || { sent: 0, timer: null };
    this.typingState.set(room, t);
    clearTimeout(t.timer);
    if (!active) {
      if (t.sent) this.transmit([{ type: "typing:stop", room }]);
      this.typingState.delete(room);
      return Promise.resolve();
    }
    const now = Date.now();
    if (now - t.sent > 2500 && this.synced) {
      t.sent = now;
      this.transmit([{ type: "typing:start", room }]);
    }
    t.timer = setTimeout(() => this.typing(room, false), 4000);
    return Promise.resolve();
  }

  /** `online` (automatic), `away` or `busy`, with optional activity text.
   * Kept across reconnects. The server does not answer it: resolves once
   * handed to the connection (or kept for the next one). */
  setPresence(status, activity) {
    this.presence = { type: "presence:update", status };
    if (activity) this.presence.activity = activity;
    if (this.session) this.transmit([this.presence]);
    return Promise.resolve();
  }

  /** MQTT topic filters (`+`, `#`); kept across reconnects. Resolves with
   * the `mqtt:subscribed` frame (`active: true` once the broker confirmed). */
  mqttSubscribe(filter) {
    this.mqttFilters.add(filter);
    const p = this.request({ type: "mqtt:subscribe", filter });
    // Refused (or never sent): not re-sent after reconnects either.
    Promise.prototype.then.call(p, null, (e) => e.code !== "timeout" && this.mqttFilters.delete(filter));
    return p;
  }

  /** Resolves with `mqtt:unsubscribed` (at once when not connected: the
   * filter ends with the session anyway). */
  mqttUnsubscribe(filter) {
    this.mqttFilters.delete(filter);
    if (!this.session) return Promise.resolve({ type: "mqtt:unsubscribed", filter });
    return this.request({ type: "mqtt:unsubscribe", filter }, { now: true });
  }

  /** Publishes to an MQTT topic; resolves on the server's ack. */
  mqttPublish(topic, payload, { qos = 0, retain = false } = {}) {
    return this.request({ type: "mqtt:publish", topic, payload, qos, retain });
  }

  // ---- documents and notifications --------------------------------------

  /** Opens the collaborative document `doc` (now, or once connected) and
   * keeps it open across reconnects; see DocumentHandle in switchboard-docs.js. */
  openDocument(doc, options = {}) {
    if (this.stopped) throw new SwitchboardError("closed", "client is closed");
    if (this.docs.has(doc)) throw new SwitchboardError("already_open", `${doc} is already open; close it first`);
    const h = new DocumentHandle(this, doc, options);
    if (!h.closed) this.docs.set(doc, h);
    return h;
  }

  /** The shared state of `room` (a StateHandle, the same one each time;
   * not `state`, which is the connection's state).
   * From now on every join of the room asks for a fresh snapshot; call
   * `joinRoom(room)` too (state needs membership). */
  sharedState(room) {
    let h = this.states.get(room);
    if (!h) {
      this.states.set(room, (h = new StateHandle(this, room)));
      if (this.rooms.get(room)?.joined && this.session) h.fetch().catch(() => {});
    }
    return h;
  }

  /** A room's AI response streams as they grow (a StreamsView, the same
   * one each time); join the room too. */
  streams(room) {
    this.streamViews ??= new Map();
    let v = this.streamViews.get(room);
    if (!v) this.streamViews.set(room, (v = new StreamsView(this, room)));
    return v;
  }

  /** Starts a stream in `room` (or `{to: user}`: their personal room, which
   * the producer must have joined); see StreamProducer. */
  startStream(room, options = {}) {
    return new StreamProducer(this, room, options);
  }

  forgetDocument(h) {
    if (this.docs.get(h.doc) === h) this.docs.delete(h.doc);
  }

  /** A page of the user's notifications, newest first:
   * `{notifications, unread, more}`. `before`: only ids below it. */
  notifications({ before, limit, unread } = {}) {
    const frame = { type: "notification:list" };
    if (before != null) frame.before = before;
    if (limit != null) frame.limit = limit;
    if (unread) frame.unread = true;
    return this.request(frame);
  }

  /** Marks notifications read: an id, an array of ids, or `{all: true}`.
   * Resolves on the server's ack; `unreadCount` follows. */
  markRead(which) {
    const frame = { type: "notification:read" };
    if (typeof which === "number") frame.ids = [which];
    else if (Array.isArray(which) && which.length) frame.ids = which.map((n) => (typeof n === "object" ? n.id : n));
    else if (which && which.all === true) frame.all = true;
    else return Promise.reject(new SwitchboardError("bad_request", "markRead takes ids or {all: true}"));
    return this.request(frame);
  }

  /** The user's unread notifications, kept from `notification:count`. */
  get unreadCount() {
    return this.unread;
  }

  setUnread(n) {
    if (typeof n !== "number" || n === this.unread) return;
    this.unread = n;
    this.emit("unread", { unread: n });
  }

  /** Replaces the token (a string, or a function the client calls to
   * refresh it): a string is sent to the current session at once, resolving
   * with `auth:ok`; either is used for every reconnect. */
  setToken(token) {
    this.opts.token = token;
    if (this.session && !this.session.guest) {
      if (typeof token === "string") return this.request({ type: "auth", token }, { now: true });
      this.scheduleRefresh(this.session.exp);
    }
    return Promise.resolve(null);
  }

  /** `room`'s history over REST: the latest `limit` (default 50) messages,
   * or those before the seq `before`, with `more` when older ones remain;
   * with `since`, the messages after that seq that memory keeps. */
  async history(room, { since, before, limit } = {}) {
    let q;
    if (since != null) q = `since=${since}` + (limit ? `&limit=${limit}` : "");
    else q = `limit=${limit ?? 50}` + (before != null ? `&before=${before}` : "");
    return this.api(`/api/rooms/${encodeURIComponent(room)}/history?${q}`);
  }

  /** The page of `room`'s history just before the oldest message this
   * client has (the latest when it has none): resolves `{room, messages,
   * more}`, messages oldest first. They are not emitted as events: prepend
   * them. Calls while one is on its way share it. */
  loadEarlier(room, { limit } = {}) {
    const rs = this.rooms.get(room);
    if (rs?.earlier) return rs.earlier;
    const before = rs?.firstSeq ?? (rs?.joined ? rs.lastSeq + 1 : null);
    const frame = { type: "history:get", room, ...(before != null && { before }), ...(limit != null && { limit }) };
    const asked = this.request(frame);
    asked.observed = true; // by the page below, which reports instead
    const p = this.reportUnobserved(Promise.prototype.then.call(asked, (page) => {
      const first = page.messages[0];
      if (rs && first && (!rs.epoch || page.epoch === rs.epoch)) rs.firstSeq = Math.min(rs.firstSeq ?? Infinity, first.seq);
      return page;
    }));
    if (rs) {
      rs.earlier = p;
      const done = () => (rs.earlier = null);
      Promise.prototype.then.call(p, done, done);
    }
    return p;
  }

  members(room) {
    const rs = this.rooms.get(room);
    return rs ? [...rs.members.values()] : [];
  }

  typingUsers(room) {
    return this.rooms.get(room)?.typing || [];
  }

  connectionInfo() {
    const now = Date.now();
    this.failures = this.failures.filter((t) => now - t < FAILURE_WINDOW_MS);
    const rtt = this.rtts.length ? Math.round(this.rtts.reduce((a, b) => a + b, 0) / this.rtts.length) : null;
    return {
      state: this.state,
      transport: this.transport && this.session ? this.transport.name : null,
      rtt,
      quality: gradeQuality(this.rtts, this.failures.length, this.state === "connected"),
      failures: this.failures.length,
      attempt: this.attempt,
      retryInMs: this.retryAt ? Math.max(0, this.retryAt - now) : null,
      queued: this.outbox.length,
      session: this.session?.session ?? null,
      user: this.session?.user ?? null,
      name: this.session?.name ?? null,
      guest: this.session?.guest ?? null,
    };
  }

  /** Ends the session for good (an HTTP session with its close route). */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.abortAttempt?.();
    this.dropTransport();
    const err = new SwitchboardError("closed", "client closed");
    this.failAll(err);
    for (const h of [...this.docs.values()]) h.shutdown(err);
    this.setState("closed");
    return Promise.resolve();
  }

  // ---- connecting ---------------------------------------------------------

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", this.connectionInfo());
  }

  // start(), tryTransport(), the probe, heartbeats, token refresh: in
  // switchboard-connection.js (ConnectionMethods).

  // ---- after (re)connecting: rejoin with `since`, then flush the queue -----

  onConnected(f) {
    const previous = this.userId;
    this.session = f;
    this.userId = f.user;
    for (const [name, rs] of this.rooms) {
      rs.joined = false;
      rs.backfill = null;
      rs.replayUntil = 0;
      if (!rs.wanted && (previous !== f.user || !name.startsWith("user:"))) this.rooms.delete(name);
    }
    this.heartbeat();
    this.scheduleRefresh(f.exp);
    if (this.presence) this.transmit([this.presence]);
    // Filters whose mqttSubscribe() is still waiting go out with the queue.
    const asked = new Set(this.outbox.filter((e) => e.frame.type === "mqtt:subscribe").map((e) => e.frame.filter));
    for (const filter of this.mqttFilters) if (!asked.has(filter)) this.transmit([{ type: "mqtt:subscribe", filter }]);
    for (const h of [...this.docs.values()]) h.reconnected();
    if (previous !== f.user || f.guest) this.setUnread(0);
    else if (this.unread > 0) {
      // A new session is told the count only when it is not zero: ask, in
      // case everything was read elsewhere meanwhile.
      this.notifications({ limit: 1 }).catch(() => {});
    }
    for (const rs of this.rooms.values()) this.sendJoin(rs);
    this.resyncTimer = setTimeout(() => this.finishSync(), this.opts.resyncTimeout);
    this.checkSynced();
  }

  sendJoin(rs) {
    const frame = { type: "room:join", room: rs.name, id: this.nextId("j") };
    // Shared state is current values, not a log: a fresh snapshot on
    // every join loses nothing, whatever happened while away.
    if (this.states.has(rs.name)) frame.state = true;
    rs.pendingSince = null;
    if (rs.epoch) {
      frame.since = rs.lastSeq;
      frame.epoch = rs.epoch;
      rs.pendingSince = rs.lastSeq;
    }
    rs.joinId = frame.id;
    this.byId.set(frame.id, { join: rs.name });
    this.transmit([frame]);
  }

  onJoined(f) {
    let rs = this.rooms.get(f.room);
    if (!rs) {
      // The personal room, joined by the server.
      rs = this.roomState(f.room);
      this.rooms.set(f.room, rs);
    }
    if (f.id) this.byId.delete(f.id);
    rs.members = new Map((f.members || []).map((m) => [m.user, m]));
    if (rs.joinId && f.id !== rs.joinId) {
      // The server's own join of the personal room, while ours (with
      // `since`) is on its way: that one decides what is replayed.
      this.emit("room:joined", f);
      return this.emit("members", { room: rs.name, members: this.members(rs.name) });
    }
    // Already joined, and nobody asked: the server says the numbering moved on.
    const unsolicited = rs.joined && !f.id && rs.pendingSince == null;
    rs.joinId = null;
    rs.joined = true;
    const since = rs.pendingSince;
    rs.pendingSince = null;
    if (rs.epoch && rs.epoch !== f.epoch) rs.firstSeq = null; // another numbering
    if (since != null && f.recovered === true) {
      rs.replayUntil = f.seq > rs.lastSeq ? f.seq : 0;
    } else if (since != null) {
      // Not all in history: fetch what is kept and say what is missing.
      const sameEpoch = f.epoch === rs.epoch;
      if (!sameEpoch) rs.lastSeq = 0;
      this.backfill(rs, f.seq, sameEpoch ? rs.lastSeq : 0, true);
    } else if (rs.history > 0 && f.seq > 0 && !rs.epoch) {
      rs.lastSeq = Math.max(0, f.seq - rs.history);
      this.backfill(rs, f.seq, rs.lastSeq, false);
    } else if (f.recovered === false && unsolicited) {
      // Unsolicited: the server's numbering moved on without what we missed
      // (a Redis that lost data, or a node too far behind its stream).
      const from = rs.epoch === f.epoch ? rs.lastSeq + 1 : 1;
      if (f.seq >= from) this.emit("gap", { room: rs.name, from, to: f.seq, epoch: f.epoch });
      rs.lastSeq = f.seq;
    } else {
      rs.lastSeq = Math.max(rs.epoch === f.epoch ? rs.lastSeq : 0, f.seq);
    }
    rs.epoch = f.epoch;
    for (const w of rs.waiters.splice(0)) w.resolve(f);
    this.emit("room:joined", f);
    this.emit("members", { room: rs.name, members: this.members(rs.name) });
    this.checkSynced();
  }

  /** Delivers the kept messages in (since, upto] over REST, holding live
   * ones of the room back until then, so the order stays and none repeats. */
  async backfill(rs, upto, since, reportGap) {
    if (upto <= since) return;
    const fill = { buffer: [] };
    rs.backfill = fill;
    try {
      const h = await this.history(rs.name, { since, limit: Math.max(1, upto - since) });
      if (rs.backfill !== fill) return;
      const first = h.messages.length ? h.messages[0].seq : upto + 1;
      if (reportGap && first > since + 1) {
        this.emit("gap", { room: rs.name, from: since + 1, to: Math.min(first, upto + 1) - 1 });
      }
      rs.backfill = null;
      for (const m of h.messages) if (m.seq <= upto) this.deliver(rs, m);
    } catch (e) {
      if (rs.backfill !== fill) return;
      rs.backfill = null;
      this.emit("gap", { room: rs.name, from: since + 1, to: upto, error: e.code || String(e) });
      rs.lastSeq = Math.max(rs.lastSeq, upto);
    }
    // Live messages that came meanwhile, in order (those in the fetch are skipped).
    for (const m of fill.buffer) this.deliver(rs, m);
    this.checkSynced();
  }

  deliver(rs, m) {
    if (m.id) this.confirm(m.id, m.seq == null ? {} : { seq: m.seq });
    // Live before our rejoin is answered (the personal room, which the server
    // joins by itself): the rejoin's replay or backfill brings it again, in
    // order, so showing it now would make the replay look like duplicates.
    if (rs.pendingSince != null) return;
    if (rs.backfill) return rs.backfill.buffer.push(m);
    // Volatile: no seq, never replayed.
    if (m.seq == null) return this.emit("message:receive", m);
    if (m.seq <= rs.lastSeq || rs.ahead?.has(m.seq)) return; // already shown
    if (m.priority === "critical" && m.seq > rs.lastSeq + 1) {
      // It jumped the server's queue: shown now, counted once the ones before it came.
      (rs.ahead ||= new Set()).add(m.seq);
      return this.emit("message:receive", m);
    }
    rs.lastSeq = m.seq;
    while (rs.ahead?.delete(rs.lastSeq + 1)) rs.lastSeq++;
    if (rs.firstSeq == null || m.seq < rs.firstSeq) rs.firstSeq = m.seq;
    this.emit("message:receive", m);
    if (rs.replayUntil && m.seq >= rs.replayUntil) {
      rs.replayUntil = 0;
      this.checkSynced();
    }
  }

  checkSynced() {
    if (!this.session || this.synced) return;
    for (const rs of this.rooms.values()) {
      if (rs.wanted && (!rs.joined || rs.backfill || rs.replayUntil)) return;
    }
    this.finishSync();
  }

  /** Every room is rejoined and replayed: resend what the old session did
   * not confirm, then the offline queue, in order. */
  finishSync() {
    if (!this.session || this.synced) return;
    clearTimeout(this.resyncTimer);
    this.synced = true;
    this.attempt = 0;
    const id = this.session.session;
    const again = this.outbox.filter((e) => e.sentOn !== id);
    for (const e of again) this.transmitEntry(e);
    this.setState("connected");
    for (const w of this.readyWaiters.splice(0)) w.resolve(this.session);
    this.scheduleProbe();
  }

  // ---- requests and acks ----------------------------------------------------

  /** Sends `frame` with an id and resolves with its answer. Queued until
   * every room is rejoined after a reconnect, or (`now`) sent on the
   * session as it is. A refusal rejects the promise and is not also an
   * `error` event: each error is reported once. */
  request(frame, { now = false, wait } = {}) {
    const entry = { frame: { ...frame, id: this.nextId("c") }, sentOn: null, wait };
    const p = this.reportUnobserved(new Observed((resolve, reject) => Object.assign(entry, { resolve, reject })));
    if (this.stopped) {
      entry.reject(new SwitchboardError("closed", "client is closed"));
      return p;
    }
    if (this.outbox.length >= this.opts.queueSize) {
      entry.reject(new SwitchboardError("queue_full", `more than ${this.opts.queueSize} sends are waiting`));
      return p;
    }
    this.outbox.push(entry);
    this.byId.set(entry.frame.id, entry);
    if (this.synced || (now && this.session)) this.transmitEntry(entry);
    return p;
  }

  /** `p` as an Observed promise, whose refusal is an `error` event when
   * nobody observed it (no `then`, `catch` or `await` by the end of the
   * turn it was refused in): each error is reported once, by the promise or
   * else by the event. */
  reportUnobserved(p) {
    const o = p instanceof Observed ? p : new Observed((resolve, reject) => Promise.prototype.then.call(p, resolve, reject));
    Promise.prototype.then.call(o, null, (err) =>
      setTimeout(() => {
        if (o.observed || err.code === "closed") return;
        const frame = { type: "error", code: err.code, message: err.message };
        if (err.retryAfterMs != null) frame.retry_after_ms = err.retryAfterMs;
        this.emit("error", frame);
      }, 0),
    );
    return o;
  }

  transmitEntry(e) {
    e.sentOn = this.session.session;
    clearTimeout(e.timer);
    e.timer = setTimeout(() => this.settle(e, new SwitchboardError("timeout", "no answer from the server")), e.wait ?? this.opts.ackTimeout);
    this.transmit([e.frame]);
  }

  transmit(frames) {
    if (this.transport) this.transport.send(frames);
  }

  confirm(id, value) {
    const e = this.byId.get(id);
    if (e && e.frame) this.settle(e, null, value);
  }

  settle(e, err, value) {
    clearTimeout(e.timer);
    this.byId.delete(e.frame.id);
    const i = this.outbox.indexOf(e);
    if (i >= 0) this.outbox.splice(i, 1);
    err ? e.reject(err) : e.resolve(value);
  }

  failAll(err) {
    for (const e of [...this.outbox]) this.settle(e, err);
    for (const rs of this.rooms.values()) for (const w of rs.waiters.splice(0)) w.reject(err);
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
  }

  /** An `error` frame: it rejects the call that caused it (by `ref`), or,
   * when no call waits for it, is an `error` event. */
  onError(f) {
    if (typeof f.doc === "string") this.docs.get(f.doc)?.handleFrame(f);
    const target = f.ref && this.byId.get(f.ref);
    let handled = false;
    if (target && target.frame) {
      this.settle(target, SwitchboardError.from(f));
      handled = true;
    }
    if (target && target.join) {
      this.byId.delete(f.ref);
      const rs = this.rooms.get(target.join);
      if (rs) {
        this.rooms.delete(target.join);
        const waiters = rs.waiters.splice(0);
        for (const w of waiters) w.reject(SwitchboardError.from(f));
        // A rejoin nobody waits for is the app's to hear of.
        handled = waiters.length > 0;
        this.checkSynced();
      }
    }
    if (!handled) this.emit("error", f);
  }

  // ---- frames ---------------------------------------------------------------

  onFrame(t, f) {
    if (t !== this.transport) return;
    switch (f.type) {
      case "connected":
        if (this.session && this.session.session !== f.session) {
          // The SSE stream reconnected into a new session.
          const live = this.transport;
          this.transport = null;
          this.dropTransport();
          this.transport = live;
          this.setState("reconnecting");
        }
        this.onConnected(f);
        break;
      case "room:joined":
        return this.onJoined(f);
      case "message:receive": {
        const rs = this.rooms.get(f.room);
        return rs ? this.deliver(rs, f) : this.emit(f.type, f);
      }
      case "ack":
        this.onAck(f);
        break;
      case "auth:ok": {
        if (f.id) this.confirm(f.id, f);
        const before = this.session?.exp ?? 0;
        if (this.session) this.session.exp = f.exp;
        // A token no newer than the last is not refreshed again and again:
        // the session ends at `exp`, and the reconnect asks once more.
        if (f.exp > before) this.scheduleRefresh(f.exp);
        break;
      }
      case "error":
        return this.onError(f);
      case "pong":
        if (this.onPong(f)) return;
        break;
      case "typing:update": {
        const rs = this.rooms.get(f.room);
        if (rs) rs.typing = f.users || [];
        break;
      }
      case "room:member_joined":
      case "room:member_left":
      case "room:session_joined":
      case "room:session_left":
      case "presence:update":
        this.trackMember(f);
        break;
      case "room:left":
        this.rooms.delete(f.room);
        if (f.id) this.confirm(f.id, { room: f.room });
        break;
      case "mqtt:subscribed":
      case "mqtt:unsubscribed":
        if (f.id) this.confirm(f.id, f);
        break;
      case "notification:count":
        this.setUnread(f.unread);
        break;
      case "notification:page":
        this.setUnread(f.unread);
        if (f.id) this.confirm(f.id, { notifications: f.notifications || [], unread: f.unread, more: !!f.more });
        break;
      case "history:page":
        if (f.id) this.confirm(f.id, { room: f.room, epoch: f.epoch, messages: f.messages || [], more: !!f.more });
        break;
      case "state:snapshot":
        if (f.id) this.confirm(f.id, f);
        else this.states.get(f.room)?.onSnapshot(f);
        break;
      case "state:update":
        this.states.get(f.room)?.onUpdate(f);
        break;
      case "rpc:call":
        this.onRpcCall(f);
        break;
      case "rpc:result":
        this.onRpcResult(f);
        break;
      case "doc:snapshot":
      case "doc:op":
      case "doc:ack":
      case "doc:cursor":
        this.docs.get(f.doc)?.handleFrame(f);
        break;
    }
    this.emit(f.type, f);
  }

  /** `{seq}` (with `duplicate`) for a room message, `{delivered, offline}`
   * for a direct one, `{}` for the rest. */
  onAck(f) {
    const e = this.byId.get(f.id);
    if (!e || !e.frame) return;
    if (e.frame.type === "direct:send") this.confirm(f.id, { delivered: !f.offline, offline: !!f.offline });
    else if (f.version != null) this.confirm(f.id, { version: f.version });
    else this.confirm(f.id, f.seq == null ? {} : f.duplicate ? { seq: f.seq, duplicate: true } : { seq: f.seq });
  }

  trackMember(f) {
    const rs = this.rooms.get(f.room);
    if (!rs) return;
    if (f.type === "room:member_joined") rs.members.set(f.user.user, { sessions: [], ...f.user });
    else if (f.type === "room:member_left") rs.members.delete(f.user.user);
    else if (f.type === "room:session_joined" || f.type === "room:session_left") {
      const m = rs.members.get(f.user);
      if (!m) return;
      const others = (m.sessions || []).filter((s) => s !== f.session);
      m.sessions = f.type === "room:session_joined" ? [...others, f.session].sort() : others;
    } else {
      const m = rs.members.get(f.user);
      if (!m) return;
      m.status = f.status;
      if (f.activity) m.activity = f.activity;
      else delete m.activity;
    }
    this.emit("members", { room: rs.name, members: this.members(rs.name) });
  }

  // ---- helpers --------------------------------------------------------------

  roomState(name) {
    return { name, wanted: false, history: 0, lastSeq: 0, firstSeq: null, earlier: null, epoch: null, members: new Map(), typing: [], waiters: [], joined: false };
  }

  nextId(kind) {
    return `${kind}-${this.prefix}-${++this.n}`;
  }

  async api(path) {
    const token = await this.currentToken();
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const r = await this.deps.fetch(this.base + path, { headers });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = body.error || {};
      throw new SwitchboardError(e.code || "internal", e.message || `HTTP ${r.status}`);
    }
    return body;
  }
}

Object.assign(Client.prototype, { off: EventMethods.off, dispatch: EventMethods.dispatch }, ConnectionMethods, RpcMethods);
