/**
 * The side panels (people, top tippers, moderation log, blocked people) behind one row
 * of tabs. Wide screens always show one; on narrow ones the panels slide over the chat
 * when the People button opens them, and close again (×, Esc) to give the chat back.
 */
import { format, gettext } from "./i18n.js";
import { h } from "./render.js";

export class SidePanels {
  constructor({ root, narrow, onShow, toggle, close }) {
    this.root = root;
    this.narrow = narrow;
    this.onShow = onShow;
    this.toggle = toggle;
    this.tabs = [...root.querySelectorAll("[role=tab][data-panel]")];
    this.current = "people";
    this.open = !narrow.matches;
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.select(tab.dataset.panel));
    }
    root.querySelector("[role=tablist]").addEventListener("keydown", (event) => this.#arrowKeys(event));
    narrow.addEventListener("change", () => {
      this.open = !narrow.matches;
      this.#render();
    });
    toggle?.addEventListener("click", () => {
      if (this.open) this.#fold();
      else {
        this.select(this.current);
        this.tabs.find((t) => t.dataset.panel === this.current)?.focus();
      }
    });
    close?.addEventListener("click", () => this.#fold());
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.narrow.matches && this.open && !event.defaultPrevented) this.#fold();
    });
    this.#render();
  }

  /** Narrow screens: slide the panels away and give focus back to what opened them. */
  #fold() {
    if (!this.narrow.matches) return;
    this.open = false;
    this.#render();
    this.toggle?.focus();
  }

  isShown(name) {
    return this.open && this.current === name;
  }

  select(name) {
    this.open = true;
    this.current = name;
    this.#render();
    if (this.open) this.onShow?.(name);
  }

  /** Show or hide a tab (the log is for the team, the blocked list for signed-in people). */
  setAvailable(name, available) {
    const tab = this.tabs.find((t) => t.dataset.panel === name);
    if (tab) tab.hidden = !available;
    if (!available && this.current === name) this.select("people");
  }

  #render() {
    this.root.dataset.open = String(this.open);
    this.toggle?.setAttribute("aria-expanded", String(this.open));
    for (const tab of this.tabs) {
      const selected = tab.dataset.panel === this.current;
      tab.setAttribute("aria-selected", String(selected && this.open));
      tab.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.hidden = !(selected && this.open);
    }
  }

  #arrowKeys(event) {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const visible = this.tabs.filter((t) => !t.hidden);
    const at = visible.indexOf(document.activeElement);
    if (at < 0) return;
    event.preventDefault();
    const next = visible[(at + (event.key === "ArrowRight" ? 1 : -1) + visible.length) % visible.length];
    next.focus();
  }
}

export class BlockedList {
  /** app: {unblock(person)}; url: the blocks API. */
  constructor(app, { url, list, empty, note }) {
    this.app = app;
    this.url = url;
    this.list = list;
    this.empty = empty;
    this.note = note;
    this.stale = true;
    this.people = [];
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-user-id]");
      if (!button) return;
      button.disabled = true;
      this.app.unblock({ id: Number(button.dataset.userId), name: button.dataset.name });
    });
  }

  shown() {
    if (this.stale) this.refresh();
  }

  async refresh() {
    if (!this.url) return;
    this.stale = false;
    try {
      const response = await fetch(this.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.people = (await response.json()).blocked || [];
    } catch {
      this.stale = true;
      this.empty.textContent = gettext("Couldn't load the people you blocked.");
      this.empty.hidden = false;
      return;
    }
    this.render();
  }

  /** A block or unblock went through; names come from the server on the next look. */
  changed(person, blocked, { visible }) {
    if (blocked) {
      if (!this.people.some((p) => p.id === person.id)) this.people.push({ id: person.id, name: person.name });
      this.people.sort((a, b) => a.name.localeCompare(b.name));
      this.note.hidden = true;
    } else {
      this.people = this.people.filter((p) => p.id !== person.id);
      this.note.textContent = format(gettext("Unblocked %(name)s: their messages show again."), { name: person.name });
      this.note.hidden = false;
    }
    this.stale = !visible;
    this.render();
  }

  render() {
    this.list.replaceChildren(
      ...this.people.map((person) =>
        h("li", { class: "blocked-person" },
          h("span", { class: "blocked-name", text: person.name }),
          h("button", { type: "button", class: "button button-quiet button-small", dataset: { userId: String(person.id), name: person.name }, text: gettext("Unblock") }),
        ),
      ),
    );
    this.empty.hidden = this.people.length > 0;
    this.empty.textContent = gettext("You haven't blocked anyone.");
  }
}
