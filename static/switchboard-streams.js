// AI response streams for the Switchboard SDK (docs/PROTOCOL.md, "AI
// response streams"; docs/CLIENT.md). Two sides:
//
//   const view = client.streams("chat");          // a room's streams as they grow
//   view.on("update", (s) => render(s.stream, s.text, s.done));
//   view.cancel("r-42");                          // asks the producer to stop
//
//   const out = client.startStream("chat", { meta: { model: "words" } });
//   out.onCancel(() => stop = true);
//   await out.write("Hello, "); await out.end("world.");
//
// A StreamsView is fed by the client's frame events: `stream:start` (new, or
// the catch-up of a live stream after a join: its text so far, `next`),
// `stream:data` (checked by `index`: a chunk seen before is dropped, a gap
// would be reported), `stream:end` / `stream:error` / `stream:cancelled`,
// and the stored `message:receive` whose `data.stream` names it.

import { SwitchboardError } from "./switchboard-connection.js";
import { EventMethods } from "./switchboard-events.js";

let counter = 0;

/** A fresh stream id: 1-64 characters from A-Z a-z 0-9 _ - . : @. */
export function streamId() {
  counter += 1;
  const rand = Math.random().toString(36).slice(2, 10);
  return `st-${Date.now().toString(36)}-${counter}-${rand}`;
}

export class StreamsView {
  constructor(client, room) {
    this.client = client;
    this.room = room;
    /** stream id → { stream, room, from, meta, text, next, cancelled, done, error, seq } */
    this.streams = new Map();
    this.handlers = new Map();
    this.listeners = {
      "room:joined": (f) => f.room === room && this.onJoined(),
      "stream:start": (f) => f.room === room && this.onStart(f),
      "stream:data": (f) => f.room === room && this.onData(f),
      "stream:end": (f) => f.room === room && this.onEnd(f),
      "stream:error": (f) => f.room === room && this.onError(f),
      "stream:cancelled": (f) => f.room === room && this.onCancelled(f),
      "message:receive": (f) => f.room === room && f.data && typeof f.data.stream === "string" && this.onMessage(f),
    };
    for (const [t, fn] of Object.entries(this.listeners)) client.on(t, fn);
  }

  /** The stream's state, or undefined. */
  get(stream) {
    return this.streams.get(stream);
  }

  /** Streams still growing. */
  live() {
    return [...this.streams.values()].filter((s) => !s.done && !s.error);
  }

  /** Asks the stream's producer to stop (any member may); resolves on the ack. */
  cancel(stream) {
    return this.client.request({ type: "stream:cancel", room: this.room, stream });
  }

  /** Stops listening. */
  close() {
    for (const [t, fn] of Object.entries(this.listeners)) this.client.off(t, fn);
    this.streams.clear();
  }

  emit(type, payload) {
    this.dispatch("streams ", type, payload);
  }

  // ---- frames ---------------------------------------------------------------

  /** A (re)join: the live streams are sent again (catch-up) right after;
   * one not sent again ended meanwhile and its message comes with the replay. */
  onJoined() {
    for (const [k, s] of this.streams) if (!s.done && !s.error) this.streams.delete(k);
  }

  onStart(f) {
    const s = {
      stream: f.stream,
      room: f.room,
      from: f.from,
      meta: f.meta,
      ts: f.ts,
      text: f.text || "",
      next: f.next || 0,
      cancelled: !!f.cancelled,
      done: false,
      error: null,
      seq: null,
    };
    this.streams.set(f.stream, s);
    this.emit("start", s);
    this.emit("update", s);
  }

  onData(f) {
    const s = this.streams.get(f.stream);
    if (!s || f.index < s.next) return; // not ours yet, or seen (never twice)
    if (f.index > s.next) {
      this.emit("gap", { stream: f.stream, expected: s.next, got: f.index });
      return;
    }
    s.text += f.chunk;
    s.next += 1;
    this.emit("data", { stream: s.stream, index: f.index, chunk: f.chunk, text: s.text });
    this.emit("update", s);
  }

  onEnd(f) {
    const s = this.streams.get(f.stream);
    if (!s) return;
    s.done = true;
    this.emit("end", s);
    this.emit("update", s);
  }

  onError(f) {
    const s = this.streams.get(f.stream);
    if (!s) return;
    s.error = f.reason;
    this.emit("error", s);
    this.emit("update", s);
  }

  onCancelled(f) {
    const s = this.streams.get(f.stream);
    if (!s) return;
    s.cancelled = true;
    this.emit("cancelled", { ...s, by: f.by });
    this.emit("update", s);
  }

  /** The stored message of a finished stream: its text is the final word. */
  onMessage(m) {
    const id = m.data.stream;
    const s = this.streams.get(id) || { stream: id, room: m.room, from: m.from, meta: m.data.meta, ts: m.ts, next: 0, cancelled: false, error: null };
    Object.assign(s, { text: m.data.text, done: true, seq: m.seq });
    this.streams.set(id, s);
    this.emit("message", s);
    this.emit("update", s);
  }
}

/** The producing side of one stream. */
Object.assign(StreamsView.prototype, EventMethods);

export class StreamProducer {
  constructor(client, room, { stream, meta, to } = {}) {
    this.client = client;
    this.stream = stream || streamId();
    this.room = to != null ? `user:${to}` : room;
    this.cancelled = false;
    this.finished = false;
    this.cancelHandlers = new Set();
    this.onFrame = (f) => {
      if (f.room !== this.room || f.stream !== this.stream) return;
      if (f.type === "stream:cancelled") {
        this.cancelled = true;
        for (const fn of [...this.cancelHandlers]) fn(f);
      } else if (f.type === "stream:error") {
        this.finish();
      }
    };
    client.on("stream:cancelled", this.onFrame);
    client.on("stream:error", this.onFrame);
    const frame = { type: "stream:start", stream: this.stream };
    if (to != null) frame.to = to;
    else frame.room = room;
    if (meta !== undefined) frame.meta = meta;
    this.started = client.request(frame);
  }

  /** Calls `fn({by})` when a member asks to stop (at once if one did). */
  onCancel(fn) {
    this.cancelHandlers.add(fn);
    return this;
  }

  /** Sends one chunk (a non-empty string); resolves on the server's ack. */
  async write(chunk) {
    if (this.finished) throw new SwitchboardError("not_found", "the stream has ended");
    if (!chunk) return {};
    await this.started;
    return this.client.request({ type: "stream:data", room: this.room, stream: this.stream, chunk });
  }

  /** Ends the stream (with a last chunk); resolves `{seq}` of the stored message. */
  async end(last) {
    await this.started;
    const frame = { type: "stream:end", room: this.room, stream: this.stream };
    if (last) frame.final = last;
    this.finish();
    return this.client.request(frame);
  }

  /** Ends the stream without storing it. */
  async fail(reason) {
    await this.started;
    this.finish();
    return this.client.request({ type: "stream:error", room: this.room, stream: this.stream, reason: reason || "failed" });
  }

  finish() {
    this.finished = true;
    this.client.off("stream:cancelled", this.onFrame);
    this.client.off("stream:error", this.onFrame);
  }
}
