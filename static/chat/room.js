/**
 * The room page: wires the socket, the message list, the composer and the presence
 * panel together. Page data comes from data-* attributes on #room (the CSP forbids
 * inline scripts).
 */
import { RoomConnection, newClientId } from "./connection.js";
import { Outbox, sendFrame } from "./outbox.js";
import { Roster } from "./presence.js";
import { Composer } from "./composer.js";
import { StickyScroll } from "./scroll.js";
import * as view from "./render.js";

// Enough scrollback to read a conversation; beyond it a busy room would only eat memory.
const MAX_LINES = 600;
const OLDER_PAGE = 100;

const byId = (id) => document.getElementById(id);
const root = byId("room");
const config = {
  wsPath: root.dataset.wsPath,
  eventsApi: root.dataset.eventsApi,
  signedIn: root.dataset.signedIn === "true",
  bodyMax: Number(root.dataset.bodyMax) || 500,
};

const els = {
  title: byId("room-title"),
  live: byId("room-live"),
  slow: byId("slow-mode"),
  status: byId("conn-status"),
  banner: byId("room-banner"),
  pinned: byId("pinned"),
  scroller: byId("scroller"),
  list: byId("messages"),
  loadOlder: byId("load-older"),
  jump: byId("jump"),
  toasts: byId("toasts"),
  presenceDetails: byId("presence-details"),
  roster: {
    count: byId("online-count"),
    team: byId("team-list"),
    teamEmpty: byId("team-empty"),
    audience: byId("audience-list"),
    more: byId("audience-more"),
  },
};

const state = {
  me: null,
  room: null,
  oldestSeq: null,
};
const roster = new Roster();
const outbox = new Outbox();
const scroll = new StickyScroll(els.scroller, els.jump);

const composer = config.signedIn
  ? new Composer({
      form: byId("composer"),
      input: byId("composer-body"),
      button: byId("composer-send"),
      counter: byId("composer-count"),
      hint: byId("composer-hint"),
      replyChip: byId("reply-chip"),
      replyText: byId("reply-chip-text"),
      replyCancel: byId("reply-cancel"),
      max: config.bodyMax,
      onSubmit: sendMessage,
    })
  : null;

const connection = new RoomConnection({
  path: config.wsPath,
  handlers: {
    status: onStatus,
    welcome: onWelcome,
    event: (event) => applyLive([event]),
    ready: onReady,
    frame: onFrame,
    closed: onClosed,
  },
});

// Who may do what, as far as the UI goes (the server decides).

function canModerate() {
  const me = state.me;
  return Boolean(me && (me.role === "host" || me.role === "moderator" || me.staff));
}

function canChat() {
  return state.me?.id != null;
}

function renderContext(roomBefore = null) {
  return { me: state.me, signedIn: canChat(), canModerate: canModerate(), roomBefore };
}

function actorOf(event) {
  return (event.author ?? event.from ?? null)?.id ?? null;
}

function isBlocked(event) {
  const blocked = state.me?.blocked;
  const actor = actorOf(event);
  return Array.isArray(blocked) && actor != null && blocked.includes(actor);
}

// The message list.

function findMessage(id) {
  if (!Number.isInteger(id)) return null;
  return els.list.querySelector(`li.msg[data-message-id="${id}"]`);
}

/** Confirmed lines go above this tab's pending ones, which stay at the bottom. */
function insertLine(node) {
  els.list.insertBefore(node, els.list.querySelector(":scope > li.pending"));
}

/** Apply one room event to the list; returns the number of new lines shown. */
function applyEvent(event, roomBefore) {
  if (event.type === "message_deleted") {
    const line = findMessage(event.id);
    if (line) view.markDeleted(line);
    // Replies keep quoting the message; the log redacts those quotes, so the page does too.
    if (Number.isInteger(event.id)) {
      for (const quote of els.list.querySelectorAll(`.msg-reply[data-reply-to="${event.id}"] .msg-reply-excerpt`)) {
        quote.textContent = "message deleted";
      }
    }
    return 0;
  }
  if (event.type === "message" && event.client_id && event.author?.id === state.me?.id) {
    outbox.resolve(event.client_id)?.node?.remove();
  }
  const node = view.renderEvent(event, renderContext(roomBefore));
  if (!node) return 0;
  const existing = event.type === "message" ? findMessage(event.id) : null;
  if (existing) {
    existing.replaceWith(node);
    return 0;
  }
  insertLine(node);
  if (state.oldestSeq == null && Number.isInteger(event.seq)) state.oldestSeq = event.seq;
  return 1;
}

function applyLive(events) {
  let added = 0;
  for (const event of events) {
    const roomBefore = state.room;
    updateRoomState(event);
    added += applyEvent(event, roomBefore);
  }
  trimLines();
  scroll.appended(added);
}

/** Events that change the room around the list, not only the list. */
function updateRoomState(event) {
  if (event.type === "room") {
    setRoom({ ...state.room, ...event });
  } else if (event.type === "moderation") {
    const aboutMe = event.target?.id != null && event.target.id === state.me?.id;
    if (event.action === "slow_mode") setRoom({ ...state.room, slow_mode_seconds: event.seconds || 0 });
    if (aboutMe && event.action === "mute") setMuted(event.until);
    if (aboutMe && event.action === "unmute") setMuted(null);
  }
  if (isPinnedNow(event)) pin(event);
}

function trimLines() {
  if (!scroll.stuck) return;
  const lines = els.list.children;
  let excess = lines.length - MAX_LINES;
  while (excess > 0 && lines[0] && !lines[0].classList.contains("pending")) {
    lines[0].remove();
    excess -= 1;
  }
  const first = els.list.querySelector(":scope > li[data-seq]:not([data-seq=''])");
  if (first) {
    state.oldestSeq = Number(first.dataset.seq);
    els.loadOlder.hidden = state.oldestSeq <= 1;
  }
}

function renderHistory(history) {
  const pending = outbox.all().map((entry) => entry.node).filter(Boolean);
  els.list.replaceChildren(...pending);
  state.oldestSeq = null;
  // Room events in history describe what changed then, relative to the one before.
  let roomBefore = null;
  for (const event of history) {
    applyEvent(event, roomBefore);
    if (event.type === "room") roomBefore = event;
  }
  els.loadOlder.hidden = !(state.oldestSeq > 1);
  scroll.toBottom();
}

async function loadOlder() {
  if (!(state.oldestSeq > 1) || !config.eventsApi) return;
  els.loadOlder.disabled = true;
  const after = Math.max(0, state.oldestSeq - 1 - OLDER_PAGE);
  const url = new URL(config.eventsApi, window.location.href);
  url.searchParams.set("after", String(after));
  url.searchParams.set("limit", String(OLDER_PAGE));
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    const older = (data.events || []).filter(
      (event) => Number.isInteger(event.seq) && event.seq < state.oldestSeq && !isBlocked(event),
    );
    const nodes = [];
    let roomBefore = null;
    for (const event of older) {
      const node = view.renderEvent(event, renderContext(roomBefore));
      if (event.type === "room") roomBefore = event;
      if (node && !(event.type === "message" && findMessage(event.id))) nodes.push(node);
    }
    scroll.keepPosition(() => els.list.prepend(...nodes));
    state.oldestSeq = after + 1;
    els.loadOlder.hidden = state.oldestSeq <= 1;
  } catch {
    view.toast(els.toasts, "Couldn't load earlier messages. Try again in a moment.");
  } finally {
    els.loadOlder.disabled = false;
  }
}

// Room header, pinned items, banner.

function setRoom(room) {
  state.room = room;
  if (room.title != null) {
    els.title.textContent = room.title;
    document.title = `${room.title} · chatsite`;
  }
  els.live.hidden = !room.is_live;
  const slow = room.slow_mode_seconds || 0;
  els.slow.hidden = slow === 0;
  els.slow.textContent = `Slow mode ${slow} s`;
  composer?.note("slow", slow && !canModerate() ? `Slow mode: one message every ${slow} s.` : "");
}

function setMuted(until) {
  if (state.me) state.me.muted_until = until;
  refreshMuted();
}

function refreshMuted() {
  const until = state.me?.muted_until ? new Date(state.me.muted_until).getTime() : 0;
  composer?.note("muted", until > Date.now() ? `You are muted until ${view.formatTime(state.me.muted_until)}.` : "");
}

function isPinnedNow(event) {
  return Boolean(event.pinned_until) && new Date(event.pinned_until).getTime() > Date.now();
}

function pin(event) {
  const node = view.renderEvent(event, renderContext());
  if (!node) return;
  node.classList.add("pinned-item");
  els.pinned.append(node);
  els.pinned.hidden = false;
  if (event.pinned_until) {
    const ms = new Date(event.pinned_until).getTime() - Date.now();
    setTimeout(() => {
      node.remove();
      els.pinned.hidden = els.pinned.children.length === 0;
    }, Math.max(0, ms));
  }
}

function showBanner(text, level = "warning") {
  els.banner.textContent = text;
  els.banner.dataset.level = level;
  els.banner.hidden = !text;
}

// Sending.

function sendMessage({ body, replyTo }) {
  const entry = outbox.add({ clientId: newClientId(), body, replyTo });
  entry.node = view.renderPending(entry, state.me);
  els.list.append(entry.node);
  scroll.toBottom();
  // Not sent now (socket just dropped): it stays "sending" and goes out on the next welcome.
  connection.send(sendFrame(entry));
}

function onPendingAction(action, line) {
  const clientId = line.dataset.clientId;
  const entry = outbox.get(clientId);
  if (!entry) return;
  if (action === "retry") {
    outbox.retry(clientId);
    view.updatePending(line, entry);
    connection.send(sendFrame(entry));
  } else if (action === "edit") {
    outbox.discard(clientId);
    line.remove();
    composer?.restore(entry.body, entry.replyTo);
  } else if (action === "discard") {
    outbox.discard(clientId);
    line.remove();
  }
}

function onMessageAction(action, line) {
  const id = Number(line.dataset.messageId);
  if (action === "reply") {
    const name = line.querySelector(".author")?.textContent || "";
    const body = line.querySelector(".msg-body")?.textContent || "";
    composer?.setReply({ id, name, excerpt: body.length > 80 ? `${body.slice(0, 79)}…` : body });
  } else if (action === "delete") {
    if (!connection.send({ type: "delete", id, client_id: newClientId() })) {
      view.toast(els.toasts, "Not connected: try again when the chat reconnects.");
    }
  }
}

els.list.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const line = button?.closest("li");
  if (!line) return;
  if (line.classList.contains("pending")) onPendingAction(button.dataset.action, line);
  else onMessageAction(button.dataset.action, line);
});

// Connection handlers.

function onStatus(status) {
  view.renderStatus(els.status, status);
  composer?.setConnected(status.state === "live" && canChat());
}

function onWelcome(welcome, { resumed }) {
  state.me = welcome.you || null;
  if (welcome.room) setRoom(welcome.room);
  refreshMuted();
  roster.load(welcome.roster);
  view.renderRoster(els.roster, roster);
  showBanner("");
  if (config.signedIn && !canChat()) {
    showBanner("Your session has ended. Sign in again to chat.");
  }
  if (!resumed) {
    renderHistory(welcome.history || []);
    els.pinned.replaceChildren();
    els.pinned.hidden = true;
    for (const item of welcome.pinned || []) pin(item);
  }
}

function onReady() {
  // Resend what never got an answer; the same client_id makes a repeat harmless.
  for (const entry of outbox.unsent()) connection.send(sendFrame(entry));
}

function onFrame(frame) {
  switch (frame.type) {
    case "presence":
      roster.apply(frame);
      view.renderRoster(els.roster, roster);
      break;
    case "roster":
      roster.load(frame);
      view.renderRoster(els.roster, roster);
      break;
    case "ack": {
      if (Array.isArray(frame.blocked) && state.me) state.me.blocked = frame.blocked;
      const entry = outbox.ack(frame.client_id);
      if (entry?.node) view.updatePending(entry.node, entry);
      break;
    }
    case "error": {
      const entry = outbox.get(frame.client_id);
      if (entry) {
        outbox.fail(frame.client_id, { detail: frame.detail, retryAfter: frame.retry_after });
        view.updatePending(entry.node, entry);
        if (frame.code === "muted" && frame.retry_after) {
          setMuted(new Date(Date.now() + frame.retry_after * 1000).toISOString());
        }
      } else {
        view.toast(els.toasts, frame.detail || "Something went wrong.");
      }
      break;
    }
    case "notice":
      // A broadcast outside the room log (no seq): show it, there is nothing to order.
      applyLive([frame]);
      break;
    default:
      break;
  }
}

function onClosed(code, policy) {
  if (policy.reason === "kicked") showBanner("You were removed from the room. You can rejoin in a few seconds.");
  else if (policy.reason === "forbidden") showBanner("You can't take part in this room: you are banned or it is private.", "error");
  else if (policy.reason === "not_found") showBanner("This room does not exist any more.", "error");
}

// Once a second: countdowns (reconnect, retry after an error) and expiring mutes.
setInterval(() => {
  for (const node of document.querySelectorAll("[data-countdown-until]")) {
    if (node === els.status) view.renderStatus(els.status, connection.status);
    else if (node.classList.contains("pending")) {
      const entry = outbox.get(node.dataset.clientId);
      if (entry) view.updatePending(node, entry);
    }
  }
  if (state.me?.muted_until) refreshMuted();
}, 1000);

els.loadOlder.addEventListener("click", loadOlder);
if (window.matchMedia("(max-width: 760px)").matches) els.presenceDetails.open = false;

connection.start();
