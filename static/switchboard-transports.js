// The three carriages of the Switchboard protocol: WebSocket, server-sent
// events and long-polling. Each carries the same JSON frames (see
// docs/PROTOCOL.md); the client in switchboard.js does not care which.
//
// A transport is single-use: `open()`, then `onframe(frame)` for every server
// frame and `onclose(code, reason)` exactly once, after which it is dead.
// `send(frames)` keeps order; `close()` ends it without calling `onclose`.

/** Server frame types an SSE stream names in `event:`. EventSource only
 * delivers named events to listeners of that name, so the SSE transport
 * listens to these and to every type the application registers with `on()`. */
export const SERVER_FRAME_TYPES = [
  "connected", "auth:ok", "room:joined", "room:left", "message:receive", "ack",
  "direct:receive", "room:member_joined", "room:member_left", "typing:update",
  "presence:update", "broadcast", "error", "pong", "mqtt:message",
  "mqtt:subscribed", "mqtt:unsubscribed", "doc:snapshot", "doc:op", "doc:ack",
  "doc:cursor", "notification:new", "notification:count", "notification:page", "history:page",
  "direct:offline", "health:update", "message:flow", "message", "state:snapshot", "state:update",
  "room:session_joined", "room:session_left", "signal", "dropped",
  "rpc:call", "rpc:result", "room:watching", "room:unwatched",
  "stream:start", "stream:data", "stream:end", "stream:error", "stream:cancelled",
];

function parse(text) {
  try {
    const f = JSON.parse(text);
    return f && typeof f === "object" && typeof f.type === "string" ? f : null;
  } catch {
    return null;
  }
}

/** How long a dropped SSE stream may take to resume by itself (the server
 * asks for a retry after 1 s). */
const RESUME_GRACE_MS = 3000;

class Transport {
  /**
   * @param {object} o
   * @param {string} o.base  http(s)://host:port
   * @param {string} o.query the credentials, `token=…` or `name=…`, for
   *   the one carriage that cannot send them otherwise (EventSource)
   * @param {string} [o.token] sent in a header or an `auth` frame
   * @param {object} o.deps  { WebSocket, EventSource, fetch }
   */
  constructor(o) {
    this.o = o;
    this.onframe = () => {};
    this.onclose = () => {};
    this.dead = false;
  }

  frame(text) {
    const f = parse(text);
    if (f) this.onframe(f);
  }

  /** Reports the end once; later events of a dead transport are ignored. */
  end(code, reason) {
    if (this.dead) return;
    this.dead = true;
    this.shutdown();
    this.onclose(code, reason);
  }

  close() {
    if (this.dead) return;
    this.dead = true;
    this.shutdown(true);
  }
}

export class WebSocketTransport extends Transport {
  get name() {
    return "websocket";
  }

  /** With a token: no credentials in the URL (they would be in access
   * logs); the first frame is `auth`, and a refusal is close 1008. */
  open() {
    const WS = this.o.deps.WebSocket;
    const token = this.o.token;
    const url = this.o.base.replace(/^http/, "ws") + "/ws" + (token ? "" : "?" + this.o.query);
    try {
      if (typeof WS !== "function") throw new Error("WebSocket is not available");
      this.ws = new WS(url);
    } catch (e) {
      queueMicrotask(() => this.end(1006, String(e && e.message || e)));
      return;
    }
    if (token) this.ws.onopen = () => this.ws.send(JSON.stringify({ type: "auth", token }));
    this.ws.onmessage = (e) => this.frame(e.data);
    this.ws.onclose = (e) => this.end(e.code || 1006, e.reason || "connection closed");
    this.ws.onerror = () => {}; // a close event follows
  }

  send(frames) {
    if (this.dead || !this.ws || this.ws.readyState !== 1) return false;
    for (const f of frames) this.ws.send(JSON.stringify(f));
    return true;
  }

  shutdown() {
    if (!this.ws) return;
    this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
    try {
      this.ws.close(1000);
    } catch {
      /* already closed */
    }
  }
}

/** What SSE and long-polling share: a session key, and sends as ordered
 * `POST …/send?key=` batches, one at a time. */
class HttpTransport extends Transport {
  constructor(o) {
    super(o);
    this.key = null;
    this.outq = [];
    this.posting = false;
  }

  frame(text) {
    const f = parse(text);
    if (!f) return;
    if (f.type === "connected" && f.key) {
      // A new session (first, or after the stream itself reconnected).
      this.key = f.key;
      this.cursor = 0;
    }
    this.onframe(f);
  }

  fetch(path, init = {}) {
    return this.o.deps.fetch(this.o.base + path, init);
  }

  send(frames) {
    if (this.dead || !this.key) return false;
    this.outq.push(...frames);
    this.pump();
    return true;
  }

  async pump() {
    if (this.posting) return;
    this.posting = true;
    try {
      while (this.outq.length && !this.dead) {
        const batch = this.outq.splice(0);
        let r;
        try {
          r = await this.fetch(this.sendPath(), {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(batch),
          });
        } catch {
          // Unknown whether it arrived: the client resolves that after reconnecting.
          return this.end(1006, "send failed");
        }
        if (r.status === 404) return this.end(1006, "session expired");
        if (!r.ok) return this.end(1006, `send failed: HTTP ${r.status}`);
      }
    } finally {
      this.posting = false;
    }
  }

  shutdown(byClient) {
    if (byClient && this.key) {
      this.fetch(`/${this.name === "sse" ? "sse" : "poll"}/close?key=${this.key}`, {
        method: "POST",
      }).catch(() => {});
    }
  }
}

export class SseTransport extends HttpTransport {
  get name() {
    return "sse";
  }

  constructor(o) {
    super(o);
    this.listening = new Set();
    this.cursor = 0;
  }

  sendPath() {
    return `/sse/send?key=${this.key}&ack=${this.cursor}`;
  }

  open() {
    const ES = this.o.deps.EventSource;
    try {
      if (typeof ES !== "function") throw new Error("EventSource is not available");
      this.es = new ES(this.o.base + "/sse?" + this.o.query);
    } catch (e) {
      queueMicrotask(() => this.end(1006, String(e && e.message || e)));
      return;
    }
    for (const t of SERVER_FRAME_TYPES) this.listen(t);
    for (const t of this.o.types || []) this.listen(t);
    this.es.addEventListener("close", (e) => {
      const f = parse(e.data) || {};
      this.end(f.code || 1006, f.reason || "stream closed");
    });
    // On a dropped stream EventSource reconnects by itself with
    // Last-Event-ID, which resumes the same session without loss (or, if it
    // expired, starts a new one: its `connected` frame says so). If it is
    // refused (CLOSED), or not back within RESUME_GRACE_MS, this transport
    // is dead and the client reconnects (and rejoins with `since`).
    this.es.onerror = () => {
      if (this.es.readyState === 2) return this.end(1006, "event stream failed");
      this.grace ||= setTimeout(() => this.end(1006, "event stream lost"), RESUME_GRACE_MS);
    };
    this.es.onopen = () => {
      clearTimeout(this.grace);
      this.grace = null;
    };
  }

  /** Delivers events named `type` (EventSource needs one listener per name). */
  listen(type) {
    if (!this.es || this.listening.has(type) || type === "close" || type === "*") return;
    this.listening.add(type);
    this.es.addEventListener(type, (e) => {
      const at = String(e.lastEventId || "").lastIndexOf(":");
      if (at > 0) this.cursor = Number(e.lastEventId.slice(at + 1)) || this.cursor;
      this.frame(e.data);
    });
  }

  shutdown(byClient) {
    clearTimeout(this.grace);
    if (this.es) this.es.close();
    super.shutdown(byClient);
  }
}

export class PollingTransport extends HttpTransport {
  get name() {
    return "polling";
  }

  sendPath() {
    return `/poll/send?key=${this.key}`;
  }

  async open() {
    this.abort = new AbortController();
    const headers = this.o.token ? { Authorization: `Bearer ${this.o.token}` } : {};
    const query = this.o.token ? "" : this.o.query;
    let r;
    try {
      if (typeof this.o.deps.fetch !== "function") throw new Error("fetch is not available");
      r = await this.fetch(`/poll/open?${query}`, { method: "POST", headers, signal: this.abort.signal });
    } catch (e) {
      return this.end(1006, String(e && e.message || e));
    }
    if (r.status === 401) return this.end(1008, "unauthorized");
    if (!r.ok) return this.end(1006, `HTTP ${r.status}`);
    const opened = await r.json().catch(() => ({}));
    this.key = opened.key;
    // Given up on (timed out) while it opened: end the session now, not
    // when the server's session timeout would.
    if (this.dead) return HttpTransport.prototype.shutdown.call(this, true);
    this.loop(0);
  }

  /** Polls until the session ends. A failed poll is retried with the same
   * cursor (nothing is lost: the server keeps unacknowledged frames) a few
   * times, well within the server's session timeout. */
  async loop(cursor) {
    let failures = 0;
    while (!this.dead) {
      let body;
      try {
        const r = await this.fetch(`/poll?key=${this.key}&cursor=${cursor}`, { signal: this.abort.signal });
        if (r.status === 404) return this.end(1006, "session expired");
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        body = await r.json();
        failures = 0;
      } catch (e) {
        if (this.dead) return;
        if (++failures > 3) return this.end(1006, "polling failed");
        await new Promise((ok) => setTimeout(ok, 250 * 2 ** failures));
        continue;
      }
      if (this.dead) return;
      cursor = body.cursor;
      for (const f of body.frames || []) {
        if (this.dead) return;
        if (f && typeof f.type === "string") {
          if (f.type === "connected" && f.key) this.key = f.key;
          this.onframe(f);
        }
      }
      if (body.closed) return this.end(body.closed.code, body.closed.reason);
    }
  }

  shutdown(byClient) {
    super.shutdown(byClient);
    if (this.abort) this.abort.abort();
  }
}

export const TRANSPORTS = {
  websocket: WebSocketTransport,
  sse: SseTransport,
  polling: PollingTransport,
};
