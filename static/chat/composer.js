/**
 * The message box: Enter sends, Shift+Enter starts a new line, a live character count,
 * and a Send button that only works when a send can actually go out.
 */

/** The body as the server will judge it: trimmed, counted in code points like Python's len(). */
export function measureBody(text) {
  const trimmed = String(text).trim();
  return { trimmed, length: [...trimmed].length };
}

export function canSend({ length, max, connected }) {
  return connected && length > 0 && length <= max;
}

export class Composer {
  constructor({ form, input, button, counter, hint, replyChip, replyText, replyCancel, max, onSubmit }) {
    Object.assign(this, { form, input, button, counter, hint, replyChip, replyText, max, onSubmit });
    this.connected = false;
    this.replyTo = null;
    this.notes = new Map();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      // keyCode 229: an IME is composing; Enter then confirms the composition.
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("input", () => this.refresh());
    replyCancel.addEventListener("click", () => this.setReply(null));
    this.refresh();
  }

  submit() {
    const { trimmed, length } = measureBody(this.input.value);
    if (!canSend({ length, max: this.max, connected: this.connected })) return;
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
    this.replyText.textContent = reply ? `Replying to ${reply.name}: ${reply.excerpt}` : "";
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
    this.button.disabled = !canSend({ length, max: this.max, connected: this.connected });
    const notes = [...this.notes.values()];
    if (!this.connected) notes.unshift("Not connected: your message will wait here.");
    if (length > this.max) notes.unshift(`Too long by ${length - this.max} characters.`);
    this.hint.textContent = notes.join(" · ");
  }
}
