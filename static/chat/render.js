/**
 * DOM rendering for the room page.
 *
 * Every piece of text that came from a user or the server goes in through
 * textContent / text nodes, never innerHTML: chat bodies, names, titles and reasons
 * are untrusted.
 */

import { allowedOn, canDelete, isTeam } from "./roles.js";

export { isTeam };

/** Build an element. `text` and string children become text nodes. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
// Stroke paths on a 24-unit grid; drawn inline so they need no font and no request.
const ICONS = {
  reply: ["M9 14 4 9l5-5", "M4 9h10.5a5.5 5.5 0 0 1 0 11H11"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13", "M10 11v6", "M14 11v6"],
  more: ["M5 12h.01", "M12 12h.01", "M19 12h.01"],
  coin: ["M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z", "M14.8 9.2c-.4-.9-1.5-1.5-2.8-1.5-1.7 0-2.9.9-2.9 2.1 0 2.9 5.8 1.4 5.8 4.3 0 1.2-1.2 2.1-2.9 2.1-1.4 0-2.5-.6-2.9-1.6", "M12 6v1.7", "M12 16.3V18"],
  shield: ["M12 3l8 3v6c0 4.6-3.4 8.3-8 9-4.6-.7-8-4.4-8-9V6z"],
  close: ["M6 6l12 12", "M18 6 6 18"],
};

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

// Pure helpers.

export function formatTime(iso) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}

export function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** A countdown for people: "0:42", "4:59", "1:02:03", "6 d 23 h". */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours}:${pad(minutes)}:${pad(seconds)}`;
  return `${minutes}:${pad(seconds)}`;
}

export function displayName(user) {
  return user?.name || "someone";
}

/** The badges a user carries, in display order. */
export function badgesFor(user) {
  const badges = [];
  if (user?.staff) badges.push({ key: "staff", label: "STAFF" });
  if (user?.role === "host") badges.push({ key: "host", label: "HOST" });
  else if (user?.role === "moderator") badges.push({ key: "mod", label: "MOD" });
  return badges;
}


export function describeModeration(event) {
  const target = displayName(event.target);
  const by = event.by ? ` by ${displayName(event.by)}` : "";
  const reason = event.reason ? ` (${event.reason})` : "";
  const span = () => {
    if (event.seconds) return ` for ${formatDuration(event.seconds)}`;
    if (event.until) return ` until ${formatTime(event.until)}`;
    return "";
  };
  switch (event.action) {
    case "mute":
      return `${target} was muted${span()}${by}${reason}`;
    case "unmute":
      return `${target} was unmuted${by}`;
    case "ban":
      return `${target} was banned${event.until || event.seconds ? span() : " permanently"}${by}${reason}`;
    case "unban":
      return `${target} was unbanned${by}`;
    case "kick":
      return `${target} was removed from the room${by}${reason}`;
    case "slow_mode":
      return event.seconds
        ? `Slow mode is on: one message every ${formatDuration(event.seconds)}${by}`
        : `Slow mode is off${by}`;
    default:
      return `Moderation: ${event.action}${by}`;
  }
}

/** What a `room` event changed, compared with the state before it (null: unknown). */
export function describeRoomChange(before, after) {
  if (!before) return [after.is_live ? "The stream is live" : "The stream is offline"];
  const lines = [];
  if (before.is_live !== after.is_live) lines.push(after.is_live ? "The stream is live" : "The stream has ended");
  if (after.title != null && before.title !== after.title) lines.push(`Title changed to “${after.title}”`);
  // Slow mode changes arrive as their own moderation event; saying it twice is noise.
  return lines;
}


// Message lines.

function userLabel(user) {
  const role = user?.role || "member";
  return [
    ...badgesFor(user).map((b) => h("span", { class: `badge badge-${b.key}`, text: b.label })),
    h("span", { class: `author role-${role}`, text: displayName(user) }),
  ];
}

/** The person a line is about, kept on the node so menus can act on them. */
function personData(user) {
  if (user?.id == null) return {};
  const data = { authorId: String(user.id), authorName: user.name || "", authorRole: user.role || "member" };
  if (user.staff) data.authorStaff = "true";
  return data;
}

export function personFrom(node) {
  const d = node?.dataset;
  if (!d?.authorId) return null;
  return { id: Number(d.authorId), name: d.authorName || "", role: d.authorRole || "member", staff: d.authorStaff === "true" };
}

function timeNode(iso) {
  return h("time", { class: "msg-time", datetime: iso || null, title: iso ? new Date(iso).toLocaleString() : null, text: formatTime(iso) });
}

/** A message body with the mentioned names set off; text nodes only. */
export function bodyNodes(body, mentions = []) {
  const names = new Set((mentions || []).map((u) => String(u?.name || "").toLowerCase()).filter(Boolean));
  if (!names.size) return [body];
  const parts = String(body).split(/(@[\w.@+-]+)/u);
  return parts.filter((p) => p !== "").map((part) =>
    part.startsWith("@") && names.has(part.slice(1).toLowerCase())
      ? h("span", { class: "mention-token", text: part })
      : part,
  );
}

function replyQuote(reply) {
  if (!reply) return null;
  const deleted = Boolean(reply.deleted) || (reply.excerpt === "" && reply.deleted !== false);
  return h(
    "div",
    {
      class: `msg-reply${deleted ? " is-deleted" : ""}`,
      role: "button",
      tabindex: "0",
      title: "Show the original message",
      dataset: { replyTo: String(reply.id ?? "") },
    },
    h("span", { class: "msg-reply-author", text: displayName(reply.author) }),
    " ",
    h("span", { class: "msg-reply-excerpt", text: deleted ? "message deleted" : reply.excerpt || "" }),
  );
}

function actionButton(action, label, iconName, extra = {}) {
  return h("button", { type: "button", class: "icon-button", dataset: { action }, title: label, "aria-label": label, ...extra }, icon(iconName));
}

function lineActions({ reply = false, remove = false, more = false }) {
  if (!reply && !remove && !more) return null;
  return h(
    "div",
    { class: "msg-actions" },
    reply ? actionButton("reply", "Reply", "reply") : null,
    remove ? actionButton("delete", "Delete message", "trash") : null,
    more ? actionButton("more", "More actions", "more", { "aria-haspopup": "menu", "aria-expanded": "false" }) : null,
  );
}

/** ctx: {me, signedIn}. Returns an <li> for the message event. */
export function renderMessage(event, ctx = {}) {
  const me = ctx.me;
  const author = event.author || null;
  const mine = me?.id != null && author?.id === me.id;
  const mentionsMe = me?.id != null && (event.mentions || []).some((u) => u?.id === me.id);
  const li = h("li", {
    class: ["line", "msg", mine && "mine", mentionsMe && "mentions-me", isTeam(author) && "by-team"].filter(Boolean).join(" "),
    dataset: { seq: String(event.seq ?? ""), messageId: String(event.id ?? ""), ...personData(author) },
  });
  if (event.client_id) li.dataset.clientId = event.client_id;
  li.append(
    ...[replyQuote(event.reply_to)].filter(Boolean),
    h(
      "div",
      { class: "msg-line" },
      timeNode(event.ts),
      " ",
      h("span", { class: "msg-who" }, ...userLabel(author)),
      h("span", { class: "msg-sep", "aria-hidden": "true", text: ": " }),
      h("span", { class: "msg-body" }, ...bodyNodes(event.body ?? "", event.mentions)),
    ),
  );
  if (event.deleted) markDeleted(li);
  else if (ctx.signedIn) {
    const actions = lineActions({ reply: true, remove: canDelete(me, author), more: allowedOn(me, author).block });
    if (actions) li.append(actions);
  }
  return li;
}

export function markDeleted(li) {
  li.classList.add("deleted");
  const body = li.querySelector(".msg-body");
  if (body) body.textContent = "message deleted";
  li.querySelector(".msg-actions")?.remove();
}

/** A message this tab is sending: shown at once, greyed, until the room echoes it. */
export function renderPending(entry, me) {
  const li = h("li", {
    class: ["line msg mine pending", isTeam(me) && "by-team"].filter(Boolean).join(" "),
    dataset: { clientId: entry.clientId },
  });
  const quote = entry.replyTo
    ? replyQuote({ id: entry.replyTo.id, author: { name: entry.replyTo.name }, excerpt: entry.replyTo.excerpt, deleted: false })
    : null;
  li.append(
    ...[quote].filter(Boolean),
    h(
      "div",
      { class: "msg-line" },
      timeNode(new Date().toISOString()),
      " ",
      h("span", { class: "msg-who" }, ...userLabel(me)),
      h("span", { class: "msg-sep", "aria-hidden": "true", text: ": " }),
      h("span", { class: "msg-body", text: entry.body }),
    ),
    h("div", { class: "pending-state" },
      h("span", { class: "pending-label" }),
      h("span", { class: "pending-buttons" },
        h("button", { type: "button", class: "link-button", dataset: { action: "retry" }, text: "Retry" }),
        h("button", { type: "button", class: "link-button", dataset: { action: "edit" }, text: "Edit" }),
        h("button", { type: "button", class: "link-button", dataset: { action: "discard" }, text: "Discard" }),
      ),
    ),
  );
  updatePending(li, entry);
  return li;
}

export function updatePending(li, entry, now = Date.now()) {
  li.classList.toggle("failed", entry.state === "failed");
  li.classList.toggle("acked", entry.state === "sent");
  const label = li.querySelector(".pending-label");
  const retry = li.querySelector('[data-action="retry"]');
  const buttons = li.querySelector(".pending-buttons");
  buttons.hidden = entry.state !== "failed";
  if (entry.state === "failed") {
    const left = entry.retryAt - now;
    label.textContent = left > 0 ? `${entry.detail} Retry in ${retryText(left)}.` : entry.detail;
    retry.disabled = left > 0;
    if (left > 0) li.dataset.countdownUntil = String(entry.retryAt);
    else delete li.dataset.countdownUntil;
  } else {
    label.textContent = entry.state === "sent" ? "sent" : "sending…";
    delete li.dataset.countdownUntil;
  }
}

function retryText(ms) {
  const seconds = Math.ceil(ms / 1000);
  return seconds < 60 ? `${seconds} s` : formatCountdown(ms);
}

function systemLine(kind, text, event, extra = []) {
  return h(
    "li",
    { class: `line system system-${kind}`, dataset: { seq: String(event.seq ?? "") } },
    timeNode(event.ts),
    " ",
    h("span", { class: "system-text", text }),
    ...extra,
  );
}

/** "X joined" / "X left": from presence, not the log, so it carries no seq. */
export function renderPresenceLine(user, verb) {
  return h(
    "li",
    { class: `line system system-presence${isTeam(user) ? " by-team" : ""}`, dataset: personData(user) },
    timeNode(new Date().toISOString()),
    " ",
    h("span", { class: "msg-who" }, ...userLabel(user)),
    h("span", { class: "system-text", text: ` ${verb}` }),
  );
}

export function renderNotice(event) {
  const level = event.level === "warning" ? "warning" : "info";
  const li = h(
    "li",
    { class: `line notice notice-${level}`, dataset: { seq: String(event.seq ?? ""), noticeId: String(event.id ?? "") } },
    h("span", { class: "notice-label", text: event.scope === "site" ? "Site notice" : "Announcement" }),
    h("span", { class: "notice-body", text: event.body || "" }),
    event.by ? h("span", { class: "notice-by", text: `— ${displayName(event.by)}` }) : null,
  );
  return li;
}

export function isHighlightTip(event) {
  return typeof event.highlight === "boolean" ? event.highlight : Number(event.amount) >= 10;
}

export function renderTip(event, ctx = {}) {
  const amount = Number(event.amount) || 0;
  const from = event.from || null;
  const li = h(
    "li",
    {
      class: `line tip${isHighlightTip(event) ? " tip-highlight" : ""}`,
      dataset: { seq: String(event.seq ?? ""), tipId: String(event.id ?? ""), ...personData(from) },
    },
    h("span", { class: "tip-amount" }, icon("coin"), `${amount.toLocaleString()} coins`),
    h("span", { class: "tip-from" }, ...userLabel(from), " tipped"),
    event.body ? h("span", { class: "tip-body", text: event.body }) : null,
  );
  if (ctx.signedIn) {
    const actions = lineActions({ more: allowedOn(ctx.me, from).block });
    if (actions) li.append(actions);
  }
  return li;
}

/** A compact copy of a pinned tip or notice for the strip, counting down its pin. */
export function renderPinned(event) {
  const until = new Date(event.pinned_until).getTime();
  const countdown = h("span", {
    class: "countdown",
    dataset: { until: String(until) },
    title: `Pinned until ${formatTime(event.pinned_until)}`,
    text: formatCountdown(until - Date.now()),
  });
  if (event.type === "tip") {
    return h(
      "li",
      { class: `pinned-item pinned-tip${isHighlightTip(event) ? " tip-highlight" : ""}`, dataset: { seq: String(event.seq ?? ""), ...personData(event.from) } },
      h("span", { class: "tip-amount" }, icon("coin"), (Number(event.amount) || 0).toLocaleString()),
      h("span", { class: "tip-from" }, ...userLabel(event.from)),
      event.body ? h("span", { class: "pinned-body", text: event.body }) : null,
      countdown,
    );
  }
  const level = event.level === "warning" ? "warning" : "info";
  return h(
    "li",
    { class: `pinned-item pinned-notice notice-${level}`, dataset: { seq: String(event.seq ?? "") } },
    h("span", { class: "notice-label", text: event.scope === "site" ? "Site" : "Announcement" }),
    h("span", { class: "pinned-body", text: event.body || "" }),
    countdown,
  );
}

/**
 * One line for a room event, or null for events that only change existing lines.
 * ctx: {me, signedIn, roomBefore}.
 */
export function renderEvent(event, ctx = {}) {
  switch (event.type) {
    case "message":
      return renderMessage(event, ctx);
    case "notice":
      return renderNotice(event);
    case "tip":
      return renderTip(event, ctx);
    case "moderation":
      return systemLine("moderation", describeModeration(event), event);
    case "room": {
      const lines = describeRoomChange(ctx.roomBefore, event);
      return lines.length ? systemLine("room", lines.join(" · "), event) : null;
    }
    default:
      return null;
  }
}

// Panels.

function personItem(user, interactive) {
  if (!interactive) return h("li", { class: "person", dataset: { userId: String(user.id) } }, ...userLabel(user));
  return h(
    "li",
    { class: "person", dataset: { userId: String(user.id) } },
    h(
      "button",
      { type: "button", class: "person-button", dataset: { action: "person", ...personData(user) }, "aria-haspopup": "menu", "aria-expanded": "false" },
      ...userLabel(user),
    ),
  );
}

/** opts.interactive(user): whether the person opens a menu for this viewer. */
export function renderRoster(els, roster, { interactive = () => false } = {}) {
  els.count.textContent = `${roster.count} online`;
  const team = roster.teamList();
  els.team.replaceChildren(...team.map((u) => personItem(u, interactive(u))));
  els.teamEmpty.hidden = team.length > 0;
  els.audience.replaceChildren(...roster.audienceList().map((u) => personItem(u, interactive(u))));
  const unlisted = roster.unlisted;
  els.more.hidden = unlisted === 0;
  els.more.textContent = unlisted ? `+ ${unlisted} more watching` : "";
}

const STATUS_TEXT = {
  connecting: () => "Connecting…",
  live: () => "Connected",
  offline: () => "Offline: waiting for the network",
  reconnecting: (s, now) => `Reconnecting in ${Math.max(1, Math.ceil((s.retryAt - now) / 1000))} s`,
  stopped: (s) =>
    ({ forbidden: "You can't join this room", not_found: "This room does not exist" })[s.reason] || "Disconnected",
};

export function statusText(status, now = Date.now()) {
  return (STATUS_TEXT[status.state] || STATUS_TEXT.connecting)(status, now);
}

export function renderStatus(el, status, now = Date.now()) {
  el.dataset.state = status.state;
  el.textContent = statusText(status, now);
  if (status.state === "reconnecting") el.dataset.countdownUntil = String(status.retryAt);
  else delete el.dataset.countdownUntil;
}

export function toast(container, text, { level = "error", ms = 5000 } = {}) {
  const node = h("div", { class: `toast toast-${level}`, role: "status", text });
  container.append(node);
  setTimeout(() => node.remove(), ms);
  return node;
}
