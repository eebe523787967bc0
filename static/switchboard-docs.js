// Collaborative documents for the Switchboard SDK: `client.openDocument(doc)`
// returns a DocumentHandle, a thin shell around the OTClient of ot.js that
// the client (switchboard.js) feeds with the document's frames and reopens
// after every reconnect. docs/CLIENT.md describes it; docs/OT.md the OT.

import { OTClient, cpLength } from "./ot.js";
import { EventMethods } from "./switchboard-events.js";

/** Error codes that answer a `doc:open` (no `seq`): the document is not open. */
const OPEN_REFUSALS = new Set(["forbidden", "too_many_docs", "invalid_room", "unavailable", "bad_request"]);

export class DocumentHandle {
  /**
   * @param {object} client the Client of switchboard.js
   * @param {string} doc    the document's name (room-name syntax and access rules)
   * @param {object} [o]    { onText(text, change), onCursor(cursor), onError(frame), onState(state), cid }
   */
  constructor(client, doc, { onText, onCursor, onError, onState, cid } = {}) {
    this.client = client;
    this.doc = doc;
    this.closed = false;
    this.handlers = new Map();
    this.remote = new Map(); // cid → { cid, user, name, anchor, head } (code points of this.text)
    this.lastState = null;
    if (onText) this.on("text", onText);
    if (onCursor) this.on("cursor", onCursor);
    if (onError) this.on("error", onError);
    if (onState) this.on("state", onState);
    this.opened = new Promise((resolve, reject) => Object.assign(this, { resolveOpen: resolve, rejectOpen: reject }));
    this.opened.catch(() => {});
    this.ot = new OTClient({
      doc,
      ...(cid ? { cid } : {}),
      send: (f) => this.transmit(f),
      onText: (text, change) => this.onText(text, change),
      onCursor: (f) => this.onCursor(f),
      onError: (f) => this.onError(f),
    });
    this.checkState();
  }

  // ---- API ----------------------------------------------------------------

  /** The text with every local edit applied (acknowledged or not). */
  get text() {
    return this.ot.text;
  }

  /** The server revision the text is based on. */
  get rev() {
    return this.ot.rev;
  }

  /** This editor's id (the same across reconnects). */
  get cid() {
    return this.ot.cid;
  }

  /** `opening`, `synchronized`, `awaitingConfirm`, `awaitingWithBuffer`, or `closed`. */
  get state() {
    return this.closed ? "closed" : this.ot.state;
  }

  /** Resolves with the handle once the first snapshot is in; rejects if the
   * server refuses to open the document (`forbidden`, `too_many_docs`, …). */
  ready() {
    return this.opened;
  }

  /** The editor's whole text is now `newText`: sends the difference (one op,
   * or buffered behind the one waiting for its ack). Returns the op, or null
   * when nothing changed. Throws while the document is opening. */
  edit(newText) {
    this.assertOpen();
    const op = this.ot.edit(newText);
    if (op) this.moveCursors(op);
    this.checkState();
    return op;
  }

  /** A local TextOperation on the current text (already shown by the editor). */
  apply(op) {
    this.assertOpen();
    this.ot.applyLocal(op);
    this.moveCursors(op);
    this.checkState();
    return op;
  }

  /** Shares the local cursor or selection (code point positions). */
  cursor(anchor, head = anchor) {
    if (this.closed || this.ot.state === "opening") return;
    this.ot.cursor(anchor, head);
  }

  /** The other editors' cursors, in code points of `text`. */
  cursors() {
    return [...this.remote.values()].map((c) => ({ ...c }));
  }

  /** Stops editing: `doc:close`, and no more events. */
  close() {
    if (this.closed) return;
    this.ot.close();
    this.shutdown(null);
  }

  // ---- from the client ------------------------------------------------------

  /** Every frame whose `doc` is this document. */
  handleFrame(f) {
    if (this.closed) return;
    this.ot.handleFrame(f);
    this.checkState();
  }

  /** A new session: reopen from our revision (or from scratch if the first
   * snapshot never came) and resend the op waiting for its ack, same seq. */
  reconnected() {
    if (this.closed) return;
    // Cursors of the old session are stale; the reopen sends the current ones.
    this.clearCursors();
    this.ot.reconnected();
    this.checkState();
  }

  /** The client ended for good. */
  shutdown(err) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.ot._retry);
    this.client.forgetDocument(this);
    this.rejectOpen(err || new Error(`${this.doc} was closed`));
    this.checkState();
  }

  // ---- internals ------------------------------------------------------------

  transmit(frame) {
    // Offline (or between sessions): dropped. `reconnected()` reopens the
    // document and resends what is unacknowledged, so nothing is lost.
    if (!this.closed && this.client.session) this.client.transmit([frame]);
  }

  assertOpen() {
    if (this.closed) throw new Error(`${this.doc} is closed`);
    if (this.ot.state === "opening") throw new Error(`${this.doc} is not open yet (wait for ready())`);
  }

  onText(text, change) {
    if (change === null) {
      // A snapshot: the cursors that are there follow it.
      this.clearCursors();
      this.resolveOpen(this);
    } else {
      this.moveCursors(change);
    }
    this.emit("text", text, change);
  }

  onCursor(f) {
    if (f.cid === this.ot.cid) return;
    if (f.anchor == null) {
      const gone = this.remote.get(f.cid);
      if (!gone) return;
      this.remote.delete(f.cid);
      return this.emit("cursor", { ...gone, anchor: null, head: null });
    }
    const c = {
      cid: f.cid,
      user: f.user,
      name: f.name || f.user,
      anchor: this.toLocal(f.anchor, f.rev),
      head: this.toLocal(f.head ?? f.anchor, f.rev),
    };
    this.remote.set(f.cid, c);
    this.emit("cursor", { ...c });
  }

  /** A position in the server's text at `rev`, moved into the local text
   * (which has the unacknowledged local edits on top). */
  toLocal(index, rev) {
    const ot = this.ot;
    const pending = ot._pending;
    const buffer = ot._buffer;
    let i = index;
    if (rev === ot.rev) {
      if (pending) i = pending.op.transformIndex(i);
      if (buffer) i = buffer.transformIndex(i);
    } else if (rev === ot.rev + 1 && pending && buffer) {
      // Made after our pending op was committed, before its ack reached us.
      i = buffer.transformIndex(i);
    }
    return Math.max(0, Math.min(i, cpLength(ot.text)));
  }

  moveCursors(op) {
    for (const c of this.remote.values()) {
      c.anchor = op.transformIndex(c.anchor);
      c.head = op.transformIndex(c.head);
    }
  }

  clearCursors() {
    const gone = [...this.remote.values()];
    this.remote.clear();
    for (const c of gone) this.emit("cursor", { ...c, anchor: null, head: null });
  }

  onError(f) {
    this.emit("error", f);
    if (f.seq == null && this.ot.state === "opening" && OPEN_REFUSALS.has(f.code)) {
      // The server did not open it: this handle is dead.
      this.shutdown(Object.assign(new Error(f.message || f.code), { code: f.code }));
    }
  }

  checkState() {
    const s = this.state;
    if (s === this.lastState) return;
    this.lastState = s;
    this.emit("state", s);
  }

  emit(type, ...args) {
    this.dispatch("document ", type, ...args);
  }
}

Object.assign(DocumentHandle.prototype, EventMethods);
