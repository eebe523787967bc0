// The demo's shared notes: one collaborative document per room (named like
// the room, so it follows the room's access rules), in a textarea driven by
// the SDK's openDocument(). Local edits become ops (the SDK diffs the new
// text against the old); remote ops replace the text and move the caret
// with transformIndex, so typing is never interrupted.
import { cpLength, cpToUtf16, utf16ToCp } from "/ot.js";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}) => Object.assign(document.createElement(tag), props);

const STATUS = {
  opening: "opening…",
  synchronized: "saved",
  awaitingConfirm: "saving…",
  awaitingWithBuffer: "saving…",
  closed: "closed",
};

export class DocPane {
  /** @param sb the SDK client; @param o {toast, color} from demo.js */
  constructor(sb, { toast, color }) {
    this.sb = sb;
    this.toast = toast;
    this.color = color;
    this.room = null; // the room on screen
    this.handle = null; // the open document, while the pane is shown
    this.shown = ""; // what the textarea shows, as the document has it
    this.cursorTimer = null;
    this.ta = $("doc-text");
    $("doc-toggle").onclick = () => this.toggle();
    this.ta.addEventListener("input", () => this.onInput());
    for (const ev of ["keyup", "mouseup", "select", "focus"]) this.ta.addEventListener(ev, () => this.shareCursor());
    sb.on("state", () => this.renderStatus());
  }

  get visible() {
    return !$("doc-pane").hidden;
  }

  /** The room on screen changed (null: none). */
  setRoom(room) {
    this.room = room;
    $("doc-toggle").disabled = !room;
    if (!room) return this.hide();
    if (this.visible && this.handle?.doc !== room) this.open(room);
  }

  toggle() {
    if (this.visible) this.hide();
    else if (this.room) this.open(this.room);
  }

  hide() {
    this.handle?.close();
    this.handle = null;
    $("doc-pane").hidden = true;
    $("doc-toggle").setAttribute("aria-pressed", "false");
  }

  open(doc) {
    this.handle?.close();
    $("doc-pane").hidden = false;
    $("doc-toggle").setAttribute("aria-pressed", "true");
    $("doc-title").textContent = `Notes of # ${doc}`;
    this.ta.value = this.shown = "";
    this.ta.readOnly = true;
    const h = this.sb.openDocument(doc, {
      onText: (text, change) => h === this.handle && this.onRemote(text, change),
      onCursor: () => h === this.handle && this.renderEditors(),
      onState: () => h === this.handle && this.renderStatus(),
      onError: (e) => h === this.handle && this.onError(e),
    });
    this.handle = h;
    this.ta.dataset.doc = doc;
    h.ready().then(
      () => h === this.handle && this.shareCursor(),
      (e) => {
        if (h !== this.handle) return;
        this.toast(`Cannot open the notes of #${doc}: ${e.message}`, "error");
        this.hide();
      },
    );
    this.renderStatus();
    this.renderEditors();
  }

  /** A local edit: the SDK turns the difference into an op. */
  onInput() {
    const h = this.handle;
    if (!h || h.state === "opening" || h.state === "closed") {
      this.ta.value = this.shown; // not editable yet
      return;
    }
    h.edit(this.ta.value);
    this.shown = this.ta.value;
    this.shareCursor();
    this.renderEditors();
  }

  /** A snapshot (change null) or another editor's op: show it, keeping the
   * caret and selection where they were in the text. */
  onRemote(text, change) {
    const ta = this.ta;
    const old = this.shown;
    const focused = document.activeElement === ta;
    const [start, end, dir] = [ta.selectionStart, ta.selectionEnd, ta.selectionDirection];
    const scroll = ta.scrollTop;
    let a = utf16ToCp(old, start);
    let b = utf16ToCp(old, end);
    if (change) {
      a = change.transformIndex(a);
      b = change.transformIndex(b);
    } else {
      a = Math.min(a, cpLength(text));
      b = Math.min(b, cpLength(text));
    }
    ta.value = this.shown = text;
    ta.readOnly = false;
    if (focused || change) ta.setSelectionRange(cpToUtf16(text, a), cpToUtf16(text, b), dir);
    ta.scrollTop = scroll;
    this.renderEditors();
  }

  onError(e) {
    // Ops the server asks to resend are resent by the SDK; say the rest.
    if (e.code !== "unavailable" && e.code !== "rate_limited") this.toast(`Notes: ${e.message || e.code}`, "warn");
  }

  /** Tells the others where the caret is (at most every 150 ms). */
  shareCursor() {
    if (this.cursorTimer) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = null;
      const h = this.handle;
      if (!h || h.state === "opening" || h.state === "closed") return;
      const t = this.ta.value;
      h.cursor(utf16ToCp(t, this.ta.selectionStart), utf16ToCp(t, this.ta.selectionEnd));
    }, 150);
  }

  renderStatus() {
    const h = this.handle;
    const status = $("doc-status");
    if (!h) return (status.textContent = "");
    const online = this.sb.connectionInfo().state === "connected";
    status.dataset.state = online ? h.state : "offline";
    const state = h.state === "opening" ? STATUS.opening : online ? `${STATUS[h.state]} · rev ${h.rev}` : "offline: edits are sent when the connection is back";
    status.textContent = state;
    this.ta.readOnly = h.state === "opening" || h.state === "closed";
  }

  /** Who else has the notes open, and where their caret is (line:column). */
  renderEditors() {
    const h = this.handle;
    const box = $("doc-editors");
    const others = h ? h.cursors() : [];
    if (!others.length) return box.replaceChildren(el("span", { textContent: h ? "Nobody else is editing." : "" }));
    const text = this.shown;
    box.replaceChildren(
      el("span", { textContent: "Also editing:" }),
      ...others.map((c) => {
        const before = text.slice(0, cpToUtf16(text, c.head));
        const line = before.split("\n").length;
        const col = cpLength(before.slice(before.lastIndexOf("\n") + 1)) + 1;
        const chip = el("span", { className: "editor", title: `${c.name}: line ${line}, column ${col}` });
        chip.dataset.user = c.user;
        chip.style.color = this.color(c.user);
        const name = el("span", { textContent: `${c.name} · ${line}:${col}` });
        name.style.color = "var(--ink)";
        chip.append(el("span", { className: "dot" }), name);
        return chip;
      }),
    );
  }
}
