// The demo chat page: everything it does goes through the SDK (switchboard.js).
// The room's shared notes are in demo-doc.js, the notification bell in demo-bell.js,
// the room's topic (shared state) in demo-state.js.
import { connect } from "/switchboard.js";
import { DocPane } from "/demo-doc.js";
import { Bell } from "/demo-bell.js";
import { TopicBar } from "/demo-state.js";
import { Calls } from "/demo-call.js";
import { LiveReplies } from "/demo-streams.js";

const $ = (id) => document.getElementById(id);
const SUGGESTED = ["general", "random", "lobby"];
const TRANSPORT_NAMES = { websocket: "WebSocket", sse: "SSE", polling: "Long-polling" };
const ERROR_TEXT = {
  rate_limited: (e) => `Slow down: you can send again in ${Math.ceil((e.retry_after_ms || e.retryAfterMs || 1000) / 1000)} s.`,
  forbidden: (e) => `Not allowed: ${e.message}`,
  not_member: (e) => `You are not in that room (${e.message}).`,
  queue_full: () => "Offline and too many messages are waiting; this one was not sent.",
  too_large: () => "That message is too large.",
  unauthorized: () => "Your token was refused. Sign in again.",
  disconnected: () => "Gave up reconnecting. Reload the page to try again.",
};

let sb = null;
let notes = null; // the shared-notes pane
let topic = null; // the room topic bar (shared state)
let replies = null; // live AI replies (streams)
let calls = null; // video calls (demo-call.js)
let current = null; // the room on screen
const rooms = new Map(); // name → { messages: [], unread }

// ---- sign-in ---------------------------------------------------------------

$("login-name").value = localStorage.getItem("sb-name") || "";
$("login-form").onsubmit = (e) => {
  e.preventDefault();
  const name = $("login-name").value.trim();
  if (!name) return;
  localStorage.setItem("sb-name", name);
  start({ name });
};
$("token-connect").onclick = () => {
  const token = $("token").value.trim();
  if (!token) return loginError("Paste a token first.");
  start({ token });
};
$("dev-token").onclick = async () => {
  const name = $("login-name").value.trim() || "dev";
  const sub = name.toLowerCase().replace(/[^a-z0-9_.@-]+/g, "-").replace(/^-+|-+$/g, "") || "dev";
  try {
    const r = await fetch(`/api/dev/token?sub=${encodeURIComponent(sub)}&name=${encodeURIComponent(name)}`);
    const body = await r.json();
    if (!r.ok) throw new Error(r.status === 404 ? "Development mode is off on this server." : body.error?.message);
    $("token").value = body.token;
    loginError("");
  } catch (err) {
    loginError(err.message || "Could not mint a token.");
  }
};
// Leave at once instead of when an HTTP session expires.
addEventListener("pagehide", () => sb?.close());
addEventListener("pageshow", (e) => e.persisted && location.reload());
$("signout").onclick = () => {
  sb?.close();
  location.reload();
};

function loginError(text) {
  $("login-error").textContent = text;
}

// ---- connection ------------------------------------------------------------

function start(auth) {
  const q = new URLSearchParams(location.search);
  const transports = q.get("transports")?.split(",").filter(Boolean);
  sb = connect({ ...auth, ...(transports ? { transports } : {}) });
  window.switchboard = sb; // for the console
  $("login").hidden = true;
  $("app").hidden = false;

  notes = new DocPane(sb, { toast, color });
  topic = new TopicBar(sb, { toast });
  replies = new LiveReplies(sb, { toast });
  new Bell(sb, { toast, textOf });
  calls = new Calls(sb, { toast });
  sb.on("state", showConnection);
  sb.on("connected", (f) => {
    $("me").textContent = `${f.name}${f.guest ? " (guest)" : ""}`;
    $("me").title = f.user;
  });
  sb.on("message:receive", onMessage);
  sb.on("direct:receive", (f) => toast(`${f.from.name} → you: ${textOf(f.data)}`));
  sb.on("broadcast", (f) => toast(`Broadcast from ${f.from.name}: ${textOf(f.data)}`));
  sb.on("members", ({ room }) => room === current && renderMembers());
  sb.on("typing:update", (f) => f.room === current && renderTyping());
  sb.on("room:member_joined", (f) => systemLine(f.room, `${f.user.name} joined`));
  sb.on("room:member_left", (f) => systemLine(f.room, `${f.user.name} left`));
  sb.on("gap", (g) => systemLine(g.room, `Messages ${g.from}–${g.to} are no longer kept by the server.`));
  sb.on("disconnected", () => showConnection(sb.connectionInfo()));
  sb.on("error", (e) => {
    if (e.doc) return; // the notes pane says what matters
    if (e.code === "unauthorized") {
      $("login").hidden = false;
      $("app").hidden = true;
      loginError("That token was refused (invalid or expired).");
    }
    toast(describe(e), "error");
  });
  sb.ready().then(() => {
    if (!rooms.size) joinRoom(q.get("room") || "general");
  }, () => {});
  setInterval(() => showConnection(sb.connectionInfo()), 1000);
  renderSuggestions();
}

function describe(e) {
  const f = ERROR_TEXT[e.code];
  return f ? f(e) : `${e.code}: ${e.message}`;
}

function showConnection(info) {
  const connected = info.state === "connected";
  $("conn-dot").className = `dot ${connected ? info.quality : "poor"}`;
  $("conn-transport").textContent = TRANSPORT_NAMES[info.transport] || "offline";
  $("conn-quality").textContent = connected ? info.quality : "–";
  $("conn-rtt").textContent = connected && info.rtt != null ? `${info.rtt} ms` : "";
  const state = {
    connecting: "connecting…",
    connected: "connected",
    reconnecting: info.retryInMs ? `retrying in ${Math.ceil(info.retryInMs / 1000)} s` : "reconnecting…",
    closed: "disconnected",
    idle: "",
  }[info.state];
  $("conn-state").textContent = state;
  $("conn").dataset.state = info.state;
  const banner = $("banner");
  if (info.state === "reconnecting" || info.state === "closed") {
    banner.textContent =
      info.state === "closed"
        ? "Disconnected."
        : `Connection lost — ${state}. Messages you send now are queued (${info.queued}) and go out when it is back.`;
    banner.className = "show";
  } else {
    banner.className = "";
  }
  $("text").disabled = $("send").disabled = !current || info.state === "closed";
}

// ---- rooms -----------------------------------------------------------------

async function joinRoom(name) {
  name = name.trim();
  if (!name) return;
  if (!rooms.has(name)) {
    rooms.set(name, { messages: [], unread: 0 });
    topic.watch(name);
    try {
      await sb.joinRoom(name, { history: 50 });
    } catch (e) {
      rooms.delete(name);
      renderRooms();
      return toast(describe(e), "error"); // a refused call is not also an error event
    }
  }
  select(name);
}

function select(name) {
  current = name;
  rooms.get(name).unread = 0;
  $("room-title").textContent = `# ${name}`;
  $("leave").disabled = false;
  notes.setRoom(name);
  topic.setRoom(name);
  replies.setRoom(name);
  renderRooms();
  renderMessages();
  renderMembers();
  renderTyping();
  showConnection(sb.connectionInfo());
  $("text").focus();
}

function leave() {
  if (!current) return;
  sb.leaveRoom(current);
  rooms.delete(current);
  current = null;
  const rest = [...rooms.keys()];
  if (rest.length) return select(rest[0]);
  $("room-title").textContent = "No room";
  $("room-sub").textContent = "";
  $("leave").disabled = true;
  notes.setRoom(null);
  topic.setRoom(null);
  replies.setRoom(null);
  renderRooms();
  renderMessages();
  renderMembers();
  renderTyping();
}

$("leave").onclick = leave;
$("join-form").onsubmit = (e) => {
  e.preventDefault();
  joinRoom($("room-input").value);
  $("room-input").value = "";
};

function renderRooms() {
  const ul = $("rooms");
  ul.replaceChildren(
    ...[...rooms].map(([name, r]) => {
      const li = el("li", { className: name === current ? "active" : "", onclick: () => select(name) });
      li.dataset.room = name;
      li.append(el("span", { textContent: `# ${name}` }), el("span", { className: "unread", textContent: r.unread || "" }));
      return li;
    }),
  );
  renderSuggestions();
}

function renderSuggestions() {
  $("suggest").replaceChildren(
    ...SUGGESTED.filter((n) => !rooms.has(n)).map((n) => el("button", { type: "button", textContent: `+ ${n}`, onclick: () => joinRoom(n) })),
  );
}

// ---- messages --------------------------------------------------------------

function onMessage(m) {
  const r = rooms.get(m.room);
  // The personal room (user:<id>) carries what a backend sends to this user.
  if (!r) return m.room.startsWith("user:") && toast(`${m.from.name} → you: ${textOf(m.data)}`);
  r.messages.push({ kind: "msg", m });
  if (m.room === current) appendItem(r.messages.at(-1));
  else {
    r.unread++;
    renderRooms();
  }
}

function systemLine(room, text) {
  const r = rooms.get(room);
  if (!r) return;
  r.messages.push({ kind: "sys", text });
  if (room === current) appendItem(r.messages.at(-1));
}

function renderMessages() {
  const box = $("messages");
  const r = current && rooms.get(current);
  if (!r) return box.replaceChildren(el("div", { className: "empty", textContent: "Join a room to start chatting." }));
  box.replaceChildren();
  if (r.complete) box.append(startLine());
  if (!r.messages.length) box.append(el("div", { className: "empty", textContent: "No messages yet. Say hello!" }));
  r.messages.forEach(appendItem);
}

// Scrolled to the top: the page before the oldest message shown, kept in
// place (the content above grows; the view does not move). A wheel turned
// up counts too, for a room whose messages do not fill the box yet.
$("messages").onscroll = () => $("messages").scrollTop < 60 && loadEarlier();
$("messages").onwheel = (e) => e.deltaY < 0 && $("messages").scrollTop < 60 && loadEarlier();

async function loadEarlier() {
  const name = current;
  const r = name && rooms.get(name);
  if (!r || r.loading || r.complete) return;
  r.loading = true;
  try {
    const page = await sb.loadEarlier(name, { limit: 50 });
    const shown = new Set(r.messages.map((i) => i.m?.seq));
    const older = page.messages.filter((m) => !shown.has(m.seq)).map((m) => ({ kind: "msg", m }));
    r.complete = !page.more;
    r.messages.unshift(...older);
    if (name === current) {
      const box = $("messages");
      const [height, top] = [box.scrollHeight, box.scrollTop];
      if (older.length) box.querySelector(".empty")?.remove();
      box.prepend(...(r.complete ? [startLine()] : []), ...older.map(itemElement));
      box.scrollTop = top + (box.scrollHeight - height);
    }
  } catch (e) {
    return toast(describe(e), "error");
  } finally {
    r.loading = false;
  }
  // Still nothing to scroll: go on until there is, or all is shown.
  const box = $("messages");
  if (name === current && !r.complete && box.scrollHeight <= box.clientHeight) loadEarlier();
}

function startLine() {
  return el("div", { className: "sys start", textContent: `This is the beginning of #${current}.` });
}

function appendItem(item) {
  const box = $("messages");
  box.querySelector(".empty")?.remove();
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.append(itemElement(item));
  if (stick) box.scrollTop = box.scrollHeight;
}

function itemElement(item) {
  if (item.kind === "sys") {
    return el("div", { className: "sys", textContent: item.text });
  } else {
    const m = item.m;
    const mine = m.from.user === sb.connectionInfo().user;
    const div = el("div", { className: `msg${mine ? " mine" : ""}` });
    div.dataset.seq = m.seq;
    const avatar = el("div", { className: "avatar", textContent: initials(m.from.name) });
    avatar.style.background = color(m.from.user);
    const time = el("time", { textContent: new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) });
    time.dateTime = new Date(m.ts).toISOString();
    const meta = el("div", { className: "meta" });
    meta.append(el("span", { className: "from", textContent: m.from.name }), time);
    div.append(avatar, meta, el("div", { className: "text", textContent: textOf(m.data) }));
    return div;
  }
}

$("composer").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !current) return;
  $("text").value = "";
  sb.typing(current, false);
  try {
    await sb.send(current, { text });
  } catch (err) {
    if (err.code === "rate_limited" || err.code === "queue_full") $("text").value ||= text;
    if (err.code !== "closed") toast(describe(err), "error");
  }
};
$("text").oninput = () => {
  if (current && $("text").value) sb.typing(current);
};

// ---- members, typing, presence ----------------------------------------------

function renderMembers() {
  const me = sb.connectionInfo().user;
  const order = { online: 0, busy: 1, away: 2, offline: 3 };
  const list = current ? sb.members(current) : [];
  list.sort((a, b) => (order[a.status] ?? 4) - (order[b.status] ?? 4) || a.name.localeCompare(b.name));
  $("members").replaceChildren(
    ...list.map((m) => {
      const li = el("li");
      li.dataset.user = m.user;
      li.dataset.status = m.status;
      const who = el("div", { className: "who" });
      who.append(el("span", { textContent: m.name + (m.user === me ? " (you)" : "") }));
      if (m.activity) who.append(el("span", { className: "activity", textContent: m.activity }));
      li.append(el("span", { className: `dot ${m.status}`, title: m.status }), who, el("span", { className: "status", textContent: m.status }));
      if (m.user !== me && m.sessions?.length) {
        const room = current;
        const call = el("button", { type: "button", className: "call ghost", textContent: "Call", title: `Video call with ${m.name}` });
        call.onclick = () => calls.call(room, m);
        li.append(call);
      }
      return li;
    }),
  );
  $("room-sub").textContent = current ? `${list.length} member${list.length === 1 ? "" : "s"}` : "";
}

function renderTyping() {
  const me = sb.connectionInfo().user;
  const names = (current ? sb.typingUsers(current) : []).filter((u) => u.user !== me).map((u) => u.name);
  $("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : `${names.length} people are typing…`;
}

function updatePresence() {
  sb.setPresence($("presence").value, $("activity").value.trim() || undefined);
}
$("presence").onchange = updatePresence;
$("activity").onchange = updatePresence;

// ---- helpers ---------------------------------------------------------------

function textOf(data) {
  return data && typeof data === "object" && typeof data.text === "string" ? data.text : JSON.stringify(data);
}

function el(tag, props = {}) {
  return Object.assign(document.createElement(tag), props);
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words.slice(0, 2).map((w) => [...w][0]) : [...(words[0] || "?")].slice(0, 2);
  return letters.join("").toUpperCase();
}

function color(id) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.codePointAt(0)) % 360;
  return `hsl(${h} 55% 48%)`;
}

function toast(text, kind = "") {
  const t = el("div", { className: `toast ${kind}`, textContent: text });
  $("toasts").append(t);
  setTimeout(() => t.remove(), 5000);
}
