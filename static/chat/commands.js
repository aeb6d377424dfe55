/**
 * Commands that are not chat lines (moderation, tips, blocks, room controls): each goes
 * out with a client_id and settles on the one `ack` or `error` that carries it back.
 */
import { newClientId } from "./connection.js";
import { gettext } from "./i18n.js";

const ANSWER_WITHIN_MS = 10_000;

export class CommandError extends Error {
  constructor(code, detail, retryAfter = null) {
    super(detail);
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

export class Commands {
  constructor(connection) {
    this.connection = connection;
    this.pending = new Map();
  }

  /**
   * Send `frame`; resolves with the ack, rejects with a CommandError. Pass `clientId`
   * to repeat an attempt whose answer never came (tips: the server then stores it once).
   */
  run(frame, { clientId = newClientId() } = {}) {
    return new Promise((resolve, reject) => {
      if (!this.connection.send({ ...frame, client_id: clientId })) {
        reject(new CommandError("offline", gettext("Not connected: try again when the chat reconnects.")));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(clientId);
        reject(new CommandError("timeout", gettext("No answer from the server yet: check before trying again.")));
      }, ANSWER_WITHIN_MS);
      this.pending.set(clientId, { resolve, reject, timer });
    });
  }

  /** Settle the command an `ack`/`error` answers; false when it is not one of these. */
  settle(frame) {
    const waiting = frame.client_id != null && this.pending.get(frame.client_id);
    if (!waiting) return false;
    this.pending.delete(frame.client_id);
    clearTimeout(waiting.timer);
    if (frame.type === "ack") waiting.resolve(frame);
    else waiting.reject(new CommandError(frame.code, frame.detail || gettext("That did not work."), frame.retry_after ?? null));
    return true;
  }

  /** The socket went away: no answer is coming on it. */
  abandon() {
    for (const [clientId, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new CommandError("lost", gettext("The connection dropped before the server answered; check before trying again.")));
      this.pending.delete(clientId);
    }
  }
}
