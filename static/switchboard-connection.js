// How the Switchboard client (switchboard.js) gets and keeps a connection:
// the choice of transport and the fallbacks, reconnects with backoff, the
// background probe that moves back to the preferred transport, heartbeats,
// and refreshing the token before it expires. These are methods of Client,
// mixed into its prototype; the rooms, requests and frames stay there.

import { TRANSPORTS } from "./switchboard-transports.js";

/** An error the server (or the client) reported: `code` is stable. Here,
 * not in switchboard.js, so that this module needs nothing from it. */
export class SwitchboardError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = "SwitchboardError";
    this.code = code;
    Object.assign(this, extra);
  }

  static from(frame) {
    const extra = frame.retry_after_ms != null ? { retryAfterMs: frame.retry_after_ms } : {};
    // A state conflict carries the key's current version and value.
    if (frame.code === "version_conflict") Object.assign(extra, { room: frame.room, key: frame.key, version: frame.version, value: frame.value });
    return new SwitchboardError(frame.code, frame.message, extra);
  }
}

/** The wait before attempt `n` (0-based): exponential, capped, jittered. */
export function backoffDelay(n, { base, cap, jitter }, random = Math.random) {
  const d = Math.min(cap, base * 2 ** Math.min(n, 30));
  return Math.round(d * (1 - jitter + jitter * random()));
}

/** Requests that may be sent again when the link dropped before their
 * answer: a `message:send` is recognized in the replay by its `id`; the
 * others change nothing when repeated. */
export const RESENDABLE = new Set(["message:send", "mqtt:subscribe", "notification:list", "notification:read"]);

/** The longest a token is refreshed ahead of its `exp` (half its remaining
 * life when that is shorter). */
const REFRESH_AHEAD_MS = 30000;
/** The wait before asking the token function again after it failed. */
const REFRESH_RETRY_MS = 2000;

export const ConnectionMethods = {
  /** The transports of `opts.transports` that can run here, in order. */
  usableTransports() {
    const needs = { websocket: "WebSocket", sse: "EventSource", polling: "fetch" };
    return this.opts.transports.filter((n) => TRANSPORTS[n] && typeof this.deps[needs[n]] === "function");
  },

  async start() {
    if (this.stopped) return;
    this.retryAt = null;
    this.setState(this.lastGood ? "reconnecting" : "connecting");
    const names = this.usableTransports();
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
  },

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
  },

  /** The server refused the token (close 1008 or HTTP 401). With a fixed
   * token the client gives up: `ready()` and every waiting call reject. With
   * a token function, `ready()` rejects now and the client keeps trying
   * (the function may give a good token later). Either way one `error`. */
  authFailed(reason = "authentication failed") {
    const err = new SwitchboardError("unauthorized", reason);
    this.emit("error", { type: "error", code: "unauthorized", message: err.message });
    if (typeof this.opts.token === "function") {
      for (const w of this.readyWaiters.splice(0)) w.reject(err);
      return this.scheduleRetry();
    }
    this.stopped = true;
    this.failAll(err);
    this.setState("closed");
  },

  async currentToken() {
    const token = this.opts.token;
    return typeof token === "function" ? token() : token;
  },

  /** Opens one transport; resolves "connected", "failed", "auth", or (a
   * probe that could not take over) "busy". A probe runs beside the live
   * transport and replaces it once its session is open. */
  async tryTransport(name, probe = false) {
    let token;
    try {
      token = await this.currentToken();
    } catch {
      return "failed";
    }
    if (this.stopped || (probe && !this.session)) return "failed";
    const query = token ? `token=${encodeURIComponent(token)}` : `name=${encodeURIComponent(this.opts.name || "")}`;
    const t = new TRANSPORTS[name]({ base: this.base, query, token, deps: this.deps, types: [...this.handlers.keys()] });
    if (!probe) this.transport = t;
    return new Promise((resolve) => {
      let opened = false;
      const timer = setTimeout(() => {
        t.close();
        resolve("failed");
      }, this.opts.connectTimeout);
      // close() (or a drop, for a probe) ends the attempt at once.
      const abort = () => {
        clearTimeout(timer);
        t.close();
        resolve("failed");
      };
      if (probe) this.abortProbe = abort;
      else this.abortAttempt = abort;
      t.onframe = (f) => {
        if (f.type === "connected" && !opened) {
          opened = true;
          clearTimeout(timer);
          if (probe) {
            this.abortProbe = null;
            if (!this.canSwitch()) {
              t.close();
              return resolve("busy");
            }
            this.switchTo(t);
          }
          this.lastGood = name;
          resolve("connected");
        }
        this.onFrame(t, f);
      };
      t.onclose = (code, reason) => {
        clearTimeout(timer);
        if (this.transport === t && this.session) return this.onDrop(t, code, reason);
        if (this.transport === t) this.transport = null;
        resolve(code === 1008 ? "auth" : "failed");
      };
      t.open();
    });
  },

  // ---- back to the preferred transport ----------------------------------

  /** On a fallback transport, tries the preferred one now and then (with
   * backoff, `opts.probe`) and moves to it once it opens. */
  scheduleProbe() {
    clearTimeout(this.probeTimer);
    const preferred = this.usableTransports()[0];
    if (!this.opts.probe || this.stopped || !this.transport || this.transport.name === preferred) return;
    const delay = backoffDelay(this.probeAttempt++, this.opts.probe);
    this.probeTimer = setTimeout(async () => {
      if (!this.synced) return this.scheduleProbe();
      const outcome = await this.tryTransport(preferred, true);
      if (outcome !== "connected" && this.synced) this.scheduleProbe();
    }, delay);
  },

  /** A switch is a reconnect (rejoin with `since`, resend what is not
   * confirmed), so it waits while a request that cannot be resent is on
   * its way: that one would otherwise end as `unconfirmed`. */
  canSwitch() {
    return this.synced && !this.stopped && !this.outbox.some((e) => e.sentOn && !RESENDABLE.has(e.frame.type));
  },

  /** Makes the probe `t` the live transport: the old one is closed (an HTTP
   * session with its close route) and its later frames ignored; the
   * `connected` frame that follows rejoins every room with `since`. */
  switchTo(t) {
    this.dropTransport();
    this.transport = t;
    this.probeAttempt = 0;
    this.setState("reconnecting");
  },

  stopProbe() {
    clearTimeout(this.probeTimer);
    const abort = this.abortProbe;
    this.abortProbe = null;
    abort?.();
  },

  // ---- losing the connection --------------------------------------------

  /** The live transport ended: reconnect (at once after a heartbeat timeout
   * or a server close, else with backoff). */
  onDrop(t, code, reason) {
    if (!t || t !== this.transport) return;
    this.dropTransport();
    this.failures.push(Date.now());
    this.emit("disconnected", { code, reason });
    if (this.stopped) return;
    if (code === 1008) return this.authFailed(reason);
    this.scheduleRetry();
  },

  dropTransport() {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.resyncTimer);
    clearTimeout(this.refreshTimer);
    this.stopProbe();
    if (this.transport) this.transport.close();
    this.transport = null;
    this.session = null;
    this.synced = false;
    for (const e of this.outbox) {
      clearTimeout(e.timer);
      if (e.frame.type === "room:leave" && e.sentOn) {
        // The room is not rejoined: left either way.
        this.settle(e, null, { room: e.frame.room });
      } else if (!RESENDABLE.has(e.frame.type) && e.sentOn) {
        // Nothing tells whether it arrived: refuse rather than guess.
        this.settle(e, new SwitchboardError("unconfirmed", "the connection dropped before the server confirmed it"));
      }
    }
    for (const t of this.typingState.values()) clearTimeout(t.timer);
    this.typingState.clear();
  },

  // ---- heartbeats --------------------------------------------------------

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
  },

  onPong(f) {
    if (!this.pingSent || f.id !== this.pingSent.id) return false;
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.rtts.push(Date.now() - this.pingSent.sent);
    if (this.rtts.length > this.opts.rttSamples) this.rtts.shift();
    this.pingSent = null;
    this.emit("state", this.connectionInfo());
    return true;
  },

  // ---- token refresh -----------------------------------------------------

  /** With a token function, asks it for a new token ahead of `exp` (in
   * seconds) and sends it in an `auth` frame on the open session: no
   * reconnect. A fixed token cannot be refreshed (`setToken` replaces it). */
  scheduleRefresh(exp) {
    clearTimeout(this.refreshTimer);
    if (typeof this.opts.token !== "function" || !exp || !this.session || this.session.guest) return;
    const left = exp * 1000 - Date.now();
    const ahead = Math.min(REFRESH_AHEAD_MS, left / 2);
    this.refreshTimer = setTimeout(() => this.refreshToken(), Math.max(0, left - ahead));
  },

  async refreshToken() {
    const session = this.session;
    let token;
    try {
      token = await this.currentToken();
    } catch {
      if (this.session === session) this.refreshTimer = setTimeout(() => this.refreshToken(), REFRESH_RETRY_MS);
      return;
    }
    if (!session || this.session !== session || typeof token !== "string") return;
    // auth:ok schedules the next refresh; a refusal closes the session
    // (1008), and the reconnect asks the function again.
    this.request({ type: "auth", token }).catch(() => {});
  },
};

