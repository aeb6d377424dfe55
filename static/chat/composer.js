/**
 * The message box: Enter sends, Shift+Enter starts a new line, a live character count,
 * and a Send button that only works when a send can actually go out. In slow mode the
 * button counts down to the next allowed send; while muted or banned nothing goes out.
 * The draft always stays put.
 */
import { format, gettext } from "./i18n.js";
import { limits } from "./limits.js";

/** The body as the server will judge it: trimmed, counted in code points like Python's len(). */
export function measureBody(text) {
  const trimmed = String(text).trim();
  return { trimmed, length: [...trimmed].length };
}

export function canSend({ length, max, connected }) {
  return connected && length > 0 && length <= max;
}

export class Composer {
  constructor({ form, input, button, counter, hint, status, replyChip, replyText, replyCancel, onSubmit, onKey }) {
    Object.assign(this, { form, input, button, counter, hint, status, replyChip, replyText, onSubmit, onKey });
    this.connected = false;
    // Why nothing may be sent now (muted, banned), or "": the send is then held back
    // here, where the draft stays, rather than failing at the server.
    this.blocked = "";
    this.replyTo = null;
    this.notes = new Map();
    this.cooldownUntil = 0;
    this.buttonLabel = button.textContent;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      // Autocomplete gets the keys first: Enter then picks a name instead of sending.
      if (this.onKey?.(event)) return;
      // keyCode 229: an IME is composing; Enter then confirms the composition.
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("input", () => this.refresh());
    replyCancel.addEventListener("click", () => this.setReply(null));
    this.refresh();
  }

  /** The longest body the server takes (welcome.limits). */
  get max() {
    return limits.body_max_chars;
  }

  submit() {
    const { trimmed, length } = measureBody(this.input.value);
    if (!canSend({ length, max: this.max, connected: this.connected }) || this.cooling() || this.blocked) return;
    this.onSubmit({ body: trimmed, replyTo: this.replyTo });
    // Setting .value fires no input event, so the counter and button need a refresh.
    this.input.value = "";
    this.setReply(null);
    this.refresh();
    this.input.focus();
  }

  setConnected(connected) {
    this.connected = connected;
    this.refresh();
  }

  setReply(reply) {
    this.replyTo = reply;
    this.replyChip.hidden = !reply;
    this.replyText.textContent = reply ? format(gettext("Replying to %(name)s: %(excerpt)s"), reply) : "";
    if (reply) this.input.focus();
  }

  /** Put text back for editing (a failed send), without clobbering a draft. */
  restore(body, replyTo) {
    if (this.input.value.trim()) this.input.value = `${this.input.value.trimEnd()}\n${body}`;
    else this.input.value = body;
    if (replyTo) this.setReply(replyTo);
    this.refresh();
    this.input.focus();
  }

  /** Slow mode: no send before `until` (ms since epoch); 0 lifts it. */
  setCooldown(until) {
    this.cooldownUntil = until;
    this.refresh();
  }

  cooling(now = Date.now()) {
    return this.cooldownUntil > now;
  }

  /** A line above the box for a state that blocks sending (muted), or "" to clear it. */
  setStatus(text) {
    if (!this.status) return;
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  /** Hold every send back (muted, banned: `why`), or "" to allow them again. */
  setBlocked(why) {
    if (this.blocked === why) return;
    this.blocked = why;
    this.refresh();
  }

  /** A standing note under the box (muted, slow mode); keyed so each can be cleared. */
  note(key, text) {
    if (text) this.notes.set(key, text);
    else this.notes.delete(key);
    this.refresh();
  }

  refresh() {
    const { length } = measureBody(this.input.value);
    this.counter.textContent = `${length}/${this.max}`;
    this.counter.classList.toggle("over", length > this.max);
    this.counter.classList.toggle("near", length > this.max * 0.9 && length <= this.max);
    const wait = Math.ceil((this.cooldownUntil - Date.now()) / 1000);
    this.button.disabled = !canSend({ length, max: this.max, connected: this.connected }) || wait > 0 || Boolean(this.blocked);
    this.button.textContent = wait > 0 ? format(gettext("%(n)s s"), { n: wait }) : this.buttonLabel;
    this.button.classList.toggle("cooling", wait > 0);
    this.button.title = wait > 0 ? format(gettext("Slow mode: you can send again in %(n)s s"), { n: wait }) : "";
    const notes = [...this.notes.values()];
    // A banned viewer is not coming back: "will wait" would be a false promise.
    if (!this.connected && !this.blocked) notes.unshift(gettext("Not connected: your message will wait here."));
    if (length > this.max) notes.unshift(format(gettext("Too long by %(n)s characters."), { n: length - this.max }));
    this.hint.textContent = notes.join(gettext(" · "));
  }
}
