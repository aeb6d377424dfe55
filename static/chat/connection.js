/**
 * The room socket: connect, stay connected, and hand room events to the page exactly
 * once and in order (PROTOCOL.md).
 *
 * Live delivery may drop, duplicate-by-replay or reorder across a reconnect; the room
 * log is the truth. So every room event goes through a Sequencer, gaps are filled with
 * `sync`, and a reconnect resumes with `?after=<last seq>`.
 */
import { backoffDelay } from "./backoff.js";
import { learn, limits } from "./limits.js";
import { Sequencer } from "./sequencer.js";

export const PING_EVERY_MS = 20_000;
export const DEAD_AFTER_MS = 45_000;
export const GAP_WAIT_MS = 300;
export const STABLE_AFTER_MS = 10_000;
export const KICKED_WAIT_MS = 10_000;
// A server that is shutting down closes its viewers a few at a time; each waits a random
// moment on top, so that a room's worth never knocks on the next server at once.
export const RESTART_JITTER_MS = 2_000;
const SYNC_TIMEOUT_MS = 10_000;
const LONG_HIDDEN_MS = 30_000;
const PROBE_TIMEOUT_MS = 5_000;
const WATCH_EVERY_MS = 5_000;

// Frames that are about this connection, not the room log. Anything else carrying an
// integer `seq` is a room event, including types this client does not know yet.
const CONNECTION_TYPES = new Set(["welcome", "presence", "roster", "ack", "error", "pong", "synced", "you"]);

export function isRoomEvent(frame) {
  return !CONNECTION_TYPES.has(frame.type) && Number.isInteger(frame.seq);
}

/** Split a server frame into its events: a batch carries several, in order. */
export function unpackFrame(frame) {
  if (frame && frame.type === "batch") return Array.isArray(frame.events) ? frame.events : [];
  return frame && typeof frame === "object" ? [frame] : [];
}

export function socketUrl(location, path, after) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL(path, `${scheme}//${location.host}`);
  if (after != null) url.searchParams.set("after", String(after));
  return url.toString();
}

/**
 * What to do after the socket closed with `code`.
 * Returns {reconnect, delay, reason, countsAsFailure}.
 */
export function closePolicy(code, attempt, random = Math.random) {
  // The codes are the server's (welcome.limits.close_codes).
  const codes = limits.close_codes;
  switch (code) {
    case codes.forbidden:
      return { reconnect: false, reason: "forbidden" };
    case codes.not_found:
      return { reconnect: false, reason: "not_found" };
    case codes.kicked:
      return { reconnect: true, delay: KICKED_WAIT_MS, reason: "kicked", countsAsFailure: false };
    case codes.too_far_behind:
      // The server dropped us for falling behind; the log has everything, so resume now.
      return { reconnect: true, delay: 0, reason: "behind", countsAsFailure: false };
    case codes.service_restart:
      // The server is going away, not failing: resume (elsewhere) soon, from the log.
      return { reconnect: true, delay: Math.floor(random() * RESTART_JITTER_MS), reason: "restart", countsAsFailure: false };
    case codes.flooding:
      return {
        reconnect: true,
        delay: 10_000 + backoffDelay(attempt, { base: 2_000, cap: 60_000, random }),
        reason: "flooding",
        countsAsFailure: true,
      };
    default:
      return { reconnect: true, delay: backoffDelay(attempt, { random }), reason: "lost", countsAsFailure: true };
  }
}

export function newClientId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; a plain-http deployment on a LAN address is not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Handlers (all optional):
 *   status({state, retryAt, reason})  state: connecting | live | reconnecting | offline | stopped
 *   welcome(frame, {resumed})          before any history is applied; on a first visit
 *                                      (resumed false) the page renders frame.history itself
 *   event(roomEvent)                   each room event, once, in seq order
 *   ready()                            the connection took its welcome: commands may go out
 *   frame(frame)                       other connection frames (presence, ack, error, roster, pong)
 *   closed(code, policy)               the server closed the socket
 */
export class RoomConnection {
  constructor({ path, handlers = {}, location = window.location, WebSocketImpl = window.WebSocket }) {
    this.path = path;
    this.handlers = handlers;
    this.location = location;
    this.WebSocketImpl = WebSocketImpl;
    this.seq = new Sequencer();
    this.socket = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.holdUntil = 0;
    this.welcomedAt = 0;
    this.lastFrameAt = 0;
    this.hiddenAt = 0;
    this.sync = null;
    this.roomLast = 0;
    this.timers = { reconnect: null, gap: null, ping: null, watch: null, probe: null, syncRetry: null };
    this.status = { state: "connecting", retryAt: 0, reason: "" };
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.#goOffline();
    this.onVisibility = () => this.#visibilityChanged();
  }

  get lastSeq() {
    return this.seq.last;
  }

  start() {
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    document.addEventListener("visibilitychange", this.onVisibility);
    this.#open();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.#discardSocket(limits.close_codes.normal);
    this.#clear("reconnect");
  }

  /** Stop for good with `reason`: the page learned it may not come back (banned while kicked). */
  halt(reason) {
    this.stop();
    this.#setStatus("stopped", 0, reason);
  }

  /** Send a command frame; false when there is no welcomed connection to send it on. */
  send(frame) {
    if (!this.ready || this.socket?.readyState !== 1) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Skip the backoff wait (network came back, user asked, tab woke up). */
  reconnectNow() {
    if (this.stopped || this.socket) return;
    const wait = this.holdUntil - Date.now();
    if (wait > 0) {
      this.#schedule(wait);
      return;
    }
    this.#open();
  }

  // Connecting and losing the connection.

  #open() {
    this.#clear("reconnect");
    if (this.stopped || this.socket) return;
    if (navigator.onLine === false) {
      // Browsers fail every attempt while offline; wait for `online`, with a slow
      // fallback because onLine is only a hint on some systems.
      this.#setStatus("offline", Date.now() + 15_000);
      this.timers.reconnect = setTimeout(() => this.#open(), 15_000);
      return;
    }
    this.#setStatus("connecting");
    const socket = new this.WebSocketImpl(socketUrl(this.location, this.path, this.seq.last));
    this.socket = socket;
    this.ready = false;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.lastFrameAt = Date.now();
      this.timers.ping = setInterval(() => this.#ping(), PING_EVERY_MS);
      this.timers.watch = setInterval(() => this.#watch(), WATCH_EVERY_MS);
    };
    socket.onmessage = (message) => {
      if (socket === this.socket) this.#receive(message.data);
    };
    socket.onclose = (close) => {
      if (socket !== this.socket) return;
      this.#lost(close.code);
    };
  }

  #lost(code) {
    this.#discardSocket();
    if (this.welcomedAt && Date.now() - this.welcomedAt >= STABLE_AFTER_MS) this.attempt = 0;
    this.welcomedAt = 0;
    const policy = closePolicy(code, this.attempt);
    this.handlers.closed?.(code, policy);
    if (!policy.reconnect) {
      this.stopped = true;
      this.#setStatus("stopped", 0, policy.reason);
      return;
    }
    if (policy.countsAsFailure) this.attempt += 1;
    if (policy.reason === "kicked") this.holdUntil = Date.now() + policy.delay;
    this.#schedule(policy.delay);
  }

  #schedule(delay) {
    this.#clear("reconnect");
    if (delay <= 0) {
      this.#open();
      return;
    }
    this.#setStatus("reconnecting", Date.now() + delay);
    this.timers.reconnect = setTimeout(() => this.#open(), delay);
  }

  /** Forget the current socket: its late events must not be applied. */
  #discardSocket(code) {
    const socket = this.socket;
    this.socket = null;
    this.ready = false;
    this.sync = null;
    for (const name of ["gap", "ping", "watch", "probe", "syncRetry"]) this.#clear(name);
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      try {
        socket.close(code);
      } catch {
        // Already closing; nothing to do.
      }
    }
  }

  /** The socket looks dead without having closed (sleep, NAT timeout, proxy). */
  #drop() {
    if (!this.socket) return;
    this.#discardSocket(limits.close_codes.normal);
    this.attempt += 1;
    this.#schedule(0);
  }

  #goOffline() {
    if (this.stopped) return;
    // The connection cannot survive without a network; resume from the log on `online`.
    this.#discardSocket(limits.close_codes.normal);
    this.#clear("reconnect");
    this.#open();
  }

  #visibilityChanged() {
    if (document.visibilityState === "hidden") {
      this.hiddenAt = Date.now();
      return;
    }
    const longHidden = this.hiddenAt && Date.now() - this.hiddenAt >= LONG_HIDDEN_MS;
    this.hiddenAt = 0;
    if (!longHidden || this.stopped) return;
    if (!this.socket) {
      this.reconnectNow();
      return;
    }
    // Background tabs get throttled timers, so the socket may have died unnoticed.
    const probeStart = Date.now();
    this.#ping();
    this.#clear("probe");
    this.timers.probe = setTimeout(() => {
      if (this.lastFrameAt < probeStart) this.#drop();
    }, PROBE_TIMEOUT_MS);
  }

  #ping() {
    if (this.socket?.readyState === 1) this.socket.send(JSON.stringify({ type: "ping", ts: Date.now() }));
  }

  #watch() {
    if (Date.now() - this.lastFrameAt > DEAD_AFTER_MS) this.#drop();
  }

  // Receiving.

  #receive(text) {
    this.lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    for (const event of unpackFrame(frame)) {
      if (event && typeof event.type === "string") this.#dispatch(event);
      // A handler may have torn the connection down (e.g. a resume found a reset log).
      if (!this.socket) return;
    }
    // A batch with `last_seq` says everything up to there was sent: the holes in it were
    // withheld from this viewer (people they blocked), not lost.
    if (frame && frame.type === "batch" && Number.isInteger(frame.last_seq)) {
      this.#deliver(this.seq.advanceTo(frame.last_seq));
      // The room was faster than anyone can read: its feed left member lines out.
      if (Number.isInteger(frame.skipped) && frame.skipped > 0) this.handlers.skipped?.(frame.skipped, frame.last_seq);
    }
  }

  #dispatch(frame) {
    if (isRoomEvent(frame)) {
      this.#offer(frame);
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.#welcome(frame);
        return;
      case "synced":
        if (this.#isSyncReply(frame)) {
          const { after } = this.sync;
          this.sync = null;
          this.#deliver(this.seq.advanceTo(frame.last_seq));
          // A long replay comes in pages (and the server holds live events meanwhile):
          // keep asking while each page moves us forward.
          const behind = frame.truncated === true || this.seq.last < this.roomLast;
          if (behind && this.seq.last > after) this.#requestSync();
          else this.#watchGap();
          return;
        }
        break;
      case "error":
        if (this.sync && frame.client_id === this.sync.clientId) {
          this.sync = null;
          // Syncs have a budget of their own: ask again when the server says we may.
          if (frame.retry_after > 0) {
            this.#clear("syncRetry");
            this.timers.syncRetry = setTimeout(() => {
              this.timers.syncRetry = null;
              this.#requestSync();
            }, frame.retry_after * 1000);
          }
          return;
        }
        break;
      case "pong":
        this.#noteRoomLast(frame.last_seq);
        if (this.seq.last !== null && this.roomLast > this.seq.last) this.#requestSync();
        break;
      default:
        break;
    }
    this.handlers.frame?.(frame);
  }

  #isSyncReply(frame) {
    return this.sync !== null && (frame.client_id == null || frame.client_id === this.sync.clientId);
  }

  #welcome(frame) {
    learn(frame.limits);
    const history = Array.isArray(frame.history) ? frame.history.filter((e) => Number.isInteger(e?.seq)) : [];
    const roomLast = Number.isInteger(frame.last_seq) ? frame.last_seq : 0;
    // A log that is now shorter than what we saw was reset: start over as a first visit.
    const resumed = this.seq.last !== null && roomLast >= this.seq.last;
    this.welcomedAt = Date.now();
    this.holdUntil = 0;
    this.ready = true;
    this.roomLast = roomLast;
    this.handlers.welcome?.(frame, { resumed });
    if (!resumed) {
      this.seq.reset(Math.max(roomLast, ...history.map((e) => e.seq)));
    } else {
      for (const event of history) this.#offer(event);
      // A truncated resume is paged in with sync; otherwise the welcome vouches for
      // everything up to last_seq (what is missing was withheld, e.g. blocked authors).
      if (frame.history_truncated) this.#requestSync();
      else this.#deliver(this.seq.advanceTo(roomLast));
    }
    this.#setStatus("live");
    this.handlers.ready?.();
    this.#watchGap();
  }

  #noteRoomLast(seq) {
    if (Number.isInteger(seq) && seq > this.roomLast) this.roomLast = seq;
  }

  #offer(event) {
    this.#noteRoomLast(event.seq);
    this.#deliver(this.seq.push(event));
    this.#watchGap();
  }

  #deliver(events) {
    for (const event of events) this.handlers.event?.(event);
  }

  #watchGap() {
    if (!this.seq.hasGap) {
      this.#clear("gap");
      return;
    }
    if (this.timers.gap) return;
    this.timers.gap = setTimeout(() => {
      this.timers.gap = null;
      if (this.seq.hasGap) this.#requestSync();
    }, GAP_WAIT_MS);
  }

  #requestSync() {
    if (this.sync && Date.now() - this.sync.at < SYNC_TIMEOUT_MS) return;
    if (this.socket?.readyState !== 1 || this.seq.last === null) return;
    const clientId = `sync-${newClientId()}`;
    this.sync = { clientId, at: Date.now(), after: this.seq.last };
    this.socket.send(JSON.stringify({ type: "sync", after: this.seq.last, client_id: clientId }));
  }

  // Bookkeeping.

  #clear(name) {
    const timer = this.timers[name];
    if (timer) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this.timers[name] = null;
  }

  #setStatus(state, retryAt = 0, reason = "") {
    this.status = { state, retryAt, reason };
    this.handlers.status?.(this.status);
  }
}
