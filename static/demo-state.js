// The demo's room topic: shared state (`client.sharedState(room)`) that
// every member can edit. An edit is saved on the version it started from,
// so a change someone made meanwhile is a visible conflict (their text and
// name are shown; Save again overwrites it). The +1 counter uses
// set(key, fn): concurrent clicks are re-applied on conflict and all count.

const $ = (id) => document.getElementById(id);

export class TopicBar {
  /** @param sb the SDK client; @param o {toast} from demo.js */
  constructor(sb, { toast }) {
    this.sb = sb;
    this.toast = toast;
    this.room = null;
    this.state = null;
    this.base = 0; // the version the edit in progress started from
    this.onChange = () => this.render();
    $("topic-edit").onclick = () => this.edit();
    $("topic-cancel").onclick = () => this.closeEditor();
    $("topic-form").onsubmit = (e) => {
      e.preventDefault();
      this.save();
    };
    $("likes").onclick = () =>
      this.state?.set("likes", (n) => (typeof n === "number" ? n : 0) + 1).catch((e) => this.toast(`+1 failed: ${e.code}`, "error"));
  }

  /** Call before joining a room: its join then carries the snapshot. */
  watch(room) {
    this.sb.sharedState(room);
  }

  /** The room on screen changed (null: none). */
  setRoom(room) {
    if (this.state) {
      this.state.off("change", this.onChange).off("snapshot", this.onChange).off("conflict", this.onConflict);
    }
    this.room = room;
    this.closeEditor();
    $("topic-bar").hidden = !room;
    if (!room) return (this.state = null);
    this.state = this.sb.sharedState(room);
    this.onConflict = (c) => c.key === "likes" && this.showConflict(`+1 raced with someone else's; retried on version ${c.version}.`);
    this.state.on("change", this.onChange).on("snapshot", this.onChange).on("conflict", this.onConflict);
    this.render();
  }

  render() {
    const e = this.state?.entry("topic");
    $("topic-text").textContent = typeof e?.value === "string" ? e.value : "";
    $("topic-meta").textContent = e ? `v${e.version} · set by ${e.by?.name ?? "?"}` : "";
    $("likes-count").textContent = String(this.state?.get("likes") ?? 0);
  }

  edit() {
    const e = this.state?.entry("topic");
    this.base = e?.version ?? 0;
    $("topic-input").value = typeof e?.value === "string" ? e.value : "";
    $("topic-form").hidden = false;
    $("topic-edit").hidden = true;
    $("topic-conflict").hidden = true;
    $("topic-input").focus();
  }

  closeEditor() {
    $("topic-form").hidden = true;
    $("topic-edit").hidden = false;
  }

  async save() {
    const text = $("topic-input").value.trim();
    try {
      await this.state.set("topic", text, { version: this.base });
      $("topic-conflict").hidden = true;
      this.closeEditor();
    } catch (e) {
      if (e.code !== "version_conflict") return this.toast(`Topic not saved: ${e.code}`, "error");
      // Someone saved first: show theirs, keep ours in the box, and base
      // the next Save on their version (it overwrites, knowingly).
      const theirs = this.state.entry("topic");
      const who = theirs?.by?.name ?? "someone";
      this.base = e.version;
      this.showConflict(`Conflict: ${who} changed the topic to “${e.value ?? ""}” (v${e.version}) while you were editing. Save again to replace it with yours.`);
    }
  }

  showConflict(text) {
    const c = $("topic-conflict");
    c.textContent = text;
    c.hidden = false;
  }
}
