// The demo's live replies: AI response streams (`client.streams(room)`)
// shown as they grow, above the composer, each with a Stop button that
// sends `stream:cancel` to its producer (e.g. examples/ai-service.mjs).
// A finished stream becomes an ordinary message in the list; its box goes.

const $ = (id) => document.getElementById(id);

export class LiveReplies {
  /** @param sb the SDK client; @param o {toast} from demo.js */
  constructor(sb, { toast }) {
    this.sb = sb;
    this.toast = toast;
    this.room = null;
    this.view = null;
    this.onUpdate = () => this.render();
  }

  /** The room on screen changed (null: none). */
  setRoom(room) {
    this.view?.off("update", this.onUpdate);
    this.room = room;
    this.view = room ? this.sb.streams(room) : null;
    this.view?.on("update", this.onUpdate);
    this.render();
  }

  render() {
    const box = $("streams");
    const live = this.view ? this.view.streams : new Map();
    const shown = [...live.values()].filter((s) => !s.seq);
    box.hidden = !shown.length;
    box.replaceChildren(
      ...shown.map((s) => {
        const item = document.createElement("div");
        item.className = "stream";
        item.dataset.stream = s.stream;
        const who = document.createElement("div");
        who.className = "who";
        const state = s.error ? `stopped: ${s.error}` : s.done ? "done" : s.cancelled ? "stopping…" : "writing…";
        who.textContent = `${s.from?.name ?? "?"} · ${state}`;
        const text = document.createElement("div");
        text.className = "stream-text";
        text.textContent = s.text;
        item.append(who, text);
        if (!s.done && !s.error) {
          const stop = document.createElement("button");
          stop.className = "ghost stream-stop";
          stop.type = "button";
          stop.textContent = "Stop";
          stop.disabled = s.cancelled;
          stop.onclick = () => this.view?.cancel(s.stream).catch((e) => this.toast(`Stop failed: ${e.code}`, "error"));
          item.append(stop);
        }
        return item;
      }),
    );
    // Failed streams leave nothing behind: clear them after a moment.
    for (const s of live.values()) {
      if (s.error && !s.cleared) {
        s.cleared = true;
        setTimeout(() => {
          if (this.view?.streams.get(s.stream) === s) this.view.streams.delete(s.stream);
          this.render();
        }, 4000);
      }
    }
  }
}
