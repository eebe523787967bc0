// Switchboard collaborative editing: text operations and the OT client.
// An ES module with no dependencies; docs/OT.md describes it.
//
// Ops use the ot.js format: a positive integer retains, a string inserts,
// a negative integer deletes. Lengths count Unicode code points, as the
// server does; JavaScript strings count UTF-16 units, so the helpers below
// convert at the editor's edge (utf16ToCp, cpToUtf16, editToOp, diffToOp).

export const MAX_COUNT = Number.MAX_SAFE_INTEGER;

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** The UTF-16 index `n` code points after UTF-16 index `from` (or the end). */
function advance(str, from, n) {
  let i = from;
  const len = str.length;
  while (n > 0 && i < len) {
    i += isHigh(str.charCodeAt(i)) && i + 1 < len && isLow(str.charCodeAt(i + 1)) ? 2 : 1;
    n--;
  }
  return i;
}

/** Length of `str` in code points. */
export function cpLength(str) {
  let n = 0;
  for (let i = 0; i < str.length; i++) {
    if (!(isLow(str.charCodeAt(i)) && i > 0 && isHigh(str.charCodeAt(i - 1)))) n++;
  }
  return n;
}

/** The code point index of UTF-16 index `i16` (inside a pair: the pair's start). */
export function utf16ToCp(str, i16) {
  let at = Math.max(0, Math.min(i16, str.length));
  if (at > 0 && at < str.length && isLow(str.charCodeAt(at)) && isHigh(str.charCodeAt(at - 1))) at--;
  return cpLength(str.slice(0, at));
}

/** The UTF-16 index of code point index `cp`. */
export function cpToUtf16(str, cp) {
  return advance(str, 0, cp);
}

function wellFormed(s) {
  if (typeof s.isWellFormed === "function") return s.isWellFormed();
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isHigh(c)) {
      if (!(i + 1 < s.length && isLow(s.charCodeAt(i + 1)))) return false;
      i++;
    } else if (isLow(c)) return false;
  }
  return true;
}

/** A normalized text operation (adjacent parts merged, inserts before deletes). */
export class TextOperation {
  constructor() {
    this.ops = [];
    this.baseLength = 0;
    this.targetLength = 0;
  }

  retain(n) {
    if (n === 0) return this;
    this.baseLength += n;
    this.targetLength += n;
    const last = this.ops.length - 1;
    if (last >= 0 && isRetain(this.ops[last])) this.ops[last] += n;
    else this.ops.push(n);
    return this;
  }

  insert(s) {
    if (s === "") return this;
    this.targetLength += cpLength(s);
    const ops = this.ops;
    const last = ops.length - 1;
    if (last >= 0 && isInsert(ops[last])) ops[last] += s;
    else if (last >= 0 && isDelete(ops[last])) {
      if (last >= 1 && isInsert(ops[last - 1])) ops[last - 1] += s;
      else ops.splice(last, 0, s);
    } else ops.push(s);
    return this;
  }

  delete(n) {
    if (n === 0) return this;
    this.baseLength += n;
    const last = this.ops.length - 1;
    if (last >= 0 && isDelete(this.ops[last])) this.ops[last] -= n;
    else this.ops.push(-n);
    return this;
  }

  isNoop() {
    return this.ops.every(isRetain);
  }

  toJSON() {
    return this.ops.slice();
  }

  /** Parses ot.js JSON (an array, or its text), refusing what the server refuses. */
  static fromJSON(json) {
    const parts = typeof json === "string" ? JSON.parse(json) : json;
    if (!Array.isArray(parts)) throw new Error("invalid op: not an array");
    const op = new TextOperation();
    for (const p of parts) {
      if (typeof p === "number") {
        if (!Number.isSafeInteger(p) || p === 0) throw new Error(`invalid op: ${p} is not a retain or delete`);
        const base = op.baseLength + Math.abs(p);
        if (base > MAX_COUNT || (p > 0 && op.targetLength + p > MAX_COUNT)) throw new Error("invalid op: too long");
        if (p > 0) op.retain(p);
        else op.delete(-p);
      } else if (typeof p === "string") {
        if (p === "" || !wellFormed(p)) throw new Error("invalid op: bad insert");
        if (op.targetLength + cpLength(p) > MAX_COUNT) throw new Error("invalid op: too long");
        op.insert(p);
      } else throw new Error(`invalid op: ${JSON.stringify(p)}`);
    }
    return op;
  }

  apply(text) {
    if (cpLength(text) !== this.baseLength) {
      throw new Error(`the op applies to ${this.baseLength} characters, the text has ${cpLength(text)}`);
    }
    const out = [];
    let at = 0;
    for (const p of this.ops) {
      if (isRetain(p)) {
        const end = advance(text, at, p);
        out.push(text.slice(at, end));
        at = end;
      } else if (isInsert(p)) out.push(p);
      else at = advance(text, at, -p);
    }
    return out.join("");
  }

  /** The op that has the effect of `this` then `next`. */
  compose(next) {
    if (this.targetLength !== next.baseLength) throw new Error("cannot compose: lengths do not line up");
    const out = new TextOperation();
    const a = new Walker(this.ops);
    const b = new Walker(next.ops);
    for (;;) {
      const x = a.peek();
      const y = b.peek();
      if (x === null && y === null) return out;
      if (x !== null && x.kind === "delete") {
        out.delete(x.len);
        a.take(x.len);
        continue;
      }
      if (y !== null && y.kind === "insert") {
        out.insert(y.text);
        b.take(y.len);
        continue;
      }
      if (x === null || y === null) throw new Error("cannot compose: lengths do not line up");
      const m = Math.min(x.len, y.len);
      if (x.kind === "retain" && y.kind === "retain") out.retain(m);
      else if (x.kind === "insert" && y.kind === "retain") out.insert(x.text.slice(0, advance(x.text, 0, m)));
      else if (x.kind === "retain" && y.kind === "delete") out.delete(m);
      a.take(m);
      b.take(m);
    }
  }

  /** `[a', b']` with `b'` after `a` equal to `a'` after `b`; `a` wins insert ties. */
  static transform(a, b) {
    if (a.baseLength !== b.baseLength) throw new Error("cannot transform: different base lengths");
    const a2 = new TextOperation();
    const b2 = new TextOperation();
    const x = new Walker(a.ops);
    const y = new Walker(b.ops);
    for (;;) {
      const p = x.peek();
      const q = y.peek();
      if (p === null && q === null) return [a2, b2];
      if (p !== null && p.kind === "insert") {
        a2.insert(p.text);
        b2.retain(p.len);
        x.take(p.len);
        continue;
      }
      if (q !== null && q.kind === "insert") {
        a2.retain(q.len);
        b2.insert(q.text);
        y.take(q.len);
        continue;
      }
      if (p === null || q === null) throw new Error("cannot transform: lengths do not line up");
      const m = Math.min(p.len, q.len);
      if (p.kind === "retain" && q.kind === "retain") {
        a2.retain(m);
        b2.retain(m);
      } else if (p.kind === "delete" && q.kind === "retain") a2.delete(m);
      else if (p.kind === "retain" && q.kind === "delete") b2.delete(m);
      x.take(m);
      y.take(m);
    }
  }

  /** Where a cursor at code point `index` stands after the op (inserts at it push it right). */
  transformIndex(index) {
    let left = index;
    let moved = index;
    for (const p of this.ops) {
      if (isRetain(p)) left -= p;
      else if (isInsert(p)) moved += cpLength(p);
      else {
        moved -= Math.max(0, Math.min(left, -p));
        left += p;
      }
      if (left < 0) break;
    }
    return Math.max(0, Math.min(moved, this.targetLength));
  }
}

const isRetain = (p) => typeof p === "number" && p > 0;
const isInsert = (p) => typeof p === "string";
const isDelete = (p) => typeof p === "number" && p < 0;

/** Walks an op's parts, consuming them piecewise (lengths in code points). */
class Walker {
  constructor(ops) {
    this.ops = ops;
    this.i = 0;
    this.cur = null;
    this.load();
  }
  load() {
    if (this.i >= this.ops.length) {
      this.cur = null;
      return;
    }
    const p = this.ops[this.i++];
    if (isRetain(p)) this.cur = { kind: "retain", len: p };
    else if (isDelete(p)) this.cur = { kind: "delete", len: -p };
    else this.cur = { kind: "insert", len: cpLength(p), text: p };
  }
  peek() {
    return this.cur;
  }
  take(n) {
    const c = this.cur;
    if (c === null) return;
    if (n >= c.len) return this.load();
    if (c.kind === "insert") this.cur = { kind: "insert", len: c.len - n, text: c.text.slice(advance(c.text, 0, n)) };
    else this.cur = { kind: c.kind, len: c.len - n };
  }
}

/** The op that replaces UTF-16 range [start, end) of `oldText` by `inserted` (a textarea edit). */
export function editToOp(oldText, start, end, inserted) {
  const a = utf16ToCp(oldText, start);
  const b = Math.max(a, utf16ToCp(oldText, end));
  const len = cpLength(oldText);
  return new TextOperation().retain(a).insert(inserted).delete(b - a).retain(len - b);
}

/** The op that turns `oldText` into `newText`: one replaced range, between the common prefix and suffix. */
export function diffToOp(oldText, newText) {
  let pre = 0;
  const max = Math.min(oldText.length, newText.length);
  while (pre < max && oldText.charCodeAt(pre) === newText.charCodeAt(pre)) pre++;
  // Never split a surrogate pair.
  if (pre > 0 && isHigh(oldText.charCodeAt(pre - 1))) pre--;
  let suf = 0;
  while (
    suf < max - pre &&
    oldText.charCodeAt(oldText.length - 1 - suf) === newText.charCodeAt(newText.length - 1 - suf)
  ) suf++;
  if (suf > 0 && isLow(oldText.charCodeAt(oldText.length - suf))) suf--;
  return editToOp(oldText, pre, oldText.length - suf, newText.slice(pre, newText.length - suf));
}

function randomCid() {
  const bytes = new Uint8Array(8);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return "c" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One client of one document, with the three states of ot.js:
 * "synchronized", "awaitingConfirm" (one op sent, not acknowledged) and
 * "awaitingWithBuffer" (plus local edits not sent yet). Also "opening"
 * while it waits for a snapshot.
 *
 * new OTClient({doc, send(frame), onText(text, change), onCursor?, onError?, cid?})
 * sends `doc:open` at once; pass every `doc:*` frame (and `error` frames)
 * to handleFrame.
 */
export class OTClient {
  constructor({ doc, send, onText = () => {}, onCursor = () => {}, onError = () => {}, cid = randomCid() }) {
    this.doc = doc;
    this.cid = cid;
    this.text = "";
    this.rev = 0;
    this._send = send;
    this._onText = onText;
    this._onCursor = onCursor;
    this._onError = onError;
    this._seq = 0;
    this._pending = null; // {seq, op}: sent, not acknowledged
    this._buffer = null; // local edits since
    this._opening = true;
    this._opened = false;
    this._retry = null;
    this._send({ type: "doc:open", doc });
  }

  get state() {
    if (this._opening) return "opening";
    if (this._pending === null) return "synchronized";
    return this._buffer === null ? "awaitingConfirm" : "awaitingWithBuffer";
  }

  /** A local edit (already shown in the editor). Returns the op. */
  applyLocal(op) {
    if (this._opening) throw new Error("the document is not open yet");
    this.text = op.apply(this.text);
    if (this._pending === null) this._sendOp(op);
    else this._buffer = this._buffer === null ? op : this._buffer.compose(op);
    return op;
  }

  /** The editor's whole text changed to `newText`: sends the difference. */
  edit(newText) {
    const op = diffToOp(this.text, newText);
    return op.isNoop() ? null : this.applyLocal(op);
  }

  /** Shares the local cursor or selection (code point positions). */
  cursor(anchor, head = anchor) {
    if (!this._opening) this._send({ type: "doc:cursor", doc: this.doc, cid: this.cid, rev: this.rev, anchor, head });
  }

  close() {
    this._send({ type: "doc:close", doc: this.doc });
  }

  /** After a new connection: reopen from our revision and resend the pending op, same seq. */
  reconnected() {
    if (this._opening || !this._opened) {
      this._resync();
      return;
    }
    this._send({ type: "doc:open", doc: this.doc, rev: this.rev });
    this._resend();
  }

  /** Feed every frame for this document; returns false for frames of other documents. */
  handleFrame(f) {
    if (f.doc !== this.doc) return false;
    switch (f.type) {
      case "doc:snapshot":
        // Replaces everything, unacknowledged local edits included.
        this.text = f.text;
        this.rev = f.rev;
        this._pending = this._buffer = null;
        this._opening = false;
        this._opened = true;
        this._onText(this.text, null);
        break;
      case "doc:op":
        if (!this._opening) this._remote(f);
        break;
      case "doc:ack":
        if (!this._opening && this._pending !== null && f.seq === this._pending.seq) this._acked(f.rev);
        break;
      case "doc:cursor":
        this._onCursor(f);
        break;
      case "error":
        this._error(f);
        break;
    }
    return true;
  }

  _sendOp(op) {
    this._pending = { seq: ++this._seq, op };
    this._send({ type: "doc:op", doc: this.doc, rev: this.rev, cid: this.cid, seq: this._pending.seq, op: op.toJSON() });
  }

  _resend() {
    const p = this._pending;
    if (p !== null) this._send({ type: "doc:op", doc: this.doc, rev: this.rev, cid: this.cid, seq: p.seq, op: p.op.toJSON() });
  }

  _resync() {
    this._opening = true;
    this._send({ type: "doc:open", doc: this.doc });
  }

  _acked(rev) {
    this.rev = rev;
    this._pending = null;
    const b = this._buffer;
    this._buffer = null;
    if (b !== null) this._sendOp(b);
  }

  _remote(f) {
    if (f.rev <= this.rev) return;
    if (f.rev !== this.rev + 1) return this._resync();
    // Our own op, seen in a catch-up after a reconnect: it is the ack.
    if (f.cid === this.cid && this._pending !== null && f.seq === this._pending.seq) return this._acked(f.rev);
    let remote = TextOperation.fromJSON(f.op);
    if (this._pending !== null) {
      const [p2, r2] = TextOperation.transform(this._pending.op, remote);
      this._pending.op = p2;
      remote = r2;
    }
    if (this._buffer !== null) {
      const [b2, r2] = TextOperation.transform(this._buffer, remote);
      this._buffer = b2;
      remote = r2;
    }
    this.text = remote.apply(this.text);
    this.rev = f.rev;
    this._onText(this.text, remote);
  }

  _error(f) {
    this._onError(f);
    if (this._pending === null || f.seq !== this._pending.seq) return;
    if (f.code === "unavailable" || f.code === "rate_limited") {
      // Not applied: the same op, same seq, once the server can take it.
      clearTimeout(this._retry);
      this._retry = setTimeout(() => this._resend(), f.retry_after_ms ?? 1000);
    } else this._resync();
  }
}
