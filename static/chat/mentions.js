/**
 * @mentions: name suggestions while typing `@`, and a count of mentions of you that
 * arrived while you were scrolled up reading older lines.
 */
import { format, ngettext } from "./i18n.js";
import { h } from "./render.js";
import { NAME_CHAR } from "./richtext.js";

const MAX_SUGGESTIONS = 8;
// The token the server resolves (rooms/services/messages.py MENTION_RE) up to the caret:
// `@` not after an ASCII letter or digit, then name characters in any script (你好@小).
const TOKEN_BEFORE_CARET = new RegExp(`(?:^|[^A-Za-z0-9])@(${NAME_CHAR}{0,150})$`, "u");
const NAME_RUN_START = new RegExp(`^${NAME_CHAR}*`, "u");

/** The `@partial` being typed at `caret`, or null. */
export function mentionQuery(text, caret) {
  const match = TOKEN_BEFORE_CARET.exec(text.slice(0, caret));
  if (!match) return null;
  return { query: match[1], start: caret - match[1].length - 1, end: caret };
}

/** Names starting with the query first, then names containing it; case-insensitive. */
export function rankNames(names, query, limit = MAX_SUGGESTIONS) {
  const q = query.toLowerCase();
  const starts = [];
  const contains = [];
  for (const name of names) {
    const lower = name.toLowerCase();
    if (lower.startsWith(q)) starts.push(name);
    else if (q && lower.includes(q)) contains.push(name);
  }
  return [...starts, ...contains].slice(0, limit);
}

export class MentionAutocomplete {
  /** candidates(): names in preference order (team, recent speakers, audience). */
  constructor({ input, list, candidates }) {
    this.input = input;
    this.list = list;
    this.candidates = candidates;
    this.items = [];
    this.active = 0;
    this.token = null;
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", list.id);
    input.addEventListener("input", () => this.update());
    input.addEventListener("click", () => this.update());
    input.addEventListener("blur", () => this.close());
    // mousedown, not click: a click would blur the box (and close the list) first.
    list.addEventListener("mousedown", (event) => {
      const option = event.target.closest("[role=option]");
      if (!option) return;
      event.preventDefault();
      this.accept(Number(option.dataset.index));
    });
  }

  get isOpen() {
    return !this.list.hidden;
  }

  update() {
    const token = mentionQuery(this.input.value, this.input.selectionStart ?? this.input.value.length);
    if (!token) {
      this.close();
      return;
    }
    const names = rankNames(this.candidates(), token.query);
    if (!names.length) {
      this.close();
      return;
    }
    const keep = this.items[this.active];
    this.token = token;
    this.items = names;
    this.active = Math.max(0, names.indexOf(keep));
    this.#render();
  }

  /** Keys while the list is open; true when the key was used here. */
  handleKey(event) {
    if (!this.isOpen || event.isComposing) return false;
    switch (event.key) {
      case "ArrowDown":
        this.#move(1);
        break;
      case "ArrowUp":
        this.#move(-1);
        break;
      case "Enter":
      case "Tab":
        if (event.shiftKey) return false;
        this.accept(this.active);
        break;
      case "Escape":
        this.close();
        // The page-level Esc (closing a popover) must not also fire.
        event.stopPropagation();
        break;
      default:
        return false;
    }
    event.preventDefault();
    return true;
  }

  accept(index) {
    const name = this.items[index];
    if (!name || !this.token) return;
    const { start, end } = this.token;
    const value = this.input.value;
    const after = value.slice(end).replace(NAME_RUN_START, "");
    const insert = `@${name}${after.startsWith(" ") ? "" : " "}`;
    this.input.value = value.slice(0, start) + insert + after;
    const caret = start + insert.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    // The composer counts characters on `input`.
    this.input.dispatchEvent(new Event("input", { bubbles: true }));
    this.close();
  }

  close() {
    this.list.hidden = true;
    this.items = [];
    this.token = null;
    this.input.removeAttribute("aria-activedescendant");
    this.input.setAttribute("aria-expanded", "false");
  }

  #move(step) {
    this.active = (this.active + step + this.items.length) % this.items.length;
    this.#render();
  }

  #render() {
    const id = (i) => `${this.list.id}-${i}`;
    this.list.replaceChildren(
      ...this.items.map((name, i) =>
        h("li", {
          id: id(i),
          role: "option",
          class: "suggestion",
          "aria-selected": String(i === this.active),
          dataset: { index: String(i) },
        }, h("span", { class: "suggestion-at", text: "@" }), name),
      ),
    );
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.input.setAttribute("aria-activedescendant", id(this.active));
  }
}

/**
 * Mentions of you that arrived below where you are reading. A line counts as read once
 * it has been on screen, or when you go back to the newest line.
 */
export class UnreadMentions {
  constructor({ scroller, button, scroll }) {
    this.scroller = scroller;
    this.button = button;
    this.scroll = scroll;
    this.unread = [];
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) if (entry.isIntersecting) this.#read(entry.target);
    }, { root: scroller, threshold: 0.6 });
    scroller.addEventListener("scroll", () => {
      if (this.scroll.stuck) this.clear();
    }, { passive: true });
    button.addEventListener("click", () => this.next());
  }

  /** A line mentioning you was added; only counts while you are scrolled up. */
  add(line) {
    if (this.scroll.stuck) return;
    this.unread.push(line);
    this.observer.observe(line);
    this.#render();
  }

  next() {
    const line = this.unread.find((node) => node.isConnected);
    if (!line) {
      this.clear();
      return;
    }
    line.scrollIntoView({ block: "center" });
    flash(line);
    this.#read(line);
  }

  clear() {
    if (!this.unread.length) return;
    for (const line of this.unread) this.observer.unobserve(line);
    this.unread = [];
    this.#render();
  }

  #read(line) {
    this.observer.unobserve(line);
    this.unread = this.unread.filter((node) => node !== line && node.isConnected);
    this.#render();
  }

  #render() {
    const n = this.unread.length;
    this.button.hidden = n === 0;
    this.button.textContent = format(ngettext("%(n)s mention ↓", "%(n)s mentions ↓", n), { n });
  }
}

/** Draw the eye to a line for a moment (a jump to it, a quoted original). */
export function flash(line) {
  line.classList.remove("flash");
  // Restart the animation when the same line is flashed twice in a row.
  void line.offsetWidth;
  line.classList.add("flash");
  setTimeout(() => line.classList.remove("flash"), 2000);
}
