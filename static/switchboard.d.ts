// Types of the Switchboard client SDK (switchboard.js) and of every frame the
// server sends. docs/CLIENT.md describes the API, docs/PROTOCOL.md the frames.

import type { TextOperation, OpPart } from "./ot.js";
export type { TextOperation, OpPart } from "./ot.js";

// ---- values in frames -------------------------------------------------------

/** Any JSON value: what `data` and MQTT payloads carry. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Who sent a message: `{user, name}`. */
export interface Sender {
  user: string;
  name: string;
}

export type Status = "online" | "away" | "busy" | "offline";
export type Role = "user" | "admin" | "service";
export type TransportName = "websocket" | "sse" | "polling";

export interface Member {
  user: string;
  name: string;
  status: Status;
  activity?: string;
  /** What the app's subscribe hook attached to the user's membership. */
  info?: unknown;
  /** The user's sessions in the room (ids for `signal`); absent in
   * `room:member_joined` / `room:member_left` frames. */
  sessions?: string[];
}

/** What a `signal` carries (the server does not interpret it). */
export type SignalKind = "offer" | "answer" | "ice" | "bye";

export interface Notification {
  id: number;
  from: Sender;
  data: Json;
  ts: number;
  read: boolean;
}

/** The stable `code` of every error frame, REST error and SwitchboardError. */
export type ErrorCode =
  | "bad_json" | "bad_request" | "unknown_type" | "invalid_room" | "forbidden" | "not_member"
  | "too_many_rooms" | "too_large" | "rate_limited" | "user_offline" | "storage_error"
  | "unauthorized" | "not_found" | "unavailable" | "internal" | "invalid_op" | "rev_too_old"
  | "rev_in_future" | "too_many_docs" | "invalid_topic" | "not_subscribed" | "too_many_filters"
  | "mqtt_unavailable" | "mqtt_queue_full" | "session_expired" | "resume_failed"
  | "version_conflict" | "too_many_keys" | "precondition_required"
  | "rpc_timeout" | "rpc_disconnected" | "too_many_calls"
  // the client's own
  | "closed" | "queue_full" | "timeout" | "unconfirmed" | "disconnected" | "already_open";

// ---- server → client frames -------------------------------------------------

export interface ConnectedFrame {
  type: "connected";
  session: string;
  user: string;
  name: string;
  guest: boolean;
  role: Role;
  /** Token expiry (seconds); absent for guests. */
  exp?: number;
  transport: TransportName;
  /** SSE and long-polling sessions only. */
  key?: string;
}
export interface AuthOkFrame { type: "auth:ok"; user: string; exp: number; id?: string }
export interface RoomJoinedFrame {
  type: "room:joined";
  room: string;
  seq: number;
  epoch: string;
  recovered?: boolean;
  members: Member[];
  id?: string;
}
export interface RoomLeftFrame { type: "room:left"; room: string; id?: string }
export type Priority = "critical" | "high" | "normal" | "low";
export interface MessageFrame {
  type: "message:receive";
  room: string;
  /** Absent for a volatile message. */
  seq: number;
  from: Sender;
  data: Json;
  ts: number;
  id?: string;
  /** Absent for `normal`. */
  priority?: Priority;
  /** Not numbered, not kept, dropped first under pressure. */
  volatile?: true;
}
/** Frames this session's queue dropped under pressure, by class. */
export interface DroppedFrame { type: "dropped"; counts: { low?: number; volatile?: number } }
export interface AckFrame { type: "ack"; id: string; seq?: number; duplicate?: true; offline?: true; /** A state write: the key's new version. */ version?: number }
export interface DirectFrame { type: "direct:receive"; from: Sender; data: Json; ts: number; id?: string }
export interface MemberJoinedFrame { type: "room:member_joined"; room: string; user: Member }
export interface MemberLeftFrame { type: "room:member_left"; room: string; user: Member }
export interface SessionJoinedFrame { type: "room:session_joined"; room: string; user: string; session: string }
export interface SessionLeftFrame { type: "room:session_left"; room: string; user: string; session: string }
/** WebRTC signaling from `session` of `from`, a member of `room`. */
export interface SignalFrame {
  type: "signal";
  room: string;
  from: Sender;
  session: string;
  kind: SignalKind;
  data: Json;
}
/** A tool call for this session (answer it with `onCall`). */
export interface RpcCallFrame {
  type: "rpc:call";
  /** The server's id of the call at this session. */
  id: string;
  method: string;
  params: Json;
  from: Sender;
  /** The caller's session. */
  session: string;
  timeout_ms: number;
}
/** The answer to one of this client's calls. */
export interface RpcResultFrame {
  type: "rpc:result";
  id: string;
  /** The session that answered. */
  session: string;
  result?: Json;
  error?: { code: string; message: string };
}
/** A service's `room:watch` / `room:unwatch` took effect. */
export interface RoomWatchingFrame { type: "room:watching"; pattern: string; id?: string }
export interface RoomUnwatchedFrame { type: "room:unwatched"; pattern: string; id?: string }
export interface TypingFrame { type: "typing:update"; room: string; users: Sender[] }
export interface PresenceFrame {
  type: "presence:update";
  room: string;
  user: string;
  status: Status;
  last_seen: number;
  activity?: string;
}
export interface BroadcastFrame { type: "broadcast"; from: Sender; data: Json; ts: number }
export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
  ref?: string;
  retry_after_ms?: number;
  /** Document errors: the document, and the op's `seq`. */
  doc?: string;
  seq?: number;
  /** `version_conflict`: the room and key, the key's current version (0: absent) and value. */
  room?: string;
  key?: string;
  version?: number;
  value?: Json;
}
export interface PongFrame { type: "pong"; id?: string }
export interface NotificationNewFrame { type: "notification:new"; notification: Notification }
export interface NotificationCountFrame { type: "notification:count"; unread: number }
export interface NotificationPageFrame {
  type: "notification:page";
  notifications: Notification[];
  unread: number;
  more: boolean;
  id?: string;
}
export interface HistoryPageFrame {
  type: "history:page";
  room: string;
  epoch: string | null;
  more: boolean;
  messages: MessageFrame[];
  id?: string;
}
export interface DirectOfflineFrame { type: "direct:offline"; count: number; dropped: number }
export interface MqttMessageFrame {
  type: "mqtt:message";
  topic: string;
  payload: Json;
  binary?: true;
  qos: 0 | 1;
  retain: boolean;
  ts: number;
  /** A mapped room's copy only. */
  room?: string;
  seq?: number;
}
export interface MqttSubscribedFrame { type: "mqtt:subscribed"; filter: string; active: boolean; id?: string }
export interface MqttUnsubscribedFrame { type: "mqtt:unsubscribed"; filter: string; id?: string }
export interface DocSnapshotFrame { type: "doc:snapshot"; doc: string; rev: number; text: string }
export interface DocOpFrame { type: "doc:op"; doc: string; rev: number; cid: string; seq: number; user: string; op: OpPart[] }
export interface DocAckFrame { type: "doc:ack"; doc: string; rev: number; seq: number }
export interface DocCursorFrame {
  type: "doc:cursor";
  doc: string;
  cid: string;
  rev?: number;
  user: string;
  name: string;
  /** null: that editor is gone. */
  anchor: number | null;
  head: number | null;
}
/** A key of a room's shared state. */
export interface StateEntry {
  value: Json;
  version: number;
  by: Sender;
  ts: number;
  /** With `ttl_ms`: when it expires (ms since the epoch). */
  expires?: number;
}
export interface StateSnapshotFrame {
  type: "state:snapshot";
  room: string;
  /** The last version given out in the room. */
  rev: number;
  entries: (StateEntry & { key: string })[];
  id?: string;
}
export interface StateUpdateFrame {
  type: "state:update";
  room: string;
  key: string;
  /** Absent with `deleted`. */
  value?: Json;
  version: number;
  /** Absent for an expiry. */
  by?: Sender;
  ts: number;
  expires?: number;
  deleted?: true;
  expired?: true;
}
/** A new stream (`text` "", `next` 0), or the catch-up of a live one after a join. */
export interface StreamStartFrame {
  type: "stream:start";
  room: string;
  stream: string;
  from: Sender;
  meta?: Json;
  ts: number;
  text: string;
  next: number;
  cancelled?: true;
}
export interface StreamDataFrame {
  type: "stream:data";
  room: string;
  stream: string;
  index: number;
  chunk: string;
}
export interface StreamEndFrame {
  type: "stream:end";
  room: string;
  stream: string;
  chunks: number;
  length: number;
}
export interface StreamErrorFrame {
  type: "stream:error";
  room: string;
  stream: string;
  /** The producer's, or `timeout` / `producer_left` from the server. */
  reason: string;
}
export interface StreamCancelledFrame {
  type: "stream:cancelled";
  room: string;
  stream: string;
  by: Sender;
}
export interface HealthUpdateFrame {
  type: "health:update";
  ts: number;
  status: "ok" | "degraded" | "offline";
  [field: string]: Json | undefined;
}
export interface MessageFlowFrame {
  type: "message:flow";
  ts: number;
  msgs_in_per_s: number;
  msgs_out_per_s: number;
  omitted: number;
  entries: { ts: number; kind: "room" | "direct" | "mqttin" | "mqttout"; target: string; size: number; sender: "user" | "guest" | "service" | "mqtt" }[];
}

/** Every frame the server sends, by its `type`. */
export interface ServerFrames {
  connected: ConnectedFrame;
  "auth:ok": AuthOkFrame;
  "room:joined": RoomJoinedFrame;
  "room:left": RoomLeftFrame;
  "message:receive": MessageFrame;
  ack: AckFrame;
  "direct:receive": DirectFrame;
  "room:member_joined": MemberJoinedFrame;
  "room:member_left": MemberLeftFrame;
  "room:session_joined": SessionJoinedFrame;
  "room:session_left": SessionLeftFrame;
  signal: SignalFrame;
  "rpc:call": RpcCallFrame;
  "rpc:result": RpcResultFrame;
  "room:watching": RoomWatchingFrame;
  "room:unwatched": RoomUnwatchedFrame;
  dropped: DroppedFrame;
  "typing:update": TypingFrame;
  "presence:update": PresenceFrame;
  broadcast: BroadcastFrame;
  error: ErrorFrame;
  pong: PongFrame;
  "notification:new": NotificationNewFrame;
  "notification:count": NotificationCountFrame;
  "notification:page": NotificationPageFrame;
  "history:page": HistoryPageFrame;
  "direct:offline": DirectOfflineFrame;
  "mqtt:message": MqttMessageFrame;
  "mqtt:subscribed": MqttSubscribedFrame;
  "mqtt:unsubscribed": MqttUnsubscribedFrame;
  "doc:snapshot": DocSnapshotFrame;
  "doc:op": DocOpFrame;
  "doc:ack": DocAckFrame;
  "doc:cursor": DocCursorFrame;
  "state:snapshot": StateSnapshotFrame;
  "state:update": StateUpdateFrame;
  "stream:start": StreamStartFrame;
  "stream:data": StreamDataFrame;
  "stream:end": StreamEndFrame;
  "stream:error": StreamErrorFrame;
  "stream:cancelled": StreamCancelledFrame;
  "health:update": HealthUpdateFrame;
  "message:flow": MessageFlowFrame;
}
export type ServerFrame = ServerFrames[keyof ServerFrames];
export type ServerFrameType = keyof ServerFrames;
export const SERVER_FRAME_TYPES: string[];

// ---- the client ---------------------------------------------------------------

export interface CallOptions {
  /** The server answers `rpc_timeout` after this long (default 10000). */
  timeoutMs?: number;
}
export interface CallInfo {
  from: Sender;
  /** The caller's session. */
  session: string;
  method: string;
}
export type CallHandler = (params: any, info: CallInfo) => Json | undefined | Promise<Json | undefined>;

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";
export type Quality = "excellent" | "good" | "fair" | "poor";

export interface ConnectionInfo {
  state: ConnectionState;
  transport: TransportName | null;
  rtt: number | null;
  quality: Quality;
  failures: number;
  attempt: number;
  retryInMs: number | null;
  queued: number;
  session: string | null;
  user: string | null;
  name: string | null;
  guest: boolean | null;
}

/** The client's own events, beside the server frames. */
export interface ClientEvents {
  state: ConnectionInfo;
  members: { room: string; members: Member[] };
  gap: { room: string; from: number; to: number; error?: string; epoch?: string };
  disconnected: { code: number; reason: string };
  unread: { unread: number };
}
export type EventMap = ServerFrames & ClientEvents & { "*": ServerFrame };

export interface Backoff {
  base: number;
  cap: number;
  jitter: number;
}

export interface ConnectOptions {
  /** `http(s)://host:port` of the hub; default: the page's origin. */
  url?: string;
  /** A JWT, or a function giving one (or a promise of one): called before
   * every connection attempt and ahead of the token's `exp`. */
  token?: string | (() => string | Promise<string>);
  /** The guest nickname, when there is no token. */
  name?: string;
  transports?: TransportName[];
  connectTimeout?: number;
  reconnect?: Partial<Backoff & { attempts: number }>;
  /** On a fallback transport, how often to try the preferred one again; `false`: never. */
  probe?: Partial<Backoff> | false;
  heartbeat?: Partial<{ interval: number; timeout: number }>;
  ackTimeout?: number;
  queueSize?: number;
  resyncTimeout?: number;
  rttSamples?: number;
  /** Implementations to use instead of the globals (e.g. `ws`, `eventsource` in Node). */
  WebSocket?: unknown;
  EventSource?: unknown;
  fetch?: typeof fetch;
}

export class SwitchboardError extends Error {
  constructor(code: ErrorCode, message?: string, extra?: object);
  readonly code: ErrorCode;
  /** With `rate_limited`. */
  readonly retryAfterMs?: number;
  /** With `version_conflict`: the key's current version (0: absent) and value. */
  readonly version?: number;
  readonly value?: Json;
  readonly key?: string;
  static from(frame: ErrorFrame): SwitchboardError;
}

export interface SendResult { seq: number; duplicate?: true }
export interface SendOptions { excludeSelf?: boolean; idempotencyKey?: string; priority?: Priority }
export interface DirectResult {
  /** Handed to the user's open sessions. */
  delivered: boolean;
  /** Stored for the user's next connection. */
  offline: boolean;
}
export interface NotificationPage { notifications: Notification[]; unread: number; more: boolean }
export interface HistoryPage { room: string; epoch: string | null; messages: MessageFrame[]; more: boolean }
/** `GET /api/rooms/{room}/history`. */
export interface RestHistory {
  room: string;
  epoch: string | null;
  seq: number;
  first_seq: number | null;
  more?: boolean;
  messages: MessageFrame[];
}

export class Client {
  constructor(options?: ConnectOptions);
  on<K extends keyof EventMap>(type: K, fn: (payload: EventMap[K]) => void): this;
  on(type: string, fn: (payload: any) => void): this;
  off<K extends keyof EventMap>(type: K, fn?: (payload: EventMap[K]) => void): this;
  off(type: string, fn?: (payload: any) => void): this;
  ready(): Promise<ConnectedFrame>;
  joinRoom(room: string, options?: { history?: number }): Promise<RoomJoinedFrame>;
  leaveRoom(room: string): Promise<{ room: string }>;
  send(room: string, data: Json, options?: SendOptions & { volatile?: false }): Promise<SendResult>;
  /** A volatile message takes no seq (and no idempotency key): resolves `{}`. */
  send(room: string, data: Json, options: Omit<SendOptions, "idempotencyKey"> & { volatile: true }): Promise<{}>;
  sendTo(user: string, data: Json): Promise<DirectResult>;
  /** WebRTC signaling to one session sharing `room`; resolves once handed to it. */
  signal(room: string, to: string, kind: SignalKind, data?: Json): Promise<{}>;
  /** This connection's session id, once connected. */
  readonly sessionId: string | null;
  /** A tool call to a session id, or to one session of a user: resolves with
   * the target's result; rejects with its error code or the server's
   * (`rpc_timeout`, `rpc_disconnected`, `not_found`, `user_offline`, …). */
  call<T = Json>(to: string, method: string, params?: Json, options?: CallOptions): Promise<T>;
  /** Answers calls of `method` with what `handler` returns (or resolves
   * to); a throw answers its `code` (else `handler_error`). Returns a
   * function that removes the handler. */
  onCall(method: string, handler: CallHandler): () => void;
  typing(room: string, active?: boolean): Promise<void>;
  setPresence(status: "online" | "away" | "busy", activity?: string): Promise<void>;
  mqttSubscribe(filter: string): Promise<MqttSubscribedFrame>;
  mqttUnsubscribe(filter: string): Promise<MqttUnsubscribedFrame>;
  mqttPublish(topic: string, payload: Json, options?: { qos?: 0 | 1; retain?: boolean }): Promise<{}>;
  openDocument(doc: string, options?: DocumentOptions): DocumentHandle;
  /** The shared state of `room` (join the room too); every join then carries a fresh snapshot. */
  sharedState(room: string): StateHandle;
  /** A room's AI response streams as they grow (join the room too). */
  streams(room: string): StreamsView;
  /** Starts a stream in `room` (or `{to}`: that user's personal room, joined first). */
  startStream(room: string | null, options?: { stream?: string; meta?: Json; to?: string }): StreamProducer;
  notifications(options?: { before?: number; limit?: number; unread?: boolean }): Promise<NotificationPage>;
  markRead(which: number | Array<number | Notification> | { all: true }): Promise<{}>;
  readonly unreadCount: number;
  setToken(token: string | (() => string | Promise<string>)): Promise<AuthOkFrame | null>;
  history(room: string, options?: { since?: number; before?: number; limit?: number }): Promise<RestHistory>;
  loadEarlier(room: string, options?: { limit?: number }): Promise<HistoryPage>;
  members(room: string): Member[];
  typingUsers(room: string): Sender[];
  connectionInfo(): ConnectionInfo;
  close(): Promise<void>;
}

export function connect(options?: ConnectOptions): Client;
export function gradeQuality(rtts: number[], failures: number, connected: boolean): Quality;
export function backoffDelay(n: number, backoff: Backoff, random?: () => number): number;

// ---- documents ----------------------------------------------------------------

export interface RemoteCursor {
  cid: string;
  user: string;
  name: string;
  anchor: number | null;
  head: number | null;
}

export type DocumentState = "opening" | "synchronized" | "awaitingConfirm" | "awaitingWithBuffer" | "closed";

export interface DocumentOptions {
  onText?: (text: string, change: TextOperation | null) => void;
  onCursor?: (cursor: RemoteCursor) => void;
  onError?: (frame: ErrorFrame) => void;
  onState?: (state: DocumentState) => void;
  cid?: string;
}

export interface DocumentEvents {
  text: (text: string, change: TextOperation | null) => void;
  cursor: (cursor: RemoteCursor) => void;
  error: (frame: ErrorFrame) => void;
  state: (state: DocumentState) => void;
}

export class DocumentHandle {
  readonly doc: string;
  readonly closed: boolean;
  readonly text: string;
  readonly rev: number;
  readonly cid: string;
  readonly state: DocumentState;
  ready(): Promise<DocumentHandle>;
  edit(newText: string): TextOperation | null;
  apply(op: TextOperation): TextOperation;
  cursor(anchor: number, head?: number): void;
  cursors(): RemoteCursor[];
  close(): void;
  on<K extends keyof DocumentEvents>(type: K, fn: DocumentEvents[K]): this;
  off<K extends keyof DocumentEvents>(type: K, fn?: DocumentEvents[K]): this;
}

// ---- shared state --------------------------------------------------------------

export interface StateChange {
  key: string;
  value?: Json;
  version: number;
  by?: Sender;
  deleted: boolean;
  expired: boolean;
}

export interface StateEvents {
  change: (change: StateChange) => void;
  snapshot: (handle: StateHandle) => void;
  conflict: (conflict: { key: string; version: number; value?: Json; attempt: number }) => void;
}

export class StateHandle {
  readonly room: string;
  /** The last version given out in the room, as far as this copy knows. */
  readonly rev: number;
  readonly loaded: boolean;
  readonly entries: Map<string, StateEntry>;
  get(key: string): Json | undefined;
  entry(key: string): StateEntry | undefined;
  toObject(): { [key: string]: Json };
  ready(): Promise<StateHandle>;
  fetch(keys?: string[]): Promise<StateHandle>;
  /** A value, or a function of the current value, re-applied after each conflict. */
  set(key: string, update: Json | ((current: Json | undefined) => Json), options?: { ttlMs?: number; version?: number }): Promise<{ value: Json; version: number }>;
  delete(key: string): Promise<{ version: number } | null>;
  on<K extends keyof StateEvents>(type: K, fn: StateEvents[K]): this;
  off<K extends keyof StateEvents>(type: K, fn?: StateEvents[K]): this;
}

// ---- AI response streams -------------------------------------------------------

export interface StreamState {
  stream: string;
  room: string;
  from: Sender;
  meta?: Json;
  ts: number;
  /** The text so far (once stored: the stored text). */
  text: string;
  /** The index of the next chunk. */
  next: number;
  cancelled: boolean;
  done: boolean;
  /** The reason it failed, or null. */
  error: string | null;
  /** The stored message's seq, once it came. */
  seq: number | null;
}

export interface StreamsEvents {
  start: (s: StreamState) => void;
  data: (d: { stream: string; index: number; chunk: string; text: string }) => void;
  end: (s: StreamState) => void;
  error: (s: StreamState) => void;
  cancelled: (s: StreamState & { by: Sender }) => void;
  message: (s: StreamState) => void;
  /** Any change of a stream. */
  update: (s: StreamState) => void;
  gap: (g: { stream: string; expected: number; got: number }) => void;
}

export class StreamsView {
  readonly room: string;
  readonly streams: Map<string, StreamState>;
  get(stream: string): StreamState | undefined;
  live(): StreamState[];
  cancel(stream: string): Promise<{}>;
  close(): void;
  on<K extends keyof StreamsEvents>(type: K, fn: StreamsEvents[K]): this;
  off<K extends keyof StreamsEvents>(type: K, fn?: StreamsEvents[K]): this;
}

export class StreamProducer {
  readonly stream: string;
  readonly room: string;
  readonly cancelled: boolean;
  readonly finished: boolean;
  /** Resolves once the server accepted the start. */
  readonly started: Promise<{}>;
  onCancel(fn: (f: StreamCancelledFrame) => void): this;
  write(chunk: string): Promise<{}>;
  /** Resolves `{seq}` of the stored message. */
  end(last?: string): Promise<SendResult>;
  fail(reason?: string): Promise<{}>;
}

export function streamId(): string;
