/**
 * The room page: wires the socket, the message list, the composer and the side panels
 * together. Page data comes from data-* attributes on #room (the CSP forbids inline
 * scripts).
 */
import { RoomConnection, newClientId } from "./connection.js";
import { TransportChooser, showTransport } from "./eventstream.js";
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
import { EmojiPicker } from "./emoji.js";
import { fetchRoomEmotes } from "./emotes.js";
import { StreamerLinks } from "./streamer.js";
import { ChatSettings } from "./settings.js";
import { RovingFocus } from "./roving.js";
import { format, gettext } from "./i18n.js";
import { limits } from "./limits.js";
import * as view from "./render.js";

const RECENT_SPEAKERS = 30;

const byId = (id) => document.getElementById(id);
const root = byId("room");
const config = {
  wsPath: root.dataset.wsPath,
  streamPath: root.dataset.streamPath,
  commandsPath: root.dataset.commandsPath,
  eventsApi: root.dataset.eventsApi,
  leaderboardApi: root.dataset.leaderboardApi,
  moderationLogApi: root.dataset.moderationLogApi,
  blocksApi: root.dataset.blocksApi,
  standingApi: root.dataset.standingApi,
  peopleApi: root.dataset.peopleApi,
  emotesApi: root.dataset.emotesApi,
  signedIn: root.dataset.signedIn === "true",
  joinLinesMax: Number(root.dataset.joinLinesMaxViewers) || 50,
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
    toggle: byId("people-toggle"),
    toggleCount: byId("people-count"),
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
  // When the viewer's last message was stored (ms), deleted or not: the server's slow
  // mode counts from it, including a slow mode switched on after it.
  lastSentAt: 0,
  // The ban that closed (or will close) this page's connection: {until, reason}.
  banned: null,
  kickedReason: "",
  standingTimer: null,
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

// Which transport the room is on, beside the connection status.
const transportBadge = document.createElement("span");
transportBadge.className = "conn-transport";
transportBadge.id = "conn-transport";
byId("conn-status").after(transportBadge);
const transports = new TransportChooser({
  streamPath: config.streamPath,
  commandsPath: config.commandsPath,
  onChange: (transport) => showTransport(transportBadge, transport),
});
showTransport(transportBadge, transports.transport);

const connection = new RoomConnection({
  path: config.wsPath,
  WebSocketImpl: transports.Impl,
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
  view.toast(els.toasts, text || gettext("Something went wrong."), { level, ms: level === "error" ? 7000 : 4000 });
}

const app = {
  peopleApi: config.peopleApi,
  commands,
  popover,
  toast,
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
  toggle: byId("people-toggle"),
  close: byId("side-close"),
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
const tipForm = composer && els.tipOpen ? new TipForm(app, els.tipOpen) : null;
if (composer) {
  new EmojiPicker({ button: byId("emoji-open"), input: els.input, popover, loadEmotes: () => fetchRoomEmotes(config.emotesApi) });
}
const streamerLinks = new StreamerLinks(app, {
  tool: byId("tool-overlay"),
  url: byId("overlay-url"),
  copy: byId("overlay-copy"),
  open: byId("overlay-open"),
  mode: byId("overlay-mode"),
  tipsOnly: byId("overlay-tips-only"),
});
new ChatSettings({ button: byId("settings-open"), popover, onChange: () => view.refreshTimes(els.list) });
const roving = new RovingFocus(els.list);
// A menu whose opener is gone (the line was removed by a block) gives focus back here.
popover.fallbackFocus = () => els.input || els.list;

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

/** A message of the viewer's own was stored: slow mode counts from it. */
function noteOwnMessage(event) {
  if (event.type !== "message" || state.me?.id == null || event.author?.id !== state.me.id) return;
  const at = Date.parse(event.ts);
  if (Number.isFinite(at) && at > state.lastSentAt) state.lastSentAt = at;
}

function applyLive(events) {
  let added = 0;
  const mentions = [];
  for (const event of events) {
    const roomBefore = state.room;
    noteOwnMessage(event);
    updateRoomState(event);
    const node = messages.apply(event, roomBefore);
    if (!node) continue;
    if (messages.shows(node)) added += 1;
    if (node.classList.contains("mentions-me")) mentions.push(node);
  }
  messages.trim();
  for (const node of mentions) {
    unreadMentions.add(node);
    announceMention(node);
  }
  scroll.appended(added);
}

/** Read a mention of the viewer out at once, whatever the busy log says meanwhile. */
function announceMention(line) {
  const who = line.querySelector(".author")?.textContent || "";
  const body = line.querySelector(".msg-body")?.textContent || "";
  byId("announcer").textContent = format(gettext("%(name)s mentioned you: %(body)s"), { name: who, body });
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
    // The ban closes this connection next (4403); the banner then says for how long and why.
    if (aboutMe && event.action === "ban") state.banned = { until: event.until, reason: event.reason || "" };
    if (aboutMe && event.action === "kick") state.kickedReason = event.reason || "";
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
  els.slow.textContent = room.slow_mode_auto
    ? format(gettext("Slow mode %(n)s s (automatic: the room is very busy)"), { n: slow })
    : format(gettext("Slow mode %(n)s s"), { n: slow });
  composer?.note("slow", slow && !amTeam() ? format(gettext("Slow mode: one message every %(n)s s."), { n: slow }) : "");
  // The server counts slow mode from the last message stored, even one sent before slow
  // mode came on: the wait starts from there, so the first send does not fail unwarned.
  if (!slow || amTeam()) composer?.setCooldown(0);
  else if (state.lastSentAt) {
    const until = state.lastSentAt + slow * 1000;
    if (until > Date.now()) composer?.setCooldown(Math.max(until, composer.cooldownUntil));
  }
  teamTools.setRoom(room);
}

function setMuted(until, reason = state.me?.muted_reason || "") {
  const was = state.me?.muted_until;
  if (state.me) {
    state.me.muted_until = until;
    state.me.muted_reason = until ? reason : "";
  }
  // Lifted early (unmuted): what failed for the mute may go again now.
  if (was && !until) {
    for (const entry of outbox.release("muted")) if (entry.node) view.updatePending(entry.node, entry);
  }
  refreshMuted();
}

function refreshMuted(now = Date.now()) {
  const iso = state.me?.muted_until;
  const left = iso ? new Date(iso).getTime() - now : 0;
  if (left > 0) {
    const countdown = view.formatCountdown(left);
    composer?.setStatus(state.me.muted_reason
      ? format(gettext("Muted for %(time)s (%(reason)s)"), { time: countdown, reason: state.me.muted_reason })
      : format(gettext("Muted for %(time)s"), { time: countdown }));
    composer?.note("muted", format(gettext("You are muted until %(time)s. Your draft stays here."), { time: view.formatTime(iso) }));
    composer?.setBlocked("muted");
  } else {
    if (state.me?.muted_until) setMuted(null);
    composer?.setStatus("");
    composer?.note("muted", "");
    if (composer?.blocked === "muted") composer.setBlocked("");
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
    const hadFocus = els.list.contains(document.activeElement);
    messages.removeAuthor(person.id);
    // The focused line may be one that just went: keep focus in the list, not on <body>.
    if (hadFocus && !els.list.contains(document.activeElement)) roving.enter();
    for (const node of els.pinned.querySelectorAll(`li[data-author-id="${person.id}"]`)) unpin(node);
  } else {
    // What they wrote while blocked is still in the log: bring it back into the list.
    messages.restoreAuthor(person.id);
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
  } else if (action === "more" || action === "card") {
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
  view.renderStatus(els.status, status.state === "stopped" && state.banned ? { ...status, reason: "banned" } : status);
  composer?.setConnected(status.state === "live" && canChat());
  if (status.state !== "live") commands.abandon();
}

/** Show the page as the viewer's role allows: team tools, the moderation log, tipping. */
function applyMe() {
  const team = amTeam();
  teamTools.setMe(state.me, { team });
  streamerLinks.setMe(state.me);
  side.setAvailable("log", team);
  els.blockedDetails.hidden = !canChat();
  if (els.tipOpen) els.tipOpen.hidden = !canChat() || state.me?.role === "host";
  return team;
}

/**
 * The server restates who the viewer is when any of it changes while connected: role
 * or staff flag (appointed, demoted), balance (coins granted), mute (muted, unmuted,
 * from the page or the admin). Fields left out of the frame keep their value, except
 * `staff`, which is only ever sent as true.
 */
function onYou(frame) {
  const { type: _type, ...me } = frame;
  const muteChanged = "muted_until" in me && me.muted_until !== state.me?.muted_until;
  state.me = { ...state.me, ...me };
  if (!("staff" in me) && state.me) delete state.me.staff;
  if (applyMe()) modlog.changed();
  if (Number.isInteger(me.balance)) tipForm?.balanceChanged();
  if (muteChanged) setMuted(me.muted_until || null);
  // A new role may lift slow mode for this viewer, or bring it back.
  if (state.room) setRoom(state.room);
}

function onWelcome(welcome, { resumed }) {
  state.me = welcome.you || null;
  state.banned = null;
  stopStandingChecks();
  const team = applyMe();
  if (!resumed) {
    for (const event of welcome.history || []) noteOwnMessage(event);
  }
  if (welcome.room) setRoom(welcome.room);
  refreshMuted();
  roster.load(welcome.roster);
  renderRoster();
  showBanner("");
  if (config.signedIn && !canChat()) {
    showBanner(gettext("Your session has ended. Sign in again to chat."));
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
    case "you":
      onYou(frame);
      break;
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
        outbox.fail(frame.client_id, { code: frame.code, detail: frame.detail, retryAfter: frame.retry_after });
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
        toast(frame.detail || gettext("Something went wrong."));
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
  if (policy.reason === "kicked") {
    const reason = state.kickedReason;
    state.kickedReason = "";
    showBanner(reason
      ? format(gettext("You were removed from the room (%(reason)s). You can rejoin in a few seconds."), { reason })
      : gettext("You were removed from the room. You can rejoin in a few seconds."));
    // A ban often follows a kick: find out now rather than when the rejoin fails.
    startStandingChecks();
  } else if (policy.reason === "forbidden") {
    shutOut(state.banned);
    if (!state.banned) checkStanding();
  } else if (policy.reason === "not_found") {
    showBanner(gettext("This room does not exist any more."), "error");
    shutOut(null, { banner: false });
  }
}

/** The sentence for a ban: how long and why. */
function banText(ban) {
  const reason = ban.reason || "";
  if (ban.until) {
    const values = { time: view.formatDateTime(ban.until), reason };
    return reason
      ? format(gettext("You are banned from this room until %(time)s (%(reason)s)."), values)
      : format(gettext("You are banned from this room until %(time)s."), values);
  }
  return reason
    ? format(gettext("You are banned from this room permanently (%(reason)s)."), { reason })
    : gettext("You are banned from this room permanently.");
}

/**
 * This viewer may not take part any more (banned, or the room is private or gone): no
 * composer, no tipping, no promise that a message "will wait".
 */
function shutOut(ban, { banner = true } = {}) {
  stopStandingChecks();
  if (banner) {
    showBanner(ban ? banText(ban) : gettext("You can't take part in this room."), "error");
  }
  composer?.setBlocked(ban ? "banned" : "closed");
  composer?.note("closed", ban ? gettext("You are banned from this room.") : gettext("You can't chat in this room."));
  if (els.tipOpen) els.tipOpen.hidden = true;
  commands.abandon();
}

/** The viewer's ban in this room, from the server, or null (not banned, or unknown). */
async function fetchStanding() {
  if (!config.standingApi || !canChatOrSignedIn()) return null;
  try {
    const response = await fetch(config.standingApi, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return null;
    return (await response.json()).banned || null;
  } catch {
    return null;
  }
}

function canChatOrSignedIn() {
  return canChat() || config.signedIn;
}

async function checkStanding() {
  const ban = await fetchStanding();
  if (ban) {
    state.banned = ban;
    connection.halt("banned");
    shutOut(ban);
  }
}

const STANDING_CHECK_MS = 2000;

function startStandingChecks() {
  stopStandingChecks();
  checkStanding();
  state.standingTimer = setInterval(checkStanding, STANDING_CHECK_MS);
}

function stopStandingChecks() {
  clearInterval(state.standingTimer);
  state.standingTimer = null;
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
