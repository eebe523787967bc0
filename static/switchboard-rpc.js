// Tool calls (docs/PROTOCOL.md, "Tool calls"): `call()` asks another
// session (or a user's session) to run `method`; `onCall()` answers the
// calls this session is given. Mixed into the Client by switchboard.js.

import { SwitchboardError } from "./switchboard-connection.js";

/** How long past a call's own timeout the client waits for the server's
 * answer (which is `rpc_timeout` at the latest). */
const CALL_GRACE_MS = 5000;

export const RpcMethods = {
  /** Calls `method` with `params` on `to` (a session id, or a user id: one
   * of their sessions). Resolves with the target's `result`; rejects with a
   * SwitchboardError: the target's own `error.code`, or the server's
   * (`rpc_timeout`, `rpc_disconnected`, `not_found`, `user_offline`,
   * `forbidden`, `too_many_calls`, …), or `unconfirmed` when the connection
   * dropped meanwhile (a call is never sent twice). */
  call(to, method, params = null, { timeoutMs } = {}) {
    const frame = { type: "rpc:call", to, method, params };
    if (timeoutMs != null) frame.timeout_ms = timeoutMs;
    const wait = (timeoutMs ?? this.opts.ackTimeout) + CALL_GRACE_MS;
    return this.request(frame, { wait });
  },

  /** Answers calls of `method` with `handler(params, {from, session,
   * method})`: its value (or the value its promise resolves to) is the
   * result; a throw or rejection is the error (`err.code` when it is a
   * string of `A-Z a-z 0-9 _ . : -`, else `handler_error`). Calls of a
   * method with no handler are answered `unknown_method`. Returns a
   * function that removes the handler. */
  onCall(method, handler) {
    if (!this.callHandlers) this.callHandlers = new Map();
    this.callHandlers.set(method, handler);
    return () => {
      if (this.callHandlers.get(method) === handler) this.callHandlers.delete(method);
    };
  },

  /** An `rpc:call` for this session. */
  onRpcCall(f) {
    const session = this.session?.session;
    const reply = (body) => {
      // A call given to an earlier session cannot be answered from this one.
      if (this.session?.session === session) this.transmit([{ type: "rpc:result", id: f.id, ...body }]);
    };
    const handler = this.callHandlers?.get(f.method);
    if (!handler) return reply({ error: { code: "unknown_method", message: `no handler for ${f.method}` } });
    Promise.resolve()
      .then(() => handler(f.params, { from: f.from, session: f.session, method: f.method }))
      .then(
        (result) => reply({ result: result === undefined ? null : result }),
        (err) => {
          const code = typeof err?.code === "string" && /^[A-Za-z0-9_.:-]{1,64}$/.test(err.code) ? err.code : "handler_error";
          const message = String(err?.message ?? err ?? "").slice(0, 1000);
          reply({ error: { code, message } });
        },
      );
  },

  /** An `rpc:result` for one of this client's calls. */
  onRpcResult(f) {
    const e = f.id && this.byId.get(f.id);
    if (!e || !e.frame) return;
    if (f.error) this.settle(e, new SwitchboardError(f.error.code, f.error.message, { session: f.session }));
    else this.settle(e, null, f.result);
  },
};
