// The demo's notification bell: the unread count (the SDK keeps it from
// notification:count), a list fetched page by page with notifications(),
// and mark-read with markRead(). Guests get no notifications: no bell.

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}) => Object.assign(document.createElement(tag), props);
const PAGE = 20;

export class Bell {
  /** @param sb the SDK client; @param o {toast, textOf} from demo.js */
  constructor(sb, { toast, textOf }) {
    this.sb = sb;
    this.toast = toast;
    this.textOf = textOf;
    this.items = []; // what the open list shows, newest first
    this.more = false;
    $("bell").onclick = (e) => {
      e.stopPropagation();
      this.toggle();
    };
    $("notif-all").onclick = () => this.markAll();
    $("notif-more").onclick = () => this.load(this.items.at(-1)?.id);
    // A click elsewhere closes the list.
    document.addEventListener("click", (e) => {
      if (!$("notif-panel").hidden && !$("notif-panel").contains(e.target)) this.close();
    });
    sb.on("connected", (f) => {
      $("bell").hidden = f.guest;
      if (this.isOpen) this.load(); // what came while offline
    });
    sb.on("unread", () => {
      this.renderCount();
      if (this.isOpen) this.renderList();
    });
    sb.on("notification:new", ({ notification: n }) => {
      this.toast(`Notification: ${this.title(n)}`);
      if (this.isOpen && !this.items.some((i) => i.id === n.id)) {
        this.items.unshift(n);
        this.renderList();
      }
    });
    this.renderCount();
  }

  get isOpen() {
    return !$("notif-panel").hidden;
  }

  toggle() {
    this.isOpen ? this.close() : this.open();
  }

  open() {
    $("notif-panel").hidden = false;
    $("bell").setAttribute("aria-expanded", "true");
    this.load();
  }

  close() {
    $("notif-panel").hidden = true;
    $("bell").setAttribute("aria-expanded", "false");
  }

  /** The first page, or the page older than `before`. */
  async load(before) {
    try {
      const page = await this.sb.notifications({ before, limit: PAGE });
      this.items = before ? [...this.items, ...page.notifications] : page.notifications;
      this.more = page.more;
      this.renderList();
    } catch (e) {
      this.toast(`Notifications: ${e.message}`, "error");
    }
  }

  async markRead(n) {
    if (n.read) return;
    try {
      await this.sb.markRead([n.id]);
      n.read = true;
      this.renderList();
    } catch (e) {
      this.toast(`Notifications: ${e.message}`, "error");
    }
  }

  async markAll() {
    try {
      await this.sb.markRead({ all: true });
      for (const n of this.items) n.read = true;
      this.renderList();
    } catch (e) {
      this.toast(`Notifications: ${e.message}`, "error");
    }
  }

  renderCount() {
    const n = this.sb.unreadCount;
    $("bell-count").textContent = n ? (n > 99 ? "99+" : String(n)) : "";
    $("bell").title = n ? `${n} unread notification${n === 1 ? "" : "s"}` : "Notifications";
  }

  renderList() {
    const list = $("notif-list");
    if (!this.items.length) list.replaceChildren(el("li", { className: "empty", textContent: "No notifications yet." }));
    else {
      list.replaceChildren(
        ...this.items.map((n) => {
          const li = el("li", { className: n.read ? "read" : "unread", onclick: () => this.markRead(n) });
          li.dataset.id = n.id;
          const when = new Date(n.ts).toLocaleString([], { hour: "2-digit", minute: "2-digit", month: "short", day: "numeric" });
          li.append(
            el("span", { className: "title", textContent: this.title(n) }),
            el("span", { className: "meta", textContent: `${n.from?.name || "?"} · ${when}${n.read ? "" : " · click to mark read"}` }),
          );
          return li;
        }),
      );
    }
    $("notif-more").hidden = !this.more;
    $("notif-all").disabled = !this.items.some((n) => !n.read) && this.sb.unreadCount === 0;
  }

  title(n) {
    const d = n.data;
    if (d && typeof d === "object") {
      const t = d.title || d.text || d.body || d.message;
      if (typeof t === "string") return t;
    }
    return this.textOf(d);
  }
}
