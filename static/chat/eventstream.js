/**
 * The server-sent-events fallback (PROTOCOL.md "Server-sent events") for networks where
 * the WebSocket does not get through, and the choice between the two.
 *
 * `EventStreamSocket` looks like a WebSocket to RoomConnection: frames arrive through
 * `onmessage`, commands go out with `send` (POSTed to the commands endpoint, whose
 * replies arrive like socket frames), and an ending is an `onclose` with the socket's
 * close code. So the connection's exactly-once bookkeeping, resume with ?after= and
 * backoff are the same on both transports.
 *
 * `TransportChooser` opens WebSockets until they keep failing to open (FAILURES_TO_FALL_BACK
 * in a row, or none opening within OPEN_TIMEOUT_MS), then streams; while streaming it
 * probes for a WebSocket now and then and goes back to one when it opens.
 */
import { gettext } from "./i18n.js";
import { limits } from "./limits.js";

export const FAILURES_TO_FALL_BACK = 2;
export const OPEN_TIMEOUT_MS = 5_000;
export const PROBE_FIRST_MS = 60_000;
export const PROBE_MAX_MS = 600_000;

// Every frame type the server sends: an EventSource hears only the types it listens to.
const FRAME_TYPES = [
  "welcome", "batch", "presence", "roster", "ack", "error", "pong", "synced", "you",
  "message", "message_deleted", "tip", "notice", "moderation", "room",
];

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/** The page's CSRF token: the forms' hidden field, else the cookie. */
export function csrfToken(doc = document) {
  const field = doc.querySelector("input[name=csrfmiddlewaretoken]");
  if (field?.value) return field.value;
  const cookie = doc.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : "";
}

/** The stream's URL for a socket URL's `after` (the same resume point). */
export function streamUrl(socketUrl, streamPath) {
  const after = new URL(socketUrl).searchParams.get("after");
  const url = new URL(streamPath, window.location.href);
  if (after != null) url.searchParams.set("after", after);
  return url.toString();
}

export class EventStreamSocket {
  constructor(url, { streamPath, commandsPath, EventSourceImpl = window.EventSource, fetchImpl = window.fetch.bind(window) }) {
    this.readyState = CONNECTING;
    this.onopen = this.onmessage = this.onclose = null;
    this.commandsPath = commandsPath;
    this.fetch = fetchImpl;
    this.outgoing = [];
    this.posting = false;
    this.source = new EventSourceImpl(streamUrl(url, streamPath));
    this.source.onopen = () => {
      if (this.readyState !== CONNECTING) return;
      this.readyState = OPEN;
      this.onopen?.({});
    };
    // A stream that ends or breaks is resumed by the connection (from its last seq), on
    // whichever transport it picks then: not by the EventSource on its own.
    this.source.onerror = () => this.#end(1006);
    for (const type of FRAME_TYPES) this.source.addEventListener(type, (event) => this.#frame(event.data));
  }

  send(text) {
    if (this.readyState !== OPEN) return;
    const frame = JSON.parse(text);
    if (frame.type === "ping") return; // The stream's own pongs keep it known to be alive.
    if (frame.type === "sync") {
      // A gap: the stream is resumed from the connection's last seq instead.
      this.#end(limits.close_codes.too_far_behind);
      return;
    }
    this.outgoing.push(frame);
    this.#post();
  }

  close() {
    this.#end(limits.close_codes.normal, { quiet: true });
  }

  #frame(data) {
    if (this.readyState === CLOSED) return;
    this.onmessage?.({ data });
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    // An error with `close` ends the stream for good (kicked, banned, signed out).
    if (frame.type === "error" && Number.isInteger(frame.close)) this.#end(frame.close);
  }

  /** POST what is waiting, one request at a time so that replies keep their order. */
  async #post() {
    if (this.posting || !this.outgoing.length) return;
    this.posting = true;
    const frames = this.outgoing.splice(0);
    try {
      const response = await this.fetch(this.commandsPath, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(frames),
      });
      const body = await response.json();
      for (const reply of body.replies || []) this.#frame(JSON.stringify(reply));
      if (!response.ok) throw new Error(`commands answered ${response.status}`);
    } catch {
      // Unanswered commands are sent again from the page's outbox after the resume.
      this.#end(1006);
    } finally {
      this.posting = false;
    }
    this.#post();
  }

  #end(code, { quiet = false } = {}) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.outgoing = [];
    this.source.close();
    if (!quiet) this.onclose?.({ code });
  }
}

/**
 * Hands RoomConnection a WebSocket or an EventStreamSocket at each (re)connect.
 * `onChange(transport)` hears "websocket" or "sse" whenever the choice changes.
 */
export class TransportChooser {
  constructor({
    streamPath,
    commandsPath,
    onChange = () => {},
    WebSocketImpl = window.WebSocket,
    EventSourceImpl = window.EventSource,
    fetchImpl = window.fetch.bind(window),
    openTimeoutMs = OPEN_TIMEOUT_MS,
    probeFirstMs = PROBE_FIRST_MS,
  }) {
    this.streamPath = streamPath;
    this.commandsPath = commandsPath;
    this.onChange = onChange;
    this.WebSocketImpl = WebSocketImpl;
    this.EventSourceImpl = EventSourceImpl;
    this.fetchImpl = fetchImpl;
    this.openTimeoutMs = openTimeoutMs;
    this.probeFirstMs = probeFirstMs;
    this.transport = "websocket";
    this.failures = 0;
    this.probeDelay = probeFirstMs;
    this.probeTimer = null;
    this.current = null;
    const chooser = this;
    // RoomConnection calls `new WebSocketImpl(url)`: a constructor that returns the chosen socket.
    this.Impl = function ChosenSocket(url) {
      return chooser.#open(url);
    };
  }

  #open(url) {
    if (this.transport === "sse") {
      this.current = new EventStreamSocket(url, {
        streamPath: this.streamPath,
        commandsPath: this.commandsPath,
        EventSourceImpl: this.EventSourceImpl,
        fetchImpl: this.fetchImpl,
      });
      this.#scheduleProbe(url);
      return this.current;
    }
    const socket = new this.WebSocketImpl(url);
    this.current = socket;
    let opened = false;
    const timeout = setTimeout(() => {
      // A proxy that holds the upgrade open without answering: give up on it (its close
      // counts as a failure).
      if (!opened) socket.close();
    }, this.openTimeoutMs);
    socket.addEventListener("open", () => {
      opened = true;
      clearTimeout(timeout);
      this.failures = 0;
    });
    socket.addEventListener("close", () => {
      clearTimeout(timeout);
      if (!opened) this.#failed();
    });
    return socket;
  }

  #failed() {
    this.failures += 1;
    if (this.failures >= FAILURES_TO_FALL_BACK && this.transport !== "sse") this.#use("sse");
  }

  #use(transport) {
    this.transport = transport;
    this.failures = 0;
    this.onChange(transport);
  }

  /** While streaming, try a WebSocket now and then; when one opens, resume on it. */
  #scheduleProbe(url) {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      if (this.transport !== "sse") return;
      // A first visit's URL: the probe only has to open, not replay anything.
      const probe = new this.WebSocketImpl(url.split("?")[0]);
      const giveUp = setTimeout(() => probe.close(), this.openTimeoutMs);
      probe.addEventListener("open", () => {
        clearTimeout(giveUp);
        this.probeDelay = this.probeFirstMs;
        this.#use("websocket");
        probe.close();
        // Resume at once on the socket, from the last seq, like a stream that fell behind.
        const stream = this.current;
        if (stream instanceof EventStreamSocket) stream.send(JSON.stringify({ type: "sync" }));
      });
      probe.addEventListener("close", () => {
        clearTimeout(giveUp);
        if (this.transport === "sse") {
          this.probeDelay = Math.min(this.probeDelay * 2, PROBE_MAX_MS);
          this.#scheduleProbe(url);
        }
      });
    }, this.probeDelay);
  }
}

/** Say on the page which transport the room is on. */
export function showTransport(el, transport) {
  el.dataset.transport = transport;
  el.textContent = transport === "sse" ? gettext("Fallback: event stream") : gettext("WebSocket");
  el.title =
    transport === "sse"
      ? gettext("WebSockets are blocked on this network; the room is using a slower fallback and will try WebSockets again.")
      : "";
}
