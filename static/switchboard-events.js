// Event listeners for the SDK's objects (the client, a document, a room's
// state, a room's streams): one bookkeeping, mixed into each class.
// `this.handlers` is a Map of type → Set of functions; a handler that throws
// is reported on the console and the others still run.

export const EventMethods = {
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return this;
  },

  /** Removes `fn`, or every handler of `type` without one. */
  off(type, fn) {
    const set = this.handlers.get(type);
    if (set) fn ? set.delete(fn) : set.clear();
    return this;
  },

  /** Calls every handler of `type` with `args`; `what` names the object in
   * the report of a handler that throws. */
  dispatch(what, type, ...args) {
    for (const fn of [...(this.handlers.get(type) || [])]) {
      try {
        fn(...args);
      } catch (e) {
        console.error(`switchboard: a ${what}"${type}" handler threw`, e);
      }
    }
  },
};
