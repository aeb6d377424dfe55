/**
 * Messages this tab sent that the room has not shown back yet.
 *
 * An entry keeps its client_id for its whole life: resending after a reconnect or a
 * retry after an error reuses it, so the server's idempotency on client_id guarantees
 * the message is stored at most once.
 */
import { gettext } from "./i18n.js";

export const SENDING = "sending";
export const SENT = "sent";
export const FAILED = "failed";

export class Outbox {
  constructor() {
    this.entries = new Map();
  }

  add({ clientId, body, replyTo = null }) {
    const entry = { clientId, body, replyTo, state: SENDING, code: "", detail: "", retryAt: 0, node: null };
    this.entries.set(clientId, entry);
    return entry;
  }

  get(clientId) {
    return clientId == null ? undefined : this.entries.get(clientId);
  }

  /** The room echoed the message: the entry is done. */
  resolve(clientId) {
    const entry = this.get(clientId);
    if (entry) this.entries.delete(clientId);
    return entry;
  }

  /** Stored by the server; the echo is on its way (live, or by replay). */
  ack(clientId) {
    const entry = this.get(clientId);
    if (entry && entry.state !== FAILED) entry.state = SENT;
    return entry;
  }

  fail(clientId, { code = "", detail, retryAfter, now = Date.now() }) {
    const entry = this.get(clientId);
    if (!entry) return undefined;
    entry.state = FAILED;
    entry.code = code;
    entry.detail = detail || gettext("Not sent.");
    entry.retryAt = retryAfter > 0 ? now + retryAfter * 1000 : 0;
    return entry;
  }

  retry(clientId) {
    const entry = this.get(clientId);
    if (entry) {
      entry.state = SENDING;
      entry.code = "";
      entry.detail = "";
      entry.retryAt = 0;
    }
    return entry;
  }

  /**
   * The reason `code` no longer holds (an unmute ended the mute early): the entries it
   * failed may be retried now. Returns them, to redraw.
   */
  release(code) {
    const freed = [];
    for (const entry of this.entries.values()) {
      if (entry.state === FAILED && entry.code === code && entry.retryAt) {
        entry.retryAt = 0;
        freed.push(entry);
      }
    }
    return freed;
  }

  discard(clientId) {
    return this.resolve(clientId);
  }

  /** What must go (again) to the server on a fresh connection: not acked, not failed. */
  unsent() {
    return [...this.entries.values()].filter((entry) => entry.state === SENDING);
  }

  all() {
    return [...this.entries.values()];
  }
}

/** The `send` frame for an entry. */
export function sendFrame(entry) {
  const frame = { type: "send", client_id: entry.clientId, body: entry.body };
  if (entry.replyTo != null) frame.reply_to = entry.replyTo.id;
  return frame;
}
