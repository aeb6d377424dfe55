/**
 * The message list: room events as lines, in seq order, with this tab's pending sends
 * at the bottom; older pages from the events API; view filters; finding a quoted
 * original.
 */
import { flash } from "./mentions.js";
import { format, gettext, ngettext } from "./i18n.js";
import { isTeam } from "./roles.js";
import * as view from "./render.js";

// Enough scrollback to read a conversation; beyond it a busy room would only eat memory.
const MAX_LINES = 600;
const OLDER_PAGE = 100;
// How far back a click on a quote looks for the original before giving up.
const QUOTE_SEARCH_PAGES = 5;
// A burst is the same short line again and again ("666", "GG", "哈哈哈", an emote code):
// the line directly above takes it as "666 ×42" instead of a new line. Short means at
// most this many characters (code points) once trimmed: chants and emote codes fit,
// sentences don't, and a sentence said twice is worth reading twice.
const BURST_MAX_CHARS = 20;

export class MessageList {
  /**
   * context(roomBefore): the render context ({me, signedIn, roomBefore});
   * isBlocked(event): whether the viewer blocked the event's author.
   */
  constructor({ list, loadOlderButton, filterControl, scroll, outbox, eventsApi, context, isBlocked, toast }) {
    Object.assign(this, { list, loadOlderButton, filterControl, scroll, outbox, eventsApi, context, isBlocked, toast });
    this.oldestSeq = null;
    this.filter = "all";
    this.olderLoading = null;
    // A burst line's messages, by id, first one first: the events themselves, so the
    // line can count them, name who sent them, and show another one if the first goes.
    this.bursts = new WeakMap();
    loadOlderButton.addEventListener("click", () => this.loadOlder());
    filterControl.addEventListener("click", (event) => {
      const button = event.target.closest("[data-filter]");
      if (button) this.setFilter(button.dataset.filter);
    });
  }

  /** The line showing message `id`: its own, or the burst line it was counted into. */
  find(id) {
    if (!Number.isInteger(id)) return null;
    return (
      this.list.querySelector(`li.msg[data-message-id="${id}"]`) ||
      this.list.querySelector(`li.msg[data-burst-ids~="${id}"]`)
    );
  }

  /**
   * What a message is as part of a burst (its trimmed body), or null when it always shows
   * in full: replies, mentions, the viewer's own lines and the host team's.
   */
  #burstKey(event) {
    if (!this.#mayBurst(event) || event.deleted) return null;
    const body = String(event.body ?? "").trim();
    return body && [...body].length <= BURST_MAX_CHARS ? body : null;
  }

  #mayBurst(event) {
    if (event.type !== "message" || event.reply_to || event.mentions?.length) return false;
    const author = event.author;
    return author?.id != null && author.id !== this.context().me?.id && !isTeam(author);
  }

  /**
   * Whether `event`, a message deleted before the page read the log, sat inside a burst:
   * between `before`, a burst line, and `next`, the next message, which carries it on.
   * The log keeps no body for it; left out, the burst reads as it would have had it been
   * deleted while on screen, instead of broken in two by "message deleted".
   */
  #deletedInBurst(event, before, next) {
    if (!event.deleted || !this.#mayBurst(event) || !before || !this.bursts.has(before)) return false;
    return Boolean(next) && !before.classList.contains("deleted") && this.#burstKey(next) === before.dataset.burstKey;
  }

  /** Note that `node`, just rendered for `event`, may take the same line after it. */
  #startBurst(node, event) {
    const key = this.#burstKey(event);
    if (!key) return;
    node.dataset.burstKey = key;
    this.bursts.set(node, new Map([[event.id, event]]));
  }

  /** Count `event` into `line` if it repeats it; true if it did. */
  #joinBurst(line, event) {
    const members = line ? this.bursts.get(line) : null;
    if (!members || line.classList.contains("deleted") || line.dataset.burstKey !== this.#burstKey(event)) return false;
    members.set(event.id, event);
    this.#paintBurst(line);
    return true;
  }

  /**
   * Show a burst line as its messages now are: counted, with another message in front
   * when the one it showed has gone, and gone itself with the last of them.
   */
  #paintBurst(line) {
    const members = this.bursts.get(line);
    if (members.size === 0) {
      const hadFocus = line.contains(document.activeElement);
      line.remove();
      // Keep a keyboard reader in the list (roving.js takes it to a line), not on <body>.
      if (hadFocus) this.list.focus();
      return;
    }
    const [first] = members.values();
    if (line.dataset.messageId !== String(first.id)) view.retargetMessage(line, first, this.context());
    if (members.size > 1) line.dataset.burst = "true";
    line.dataset.burstIds = [...members.keys()].join(" ");
    const names = [...new Set([...members.values()].map((event) => view.displayName(event.author)))];
    view.paintBurst(line, { count: members.size, body: line.dataset.burstKey, names });
  }

  /**
   * Take the messages for which `keep(event)` is false out of burst lines (deleted,
   * or their author blocked); true if `line` is one that has been a burst, which
   * then shows what is left rather than "message deleted".
   */
  #leaveBurst(line, keep) {
    const members = this.bursts.get(line);
    if (!members || line.dataset.burst !== "true") return false;
    for (const [id, event] of members) if (!keep(event)) members.delete(id);
    this.#paintBurst(line);
    return true;
  }

  /**
   * Fold burst lines that now sit next to each other into the first: what stood between
   * them went (a block, skipped lines shown), and the log read afresh would fold them too.
   */
  #mergeBursts() {
    for (const line of this.list.querySelectorAll(":scope > li[data-burst-key]")) {
      if (!line.isConnected || line.classList.contains("deleted")) continue;
      const members = this.bursts.get(line);
      let next = line.nextElementSibling;
      while (next && next.dataset.burstKey === line.dataset.burstKey && !next.classList.contains("deleted")) {
        for (const [id, event] of this.bursts.get(next) ?? []) members.set(id, event);
        next.remove();
        next = line.nextElementSibling;
      }
      if (members) this.#paintBurst(line);
    }
  }

  /** The newest confirmed line: this tab's pending sends stay below it. */
  #lastConfirmed() {
    const pending = this.list.querySelector(":scope > li.pending");
    return pending ? pending.previousElementSibling : this.list.lastElementChild;
  }

  /** Render `events` as lines for a page of the log, bursts collapsed among them. */
  #renderRun(events, { before = null, skip = () => false } = {}) {
    const nodes = [];
    let roomBefore = null;
    events.forEach((event, at) => {
      const ctx = this.context(roomBefore);
      if (event.type === "room") roomBefore = event;
      if (skip(event)) return;
      const last = nodes.at(-1) ?? before;
      if (this.#deletedInBurst(event, last, nextMessage(events, at))) return;
      if (event.type === "message" && this.#joinBurst(last, event)) return;
      const node = view.renderEvent(event, ctx);
      if (!node) return;
      if (event.type === "message") this.#startBurst(node, event);
      nodes.push(node);
    });
    return nodes;
  }

  /** Confirmed lines go above this tab's pending ones, which stay at the bottom. */
  insert(node) {
    this.list.insertBefore(node, this.list.querySelector(":scope > li.pending"));
  }

  appendPending(node) {
    this.list.append(node);
  }

  /** Whether the current view filter shows `node`. */
  shows(node) {
    if (this.filter === "tips") return node.classList.contains("tip");
    if (this.filter === "team") {
      return node.classList.contains("notice") || (node.classList.contains("msg") && node.classList.contains("by-team"));
    }
    return true;
  }

  setFilter(name) {
    this.filter = name;
    this.list.dataset.filter = name;
    for (const button of this.filterControl.querySelectorAll("[data-filter]")) {
      button.setAttribute("aria-checked", String(button.dataset.filter === name));
    }
    this.scroll.toBottom();
  }

  /** Apply one room event; returns the new line, if it added one. */
  apply(event, roomBefore) {
    if (event.type === "message_deleted") {
      const line = this.find(event.id);
      if (line && !this.#leaveBurst(line, (message) => message.id !== event.id)) view.markDeleted(line);
      // Replies keep quoting the message; the log redacts those quotes, so the page does too.
      if (Number.isInteger(event.id)) {
        for (const quote of this.list.querySelectorAll(`.msg-reply[data-reply-to="${event.id}"]`)) {
          quote.classList.add("is-deleted");
          quote.querySelector(".msg-reply-excerpt").textContent = gettext("message deleted");
        }
      }
      return null;
    }
    // The server stops sending a blocked person's lines, but some may be in flight.
    if ((event.type === "message" || event.type === "tip") && this.isBlocked(event)) return null;
    const me = this.context().me;
    if (event.type === "message" && event.client_id && event.author?.id === me?.id) {
      this.outbox.resolve(event.client_id)?.node?.remove();
    }
    const existing = event.type === "message" ? this.find(event.id) : null;
    // Counted into a burst already (a replay): counted once, unless it says it was deleted.
    if (existing && existing.dataset.burst === "true") {
      if (event.deleted) this.#leaveBurst(existing, (message) => message.id !== event.id);
      return null;
    }
    if (!existing && event.type === "message" && this.#joinBurst(this.#lastConfirmed(), event)) return null;
    const node = view.renderEvent(event, this.context(roomBefore));
    if (!node) return null;
    if (event.type === "message") this.#startBurst(node, event);
    if (existing) {
      existing.replaceWith(node);
      return null;
    }
    this.insert(node);
    if (this.oldestSeq == null && Number.isInteger(event.seq)) this.oldestSeq = event.seq;
    return node;
  }

  /** Drop the oldest lines past the cap, only while the reader is at the bottom. */
  trim() {
    if (!this.scroll.stuck) return;
    const lines = this.list.children;
    let excess = lines.length - MAX_LINES;
    while (excess > 0 && lines[0] && !lines[0].classList.contains("pending")) {
      lines[0].remove();
      excess -= 1;
    }
    const first = this.list.querySelector(":scope > li[data-seq]:not([data-seq=''])");
    if (first) {
      this.oldestSeq = Number(first.dataset.seq);
      this.loadOlderButton.hidden = this.oldestSeq <= 1;
    }
  }

  renderHistory(history) {
    const pending = this.outbox.all().map((entry) => entry.node).filter(Boolean);
    this.list.replaceChildren(...pending);
    this.oldestSeq = null;
    // Room events in history describe what changed then, relative to the one before.
    let roomBefore = null;
    history.forEach((event, at) => {
      if (!this.#deletedInBurst(event, this.#lastConfirmed(), nextMessage(history, at))) this.apply(event, roomBefore);
      if (event.type === "room") roomBefore = event;
    });
    this.loadOlderButton.hidden = !(this.oldestSeq > 1);
    this.scroll.toBottom();
  }

  /** Remove what a person wrote or tipped (they were just blocked). */
  removeAuthor(id) {
    for (const line of this.list.querySelectorAll(":scope > li[data-burst]")) {
      this.#leaveBurst(line, (message) => message.author?.id !== id);
    }
    for (const node of this.list.querySelectorAll(`li[data-author-id="${id}"]`)) {
      if (!node.classList.contains("pending")) node.remove();
    }
    this.#mergeBursts();
  }

  /**
   * Put back what a person wrote or tipped within the stretch of the log on screen
   * (they were just unblocked). The events API leaves out only whom the viewer blocks
   * now, so it has their lines again.
   */
  async restoreAuthor(id) {
    if (!this.eventsApi || !(this.oldestSeq >= 1)) return;
    const url = new URL(this.eventsApi, window.location.href);
    url.searchParams.set("after", String(this.oldestSeq - 1));
    url.searchParams.set("limit", "1000");
    let events;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      events = (await response.json()).events || [];
    } catch {
      this.toast(gettext("Couldn't load their earlier messages. Reload the page to see them."));
      return;
    }
    const wasAtBottom = this.scroll.stuck;
    for (const event of events) {
      const author = (event.author ?? event.from)?.id;
      if (author !== id || (event.type !== "message" && event.type !== "tip") || this.isBlocked(event)) continue;
      if (this.list.querySelector(`:scope > li[data-seq="${event.seq}"]`)) continue;
      if (event.type === "message" && this.find(event.id)) continue;
      const node = view.renderEvent(event, this.context());
      if (!node) continue;
      if (event.type === "message") this.#startBurst(node, event);
      this.#insertAtSeq(node, event.seq);
    }
    if (wasAtBottom) this.scroll.toBottom();
  }

  /** Insert a line where its seq puts it among the lines shown. */
  #insertAtSeq(node, seq) {
    for (const line of this.list.children) {
      const at = Number(line.dataset.seq || NaN);
      if (Number.isInteger(at) && at > seq) {
        this.list.insertBefore(node, line);
        return;
      }
    }
    this.insert(node);
  }

  /** Prepend the page of the log before the oldest line shown; true if it loaded. */
  loadOlder() {
    if (!(this.oldestSeq > 1) || !this.eventsApi) return Promise.resolve(false);
    this.olderLoading ??= this.#fetchOlder().finally(() => {
      this.olderLoading = null;
    });
    return this.olderLoading;
  }

  async #fetchOlder() {
    this.loadOlderButton.disabled = true;
    const after = Math.max(0, this.oldestSeq - 1 - OLDER_PAGE);
    const url = new URL(this.eventsApi, window.location.href);
    url.searchParams.set("after", String(after));
    url.searchParams.set("limit", String(OLDER_PAGE));
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      const older = (data.events || []).filter(
        (event) => Number.isInteger(event.seq) && event.seq < this.oldestSeq && !this.isBlocked(event),
      );
      const nodes = this.#renderRun(older, { skip: (event) => event.type === "message" && Boolean(this.find(event.id)) });
      this.scroll.keepPosition(() => this.list.prepend(...nodes));
      this.oldestSeq = after + 1;
      this.loadOlderButton.hidden = this.oldestSeq <= 1;
      return true;
    } catch {
      this.toast(gettext("Couldn't load earlier messages. Try again in a moment."));
      return false;
    } finally {
      this.loadOlderButton.disabled = false;
    }
  }

  /**
   * Note member lines the room's readable feed left out, up to `lastSeq`: one line that
   * counts them (bursts in a row add up), with a button that loads them in its place.
   */
  noteSkipped(count, lastSeq) {
    let line = this.list.querySelector(":scope > li.skipped:last-of-type");
    const last = this.list.querySelector(":scope > li:not(.pending):last-of-type");
    if (!line || line !== last) {
      line = document.createElement("li");
      line.className = "line system system-skipped skipped";
      line.dataset.count = "0";
      line.dataset.after = String(lastSeq - count);
      const text = document.createElement("span");
      const show = document.createElement("button");
      show.type = "button";
      show.className = "link-button";
      show.textContent = gettext("Show them");
      // Reached with the arrow keys like every button in the list (roving.js).
      show.tabIndex = -1;
      show.addEventListener("click", () => this.#loadSkipped(line));
      line.append(text, " ", show);
      this.insert(line);
    }
    line.dataset.count = String(Number(line.dataset.count) + count);
    line.dataset.upto = String(lastSeq);
    const total = Number(line.dataset.count);
    line.firstChild.textContent = format(
      ngettext(
        "%(n)s message skipped: the room is moving faster than anyone can read.",
        "%(n)s messages skipped: the room is moving faster than anyone can read.",
        total,
      ),
      { n: total },
    );
  }

  async #loadSkipped(line) {
    const url = new URL(this.eventsApi, window.location.href);
    url.searchParams.set("after", line.dataset.after);
    url.searchParams.set("limit", String(Math.min(1000, Number(line.dataset.upto) - Number(line.dataset.after))));
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      // The skipped lines may carry on the burst just above the note.
      const nodes = this.#renderRun(data.events || [], {
        before: line.previousElementSibling,
        skip: (event) => event.type !== "message" || Boolean(this.find(event.id)) || this.isBlocked(event),
      });
      this.scroll.keepPosition(() => {
        line.replaceWith(...nodes);
        this.#mergeBursts();
      });
    } catch {
      this.toast(gettext("Couldn't load the skipped messages. Try again in a moment."));
    }
  }

  /** A click on a quote: show the original, paging back through the log if need be. */
  async showOriginal(id) {
    let line = this.find(id);
    for (let page = 0; !line && page < QUOTE_SEARCH_PAGES && this.oldestSeq > 1; page += 1) {
      if (!(await this.loadOlder())) return;
      line = this.find(id);
    }
    if (!line) {
      this.toast(gettext("The original message is no longer available."), "info");
      return;
    }
    if (!this.shows(line)) this.setFilter("all");
    line.scrollIntoView({ block: "center" });
    flash(line);
  }
}

/**
 * The message after `events[at]`, past deletions (they add no line); null when an event
 * of another kind comes first.
 */
function nextMessage(events, at) {
  for (let i = at + 1; i < events.length; i += 1) {
    if (events[i].type === "message") return events[i];
    if (events[i].type !== "message_deleted") return null;
  }
  return null;
}
