/**
 * The room page: wires the socket, the message list, the composer and the side panels
 * together. Page data comes from data-* attributes on #room (the CSP forbids inline
 * scripts).
 */
import { RoomConnection, newClientId } from "./connection.js";
import { Outbox, sendFrame } from "./outbox.js";
import { Roster } from "./presence.js";
import { Composer } from "./composer.js";
import { StickyScroll } from "./scroll.js";
import { MessageList } from "./messages.js";
import { Commands } from "./commands.js";
import { Popover } from "./popover.js";
import { PersonActions } from "./actions.js";
import { ModerationLog, TeamTools } from "./teamtools.js";
import { BlockedList, SidePanels } from "./panels.js";
import { Leaderboard, TipForm } from "./tips.js";
import { MentionAutocomplete, UnreadMentions } from "./mentions.js";
import { canModerate, isTeam } from "./roles.js";
import * as view from "./render.js";

const RECENT_SPEAKERS = 30;

const byId = (id) => document.getElementById(id);
const root = byId("room");
const config = {
  wsPath: root.dataset.wsPath,
  eventsApi: root.dataset.eventsApi,
  leaderboardApi: root.dataset.leaderboardApi,
  moderationLogApi: root.dataset.moderationLogApi,
  blocksApi: root.dataset.blocksApi,
  signedIn: root.dataset.signedIn === "true",
  bodyMax: Number(root.dataset.bodyMax) || 500,
  joinLinesMax: Number(root.dataset.joinLinesMaxViewers) || 50,
  tipMax: Number(root.dataset.tipMax) || 100000,
};

const els = {
  title: byId("room-title"),
  live: byId("room-live"),
  slow: byId("slow-mode"),
  status: byId("conn-status"),
  filter: byId("view-filter"),
  banner: byId("room-banner"),
  pinned: byId("pinned"),
  scroller: byId("scroller"),
  list: byId("messages"),
  loadOlder: byId("load-older"),
  jump: byId("jump"),
  jumpMention: byId("jump-mention"),
  toasts: byId("toasts"),
  side: byId("side"),
  blockedDetails: byId("blocked-details"),
  tipOpen: byId("tip-open"),
  input: byId("composer-body"),
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
  welcomed: false,
};
const roster = new Roster();
const outbox = new Outbox();
const scroll = new StickyScroll(els.scroller, els.jump);
const popover = new Popover();
const messages = new MessageList({
  list: els.list,
  loadOlderButton: els.loadOlder,
  filterControl: els.filter,
  scroll,
  outbox,
  eventsApi: config.eventsApi,
  context: renderContext,
  isBlocked,
  toast,
});

const connection = new RoomConnection({
  path: config.wsPath,
  handlers: {
    status: onStatus,
    welcome: onWelcome,
    event: (event) => applyLive([event]),
    ready: onReady,
    frame: onFrame,
    closed: onClosed,
    skipped: (count, lastSeq) => messages.noteSkipped(count, lastSeq),
  },
});
const commands = new Commands(connection);

function toast(text, level = "error") {
  view.toast(els.toasts, text || "Something went wrong.", { level, ms: level === "error" ? 7000 : 4000 });
}

const app = {
  commands,
  popover,
  toast,
  tipMax: config.tipMax,
  me: () => state.me,
  room: () => state.room,
  blocked: () => state.me?.blocked || [],
  balance: () => state.me?.balance ?? 0,
  setBalance: (n) => {
    if (state.me) state.me.balance = n;
  },
  setBlocked,
  mention: null,
  unblock: (person) => actions.unblock(person),
};

const actions = new PersonActions(app);

const composer = config.signedIn
  ? new Composer({
      form: byId("composer"),
      input: els.input,
      button: byId("composer-send"),
      counter: byId("composer-count"),
      hint: byId("composer-hint"),
      status: byId("composer-status"),
      replyChip: byId("reply-chip"),
      replyText: byId("reply-chip-text"),
      replyCancel: byId("reply-cancel"),
      max: config.bodyMax,
      onSubmit: sendMessage,
      onKey: (event) => autocomplete?.handleKey(event),
    })
  : null;
const autocomplete = composer
  ? new MentionAutocomplete({ input: els.input, list: byId("mention-suggestions"), candidates: mentionCandidates })
  : null;
if (composer) app.mention = mention;

const unreadMentions = new UnreadMentions({ scroller: els.scroller, button: els.jumpMention, scroll });

const side = new SidePanels({
  root: els.side,
  narrow: window.matchMedia("(max-width: 760px)"),
  onShow: (name) => ({ top: leaderboard, log: modlog })[name]?.shown(),
});
const leaderboard = new Leaderboard({
  url: config.leaderboardApi,
  list: byId("leaderboard"),
  empty: byId("leaderboard-empty"),
  tabs: [...byId("panel-top").querySelectorAll("[data-board]")],
  isVisible: () => side.isShown("top"),
});
const modlog = new ModerationLog(app, {
  url: config.moderationLogApi,
  list: byId("modlog"),
  empty: byId("modlog-empty"),
  isVisible: () => side.isShown("log"),
});
const blockedList = new BlockedList(app, {
  url: config.blocksApi,
  list: byId("blocked-list"),
  empty: byId("blocked-empty"),
  note: byId("blocked-note"),
});
const teamTools = new TeamTools(app, {
  toggle: byId("tools-toggle"),
  panel: byId("team-panel"),
  stream: byId("tool-stream"),
  liveState: byId("live-state"),
  liveToggle: byId("live-toggle"),
  titleForm: byId("title-form"),
  titleInput: byId("title-input"),
  titleSave: byId("title-save"),
  slow: byId("slow-control"),
  announceForm: byId("announce-form"),
  announceBody: byId("announce-body"),
  announceSend: byId("announce-send"),
});
if (composer && els.tipOpen) new TipForm(app, els.tipOpen);

// Who may do what, as far as the UI goes (the server decides).

function amTeam() {
  return canModerate(state.me);
}

function canChat() {
  return state.me?.id != null;
}

function renderContext(roomBefore = null) {
  return { me: state.me, signedIn: canChat(), roomBefore };
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

function applyLive(events) {
  let added = 0;
  const mentions = [];
  for (const event of events) {
    const roomBefore = state.room;
    updateRoomState(event);
    const node = messages.apply(event, roomBefore);
    if (!node) continue;
    if (messages.shows(node)) added += 1;
    if (node.classList.contains("mentions-me")) mentions.push(node);
  }
  messages.trim();
  for (const node of mentions) unreadMentions.add(node);
  scroll.appended(added);
}

/** Events that change the room around the list, not only the list. */
function updateRoomState(event) {
  if (event.type === "room") {
    setRoom({ ...state.room, ...event });
  } else if (event.type === "moderation") {
    const aboutMe = event.target?.id != null && event.target.id === state.me?.id;
    if (event.action === "slow_mode") setRoom({ ...state.room, slow_mode_seconds: event.seconds || 0 });
    if (aboutMe && event.action === "mute") setMuted(event.until, event.reason);
    if (aboutMe && event.action === "unmute") setMuted(null);
    if (amTeam()) modlog.changed();
  } else if (event.type === "message_deleted") {
    if (amTeam()) modlog.changed();
  } else if (event.type === "tip") {
    if (!isBlocked(event)) leaderboard.tipped();
  }
  if (isPinnedNow(event) && !isBlocked(event)) pin(event);
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
  // Set by the server itself while the room is busier than it can store.
  els.slow.textContent = room.slow_mode_auto ? `Slow mode ${slow} s (automatic: the room is very busy)` : `Slow mode ${slow} s`;
  composer?.note("slow", slow && !amTeam() ? `Slow mode: one message every ${slow} s.` : "");
  if (!slow) composer?.setCooldown(0);
  teamTools.setRoom(room);
}

function setMuted(until, reason = "") {
  if (state.me) {
    state.me.muted_until = until;
    state.me.muted_reason = until ? reason : "";
  }
  refreshMuted();
}

function refreshMuted(now = Date.now()) {
  const iso = state.me?.muted_until;
  const left = iso ? new Date(iso).getTime() - now : 0;
  if (left > 0) {
    const reason = state.me.muted_reason ? ` (${state.me.muted_reason})` : "";
    composer?.setStatus(`Muted for ${view.formatCountdown(left)}${reason}`);
    composer?.note("muted", `You are muted until ${view.formatTime(iso)}. Your draft stays here.`);
  } else {
    if (state.me?.muted_until) state.me.muted_until = null;
    composer?.setStatus("");
    composer?.note("muted", "");
  }
}

function isPinnedNow(event) {
  return Boolean(event.pinned_until) && new Date(event.pinned_until).getTime() > Date.now();
}

function pin(event) {
  if (Number.isInteger(event.seq) && els.pinned.querySelector(`:scope > [data-seq="${event.seq}"]`)) return;
  const node = view.renderPinned(event);
  els.pinned.append(node);
  els.pinned.hidden = false;
  const ms = new Date(event.pinned_until).getTime() - Date.now();
  setTimeout(() => unpin(node), Math.max(0, ms));
}

function unpin(node) {
  node.remove();
  els.pinned.hidden = els.pinned.children.length === 0;
}

function showBanner(text, level = "warning") {
  els.banner.textContent = text;
  els.banner.dataset.level = level;
  els.banner.hidden = !text;
}

// People: join lines, blocks, mentions.

function renderRoster() {
  view.renderRoster(els.roster, roster, { interactive: (user) => actions.hasMenu(user) });
}

/** "X joined" for the host team always, for anyone while the room is small. */
function presenceLines(delta) {
  const count = Number.isInteger(delta.count) ? delta.count : roster.count;
  const blocked = app.blocked();
  const lines = [];
  const worth = (user) => user?.id != null && user.id !== state.me?.id && !blocked.includes(user.id);
  for (const user of delta.joined ?? []) {
    if (worth(user) && (isTeam(user) || count < config.joinLinesMax)) lines.push(view.renderPresenceLine(user, "joined"));
  }
  for (const user of delta.left ?? []) {
    if (worth(user) && isTeam(user)) lines.push(view.renderPresenceLine(user, "left"));
  }
  for (const line of lines) messages.insert(line);
  if (lines.length) {
    messages.trim();
    scroll.appended(lines.filter((line) => messages.shows(line)).length);
  }
}

function blockedShown() {
  return side.isShown("people") && els.blockedDetails.open;
}

function setBlocked(ids, person, blocked) {
  if (state.me && Array.isArray(ids)) state.me.blocked = ids;
  if (blocked) {
    messages.removeAuthor(person.id);
    for (const node of els.pinned.querySelectorAll(`li[data-author-id="${person.id}"]`)) unpin(node);
  }
  blockedList.changed(person, blocked, { visible: blockedShown() });
}

/** Names to suggest after `@`: the team, then who spoke lately, then the audience. */
function mentionCandidates() {
  const names = [];
  const seen = new Set([state.me?.name]);
  const add = (name) => {
    if (name && !seen.has(name)) {
      seen.add(name);
      names.push(name);
    }
  };
  for (const user of roster.teamList()) add(user.name);
  const lines = els.list.querySelectorAll(":scope > li.msg[data-author-name]");
  for (let i = lines.length - 1, found = 0; i >= 0 && found < RECENT_SPEAKERS; i -= 1) {
    const name = lines[i].dataset.authorName;
    if (!seen.has(name)) found += 1;
    add(name);
  }
  for (const user of roster.audienceList()) add(user.name);
  return names;
}

function mention(name) {
  const input = els.input;
  const value = input.value;
  input.value = `${value}${value && !/\s$/.test(value) ? " " : ""}@${name} `;
  input.dispatchEvent(new Event("input", { bubbles: true }));
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

// Sending.

function sendMessage({ body, replyTo }) {
  // What you just wrote should be in view, whatever the filter hid.
  if (messages.filter === "tips" || (messages.filter === "team" && !amTeam())) messages.setFilter("all");
  const entry = outbox.add({ clientId: newClientId(), body, replyTo });
  entry.node = view.renderPending(entry, state.me);
  messages.appendPending(entry.node);
  scroll.toBottom();
  const slow = state.room?.slow_mode_seconds || 0;
  if (slow && !amTeam()) composer?.setCooldown(Date.now() + slow * 1000);
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

/** Lines the server was too busy to take go again, by themselves, when it said to. */
function retryBusySends(now) {
  if (connection.status.state !== "live") return;
  for (const entry of outbox.all()) {
    if (!entry.autoRetry || entry.state === "sending" || entry.retryAt > now) continue;
    entry.autoRetry = false;
    outbox.retry(entry.clientId);
    if (entry.node) view.updatePending(entry.node, entry);
    connection.send(sendFrame(entry));
  }
}

async function deleteMessage(id) {
  try {
    await commands.run({ type: "delete", id });
  } catch (failure) {
    toast(failure.detail);
  }
}

function onMessageAction(action, line, button) {
  const id = Number(line.dataset.messageId);
  if (action === "reply") {
    const name = line.querySelector(".author")?.textContent || "";
    const body = line.querySelector(".msg-body")?.textContent || "";
    composer?.setReply({ id, name, excerpt: body.length > 80 ? `${body.slice(0, 79)}…` : body });
  } else if (action === "delete") {
    deleteMessage(id);
  } else if (action === "more") {
    const person = view.personFrom(line);
    if (!person) return;
    line.classList.add("menu-open");
    actions.open(button, person, { onClose: () => line.classList.remove("menu-open") });
  }
}

els.list.addEventListener("click", (event) => {
  const quote = event.target.closest(".msg-reply");
  if (quote) {
    messages.showOriginal(Number(quote.dataset.replyTo));
    return;
  }
  const button = event.target.closest("button[data-action]");
  const line = button?.closest("li");
  if (!line) return;
  if (line.classList.contains("pending")) onPendingAction(button.dataset.action, line);
  else onMessageAction(button.dataset.action, line, button);
});

els.list.addEventListener("keydown", (event) => {
  const quote = event.target.closest?.(".msg-reply");
  if (quote && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    messages.showOriginal(Number(quote.dataset.replyTo));
  }
});

els.side.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action=person]");
  if (button) actions.open(button, view.personFrom(button));
});

// Connection handlers.

function onStatus(status) {
  view.renderStatus(els.status, status);
  composer?.setConnected(status.state === "live" && canChat());
  if (status.state !== "live") commands.abandon();
}

/** Show the page as the viewer's role allows: team tools, the moderation log, tipping. */
function applyMe() {
  const team = amTeam();
  teamTools.setMe(state.me, { team });
  side.setAvailable("log", team);
  els.blockedDetails.hidden = !canChat();
  if (els.tipOpen) els.tipOpen.hidden = !canChat() || state.me?.role === "host";
  return team;
}

function onWelcome(welcome, { resumed }) {
  state.me = welcome.you || null;
  const team = applyMe();
  if (welcome.room) setRoom(welcome.room);
  refreshMuted();
  roster.load(welcome.roster);
  renderRoster();
  showBanner("");
  if (config.signedIn && !canChat()) {
    showBanner("Your session has ended. Sign in again to chat.");
  }
  if (!resumed) {
    // The strip first: it sizes the scroller that the history then fills to the bottom.
    els.pinned.replaceChildren();
    els.pinned.hidden = true;
    for (const item of welcome.pinned || []) if (isPinnedNow(item)) pin(item);
    unreadMentions.clear();
    messages.renderHistory(welcome.history || []);
  }
  if (!state.welcomed) {
    state.welcomed = true;
    teamTools.restoreOpen();
  }
  if (team) modlog.changed();
}

function onReady() {
  // Resend what never got an answer; the same client_id makes a repeat harmless.
  for (const entry of outbox.unsent()) connection.send(sendFrame(entry));
}

function onFrame(frame) {
  switch (frame.type) {
    case "presence":
      presenceLines(frame);
      roster.apply(frame);
      renderRoster();
      break;
    case "roster":
      roster.load(frame);
      renderRoster();
      break;
    case "you": {
      // The viewer's role or staff flag changed while connected (appointed, demoted).
      const { type: _type, ...me } = frame;
      state.me = { ...state.me, ...me };
      if (!("staff" in me) && state.me) delete state.me.staff;
      if (applyMe()) modlog.changed();
      break;
    }
    case "ack": {
      if (Array.isArray(frame.blocked) && state.me) state.me.blocked = frame.blocked;
      if (Number.isInteger(frame.balance) && state.me) state.me.balance = frame.balance;
      if (commands.settle(frame)) break;
      const entry = outbox.ack(frame.client_id);
      if (entry?.node) view.updatePending(entry.node, entry);
      break;
    }
    case "error": {
      if (commands.settle(frame)) break;
      const entry = outbox.get(frame.client_id);
      if (entry) {
        outbox.fail(frame.client_id, { detail: frame.detail, retryAfter: frame.retry_after });
        view.updatePending(entry.node, entry);
        if (frame.code === "muted" && frame.retry_after) {
          setMuted(new Date(Date.now() + frame.retry_after * 1000).toISOString(), state.me?.muted_reason || "");
        }
        if (frame.code === "slow_mode" && frame.retry_after) {
          composer?.setCooldown(Date.now() + frame.retry_after * 1000);
        }
        // Nothing was stored and the server said when to try: send it again by itself then.
        if (frame.code === "busy") entry.autoRetry = true;
      } else {
        toast(frame.detail || "Something went wrong.");
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
  popover.close();
  if (policy.reason === "kicked") showBanner("You were removed from the room. You can rejoin in a few seconds.");
  else if (policy.reason === "forbidden") showBanner("You can't take part in this room: you are banned or it is private.", "error");
  else if (policy.reason === "not_found") showBanner("This room does not exist any more.", "error");
}

// Once a second: countdowns (reconnect, retries, mute, slow mode, pins).
setInterval(() => {
  const now = Date.now();
  for (const node of document.querySelectorAll("[data-countdown-until]")) {
    if (node === els.status) view.renderStatus(els.status, connection.status);
    else if (node.classList.contains("pending")) {
      const entry = outbox.get(node.dataset.clientId);
      if (entry) view.updatePending(node, entry);
    }
  }
  if (state.me?.muted_until) refreshMuted(now);
  retryBusySends(now);
  if (composer?.cooldownUntil) {
    if (composer.cooldownUntil <= now) composer.setCooldown(0);
    else composer.refresh();
  }
  for (const node of els.pinned.querySelectorAll(".countdown[data-until]")) {
    node.textContent = view.formatCountdown(Number(node.dataset.until) - now);
  }
}, 1000);

els.blockedDetails.addEventListener("toggle", () => {
  if (els.blockedDetails.open) blockedList.shown();
});

connection.start();
