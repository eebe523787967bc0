// Switchboard client SDK: an ES module with no dependencies and no build step.
//
//   import { connect } from "/switchboard.js";
//   const sb = connect({ name: "alice" });
//   sb.on("message:receive", (m) => console.log(m.from.name, m.data));
//   await sb.joinRoom("general");
//   await sb.send("general", { text: "hello" });
//
// docs/CLIENT.md describes the whole API; docs/PROTOCOL.md the frames.

import { TRANSPORTS } from "./switchboard-transports.js";
import { DocumentHandle } from "./switchboard-docs.js";

export { SERVER_FRAME_TYPES } from "./switchboard-transports.js";
export { DocumentHandle } from "./switchboard-docs.js";

const DEFAULTS = {
  transports: ["websocket", "sse", "polling"],
  connectTimeout: 8000,
  reconnect: { base: 500, cap: 15000, attempts: Infinity, jitter: 0.5 },
  heartbeat: { interval: 15000, timeout: 10000 },
  ackTimeout: 30000,
  queueSize: 100,
  resyncTimeout: 10000,
};

/** An error the server (or the client) reported: `code` is stable. */
export class SwitchboardError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = "SwitchboardError";
    this.code = code;
    Object.assign(this, extra);
  }

  static from(frame) {
    const extra = frame.retry_after_ms != null ? { retryAfterMs: frame.retry_after_ms } : {};
    return new SwitchboardError(frame.code, frame.message, extra);
  }
}

/** Grades a connection from its recent round trips and failures. */
export function gradeQuality(rtts, failures, connected) {
  if (!connected) return "poor";
  const rtt = rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0;
  if (rtt <= 100 && failures === 0) return "excellent";
  if (rtt <= 300 && failures <= 1) return "good";
  if (rtt <= 1000 && failures <= 3) return "fair";
  return "poor";
}

/** The wait before reconnect attempt `n` (0-based): exponential, capped, jittered. */
export function backoffDelay(n, { base, cap, jitter }, random = Math.random) {
  const d = Math.min(cap, base * 2 ** Math.min(n, 30));
  return Math.round(d * (1 - jitter + jitter * random()));
}

/** Opens a client and starts connecting; see docs/CLIENT.md. */
export function connect(options = {}) {
  return new Client(options);
}

const FAILURE_WINDOW_MS = 60000;
const RTT_SAMPLES = 5;
/** Requests that may be sent again when the link dropped before their
 * answer: a `message:send` is recognized in the replay by its `id`; the
 * others change nothing when repeated. */
const RESENDABLE = new Set(["message:send", "mqtt:subscribe", "notification:list", "notification:read"]);

export class Client {
  constructor(options = {}) {
    const g = globalThis;
    this.opts = {
      ...DEFAULTS,
      ...options,
      reconnect: { ...DEFAULTS.reconnect, ...options.reconnect },
      heartbeat: { ...DEFAULTS.heartbeat, ...options.heartbeat },
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
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    if (this.transport && this.transport.listen) this.transport.listen(type);
    return this;
  }

  off(type, fn) {
    const set = this.handlers.get(type);
    if (set) fn ? set.delete(fn) : set.clear();
    return this;
  }

  emit(type, payload) {
    for (const key of [type, "*"]) {
      if (key === "*" && !payload?.type) continue;
      for (const fn of [...(this.handlers.get(key) || [])]) {
        try {
          fn(payload);
        } catch (e) {
          console.error(`switchboard: a "${type}" handler threw`, e);
        }
      }
    }
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
    const p = new Promise((resolve, reject) => rs.waiters.push({ resolve, reject }));
    p.catch(() => {});
    if (this.session) this.sendJoin(rs);
    return p;
  }

  leaveRoom(room) {
    const rs = this.rooms.get(room);
    if (!rs) return;
    this.rooms.delete(room);
    for (const w of rs.waiters) w.reject(new SwitchboardError("not_member", `left ${room}`));
    if (this.session) this.transmit([{ type: "room:leave", room }]);
  }

  /** Publishes `data` to `room`. Resolves `{seq}` (`{seq, duplicate: true}`
   * when `idempotencyKey` was already accepted) once the room accepted it
   * (even across a reconnect); rejects with a SwitchboardError.
   * `excludeSelf`: this connection does not receive its own message. */
  send(room, data, { excludeSelf, idempotencyKey } = {}) {
    const frame = { type: "message:send", room, data };
    if (excludeSelf) frame.exclude_self = true;
    if (idempotencyKey != null) frame.idempotency_key = idempotencyKey;
    return this.request(frame);
  }

  /** A direct message to every session of `user`. */
  sendTo(user, data) {
    return this.request({ type: "direct:send", to: user, data });
  }

  /** Says whether the user is typing in `room`. `typing(room)` refreshes;
   * it stops by itself 4 s after the last call, or with `typing(room, false)`. */
  typing(room, active = true) {
    const t = this.typingState.get(room) || { sent: 0, timer: null };
    this.typingState.set(room, t);
    clearTimeout(t.timer);
    if (!active) {
      if (t.sent) this.transmit([{ type: "typing:stop", room }]);
      this.typingState.delete(room);
      return;
    }
    const now = Date.now();
    if (now - t.sent > 2500 && this.synced) {
      t.sent = now;
      this.transmit([{ type: "typing:start", room }]);
    }
    t.timer = setTimeout(() => this.typing(room, false), 4000);
  }

  /** `online` (automatic), `away` or `busy`, with optional activity text.
   * Kept across reconnects. */
  setPresence(status, activity) {
    this.presence = { type: "presence:update", status };
    if (activity) this.presence.activity = activity;
    if (this.session) this.transmit([this.presence]);
  }

  /** MQTT topic filters (`+`, `#`); kept across reconnects. Resolves with
   * the `mqtt:subscribed` frame (`active: true` once the broker confirmed). */
  mqttSubscribe(filter) {
    this.mqttFilters.add(filter);
    const p = this.request({ type: "mqtt:subscribe", filter });
    // Refused (or never sent): not re-sent after reconnects either.
    p.catch((e) => e.code !== "timeout" && this.mqttFilters.delete(filter));
    return p;
  }

  mqttUnsubscribe(filter) {
    this.mqttFilters.delete(filter);
    if (this.session) this.transmit([{ type: "mqtt:unsubscribe", filter }]);
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

  /** Replaces the token: refreshes the current session, and is used for
   * every reconnect. */
  setToken(token) {
    this.opts.token = token;
    if (this.session && typeof token === "string" && !this.session.guest) {
      this.transmit([{ type: "auth", token }]);
    }
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
    const p = this.request(frame).then((page) => {
      const first = page.messages[0];
      if (rs && first && (!rs.epoch || page.epoch === rs.epoch)) rs.firstSeq = Math.min(rs.firstSeq ?? Infinity, first.seq);
      return page;
    });
    if (rs) (rs.earlier = p).finally(() => (rs.earlier = null)).catch(() => {});
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

  /** Ends the session for good. */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.abortAttempt?.();
    this.dropTransport();
    const err = new SwitchboardError("closed", "client closed");
    this.failAll(err);
    for (const h of [...this.docs.values()]) h.shutdown(err);
    this.setState("closed");
  }

  // ---- connecting ---------------------------------------------------------

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", this.connectionInfo());
  }

  async start() {
    if (this.stopped) return;
    this.retryAt = null;
    this.setState(this.lastGood ? "reconnecting" : "connecting");
    const names = this.opts.transports.filter((n) => TRANSPORTS[n]);
    // Try the transport that last worked first, then the others in order.
    const at = Math.max(0, names.indexOf(this.lastGood));
    const order = [...names.slice(at), ...names.slice(0, at)];
    for (const name of order) {
      if (this.stopped) return;
      const outcome = await this.tryTransport(name);
      if (outcome === "connected") return;
      if (outcome === "auth") return this.authFailed();
    }
    // A blocked transport that another replaced is no failure of the
    // connection; a round with none working is.
    this.failures.push(Date.now());
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.stopped) return;
    if (this.attempt >= this.opts.reconnect.attempts) {
      this.stopped = true;
      this.failAll(new SwitchboardError("disconnected", "gave up reconnecting"));
      this.emit("error", { type: "error", code: "disconnected", message: "gave up reconnecting" });
      return this.setState("closed");
    }
    const delay = backoffDelay(this.attempt++, this.opts.reconnect);
    this.retryAt = Date.now() + delay;
    this.setState("reconnecting");
    this.emit("state", this.connectionInfo());
    this.retryTimer = setTimeout(() => this.start(), delay);
  }

  authFailed() {
    if (typeof this.opts.token === "function") return this.scheduleRetry();
    this.stopped = true;
    this.failAll(new SwitchboardError("unauthorized", "authentication failed"));
    this.emit("error", { type: "error", code: "unauthorized", message: "authentication failed" });
    this.setState("closed");
  }

  /** Opens one transport; resolves "connected", "failed" or "auth". */
  async tryTransport(name) {
    let token = this.opts.token;
    if (typeof token === "function") {
      try {
        token = await token();
      } catch {
        return "failed";
      }
    }
    const query = token ? `token=${encodeURIComponent(token)}` : `name=${encodeURIComponent(this.opts.name || "")}`;
    const t = new TRANSPORTS[name]({ base: this.base, query, token, deps: this.deps, types: [...this.handlers.keys()] });
    this.transport = t;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        t.close();
        resolve("failed");
      }, this.opts.connectTimeout);
      // close() ends the attempt at once, not at the timeout.
      this.abortAttempt = () => {
        clearTimeout(timer);
        resolve("failed");
      };
      t.onframe = (f) => {
        if (f.type === "connected" && !this.session) {
          clearTimeout(timer);
          this.lastGood = name;
          resolve("connected");
        }
        this.onFrame(t, f);
      };
      t.onclose = (code, reason) => {
        clearTimeout(timer);
        if (this.session) return this.onDrop(t, code, reason);
        if (this.transport === t) this.transport = null;
        resolve(code === 1008 ? "auth" : "failed");
      };
      t.open();
    });
  }

  /** The live transport ended: reconnect (at once after a heartbeat timeout
   * or a server close, else with backoff). */
  onDrop(t, code, reason) {
    if (!t || t !== this.transport) return;
    this.dropTransport();
    this.failures.push(Date.now());
    this.emit("disconnected", { code, reason });
    if (this.stopped) return;
    if (code === 1008) return this.authFailed();
    this.scheduleRetry();
  }

  dropTransport() {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.resyncTimer);
    if (this.transport) this.transport.close();
    this.transport = null;
    this.session = null;
    this.synced = false;
    for (const e of this.outbox) {
      clearTimeout(e.timer);
      if (!RESENDABLE.has(e.frame.type) && e.sentOn) {
        // Nothing tells whether it arrived: refuse rather than guess.
        this.settle(e, new SwitchboardError("unconfirmed", "the connection dropped before the server confirmed it"));
      }
    }
    for (const t of this.typingState.values()) clearTimeout(t.timer);
    this.typingState.clear();
  }

  heartbeat() {
    clearInterval(this.heartbeatTimer);
    const ping = () => {
      if (this.pongTimer) return;
      const id = this.nextId("hb");
      const sent = Date.now();
      this.pingSent = { id, sent };
      this.transmit([{ type: "ping", id }]);
      this.pongTimer = setTimeout(() => {
        this.pongTimer = null;
        this.onDrop(this.transport, 4000, "no pong: connection is dead");
      }, this.opts.heartbeat.timeout);
    };
    ping();
    this.heartbeatTimer = setInterval(ping, this.opts.heartbeat.interval);
  }

  onPong(f) {
    if (!this.pingSent || f.id !== this.pingSent.id) return false;
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.rtts.push(Date.now() - this.pingSent.sent);
    if (this.rtts.length > RTT_SAMPLES) this.rtts.shift();
    this.pingSent = null;
    this.emit("state", this.connectionInfo());
    return true;
  }

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
    if (m.id) this.confirm(m.id, { seq: m.seq });
    // Live before our rejoin is answered (the personal room, which the server
    // joins by itself): the rejoin's replay or backfill brings it again, in
    // order, so showing it now would make the replay look like duplicates.
    if (rs.pendingSince != null) return;
    if (rs.backfill) return rs.backfill.buffer.push(m);
    if (m.seq <= rs.lastSeq) return; // already shown
    rs.lastSeq = m.seq;
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
  }

  // ---- requests and acks ----------------------------------------------------

  request(frame) {
    const entry = { frame: { ...frame, id: this.nextId("c") }, sentOn: null };
    const p = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
    p.catch(() => {}); // an unobserved refusal is also an `error` event
    if (this.stopped) {
      entry.reject(new SwitchboardError("closed", "client is closed"));
      return p;
    }
    if (this.outbox.length >= this.opts.queueSize) {
      const err = new SwitchboardError("queue_full", `more than ${this.opts.queueSize} sends are waiting`);
      entry.reject(err);
      this.emit("error", { type: "error", code: err.code, message: err.message });
      return p;
    }
    this.outbox.push(entry);
    this.byId.set(entry.frame.id, entry);
    if (this.synced) this.transmitEntry(entry);
    return p;
  }

  transmitEntry(e) {
    e.sentOn = this.session.session;
    clearTimeout(e.timer);
    e.timer = setTimeout(() => this.settle(e, new SwitchboardError("timeout", "no answer from the server")), this.opts.ackTimeout);
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

  onError(f) {
    if (typeof f.doc === "string") this.docs.get(f.doc)?.handleFrame(f);
    const target = f.ref && this.byId.get(f.ref);
    if (target && target.frame) this.settle(target, SwitchboardError.from(f));
    if (target && target.join) {
      this.byId.delete(f.ref);
      const rs = this.rooms.get(target.join);
      if (rs) {
        this.rooms.delete(target.join);
        for (const w of rs.waiters.splice(0)) w.reject(SwitchboardError.from(f));
        this.checkSynced();
      }
    }
    this.emit("error", f);
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
        this.confirm(f.id, f.seq == null ? {} : f.duplicate ? { seq: f.seq, duplicate: true } : { seq: f.seq });
        break;
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
      case "presence:update":
        this.trackMember(f);
        break;
      case "room:left":
        this.rooms.delete(f.room);
        break;
      case "mqtt:subscribed":
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
      case "doc:snapshot":
      case "doc:op":
      case "doc:ack":
      case "doc:cursor":
        this.docs.get(f.doc)?.handleFrame(f);
        break;
    }
    this.emit(f.type, f);
  }

  trackMember(f) {
    const rs = this.rooms.get(f.room);
    if (!rs) return;
    if (f.type === "room:member_joined") rs.members.set(f.user.user, f.user);
    else if (f.type === "room:member_left") rs.members.delete(f.user.user);
    else {
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
    let token = this.opts.token;
    if (typeof token === "function") token = await token();
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
