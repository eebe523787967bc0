// Shared state for the Switchboard SDK: `client.sharedState(room)` returns a
// StateHandle, a copy of the room's versioned key/value map that the client
// (switchboard.js) keeps current from `state:snapshot` and `state:update`
// frames. Every (re)join of the room asks for a fresh snapshot, so nothing
// is missed across reconnects. docs/CLIENT.md describes it, docs/PROTOCOL.md
// ("Shared state") the frames.

import { SwitchboardError } from "./switchboard-connection.js";
import { EventMethods } from "./switchboard-events.js";

/** How many times `set(key, fn)` re-applies `fn` after conflicts. */
const MAX_RETRIES = 20;

export class StateHandle {
  constructor(client, room) {
    this.client = client;
    this.room = room;
    this.entries = new Map(); // key → { value, version, by, ts, expires? }
    this.rev = 0;
    this.loaded = false;
    this.handlers = new Map();
    this.waiters = [];
  }

  // ---- API ----------------------------------------------------------------

  /** The key's current value (undefined when absent). */
  get(key) {
    return this.entries.get(key)?.value;
  }

  /** The key's entry `{value, version, by, ts, expires?}`, or undefined. */
  entry(key) {
    return this.entries.get(key);
  }

  /** Every key's value, as a plain object. */
  toObject() {
    return Object.fromEntries([...this.entries].map(([k, e]) => [k, e.value]));
  }

  /** Resolves once the first snapshot arrived (after the room's join). */
  ready() {
    if (this.loaded) return Promise.resolve(this);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Asks the server for the state again (all keys, or `keys`). */
  async fetch(keys) {
    const frame = { type: "state:get", room: this.room };
    if (keys) frame.keys = keys;
    const f = await this.client.request(frame);
    this.onSnapshot(f, !keys);
    return this;
  }

  /**
   * Sets `key`. `update` is a value, or a function of the current value
   * (undefined when absent) returning the new one: on a version conflict
   * it is applied again to the value the server reported, and the write is
   * retried (a `conflict` event each time). Resolves `{value, version}`.
   * `ttlMs`: the key is deleted that long after the write. `version`: the
   * version the first attempt is based on (default: this copy's), e.g. the
   * one an edit started from, so a change made meanwhile is a conflict.
   */
  async set(key, update, { ttlMs, version } = {}) {
    for (let attempt = 0; ; attempt++) {
      const cur = this.entries.get(key);
      const value = typeof update === "function" ? update(cur?.value) : update;
      const base = attempt === 0 && version != null ? version : (cur?.version ?? 0);
      const frame = { type: "state:set", room: this.room, key, value, version: base };
      if (ttlMs != null) frame.ttl_ms = ttlMs;
      try {
        const { version } = await this.client.request(frame);
        return { value, version };
      } catch (e) {
        if (e.code !== "version_conflict" || attempt >= MAX_RETRIES) throw e;
        this.learn(key, e);
        this.emit("conflict", { key, version: e.version, value: e.value, attempt: attempt + 1 });
        if (typeof update !== "function") throw e;
      }
    }
  }

  /** Deletes `key` whatever its version (a conflict re-reads it and
   * tries again). Resolves `{version}` (of the delete), or `null` when
   * the key is absent. */
  async delete(key) {
    for (let attempt = 0; attempt <= MAX_RETRIES; attempt++) {
      const cur = this.entries.get(key);
      if (!cur) return null;
      try {
        return await this.client.request({ type: "state:delete", room: this.room, key, version: cur.version });
      } catch (e) {
        if (e.code !== "version_conflict") throw e;
        this.learn(key, e);
        this.emit("conflict", { key, version: e.version, value: e.value, attempt: attempt + 1 });
      }
    }
    throw new SwitchboardError("version_conflict", `${key} kept changing`);
  }

  // ---- from the client ------------------------------------------------------

  /** Events (`on`/`off`, switchboard-events.js): `change` ({key, value,
   * version, by, deleted, expired}), `snapshot` (the handle), `conflict`
   * ({key, version, value, attempt}). */
  emit(type, payload) {
    this.dispatch("state ", type, payload);
  }

  /** A conflict's report of the key's current value and version. */
  learn(key, e) {
    const cur = this.entries.get(key);
    if (e.version === 0) this.entries.delete(key);
    else if (!cur || cur.version < e.version) this.entries.set(key, { ...cur, value: e.value, version: e.version });
  }

  /** `state:snapshot`: replaces the copy (`whole`: every key was sent). */
  onSnapshot(f, whole = true) {
    if (whole) this.entries = new Map();
    for (const e of f.entries || []) {
      const { key, ...rest } = e;
      this.entries.set(key, rest);
    }
    // A partial read says nothing of the other keys' changes in flight.
    if (whole) this.rev = f.rev || 0;
    this.loaded = true;
    for (const w of this.waiters.splice(0)) w(this);
    this.emit("snapshot", this);
  }

  /** `state:update`: one key changed (stale ones are dropped). */
  onUpdate(f) {
    if (f.version <= this.rev && this.loaded) return;
    this.rev = Math.max(this.rev, f.version);
    if (f.deleted) this.entries.delete(f.key);
    else {
      const e = { value: f.value, version: f.version, by: f.by, ts: f.ts };
      if (f.expires != null) e.expires = f.expires;
      this.entries.set(f.key, e);
    }
    this.emit("change", { key: f.key, value: f.value, version: f.version, by: f.by, deleted: !!f.deleted, expired: !!f.expired });
  }
}

Object.assign(StateHandle.prototype, EventMethods);
